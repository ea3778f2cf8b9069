#!/usr/bin/env python3
"""Checks the shape of src/ and of the built-in guest (guest/): includes
point one way between folders, the built-in guest stays an add-on, only
core/ writes struct vm's fields, no
cycle between modules (foo.c + foo.h) by includes or by calls, and no
function longer than 100 lines. Prints every violation and exits 1 if
there is one.

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
    "builtin_guest": 3,
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
# The built-in test guest is an add-on: the core boots a flat image and
# attaches an extra device without knowing what they are. Only these
# folders may name it; its ABI header only its own folder.
OPTIONAL = {"builtin_guest": {"cli", "control"}}
OPTIONAL_HEADERS = {"guest_abi.h": {"builtin_guest"}}
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


def check_optional(files, problems):
    for path, text in files.items():
        a = folder(path)
        for inc in INCLUDE.findall(text):
            b = folder(inc) if inc in files else None
            allowed = OPTIONAL.get(b) if b != a else None
            if inc in OPTIONAL_HEADERS and a not in OPTIONAL_HEADERS[inc]:
                problems.append(f"{path}: includes {inc}, which only "
                                f"{', '.join(sorted(OPTIONAL_HEADERS[inc]))}/ may")
            elif allowed is not None and a not in allowed:
                problems.append(f"{path}: includes {inc}: {b} is an add-on only "
                                f"{', '.join(sorted(allowed))}/ may name")


VM_WRITE = re.compile(r"\bvm->\w+(?:\.\w+|\[[^]]*\])*\s*(?:[-+|&]?=(?!=)|\+\+|--)"
                      r"|\batomic_(?:store|fetch_\w+|exchange|compare_exchange_\w+)\s*\(\s*&[\w>.-]*\bvm->")


def check_vm_writes(files, problems):
    """Outside core/, the VM changes only through vm_* calls, which say
    which thread may make them."""
    for path, text in files.items():
        if folder(path) == "core" or not path.endswith(".c"):
            continue
        for m in VM_WRITE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{path}:{line}: writes a struct vm field ({m.group(0).strip()}); "
                            "add a vm_* call")


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


CALL = re.compile(r"\b(\w+)\s*\(")


def check_call_cycles(files, problems):
    """Modules that call each other's functions: a header shared by several
    .c files hides such a cycle from the include graph."""
    defined = {}
    for path, text in files.items():
        if path.endswith(".c"):
            for name, _, _ in functions(text):
                if not re.search(r"^static\b[^;{]*\b" + name + r"\s*\(", text, re.M):
                    defined.setdefault(name, set()).add(module(path))
    graph = {}
    for path, text in files.items():
        if path.endswith(".c"):
            for name in set(CALL.findall(text)):
                graph.setdefault(module(path), set()).update(
                    m for m in defined.get(name, ()) if m != module(path))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("call cycle: " + " -> ".join(cycle))


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
    """Arguments: the src/ and guest/ folders (default: this checkout's)."""
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(top, "src")
    guest = sys.argv[2] if len(sys.argv) > 2 else os.path.join(top, "guest")
    files = dict(sources(src))
    problems = []
    check_layers(files, problems)
    check_optional(files, problems)
    check_vm_writes(files, problems)
    check_cycles(files, problems)
    check_call_cycles(files, problems)
    check_lengths(files, problems)
    guest_files = dict(sources(guest))
    guest_problems = []
    check_cycles(guest_files, guest_problems)
    check_call_cycles(guest_files, guest_problems)
    check_lengths(guest_files, guest_problems)
    problems += ["guest/: " + p for p in guest_problems]
    for p in problems:
        print("structure:", p)
    print(f"structure: {len(files)} + {len(guest_files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
