"""The package's layering, read from its source: no private cross-module imports, no cycles.

These checks parse every module with :mod:`ast` (nothing is imported), so they
hold for lazy imports inside functions as well as for module-level ones.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "attnmodel"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
PACKAGES = {_module_name(p) for p in PKG.rglob("__init__.py")}


def _resolve(node: ast.ImportFrom, here: str) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".") if here in PACKAGES else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str):
    """(imported module, imported name or None, line, at module level) for each import."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    # Imports for type checkers only never run.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, name)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if sub in MODULES:  # ``from pkg import module``
                    yield sub, None, node.lineno, id(node) in top
                else:
                    yield mod, a.name, node.lineno, id(node) in top


def _internal(mod: str) -> str | None:
    while mod and mod not in MODULES:
        mod = mod.rpartition(".")[0]
    return mod or None


def test_modules_found():
    # A broken walk would make every check below pass vacuously.
    assert "attnmodel.inference.em" in MODULES and "attnmodel.cli" in PACKAGES
    assert len(MODULES) > 30


def test_no_private_name_crosses_a_module():
    bad = []
    for name in MODULES:
        for mod, imported, line, _ in _imports(name):
            target = _internal(mod) if mod.startswith("attnmodel") else None
            if target is None or target == name:
                continue
            leaf = target.rpartition(".")[2]
            if imported and imported.startswith("_") and not imported.startswith("__"):
                bad.append(f"{name}:{line} imports {target}.{imported}")
            elif leaf.startswith("_") and leaf != "__init__" and not target.endswith("__main__"):
                bad.append(f"{name}:{line} imports private module {target}")
    assert not bad, "\n".join(bad)


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {n: set() for n in MODULES}
    for name in MODULES:
        for mod, _, _, top in _imports(name):
            if module_level_only and not top:
                continue
            target = _internal(mod) if mod.startswith("attnmodel") else None
            # The package root only re-exports; importing a name from it is not a layer.
            if target and target != name and target != "attnmodel":
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module-level", "all"])
def test_no_import_cycles(module_level_only):
    # Subpackage __init__ files re-export their modules; a cycle through one of
    # them is a cycle all the same.
    assert _cycles(_graph(module_level_only)) == []


def test_library_does_not_import_the_cli_or_the_paper():
    bad = []
    for name in MODULES:
        if name.startswith(("attnmodel.cli", "attnmodel.paper", "attnmodel.__main__")):
            continue
        for mod, _, line, _ in _imports(name):
            if mod.startswith(("attnmodel.cli", "attnmodel.paper")):
                bad.append(f"{name}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_em_path_leaves_pymc_unloaded():
    code = (
        "import sys, attnmodel as am\n"
        "sim = am.simulate_votes('beta', {'alpha': 3.0, 'beta': 5.0}, 60, 20, mu=0.8, seed=0)\n"
        "am.fit_em(sim.to_data(), 'beta', mu=0.8, n_init=1)\n"
        "tree = am.fit(sim.to_data(), 'beta', method='em', mu=0.8, n_init=1)\n"
        "am.filter_users(tree, sim.to_data(), rule='prob')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pymc', 'pytensor'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout[-3000:]


#: The layers from the bottom up. A module may import from its own layer and
#: those below it, never from a layer above (the package root only re-exports).
LAYERS = [
    ("attnmodel.errors",),
    ("attnmodel.data",),
    ("attnmodel.model", "attnmodel.export", "attnmodel.plots"),
    ("attnmodel.posterior", "attnmodel.leaderboard"),
    ("attnmodel.results",),
    ("attnmodel.inference",),
    ("attnmodel.filtering",),
    ("attnmodel.compare", "attnmodel.baselines"),
    ("attnmodel.paper", "attnmodel.warmup"),
    ("attnmodel.cli",),
    ("attnmodel.__main__",),
]


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise KeyError(module)


def test_every_module_has_a_layer():
    missing = [
        m
        for m in MODULES
        if m != "attnmodel"
        and not any(m == p or m.startswith(p + ".") for layer in LAYERS for p in layer)
    ]
    assert not missing, f"place these modules in LAYERS: {missing}"


def test_imports_only_run_down_the_layers():
    up = []
    for name in MODULES:
        if name == "attnmodel":
            continue
        for mod, _, line, _ in _imports(name):
            target = _internal(mod) if mod.startswith("attnmodel") else None
            if target is None or target == "attnmodel":
                continue
            if _layer(target) > _layer(name):
                up.append(f"{name}:{line} imports {target}, a layer above it")
    assert not up, "\n".join(up)
