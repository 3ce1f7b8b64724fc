#!/usr/bin/python3
"""Fails when a file under src/ includes a header of a folder its own folder
does not link to.

Each folder of src/ is a CMake library (fm_library in CMakeLists.txt) that
links only to the folders below it in ARCHITECTURE.md's order, so a call
upward fails to link; an include upward (a type, an inline function, a
macro) would not. This check reads the link lists from CMakeLists.txt (what
the build enforces) and allows a file in folder X to include headers of X
and of every folder X links to, directly or through another. src/app is the
ferromq executable: its link list is the one of target_link_libraries(ferromq
...), each added by a line of its own.

usage: check.py [ROOT]   (ROOT: the source tree, default: two folders up)
Prints each violation as FILE:LINE: message and exits 1 when there is any.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def link_graph(cmake_text):
    """{folder: set of folders it links to directly} from fm_library lines and
    the ferromq executable's target_link_libraries lines."""
    graph = {}
    for m in re.finditer(r'^\s*fm_library\(\s*(\w+)([^)]*)\)', cmake_text, re.M):
        graph[m.group(1)] = set(re.findall(r'\bfm_(\w+)', m.group(2)))
    app = set()
    for m in re.finditer(r'^\s*target_link_libraries\(\s*ferromq\s([^)]*)\)', cmake_text, re.M):
        app |= set(re.findall(r'\bfm_(\w+)', m.group(1)))
    graph["app"] = app
    return graph


def closure(graph, name):
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(graph.get(n, ()))
    return seen


def folder_of(path, src):
    rel = os.path.relpath(path, src)
    return rel.split(os.sep)[0] if not rel.startswith("..") else None


def check(root):
    src = os.path.join(root, "src")
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        graph = link_graph(f.read())
    errors = []
    for folder in sorted(os.listdir(src)):
        base = os.path.join(src, folder)
        if not os.path.isdir(base):
            continue
        if folder not in graph:
            errors.append("%s: folder src/%s is not a library in CMakeLists.txt" % (base, folder))
            continue
        allowed = closure(graph, folder)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                with open(os.path.join(root, path), errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        # As the compiler looks: beside the file, then in src/
                        # (every library's include folder).
                        target = os.path.normpath(os.path.join(dirpath, m.group(1)))
                        if not os.path.exists(target):
                            target = os.path.normpath(os.path.join(src, m.group(1)))
                        if not os.path.exists(target):
                            continue  # generated (protoc-c) or a system header
                        other = folder_of(target, src)
                        if other is None:
                            errors.append("%s:%d: includes %s, outside src/" % (path, lineno, m.group(1)))
                            continue
                        if other not in allowed:
                            errors.append("%s:%d: src/%s includes %s of src/%s, which it does not link to "
                                          "(its libraries: %s)" % (path, lineno, folder, m.group(1), other,
                                                                  " ".join(sorted(allowed))))
    return errors


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print("%d include(s) against the layering of ARCHITECTURE.md" % len(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
