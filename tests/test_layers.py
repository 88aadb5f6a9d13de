"""The package's import graph: no cycles, and no lower layer imports a higher one.

Every ``import`` of a ``gitract`` module counts, those inside functions too (a lazy import
is still a dependency). Layers, lowest first:

- foundation: ``gitract.utils``, ``constants``, ``paths``
- data and metrics: ``gitract.data``, ``preprocessing``, ``metrics``
- blocks and features: ``blocks``, ``features``
- models: ``gitract.models`` (return probabilities; know nothing of thresholds or metrics)
- evaluation: ``probmaps``, ``postprocessing`` (probability maps, thresholds)
- tracks: ``gitract.tracks`` (one module per track kind and the one registry of names)
- comparison and presentation: ``compare``, ``plots``, ``config``, ``commands``, ``cli``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitract"


def _module_names() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _module_names()


def _resolve(name: str) -> str | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    """``{module: {gitract modules it imports}}`` (submodules named in ``from x import y``
    resolve to ``x.y``)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] != "gitract":
                    continue
                targets = [_resolve(f"{base}.{a.name}") or _resolve(base) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [_resolve(a.name) for a in node.names if a.name.startswith("gitract")]
            graph[module].update(t for t in targets if t and t != module)
    return graph


_LAYERS = [
    ("foundation", ("gitract", "gitract.utils", "gitract.constants", "gitract.paths")),
    ("data", ("gitract.data", "gitract.preprocessing", "gitract.metrics")),
    ("blocks", ("gitract.blocks", "gitract.features")),
    ("models", ("gitract.models",)),
    ("evaluation", ("gitract.probmaps", "gitract.postprocessing")),
    ("tracks", ("gitract.tracks",)),
    ("presentation", ("gitract.compare", "gitract.plots", "gitract.config", "gitract.commands",
                      "gitract.cli", "gitract.__main__")),
]


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(_LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank is None:
        raise AssertionError(f"{module} belongs to no layer; add it to tests/test_layers.py")
    return rank


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for module, targets in import_graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                bad.append(f"{module} ({_LAYERS[layer_of(module)][0]}) imports {target} "
                           f"({_LAYERS[layer_of(target)][0]})")
    assert not bad, "\n".join(sorted(bad))


def test_the_checker_sees_lazy_imports():
    """The graph is built from every import statement, so the rules above can fail."""
    graph = import_graph()
    # A lazy import inside a function (compare -> report) is an edge.
    assert "gitract.compare._report" in graph["gitract.compare._run"]
    assert layer_of("gitract.models.cnn") < layer_of("gitract.tracks.block_cnn")
    assert "gitract.models.cnn" in graph["gitract.tracks.block_cnn"]  # inside _cnn_class
    assert layer_of("gitract.postprocessing") < layer_of("gitract.tracks")
    assert layer_of("gitract.tracks") < layer_of("gitract.config") == layer_of("gitract.compare")
