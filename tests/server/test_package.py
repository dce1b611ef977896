"""The server as a package beside vupsert: what it may import, the limits both agree on, and
its endpoints declared in one table."""

from __future__ import annotations

import ast
from pathlib import Path

import vupsert_server
from vupsert import records
from vupsert_server import _limits
from vupsert_server._app import ROUTES

PACKAGE = Path(vupsert_server.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_server_imports_nothing_of_vupsert_but_its_filter_language() -> None:
    used = {
        module
        for path in PACKAGE.glob("*.py")
        for module in imported_modules(path)
        if module == "vupsert" or module.startswith("vupsert.")
    }
    assert used == {"vupsert.filters"}


def test_the_client_and_the_server_agree_on_the_services_limits() -> None:
    for name in ("MAX_BATCH_RECORDS", "MAX_DATA_BYTES", "MAX_METADATA_BYTES"):
        assert getattr(_limits, name) == getattr(records, name), name


def test_every_endpoint_is_answered_or_written_never_both() -> None:
    for name, route in ROUTES.items():
        assert (route.answer is None) != (route.write is None), name
        assert route.methods and "POST" in route.methods, name
