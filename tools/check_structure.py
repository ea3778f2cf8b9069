#!/usr/bin/env python3
"""Checks the shape of src/: includes point one way between folders, no
include cycle between modules (foo.c + foo.h), and no function longer than
100 lines. Prints every violation and exits 1 if there is one.

Folders by layer, lowest first; a file may include its own folder and any
lower layer: host (managed save) uses snapshot, and both register their
commands with control.
"""
import os
import re
import sys

LAYERS = {
    "util": 0,
    "backends": 1,
    "sandbox": 1,
    "devices": 2,
    "boot": 2,
    "virtio": 3,
    "arch": 4,
    "core": 5,
    "control": 6,
    "snapshot": 7,
    "host": 8,
    "migration": 8,
    "cli": 9,
}
MAX_FUNCTION_LINES = 100
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder(path):
    return path.split("/", 1)[0]


def module(path):
    return os.path.splitext(path)[0]


def sources(src):
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                full = os.path.join(root, f)
                yield os.path.relpath(full, src), open(full, encoding="utf-8").read()


def check_layers(files, problems):
    for path, text in files.items():
        for inc in INCLUDE.findall(text):
            if inc not in files:
                continue  # guest_abi.h and generated headers live outside src/
            a, b = folder(path), folder(inc)
            if a == b:
                continue
            if a not in LAYERS or b not in LAYERS:
                problems.append(f"{path}: folder not in the layer list ({a} -> {b})")
            elif LAYERS[b] >= LAYERS[a]:
                problems.append(f"{path}: includes {inc}, but {a} must not depend on {b}")


def find_cycle(graph):
    """One cycle in a module graph, as a list, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def check_cycles(files, problems):
    graph = {}
    for path, text in files.items():
        for inc in INCLUDE.findall(text):
            if inc in files and module(inc) != module(path):
                graph.setdefault(module(path), set()).add(module(inc))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("include cycle: " + " -> ".join(cycle))


def functions(text):
    """(name, first line, length) of each function defined at top level:
    kernel style, so a definition's body opens and closes in column 0."""
    lines = text.split("\n")
    start = name = None
    for i, line in enumerate(lines):
        if line == "{" and i > 0:
            j = i - 1
            while j > 0 and lines[j].startswith(("\t", " ")):
                j -= 1  # a parameter list continued over several lines
            m = re.search(r"(\w+)\s*\(", lines[j])
            start, name = i, m.group(1) if m else "?"
        elif line.startswith("}") and start is not None:
            yield name, start + 1, i - start - 1
            start = None


def check_lengths(files, problems):
    for path, text in files.items():
        if not path.endswith(".c"):
            continue
        for name, line, length in functions(text):
            if length > MAX_FUNCTION_LINES:
                problems.append(f"{path}:{line}: {name}() is {length} lines "
                                f"(at most {MAX_FUNCTION_LINES})")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src")
    files = dict(sources(src))
    problems = []
    check_layers(files, problems)
    check_cycles(files, problems)
    check_lengths(files, problems)
    for p in problems:
        print("structure:", p)
    print(f"structure: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
