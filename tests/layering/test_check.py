"""The layering check (check.py): the tree passes, and a deliberately wrong
include in a small tree of its own fails it, named by file and line."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check.py")
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

CMAKE = """\
fm_library(base Threads::Threads)
fm_library(mqtt fm_base)
fm_library(session fm_mqtt fm_base)
fm_library(broker fm_session fm_base)
fm_library(net fm_broker PkgConfig::LIBUV)
add_executable(ferromq ${app_srcs})
target_link_libraries(ferromq fm_net)
"""


def run(root):
    return subprocess.run([sys.executable, CHECK, root], capture_output=True, text=True)


def tree(tmp_path, files):
    (tmp_path / "CMakeLists.txt").write_text(CMAKE)
    for rel, text in files.items():
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in ("base", "mqtt", "session", "broker", "net", "app"):
        (tmp_path / "src" / d).mkdir(parents=True, exist_ok=True)
    return str(tmp_path)


BASE = {"base/buf.h": "", "mqtt/mqtt.h": '#include "../base/buf.h"\n', "session/session.h": "",
        "broker/broker.h": "", "net/conn.h": ""}


def test_source_tree_passes():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_downward_and_transitive_includes_pass(tmp_path):
    files = dict(BASE)
    # net links broker, which links session, mqtt (through session) and base.
    files["net/conn.c"] = '#include "conn.h"\n#include "../broker/broker.h"\n#include "mqtt/mqtt.h"\n#include <stdio.h>\n'
    files["app/main.c"] = '#include "../net/conn.h"\n#include "../base/buf.h"\n#include "generated.pb-c.h"\n'
    r = run(tree(tmp_path, files))
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("spelling", ['"../broker/broker.h"', '"broker/broker.h"'])
def test_upward_include_fails(tmp_path, spelling):
    files = dict(BASE)
    files["mqtt/codec.c"] = '#include "mqtt.h"\n\n#include %s\n' % spelling
    r = run(tree(tmp_path, files))
    assert r.returncode == 1, r.stdout
    assert "codec.c:3: src/mqtt includes %s of src/broker" % spelling.strip('"') in r.stdout, r.stdout


def test_sideways_include_fails(tmp_path):
    # session links mqtt and base only: net is above it.
    files = dict(BASE)
    files["session/session.c"] = '#include "../net/conn.h"\n'
    r = run(tree(tmp_path, files))
    assert r.returncode == 1 and "session.c:1: src/session includes ../net/conn.h of src/net" in r.stdout, r.stdout


def test_folder_without_library_fails(tmp_path):
    files = dict(BASE)
    files["stray/x.c"] = ""
    r = run(tree(tmp_path, files))
    assert r.returncode == 1 and "src/stray is not a library" in r.stdout, r.stdout
