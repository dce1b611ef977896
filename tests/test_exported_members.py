"""The public surface: ``vupsert.__all__``, and what each package shows the others."""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import vupsert

ROOT = Path(__file__).resolve().parent.parent
VALUES = {"OPTIONS", "Records", "__version__"}
"""Public names that are values, not classes or functions: documented where defined."""
PACKAGES = ("vupsert.config", "vupsert.transport", "vupsert.run", "vupsert.ops")
"""Packages whose modules are private: what others use goes through their ``__all__``."""


def public_names(module: types.ModuleType) -> set[str]:
    """What ``module`` shows by name: no underscore, not a submodule."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_every_public_name_is_exported_and_nothing_else() -> None:
    assert len(vupsert.__all__) == len(set(vupsert.__all__))
    assert public_names(vupsert) | {"__version__"} == set(vupsert.__all__)


@pytest.mark.parametrize("name", vupsert.__all__)
def test_every_export_is_documented(name: str) -> None:
    member = getattr(vupsert, name)
    if name in VALUES:
        assert not (inspect.isclass(member) or inspect.isfunction(member))
        return
    assert inspect.isclass(member) or inspect.isfunction(member), name
    doc = vars(member).get("__doc__") if inspect.isclass(member) else member.__doc__
    # A dataclass without a docstring gets its signature as one.
    assert doc and not doc.startswith(f"{member.__name__}("), f"{name} has no docstring"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_shows_exactly_what_other_packages_use(package: str) -> None:
    module = importlib.import_module(package)
    assert public_names(module) == set(module.__all__)
    assert set(module.__all__) == imported_from(package)


def imported_from(package: str) -> set[str]:
    """The names the modules of other packages import from ``package``."""
    names: set[str] = set()
    for path in sorted((ROOT / "vupsert").rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if dotted == package + ".__init__" or dotted.startswith(package + "."):
            continue
        here = dotted.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and _source(node, here) == package:
                names.update(alias.name for alias in node.names)
    # A public module of the package, imported by its name, is no re-export.
    return {
        name for name in names if not (ROOT / package.replace(".", "/") / f"{name}.py").exists()
    }


def _source(node: ast.ImportFrom, here: str) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))
