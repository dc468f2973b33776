"""The dependency rules of README's code map, checked on every import in the repository.

Why: the layering is what lets the privileged extractor load no network code, the
fingerprints run on their own, and the exporter change without touching the node reader;
a rule that is only written down erodes with the first convenient import. Imports inside
functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

PRODUCT = ("runtime_insights", "exporter", "extractor", "fingerprints", "hostfs")
ALLOWED: dict[str, tuple[str, ...]] = {
    # package: the project packages it may import (besides itself)
    "hostfs": (),
    "extractor.contract": (),
    "fingerprints": ("hostfs",),
    "extractor": ("fingerprints", "hostfs"),
    "exporter": ("extractor.contract",),
    "runtime_insights": ("exporter", "extractor", "fingerprints", "hostfs"),
    "bench": PRODUCT,
    "demo": (*PRODUCT, "tests"),
    "tests": (*PRODUCT, "tests", "bench", "demo"),
}
PROJECT = (*PRODUCT, "tests", "bench", "demo")


def _files(top: str) -> Iterator[Path]:
    yield from sorted((REPO_ROOT / top).rglob("*.py"))


def _module_of(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _rule_for(module: str) -> str:
    """The most specific package of ALLOWED that holds ``module``."""
    return max((p for p in ALLOWED if _within(module, p)), key=len)


def _all_files() -> list[Path]:
    return [p for top in (*PRODUCT, "tests", "bench", "demo") for p in _files(top)]


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imports_follow_the_dependency_rules(path: Path) -> None:
    here = _module_of(path)
    rule = _rule_for(here)
    allowed = (rule, *ALLOWED[rule])
    for line, module, _names in _imports(path):
        if not any(_within(module, top) for top in PROJECT):
            continue  # the standard library and third-party packages
        assert any(_within(module, ok) for ok in allowed), (
            f"{path.relative_to(REPO_ROOT)}:{line}: {here} may not import {module} "
            f"({rule} may import only {', '.join(ALLOWED[rule]) or 'nothing of the project'})"
        )


def _package_of(module: str) -> str:
    """The (sub)package a module belongs to: its name without the last part."""
    return module.rpartition(".")[0]


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_private_name_crosses_a_package(path: Path) -> None:
    """A leading underscore means "this package only": another package imports only what
    a module offers without one."""
    here = _package_of(_module_of(path)) if path.name != "__init__.py" else _module_of(path)
    for line, module, names in _imports(path):
        if not any(_within(module, top) for top in PROJECT) or _within(module, here):
            continue
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{path.relative_to(REPO_ROOT)}:{line}: private {private} of {module}"


def test_every_product_package_names_its_public_surface() -> None:
    """Each package's __init__ says what it is for and what it offers."""
    missing = []
    for top in PRODUCT:
        for init in _files(top):
            if init.name != "__init__.py":
                continue
            tree = ast.parse(init.read_text())
            has_all = any(
                isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "__all__" for t in n.targets)
                for n in tree.body
            )
            if not ast.get_docstring(tree) or not has_all:
                missing.append(str(init.relative_to(REPO_ROOT)))
    assert not missing, f"packages without a docstring and __all__: {missing}"
