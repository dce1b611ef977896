"""Tables handed over from Python as records: pandas and polars DataFrames, pyarrow Tables,
RecordBatches and readers, read a slice at a time with Parquet's type rules, against the
local index; and a clear error for what is no records at all."""

from __future__ import annotations

import datetime
import decimal
import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import vupsert
from vupsert.errors import ColumnError, UsageError
from vupsert.inputs import _frames, as_records
from vupsert_server import LocalServer

from .conftest import ROOT, cli_env, read_jsonl


def upsert(server: LocalServer, records: Any, **options: Any) -> vupsert.Summary:
    return vupsert.upsert(records, url=server.url, token=server.token, **options)


def pandas_frame() -> pd.DataFrame:
    """One column of each kind a notebook's DataFrame holds, missing values included."""
    return pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "data": ["first", "second", "third"],
            "count": [1, 2, 3],
            "score": [1.5, float("nan"), 3.0],
            "ok": [True, False, None],
            "at": pd.to_datetime(["2024-01-01 10:00", None, "2024-03-01 00:00"]),
            "zoned": pd.to_datetime(["2024-01-01 10:00"] * 3).tz_localize("Europe/Paris"),
            "day": [datetime.date(2024, 1, 2), None, datetime.date(2024, 1, 3)],
            "price": [decimal.Decimal("1.25"), None, decimal.Decimal("2")],
            "took": pd.to_timedelta(["1s", "2min", None]),
            "raw": [b"abc", b"\xff\xfe", None],
            "tags": [["x", "y"], [], None],
            "metadata": [{"lang": "en", "gone": None}, {"lang": "de"}, None],
            "kind": pd.Categorical(["u", "v", "u"]),
            "maybe": pd.array([1, None, 3], dtype="Int64"),
        }
    )


PANDAS_STORED = {
    "a": (
        "first",
        {
            "count": 1,
            "score": 1.5,
            "ok": True,
            "at": "2024-01-01T10:00:00",
            "zoned": "2024-01-01T10:00:00+01:00",
            "day": "2024-01-02",
            "price": 1.25,
            "took": 1.0,
            "raw": "abc",
            "tags": ["x", "y"],
            "lang": "en",
            "kind": "u",
            "maybe": 1,
        },
    ),
    "b": (
        "second",
        {
            "count": 2,
            "ok": False,
            "zoned": "2024-01-01T10:00:00+01:00",
            "took": 120.0,
            "raw": "//4=",
            "tags": [],
            "lang": "de",
            "kind": "v",
        },
    ),
    "c": (
        "third",
        {
            "count": 3,
            "score": 3.0,
            "at": "2024-03-01T00:00:00",
            "zoned": "2024-01-01T10:00:00+01:00",
            "day": "2024-01-03",
            "price": 2.0,
            "kind": "u",
            "maybe": 3,
        },
    ),
}
"""What the index holds of :func:`pandas_frame`: Parquet's types, NaN, None and NaT left
out, the metadata column's object merged."""


def test_a_pandas_dataframe_lands_with_parquets_types(server: LocalServer) -> None:
    summary = upsert(server, pandas_frame(), namespace="p")
    assert (summary.records_read, summary.records_upserted) == (3, 3)
    assert server.records("p") == PANDAS_STORED


def test_polars_and_pyarrow_tables_land_alike(server: LocalServer) -> None:
    frame = pandas_frame().drop(columns=["score", "kind", "maybe", "took"])
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    expected = {
        id_: (data, {k: v for k, v in meta.items() if k not in ("score", "kind", "maybe", "took")})
        for id_, (data, meta) in PANDAS_STORED.items()
    }
    tables = {
        "polars": pl.from_arrow(arrow),
        "table": arrow,
        "batch": arrow.combine_chunks().to_batches()[0],
        "reader": pa.RecordBatchReader.from_batches(arrow.schema, arrow.to_batches(2)),
    }
    for namespace, table in tables.items():
        summary = upsert(server, table, namespace=namespace)
        assert summary.records_upserted == 3, namespace
        assert server.records(namespace) == expected, namespace


