#!/usr/bin/python3
"""Fails when the files of src/broker/ depend on each other in a circle.

An arrow A -> B between two files of the folder is written when
  - A includes B (a header), or
  - A names a function that B defines (B a .c file): a call, or a callback
    handed on; A's own definitions of the same name (a static function)
    shadow it. A header names what its macros and inline bodies use, not
    the functions it declares.
A circle of arrows means files that can only be understood together; the
folder is meant to read top-down (broker.c's dispatch above the handlers,
above routing and delivery, above the inbox and the store's records).

It also fails on a name that does not say whose it is: a function the
folder's files share (not static) is named broker__*, unless other folders
may call it (it is declared in a header that src/ or tools/ include from
outside the folder); such a public one is named broker_* or client_* (or
TYPE_free for a type it hands out).

usage: broker_files.py [--list] [ROOT]   (ROOT: the source tree, default: two folders up)
Prints each circle as one line of arrows (with the names that make them)
and exits 1 when there is any; --list prints every arrow first.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
IDENT = re.compile(r'\b[A-Za-z_]\w*\b')
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined", "_Static_assert", "__attribute__"}


def strip(text):
    """Text without comments, string and character literals (same length of lines)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_directives(code):
    """code with its preprocessor lines (and their continuations) blanked."""
    out, cont = [], False
    for line in code.split("\n"):
        directive = cont or line.lstrip().startswith("#")
        cont = directive and line.endswith("\\")
        out.append("" if directive else line)
    return "\n".join(out)


def top_level_heads(code):
    """(text before each top-level '{' or ';', the following char), at brace depth 0."""
    heads, depth, start = [], 0, 0
    for i, c in enumerate(code):
        if c == "{":
            if depth == 0:
                heads.append((code[start:i], "{"))
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                start = i + 1
        elif c == ";" and depth == 0:
            heads.append((code[start:i], ";"))
            start = i + 1
    return heads


def function_name(head):
    """The name a top-level declaration or definition head declares as a
    function, or None (struct, enum, object, macro lines)."""
    head = head.strip()
    before = head.split("(")[0]
    if "(" not in head or "=" in before or re.match(r"typedef\b", before):
        return None
    m = re.search(r"\b([A-Za-z_]\w*)\s*\($", head.split("(")[0] + "(")
    return m.group(1) if m else None


def read(root):
    broker = os.path.join(root, "src", "broker")
    files = {}
    for name in sorted(os.listdir(broker)):
        if name.endswith((".c", ".h")):
            with open(os.path.join(broker, name), errors="replace") as f:
                files[name] = f.read()
    return files


def arrows(files):
    """{(a, b): set of reasons} for the files of the folder."""
    code = {name: strip(text) for name, text in files.items()}
    defines, own, declares = {}, {}, {}
    for name, c in code.items():
        own[name], declares[name] = set(), set()
        for head, end in top_level_heads(without_directives(c)):
            fn = function_name(head)
            if not fn:
                continue
            if end == "{":
                own[name].add(fn)
                if name.endswith(".c") and not re.search(r"\bstatic\b", head):
                    defines.setdefault(fn, set()).add(name)
            else:
                declares[name].add(fn)
    out = {}
    for name, text in files.items():
        for inc in INCLUDE.findall(text):
            target = os.path.basename(inc)
            if not inc.startswith("..") and target in files:
                out.setdefault((name, target), set()).add("#include")
        skip = own[name] | (declares[name] if name.endswith(".h") else set())
        for ident in set(IDENT.findall(code[name])) - skip - KEYWORDS:
            for b in defines.get(ident, ()):
                if b != name:
                    out.setdefault((name, b), set()).add(ident)
    return out


def public_headers(root, files):
    """The headers of the folder that other folders of src/ (and tools/)
    include, and those they include in turn."""
    todo = []
    for top in ("src", "tools"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            if os.path.normpath(dirpath) == os.path.normpath(os.path.join(root, "src", "broker")):
                continue
            for n in names:
                if n.endswith((".c", ".h")):
                    with open(os.path.join(dirpath, n), errors="replace") as f:
                        for inc in INCLUDE.findall(f.read()):
                            if re.match(r"(\.\./)*broker/\w+\.h$", inc):
                                todo.append(os.path.basename(inc))
    seen = set()
    while todo:
        h = todo.pop()
        if h in seen or h not in files:
            continue
        seen.add(h)
        todo.extend(os.path.basename(i) for i in INCLUDE.findall(files[h]))
    return seen


def misnamed(root, files):
    """Messages for the functions defined in the folder's .c files whose
    names do not say whose they are."""
    public = set()
    for h in public_headers(root, files):
        for head, end in top_level_heads(without_directives(strip(files[h]))):
            fn = function_name(head)
            if fn and end == ";":
                public.add(fn)
    out = []
    for name, text in sorted(files.items()):
        if not name.endswith(".c"):
            continue
        for head, end in top_level_heads(without_directives(strip(text))):
            fn = function_name(head)
            if not fn or end != "{" or re.search(r"\bstatic\b", head) or fn.startswith("broker__"):
                continue
            if fn not in public:
                out.append("src/broker/%s: %s is not declared for other folders: name it broker__..." % (name, fn))
            elif not re.match(r"(broker|client)_|\w+_free$", fn):
                out.append("src/broker/%s: %s is public: name it broker_..." % (name, fn))
    return out


def circles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def one_cycle(edges, comp):
    """A shortest circle through the first file of comp, as a list of files."""
    inside = set(comp)
    start = comp[0]
    prev, todo = {start: None}, [start]
    while todo:
        nxt = []
        for v in todo:
            for (a, b) in edges:
                if a != v or b not in inside:
                    continue
                if b == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if b not in prev:
                    prev[b] = v
                    nxt.append(b)
        todo = nxt
    return comp


def main(argv):
    listing = "--list" in argv
    args = [a for a in argv if a != "--list"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    files = read(root)
    edges = arrows(files)
    if listing:
        for (a, b), why in sorted(edges.items()):
            print("%s -> %s (%s)" % (a, b, ", ".join(sorted(why))))
    comps = circles(edges)
    for comp in comps:
        cyc = one_cycle(edges, comp)
        steps = ["%s -(%s)-> " % (a, ", ".join(sorted(edges[(a, b)])[:3])) for a, b in zip(cyc, cyc[1:])]
        print("src/broker: circle among %s: %s%s" % (" ".join(comp), "".join(steps), cyc[-1]))
    names = misnamed(root, files)
    for n in names:
        print(n)
    if comps:
        print("%d circle(s) among the files of src/broker" % len(comps))
    return 1 if comps or names else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
