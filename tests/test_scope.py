"""What a scope holds: digests that equal records share, however the store spells their
numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vupsert.ops._scope import digest
from vupsert_server import LocalServer

from .conftest import run_cli, write_jsonl


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ({"n": 0.0, "f": 1e16}, {"n": 0, "f": 1e16}),
        ({"f": 1e16}, {"f": 10**16}),
        ({"n": -0.0, "s": "x"}, {"n": 0, "s": "x"}),
        ({"big": 2.0**60, "more": 2.0**63}, {"big": 2**60, "more": 2**63}),
        ({"a": [1.0, {"b": [2.0, 1e17]}]}, {"a": [1, {"b": [2, 10**17]}]}),
        ({"x": 0.5, "y": 1.0}, {"y": 1, "x": 0.5}),
    ],
)
def test_equal_numbers_digest_alike_whatever_else_the_object_holds(
    stored: dict[str, Any], read: dict[str, Any]
) -> None:
    assert digest("text", stored) == digest("text", read)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"n": 2**53 + 1}, {"n": 2.0**53}),
        ({"n": 0.5, "f": 1e16}, {"n": 0, "f": 1e16}),
        ({"f": 1e300}, {"f": 1e299}),
        ({"s": "1.0"}, {"s": "1"}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
    ],
)
def test_different_values_digest_differently(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert digest("text", one) != digest("text", other)


def test_a_record_stored_with_equal_numbers_is_unchanged(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl", [{"id": "a", "data": "x", "metadata": {"n": 0.0, "f": 1e16}}]
    )
    assert run_cli("sync", path, "-n", "ns", server=server).code == 0
    write_jsonl(path, [{"id": "a", "data": "x", "metadata": {"n": 0, "f": 1e16}}])
    result = run_cli("sync", path, "-n", "ns", "--json", server=server)
    assert result.code == 0, result.stderr
    assert result.summary["records_unchanged"] == 1