def test_without_pyarrow_the_values_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pyarrow is not installed, a slice's Python values are converted by the same
    rules."""
    polars = pl.DataFrame(
        {
            "id": ["a", "b"],
            "at": [datetime.datetime(2024, 1, 1, 10), None],
            "day": [datetime.date(2024, 1, 2), None],
            "took": [datetime.timedelta(seconds=3), None],
            "price": [decimal.Decimal("1.25"), None],
            "raw": [b"a", b"\xff"],
            "tags": [[1, 2], None],
            "doc": [{"k": 1, "n": None}, None],
            "nan": [float("nan"), 1.0],
        }
    )
    with_arrow = [list(as_records(pandas_frame())), list(as_records(polars))]  # type: ignore[call-overload]
    monkeypatch.setattr(_frames, "_has_pyarrow", lambda: False)
    without = [list(as_records(pandas_frame())), list(as_records(polars))]  # type: ignore[call-overload]
    assert repr(without) == repr(with_arrow)  # repr: NaN is not equal to itself
    assert with_arrow[1][0]["doc"] == {"k": 1}


def test_a_column_of_mixed_types_is_read_value_by_value(server: LocalServer) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "data": ["x", "y"], "mixed": [1, "one"]})
    upsert(server, frame)
    assert server.records() == {"a": ("x", {"mixed": 1}), "b": ("y", {"mixed": "one"})}


def test_a_named_index_is_a_column(server: LocalServer) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "data": ["x", "y"], "n": [1, 2]})
    upsert(server, frame.set_index("id"))
    assert server.records() == {"a": ("x", {"n": 1}), "b": ("y", {"n": 2})}
    upsert(server, frame.set_index("n"), namespace="unnamed-index-dropped")
    assert server.records("unnamed-index-dropped") == {"a": ("x", {"n": 1}), "b": ("y", {"n": 2})}
    unnamed = frame.copy()
    unnamed.index = pd.Index([10, 20])
    upsert(server, unnamed, namespace="u")
    assert server.records("u") == {"a": ("x", {"n": 1}), "b": ("y", {"n": 2})}


def test_rows_are_named_by_number_and_resumed_by_row(server: LocalServer, tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"id": [f"r{i}" for i in range(2500)], "data": [f"row {i}" for i in range(2500)]}
    )
    frame = frame.with_columns(
        pl.when(pl.col("id") == "r1999").then(pl.lit("")).otherwise(pl.col("data")).alias("data")
    )
    rejects, checkpoint = tmp_path / "rejects.jsonl", tmp_path / "ckpt"
    first = upsert(server, frame.head(2100), rejects=rejects, checkpoint=checkpoint)
    assert (first.records_upserted, first.records_rejected) == (2099, 1)
    (rejected,) = read_jsonl(rejects)
    assert rejected["_vupsert"]["source"] == "<records>:2000"
    again = upsert(server, frame, checkpoint=checkpoint)
    assert (again.records_skipped, again.records_upserted) == (2100, 400)
    assert len(server.records()) == 2499


def test_sync_and_verify_take_a_dataframe(server: LocalServer) -> None:
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(30)], "data": ["x"] * 30})
    url, token = server.url, server.token
    assert vupsert.sync(frame, url=url, token=token, namespace="s").records_new == 30
    verified = vupsert.verify(pl.from_pandas(frame), url=url, token=token, namespace="s")
    assert verified.records_matching == 30
    synced = vupsert.sync(frame.iloc[:20], url=url, token=token, namespace="s")
    assert synced.records_deleted == 10
    assert len(server.records("s")) == 20


def test_a_table_without_the_data_column_says_which_it_has(server: LocalServer) -> None:
    with pytest.raises(ColumnError, match=r"<records>: has no column 'data' .*: id, text\)"):
        upsert(server, pd.DataFrame({"id": ["a"], "text": ["x"]}))
    with pytest.raises(UsageError, match="two columns named 'id'"):
        upsert(server, pd.DataFrame([["a", "x", "b"]], columns=["id", "data", "id"]))
    assert server.records() == {}


def test_a_nan_of_polars_is_rejected_as_parquets_is(server: LocalServer) -> None:
    frame = pl.DataFrame({"id": ["a", "b"], "data": ["x", "y"], "score": [float("nan"), 1.0]})
    summary = upsert(server, frame)
    assert (summary.records_upserted, summary.records_rejected) == (1, 1)
    assert server.records() == {"b": ("y", {"score": 1.0})}


class ArrowExporter:
    """What only exports an Arrow stream (as DuckDB's results do)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def test_anything_that_exports_an_arrow_stream_is_read(server: LocalServer) -> None:
    table = pa.table({"id": ["a", "b"], "data": ["x", "y"], "n": [1, None]})
    upsert(server, ArrowExporter(table))
    assert server.records() == {"a": ("x", {"n": 1}), "b": ("y", None)}


class DataFrame:
    """A DataFrame of another library: iterating it gives its column names."""

    def __iter__(self) -> Any:
        return iter(["id", "data"])


@pytest.mark.parametrize(
    ("records", "said"),
    [
        ({"id": "a", "data": "x"}, "records is one dict, not an iterable of them"),
        (7, "records is an int: vupsert cannot read it as records"),
        (None, "records is a NoneType: vupsert cannot read it as records"),
        ('[{"id": "a", "data": "x"}]', "records is a string of JSON, not a path"),
        ('{"id": "a", "data": "x"}\n', "records is a string of JSON, not a path"),
        (io.StringIO('{"id": "a"}\n'), "records is a file opened as text"),
        (pd.Series(["x"]), "records is a pandas Series, not a table of records"),
        (pl.Series(["x"]), "records is a polars Series, not a table of records"),
        (pl.DataFrame({"id": ["a"]}).lazy(), "records is a polars LazyFrame, not a table"),
        (np.array([["a", "x"]]), "records is a numpy ndarray, not a table of records"),
        (pa.chunked_array([["x"]]), "records is a pyarrow ChunkedArray, not a table"),
        (pa.array(["x"]), "records is a pyarrow Array, not a table of records"),
        (DataFrame(), "records is a tests DataFrame: vupsert cannot read it as records"),
    ],
)
def test_what_is_no_records_is_refused_before_anything_is_read(
    server: LocalServer, records: Any, said: str
) -> None:
    for call in (vupsert.upsert, vupsert.verify, vupsert.sync):
        with pytest.raises(UsageError) as refused:
            call(records, url=server.url, token=server.token)
        assert str(refused.value).startswith(said), refused.value
        assert refused.value.hint
    assert server.stats["requests"] == {}


MEMORY = """
import re, sys
import numpy as np, pandas as pd
import vupsert
from vupsert.config.settings import ReadOptions
from vupsert.inputs import RECORDS, as_records, read_input

def rss(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024

library, rows, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frame = pd.DataFrame({
    "id": np.arange(rows).astype(str),
    "data": ["the text of a row, about something or other"] * rows,
    "n": np.arange(rows),
    "score": np.linspace(0, 1, rows),
})
if library == "polars":
    import polars as pl
    frame = pl.from_pandas(frame)
before = rss("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
if how == "read":
    read = sum(1 for _ in read_input(RECORDS, ReadOptions(), records=as_records(frame)).items)
else:
    read = vupsert.upsert(frame, dry_run=True).records_valid
print(read, round(rss("VmHWM") - before))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's /proc")
@pytest.mark.parametrize(
    ("library", "rows", "how"), [("pandas", 1_000_000, "read"), ("polars", 200_000, "upsert")]
)
def test_a_million_rows_are_never_converted_whole(library: str, rows: int, how: str) -> None:
    """Reading a DataFrame of a million rows adds a few MB to the process, however many
    rows it has: 1,024 of them are converted at a time (converted whole into dicts, a
    million would add 490 MB, 200,000 about 100 MB). A dry run of a smaller one, its rows
    mapped and batched too, is no different."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY), library, str(rows), how],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=cli_env(None),
    )
    assert done.returncode == 0, done.stderr
    read, grown = map(int, done.stdout.split())
    assert read == rows
    assert grown < 40, f"reading the DataFrame added {grown} MB"


@pytest.mark.lived_in  # what an import brings in
def test_importing_vupsert_and_loading_dicts_import_no_table_library(server: LocalServer) -> None:
    script = (
        "import sys, vupsert\n"
        "vupsert.upsert([{'id': 'a', 'data': 'x'}])\n"
        "loaded = {'pandas', 'polars', 'pyarrow', 'numpy'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=cli_env(server), capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
