"""The documents a user reads stay true to the binary: every option that
--help lists is in ferromq.conf.example, and the example, with every option
uncommented, is a valid configuration."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("FERROMQ_BIN", os.path.join(ROOT, "build", "ferromq"))
EXAMPLE = os.path.join(ROOT, "ferromq.conf.example")


def help_options():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    section = out.split("Configuration options:", 1)[1]
    return re.findall(r"^  ([a-z_]+) ", section, re.M)


def test_every_option_is_in_the_example():
    text = open(EXAMPLE).read()
    missing = [o for o in help_options() if not re.search(r"^#%s " % o, text, re.M)]
    assert not missing, missing


def test_example_with_every_option_set_is_valid(tmp_path):
    lines = []
    for line in open(EXAMPLE):
        m = re.match(r"^#([a-z_]+ .*)$", line.rstrip("\n"))
        if m:
            line = m.group(1).replace("./data", str(tmp_path / "data"))
            key = line.split()[0]
            if key in ("password_file", "acl_file"):
                # --check-config reads them: give it (empty, valid) files.
                path = tmp_path / key
                path.write_text("")
                line = "%s %s" % (key, path)
            lines.append(line)
    conf = tmp_path / "all.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([BIN, "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_make_run_config_is_valid():
    r = subprocess.run([BIN, "--check-config", "-c", os.path.join(ROOT, "ferromq.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
