"""The README's "Where things are" table names modules that exist."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT


@pytest.mark.parametrize("package", ["inputs", "mapping"])
def test_a_package_row_names_its_modules(package: str) -> None:
    readme = (ROOT / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{package}/` |")]
    named = set(re.findall(r"`(_\w+)`", row))
    modules = {p.stem for p in (ROOT / "vupsert" / package).glob("_*.py")} - {"__init__"}
    assert named == modules
