"""The options of the public functions are typed: a type checker refuses a misspelled or
mistyped one, as the functions refuse it at run time."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import vupsert
from vupsert.config.keywords import (
    ConnectionKeywords,
    MappingKeywords,
    ReadKeywords,
    SyncKeywords,
    UpsertKeywords,
    VerifyKeywords,
)
from vupsert.config.settings import CONNECTION_OPTIONS, MAPPING_OPTIONS, READ_OPTIONS

ROOT = Path(__file__).resolve().parent.parent


def test_every_option_is_typed_once() -> None:
    assert UpsertKeywords.__optional_keys__ == vupsert.OPTIONS
    assert not UpsertKeywords.__required_keys__
    assert ReadKeywords.__optional_keys__ == READ_OPTIONS
    assert MappingKeywords.__optional_keys__ | {"shard"} == MAPPING_OPTIONS
    assert ConnectionKeywords.__optional_keys__ == CONNECTION_OPTIONS
    unsynced = {"checkpoint", "restart", "shard"}
    assert SyncKeywords.__optional_keys__ == vupsert.OPTIONS - unsynced
    assert (
        VerifyKeywords.__optional_keys__
        == READ_OPTIONS | MAPPING_OPTIONS - {"shard"} | CONNECTION_OPTIONS
    )


CALLS = """
    from pathlib import Path

    import vupsert

    vupsert.upsert("a.jsonl", data_feild="text")  # error: misspelled
    vupsert.upsert("a.jsonl", batch_size="500")  # error: a string for a number
    vupsert.upsert("a.jsonl", id_from="uuid")  # error: not a choice
    vupsert.sync("a.jsonl", checkpoint="c.json")  # error: sync keeps no checkpoint
    vupsert.verify("a.jsonl", concurrency=4)  # error: verify sends nothing
    vupsert.export("-", data_field="text")  # error: export maps nothing
    vupsert.delete(ids=["a"], timeout="soon")  # error: a string for seconds
    vupsert.info(url="http://127.0.0.1:8787", retries=3)  # error: info tries once
    vupsert.query("coffee", top_k="3")  # error: a string for a number
    vupsert.query("coffee", data_field="text")  # error: a query maps nothing
    vupsert.upsert(
        ["a.csv", "b.csv"],
        data_field="text",
        batch_size=500,
        shard="0/4",
        types={"zip": "str", "year": int},
        columns="id,text",
        rejects=Path("rejects.jsonl"),
        chunk_size=2000,
    )
    vupsert.sync("a.jsonl", prefix="docs/", max_delete="10%", dry_run=True, timeout=30)
    vupsert.verify("a.jsonl", id_template="{sku}", max_backoff=1.5)
    vupsert.export("out.jsonl.gz", retries=0, allow_insecure_http=True)
    vupsert.query("coffee", namespace="docs", top_k=3, filter="lang = 'en'", timeout=5)
"""


def test_a_type_checker_refuses_a_misspelled_or_mistyped_option(tmp_path: Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    source = textwrap.dedent(CALLS).lstrip()
    path = tmp_path / "calls.py"
    path.write_text(source)
    out, err, _ = mypy.run(
        [
            str(path),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
        ]
    )
    assert not err
    refused = {int(n) for n in re.findall(rf"^{re.escape(str(path))}:(\d+): error:", out, re.M)}
    expected = {n for n, line in enumerate(source.splitlines(), 1) if "# error" in line}
    assert refused == expected, out
