"""The README's one-line example of each kind of input, run as written against a local
index, and what the index then holds."""

from __future__ import annotations

import re
import shlex
from typing import Any

import orjson
import pyarrow.parquet as pq

from vupsert_server import LocalServer

from .conftest import ROOT, SAMPLES, read_jsonl, run_cli

_BLOCK = re.compile(r"<!-- test: inputs -->\n```sh\n(.*?)^```$", re.S | re.M)


def example_lines() -> list[list[str]]:
    (block,) = _BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    lines = [shlex.split(line) for line in block.splitlines() if not line.startswith("#")]
    assert all(line[:2] == ["vupsert", "upsert"] for line in lines)
    return [line[1:] for line in lines]


def test_each_kind_of_input_as_the_readme_shows_it(server: LocalServer) -> None:
    lines = example_lines()
    namespaces = [line[line.index("-n") + 1] for line in lines]
    assert namespaces == ["articles", "articles-json", "stores", "books", "guides"]
    for line in lines:
        result = run_cli(*line, server=server, cwd=ROOT)
        assert result.code == 0, (line, result.stderr)

    articles = read_jsonl(SAMPLES / "articles.jsonl")
    expected = {a["id"]: (a["data"], a["metadata"]) for a in articles}
    assert server.records("articles") == expected
    assert server.records("articles-json") == {a["id"]: expected[a["id"]] for a in articles[:12]}

    stores = server.records("stores")
    assert len(stores) == 8
    metadata = [meta for _, meta in stores.values() if meta is not None]
    assert all(isinstance(m["zip"], str) and len(m["zip"]) == 5 for m in metadata)
    assert stores["store-05"][1] == {"zip": "00501", "opened": 2016, "tags": ["pickup"]}

    books = server.records("books")
    rows = pq.read_table(SAMPLES / "books.parquet").to_pylist()
    assert sorted(books) == sorted(r["isbn"] for r in rows)
    data, meta = books["978-0-00-000103-5"]
    assert data is not None and data.startswith("Roast levels")
    assert meta == {
        "info": {
            "title": "The Kitchen Roastery",
            "author": "Priya Raman",
            "series": "Home Barista",
        },
        "published": "2022-10-09",
        "added": "2025-01-08T09:44:00+00:00",
        "tags": ["coffee"],
    }
    assert books["978-0-00-000102-8"][1]["info"] == {  # type: ignore[index]
        "title": "Spokes Under Load",
        "author": "Tomas Rieger",
    }

    guides = server.records("guides")
    source = {g["id"]: g for g in read_jsonl(SAMPLES / "guides.jsonl")}
    parents: dict[str, list[int]] = {}
    for id_, (data, meta) in guides.items():
        assert meta is not None and data is not None and len(data) <= 1500
        chunk: dict[str, Any] = meta["chunk"]
        assert id_ == f"{chunk['parent']}#{chunk['number']}"
        assert meta["topic"] == source[chunk["parent"]]["metadata"]["topic"]
        assert data in source[chunk["parent"]]["data"]
        parents.setdefault(chunk["parent"], []).append(chunk["number"])
    assert sorted(parents) == sorted(source)
    for numbers in parents.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)) and len(numbers) >= 4
    orjson.dumps(guides)
