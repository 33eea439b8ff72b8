"""The package's layout rules, read from the source (``ast``), so the house stays as the README's "Code layout" says.

Every import counts: at module level, inside functions and under
``TYPE_CHECKING``. Importing ``ihc_score.cells`` (the folder) is an edge to
its ``__init__``, which has an edge to each module it imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ihc_score

PACKAGE = Path(ihc_score.__file__).resolve().parent

#: Each folder (or top-level module) and its layer: a module may import its
#: own folder and folders of lower layers only. The scoring core (slide to
#: score) is below the result types and the model, which are below the
#: outputs; the runner is above the outputs, the CLI above all.
LAYERS: dict[str, int] = {
    "errors": 0,
    "checks": 0,
    "version": 0,
    "fileio": 1,
    "slide": 2,
    "stain": 3,
    "tissue": 4,
    "regions": 5,
    "cells": 6,
    "score": 7,
    "model": 8,
    "results": 8,
    "synthetic": 8,
    "outputs": 9,
    "run": 10,
    "validation": 11,
    "__init__": 12,
    "cli": 13,
}
CORE = ("slide", "tissue", "stain", "regions", "cells", "score")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    """One imported name: ``source`` imports ``name`` from module ``target`` at ``line``."""

    source: str
    target: str
    name: str
    line: int


def _module_name(path: Path) -> str:
    parts = ("ihc_score", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str, path: Path) -> Iterator[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ihc_score"):
                    yield Import(module, alias.name, "", node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("ihc_score"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # ``from ihc_score.cells import _kernels``: the module itself
                    yield Import(module, sub, "", node.lineno)
                else:
                    yield Import(module, target, alias.name, node.lineno)


IMPORTS: list[Import] = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _folder(module: str) -> str:
    """``cells`` for ``ihc_score.cells.detect`` and ``ihc_score.cells``; ``model`` for ``ihc_score.model``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") and part != "__init__" for part in dotted.split("."))


def test_every_folder_and_top_level_module_has_a_layer() -> None:
    assert {_folder(m) for m in MODULES} == set(LAYERS)


def test_each_folder_looks_only_down() -> None:
    bad = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _folder(i.target) != _folder(i.source) and LAYERS[_folder(i.target)] >= LAYERS[_folder(i.source)]
    ]
    assert not bad, "\n".join(bad)


def test_core_never_imports_the_runner_the_outputs_or_the_cli() -> None:
    bad = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _folder(i.source) in CORE and _folder(i.target) in ("run", "outputs", "cli")
        or _folder(i.source) == "outputs" and _folder(i.target) == "run"
        or _folder(i.target) == "cli" and _folder(i.source) != "cli"
    ]
    assert not bad, "\n".join(bad)


def test_other_folders_use_what_a_folder_offers() -> None:
    """Across folders, imports name a folder (its ``__init__``) or a top-level module, and never a private name."""
    bad = []
    for i in IMPORTS:
        if _folder(i.target) == _folder(i.source):
            continue
        via_module = i.target.count(".") > 1  # ihc_score.cells.detect rather than ihc_score.cells
        if via_module or _is_private(i.target) or i.name.startswith("_") and i.name != "__version__":
            bad.append(f"{i.source}:{i.line} imports {i.target}{'.' + i.name if i.name else ''}")
    assert not bad, "\n".join(bad)


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if i.target in MODULES:
            graph[i.source].add(i.target)
    state: dict[str, int] = {}
    circles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_folder_inits_say_what_they_offer() -> None:
    """Each folder's ``__init__`` has a docstring and an ``__all__`` of names it can give."""
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module == "ihc_score":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), module
        names = [
            n.value
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
            for n in node.value.elts  # type: ignore[attr-defined]
        ]
        assert names, f"{module} has no __all__"
        package = __import__(module, fromlist=["*"])
        missing = [n for n in names if not hasattr(package, n)]
        assert not missing, f"{module}.__all__ names what it does not have: {missing}"


def test_modules_are_small() -> None:
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, big


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first decorator to the end, less the docstring."""
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = node.end_lineno - start + 1  # type: ignore[operator]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return lines


def test_functions_are_small() -> None:
    """No function over 60 lines of code (its docstring not counted)."""
    long = [
        f"{m}:{node.lineno} {node.name} ({_function_lines(node)} lines)"
        for m, p in MODULES.items()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _function_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def _annotated_fields(name: str) -> Iterator[tuple[str, int, str]]:
    """Every annotated class attribute or argument called ``name``: module, line and annotation text."""
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == name:
                yield module, node.lineno, ast.unparse(node.annotation)
            elif isinstance(node, ast.arg) and node.arg == name and node.annotation is not None:
                yield module, node.lineno, ast.unparse(node.annotation)


@pytest.mark.parametrize(
    ("name", "optional"),
    [("mpp_um", False), ("mpp_option_um", True)],
    ids=["resolved pixel size", "pixel size the user gave"],
)
def test_one_name_for_each_pixel_size(name: str, optional: bool) -> None:
    """``mpp_um`` is always a resolved size (a float); the user's ``--mpp`` is ``mpp_option_um`` and may be None."""
    seen = list(_annotated_fields(name))
    assert seen
    wrong = [f"{m}:{line} {name}: {ann}" for m, line, ann in seen if ("None" in ann) != optional]
    assert not wrong, "\n".join(wrong)


def test_public_api_loads_on_first_use() -> None:
    """``import ihc_score`` loads no pipeline module; every name of ``ihc_score.__all__`` then resolves."""
    code = (
        "import sys, ihc_score\n"
        "assert not [m for m in sys.modules if m.startswith('ihc_score.') and m != 'ihc_score.version'], sys.modules\n"
        "missing = [n for n in ihc_score.__all__ if getattr(ihc_score, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert ihc_score.score_slide.__module__ == 'ihc_score.run.pipeline'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
