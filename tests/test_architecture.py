"""Imports flow one way (docs/ARCHITECTURE.md): checked on every module's AST, lazy imports included.

    cli, benchmarks  ->  reports  ->  debias orchestration  ->  debias.methods.*  ->  debias core
    ->  harness_tasks

``reports`` reads run folders (``debias.run_folder``) and the benchmarks' report facts, nothing else of
``debias``; a method never imports the orchestration, another method, or a benchmark's internals.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("debias", "harness_tasks", "reports")
ORCHESTRATION = ("debias.train_and_eval", "debias.selection", "debias.pipeline", "debias.probe")
REPORTS_MAY_USE = ("debias.run_folder", "debias.atomic")
# what a method may use of the task package: data resolution and each benchmark's public package API
METHOD_TASK_API = ("harness_tasks._data", "harness_tasks._io")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``source``, ``from pkg import mod`` resolved to mod."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate) else base))
    return found


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    if not _within(imported, (*PACKAGES, "cli")):
        return None  # the standard library and third-party packages
    if importer.startswith("harness_tasks"):
        if not imported.startswith("harness_tasks"):
            return "the task package imports nothing of debias, reports or cli"
    elif importer.startswith("reports"):
        if _within(imported, ("debias", "cli")) and not _within(imported, REPORTS_MAY_USE):
            return "reports reads run folders (debias.run_folder) and benchmark facts only"
    elif importer.startswith("debias"):
        if _within(imported, ("reports", "cli")):
            return "debias never imports the report or the command line (they sit above it)"
        if importer.startswith("debias.methods.") and importer != "debias.methods.recipe":
            method = importer.split(".")[2]
            if _within(imported, ORCHESTRATION):
                return "a method never imports the orchestration"
            if (
                imported.startswith("debias.methods.")
                and imported != "debias.methods.recipe"
                and imported.split(".")[2] != method
            ):
                return "a method never imports another method"
            internal = imported.startswith("harness_tasks.") and imported.count(".") > 1
            if internal and not _within(imported, METHOD_TASK_API):
                return "a method uses a benchmark's public package API, not its internals"
        elif not _within(importer, (*ORCHESTRATION, "debias.methods")) and _within(
            imported, (*ORCHESTRATION, "debias.methods")
        ):
            return "core modules never import methods or the orchestration"
    return None


def _modules():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def test_imports_flow_one_way():
    problems = []
    for path in _modules():
        module = module_of(path)
        source = path.read_text(encoding="utf-8")
        for line, imported in imported_modules(source, module, path.name == "__init__.py"):
            why = violation(module, imported)
            if why:
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {imported}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("importer", "source", "why"),
    [
        ("harness_tasks._data", "from debias.models import cache_root", "task package"),
        ("reports.render", "from debias import evaluation", "reports reads"),
        ("debias.train_and_eval", "def f():\n    from reports import render", "never imports the report"),
        ("debias.methods.pcgu.recipe", "from debias import pipeline", "orchestration"),
        ("debias.methods.pcgu.recipe", "from debias.methods.gee import losses", "another method"),
        ("debias.methods.pcgu.pairs", "from harness_tasks.winogender.utils import read_stats", "internals"),
        ("debias.evaluation", "from debias.methods import gee", "core modules"),
    ],
)
def test_the_rule_catches_each_kind_of_violation(importer, source, why):
    """The checker itself can fail: each forbidden edge, written as the code once had it, is caught."""
    (imported,) = [name for _, name in imported_modules(source, importer)]
    assert why in (violation(importer, imported) or "")


def test_allowed_edges_pass():
    for importer, imported in [
        ("debias.methods.pcgu.pairs", "harness_tasks.winogender"),
        ("debias.methods.gee.recipe", "debias.methods.gee.losses"),
        ("debias.methods.gee.recipe", "debias.methods.recipe"),
        ("debias.selection", "debias.methods.recipe"),
        ("reports.render", "debias.run_folder"),
        ("reports.render", "harness_tasks.report_facts"),
        ("debias.evaluation", "harness_tasks._data"),
    ]:
        assert violation(importer, imported) is None, (importer, imported)
