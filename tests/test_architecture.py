"""The shape of the code: layers that import one way, no import cycle, no source file over 400 lines.

``lint-imports`` (the import-linter contracts in pyproject.toml, run by CI) checks the layers inside ``rlft/``. The
two top-level folders that install into the package by mapping (``envs/`` -> ``rlft.envs``, ``policies/`` ->
``rlft.policies``) are invisible to it, so this test builds the whole import graph itself from the source -- every
import, function-local ones included -- and checks those folders' layer and the absence of cycles everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
FOLDERS = {"rlft": ROOT / "rlft", "rlft.envs": ROOT / "envs", "rlft.policies": ROOT / "policies"}
LAYERS = ["rlft.cli", "rlft.bridges", "rlft.policy|rlft.llm|rlft.encoder|rlft.tune", "rlft.envs|rlft.policies",
          "rlft.pipeline", "rlft.core"]
"""Top to bottom: a module may import its own layer's package and the layers below, never one above (and the
packages of one layer, separated by |, not each other)."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "rlft" and name.split(".")[:2] in (["rlft", "envs"], ["rlft", "policies"]):
                continue
            found[name] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The rlft modules ``path`` imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in layer.split("|")):
            return i
    return None


def _package(module: str) -> str:
    for layer in LAYERS:
        for p in layer.split("|"):
            if module == p or module.startswith(p + "."):
                return p
    return module


def test_no_import_cycle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_layers_import_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in targets:
            theirs = _layer(target)
            if theirs is None:
                continue
            if theirs < mine or theirs == mine and _package(target) != _package(module):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n  " + "\n  ".join(sorted(wrong))


def test_no_source_file_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these by concern: {long}"
