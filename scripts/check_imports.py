"""No import circles between destila's modules.

Reads every `crate::`, `super::` and `destila::` path in src/ (use lines and inline
paths), maps each file to its module (src/distill/targets/write.rs -> distill::targets::write)
and checks two graphs for cycles: between files (a module's mod.rs re-exporting its
children does not count), and between top-level modules (bench, distill, data, ...).
Exits 1 naming each cycle. Run by `make lint`.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return []
    return rel


def files():
    for d, _, fs in os.walk(ROOT):
        for f in fs:
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def known_modules():
    return {tuple(module_of(f)) for f in files()}


PATH = re.compile(r"\b(crate|super|destila)((?:::\w+)+)")


def resolve(mod, head, tail, known, is_mod_rs):
    parts = tail.strip(":").split("::")
    if head in ("crate", "destila"):
        base = []
    else:  # super: relative to the parent of this module (of a mod.rs: its own parent)
        base = list(mod[:-1])
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
    full = base + parts
    # the longest prefix that is a module
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in known:
            return tuple(full[:n])
    return None


def edges():
    known = known_modules()
    out = {}
    for f in files():
        mod = tuple(module_of(f))
        if not mod and f.endswith("main.rs"):
            mod = ("main",)
        text = open(f).read()
        # drop comments and test modules
        text = re.sub(r"//[^\n]*", "", text)
        text = text.split("#[cfg(test)]")[0]
        deps = set()
        for m in PATH.finditer(text):
            head, tail = m.group(1), m.group(2)
            target = resolve(mod, head, tail, known, f.endswith("mod.rs"))
            if target is None or target == mod:
                continue
            # a parent's mod.rs naming its children is a declaration, not a dependency
            if target[: len(mod)] == mod:
                continue
            deps.add(target)
        out[mod] = deps
    return out


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def main():
    g = edges()
    files_graph = {k: {d for d in v if d[: len(k)] != k} for k, v in g.items()}
    top = {}
    for k, v in g.items():
        if not k:
            continue
        for d in v:
            if d and d[0] != k[0]:
                top.setdefault(k[0], set()).add(d[0])
    bad = []
    for name, graph in [("modules", files_graph), ("top-level modules", top)]:
        for c in cycles(graph):
            shown = " -> ".join("::".join(x) if isinstance(x, tuple) else x for x in c)
            bad.append(f"import circle between {name}: {shown}")
    for b in bad:
        print(b)
    if bad:
        sys.exit(1)
    print(f"no import circles ({len(g)} modules)")


if __name__ == "__main__":
    main()
