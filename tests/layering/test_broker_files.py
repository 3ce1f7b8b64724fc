"""The check of src/broker's files (broker_files.py): the tree has no
circle, and small trees of its own show what makes an arrow and that a
circle fails, named with the names that make it."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "broker_files.py")
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def run(root, *args):
    return subprocess.run([sys.executable, CHECK, *args, root], capture_output=True, text=True)


def tree(tmp_path, files):
    d = tmp_path / "src" / "broker"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return str(tmp_path)


# route.c calls inbox.c; inbox.c calls nothing of the folder.
DAG = {
    "types.h": "struct bworker;\n",
    "inbox.h": '#include "types.h"\n/* Pushes. */\nint broker__inbox_push(struct bworker *w, int n);\n',
    "inbox.c": '#include "inbox.h"\nint broker__inbox_push(struct bworker *w, int n)\n{\n\treturn n;\n}\n',
    "route.h": '#include "types.h"\nstruct route_result { int matched; };\n'
               'struct route_result broker__route_publish(struct bworker *w);\n',
    "route.c": '#include "route.h"\n#include "inbox.h"\n'
               'struct route_result broker__route_publish(struct bworker *w)\n{\n'
               '\t/* broker__route_publish( in a comment is no call */\n'
               '\treturn (struct route_result){ broker__inbox_push(w, 1) };\n}\n',
}


def test_source_tree_has_no_circle():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_arrows_listed(tmp_path):
    r = run(tree(tmp_path, DAG), "--list")
    assert r.returncode == 0, r.stdout
    assert "route.c -> inbox.c (broker__inbox_push)" in r.stdout
    assert "route.c -> inbox.h (#include)" in r.stdout
    # a declaration, a comment and a function returning a struct are no arrows back
    assert "inbox.c -> route" not in r.stdout and "route.h -> route.c" not in r.stdout


def test_call_back_up_is_a_circle(tmp_path):
    files = dict(DAG)
    files["inbox.c"] = ('#include "inbox.h"\n#include "route.h"\nint broker__inbox_push(struct bworker *w, int n)\n{\n'
                        '\treturn n ? broker__route_publish(w).matched : 0;\n}\n')
    r = run(tree(tmp_path, files))
    assert r.returncode == 1, r.stdout
    assert "circle among inbox.c route.c" in r.stdout, r.stdout
    assert "-(broker__route_publish)->" in r.stdout and "-(broker__inbox_push)->" in r.stdout, r.stdout


def test_static_function_of_the_same_name_is_no_arrow(tmp_path):
    files = dict(DAG)
    files["inbox.c"] = ('#include "inbox.h"\nstatic int broker__route_publish(int n) { return n; }\n'
                        'int broker__inbox_push(struct bworker *w, int n)\n{\n\treturn broker__route_publish(n);\n}\n')
    r = run(tree(tmp_path, files))
    assert r.returncode == 0, r.stdout


def test_macro_in_a_header_makes_an_arrow(tmp_path):
    # inbox.h's macro calls route.c: whoever includes inbox.h depends on route.c.
    files = dict(DAG)
    files["inbox.h"] += "#define ROUTED(w) broker__route_publish(w).matched\n"
    r = run(tree(tmp_path, files))
    assert r.returncode == 1 and "inbox.h" in r.stdout and "circle" in r.stdout, r.stdout


def test_header_circle_fails(tmp_path):
    files = dict(DAG)
    files["types.h"] = '#include "route.h"\n'
    r = run(tree(tmp_path, files))
    assert r.returncode == 1 and "route.h" in r.stdout and "types.h" in r.stdout, r.stdout


def test_names_say_whose(tmp_path):
    files = dict(DAG)
    files["broker.h"] = '#include "types.h"\nint broker_new(int n);\nint route_all(int n);\n'
    files["broker.c"] = ('#include "broker.h"\nint broker_new(int n)\n{\n\treturn n;\n}\n'
                         'int route_all(int n)\n{\n\treturn n;\n}\n'
                         'int wake_all(int n)\n{\n\treturn n;\n}\n'
                         'static int local(int n)\n{\n\treturn n;\n}\n')
    root = tree(tmp_path, files)
    net = tmp_path / "src" / "net"
    net.mkdir()
    (net / "conn.c").write_text('#include "../broker/broker.h"\n')
    r = run(root)
    assert r.returncode == 1, r.stdout
    assert "broker.c: wake_all is not declared for other folders: name it broker__" in r.stdout, r.stdout
    assert "broker.c: route_all is public: name it broker_" in r.stdout, r.stdout
    assert "broker_new" not in r.stdout and "local" not in r.stdout, r.stdout
