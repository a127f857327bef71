"""The layering of the code base, read from the source with ``ast`` (nothing is imported).

The engine (``dinov2/{layers,loss,models,data,train,eval,distributed,utils}``,
``neighbor2neighbor/``, ``utils/``) never imports the experiment layer (``dinov2/run/``); ``utils/``
and ``neighbor2neighbor/`` import nothing above them; no project module imports itself through
others (no import cycle). See docs/architecture.md. Every import counts: at module top, inside
functions, under ``if TYPE_CHECKING:``, absolute or relative.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dinov2", "neighbor2neighbor", "utils", "toy_mnist")
SCRIPTS = ("process_metadata.py",)
EXPERIMENT_LAYER = "dinov2.run"
ENGINE = (
    *(f"dinov2.{p}" for p in ("layers", "loss", "models", "data", "train", "eval")),
    *(f"dinov2.{p}" for p in ("distributed", "utils")),
    "neighbor2neighbor",
    "utils",
)
# below the DINOv2 engine: the shared tooling, and the denoiser (which only uses the tooling)
NEVER_IMPORTS = {
    "utils": ("dinov2", "neighbor2neighbor", "toy_mnist", "process_metadata"),
    "neighbor2neighbor": ("dinov2", "toy_mnist", "process_metadata"),
}


def project_modules(root: Path = REPO) -> dict[str, Path]:
    """``{dotted module name: file}`` of every project module (a package is its ``__init__``)."""
    files = [f for p in PACKAGES for f in (root / p).rglob("*.py")] + [root / s for s in SCRIPTS]
    modules = {}
    for f in files:
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = f
    return modules


def imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """``(dotted name, line)`` of everything ``module`` imports; ``from a import b`` gives ``a.b``
    (``b`` may be a module) and ``a``; relative imports are made absolute."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``{module: {imported project module: first line}}``: a name resolves to its longest prefix
    that is a project module (``from dinov2.eval.knn import run_knn`` → ``dinov2.eval.knn``)."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for name, line in imported_names(module, path):
            target = resolve(name)
            if target is not None and target != module:
                edges.setdefault(target, line)
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _in(module: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    return import_graph(project_modules())


def test_every_project_module_is_parsed(graph):
    for expected in ("dinov2.run.methods", "dinov2.eval.knn", "neighbor2neighbor.denoise"):
        assert expected in graph
    assert "process_metadata" in graph and "toy_mnist.mlp_exp" in graph
    assert len(graph) > 100


def test_the_engine_never_imports_the_experiment_layer(graph):
    offending = [
        f"{module} imports {target} ({project_modules()[module].relative_to(REPO)}:{line})"
        for module, edges in sorted(graph.items())
        if _in(module, ENGINE)
        for target, line in sorted(edges.items())
        if _in(target, EXPERIMENT_LAYER)
    ]
    assert not offending, "engine modules import the experiment layer dinov2.run:\n" + "\n".join(
        offending
    )


@pytest.mark.parametrize("lower", sorted(NEVER_IMPORTS))
def test_the_shared_tooling_and_the_denoiser_import_nothing_above_them(graph, lower):
    offending = [
        f"{module} imports {target} (line {line})"
        for module, edges in sorted(graph.items())
        if _in(module, lower)
        for target, line in sorted(edges.items())
        if _in(target, NEVER_IMPORTS[lower])
    ]
    assert not offending, f"{lower} imports a layer above it:\n" + "\n".join(offending)


def test_no_import_cycle_among_project_modules(graph):
    cycles = import_cycles(graph)
    described = [
        " <-> ".join(c)
        + "\n    "
        + "\n    ".join(f"{a} -> {b} (line {graph[a][b]})" for a in c for b in c if b in graph[a])
        for c in cycles
    ]
    assert not cycles, "import cycles among project modules:\n" + "\n".join(described)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checks_find_a_cycle_and_a_layering_violation_in_a_fake_tree(tmp_path):
    # a relative import inside a function, a from-import of a module, a TYPE_CHECKING import
    _write(tmp_path, "dinov2/__init__.py", "")
    _write(tmp_path, "dinov2/eval/__init__.py", "")
    _write(tmp_path, "dinov2/eval/a.py", "def f():\n    from ..run import b\n")
    _write(tmp_path, "dinov2/run/__init__.py", "")
    _write(tmp_path, "dinov2/run/b.py", "from dinov2.eval import c\n")
    _write(
        tmp_path,
        "dinov2/eval/c.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dinov2.eval.a\n",
    )
    _write(tmp_path, "dinov2/eval/d.py", "import dinov2.eval.c as c\nfrom . import a\n")
    (tmp_path / "process_metadata.py").write_text("")
    graph = import_graph(project_modules(tmp_path))
    assert graph["dinov2.eval.a"] == {"dinov2.run": 2, "dinov2.run.b": 2}
    assert graph["dinov2.run.b"] == {"dinov2.eval": 1, "dinov2.eval.c": 1}
    assert graph["dinov2.eval.d"] == {"dinov2.eval.c": 1, "dinov2.eval": 2, "dinov2.eval.a": 2}
    assert import_cycles(graph) == [["dinov2.eval.a", "dinov2.eval.c", "dinov2.run.b"]]
    assert _in("dinov2.eval.a", ENGINE) and not _in("dinov2.run.b", ENGINE)
