"""The package's import structure: no cycles (deferred imports inside functions included), and no lower
layer importing a higher one. Imports are read from the source with ``ast``, so an import written inside
a function to dodge a cycle at load time is still seen."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgebert"

#: layers, lowest first: a module may import its own layer and those below, never one above. The
#: run side (runtime) sits under everything that builds models, so a device install needs none of them.
LAYERS = [
    {"errors", "deps", "config", "metrics", "formats"},       # foundations: no edgebert imports beyond these
    {"artifact", "manifest", "data", "models"},               # files, manifests, datasets, model loading
    {"runtime"},                                              # inference without torch: per-format backends
    {"export", "compress", "train", "evaluation"},            # algorithms, plain arguments
    {"targets", "stages"},                                    # stage configs and functions, target profiles
    {"plan", "cache", "deploy", "pipeline", "pack"},          # planning, keys and cache, the stage loop, assembly
    {"bench", "compare", "search"},                           # measuring artifacts side by side, searching shapes
    {"cli", "edgebert", "__main__"},                          # the command line and the public API
]


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return mods


def import_graph() -> dict[str, set[str]]:
    """edgebert module -> the edgebert modules it imports anywhere in its source."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, (path, is_pkg) in mods.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == "edgebert"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                if name.split(".")[0] != "edgebert":
                    continue
                if name == "edgebert" and all(a.name == "__version__" for a in node.names):
                    continue  # the version string, not the API
                targets |= {f"{name}.{a.name}" if f"{name}.{a.name}" in mods else resolve(name) for a in node.names}
        graph[mod] = {t for t in targets if t and t != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "edgebert"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: edgebert.{top} is in no layer of tests/test_layers.py; give it one")


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    assert "edgebert.errors" in graph["edgebert.cli.main"]  # a top-level import
    assert any(m.startswith("edgebert.pipeline") for m in graph["edgebert"])  # inside a function


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_lower_layer_imports_a_higher_one():
    graph = import_graph()
    wrong = sorted(f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
                   for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))
    assert wrong == []
