"""The real CLI against a real local index, asserting what the index stored."""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from vupsert_server import LocalServer, ServerConfig

from .conftest import SAMPLES, cli_env, read_jsonl, run_cli, write_jsonl

pytestmark = pytest.mark.lived_in
"""The CLI end to end, and what a run imports."""

SUMMARY_KEYS = {
    "records_read",
    "records_upserted",
    "records_rejected",
    "records_skipped",
    "batches_sent",
    "batches_failed",
    "retries",
    "elapsed_s",
    "records_per_s",
    "namespace",
    "dry_run",
}


def docs(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "id": f"doc-{i}",
            "data": f"text number {i} about topic {i % 7}",
            "metadata": {"n": i, "tags": ["a", "b"], "nested": {"k": i % 3}},
        }
        for i in range(start, start + n)
    ]


def upserts(server: LocalServer) -> int:
    requests: dict[str, int] = server.stats["requests"]
    return sum(n for endpoint, n in requests.items() if endpoint.startswith("upsert-data"))


def test_jsonl_file_lands_exactly(server: LocalServer, tmp_path: Path) -> None:
    rows = docs(2500)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    result = run_cli("upsert", path, "--json", server=server)
    assert result.code == 0, result.stderr
    summary = result.summary
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["records_read"] == 2500 and summary["records_upserted"] == 2500
    assert summary["batches_sent"] == 3 and summary["records_rejected"] == 0
    assert summary["namespace"] == "" and summary["dry_run"] is False
    stored = server.records("")
    assert stored == {r["id"]: (r["data"], r["metadata"]) for r in rows}
    assert upserts(server) == 4  # three batches; the first one's first record went alone


def test_sample_corpus_jsonl_and_csv(server: LocalServer) -> None:
    result = run_cli(
        "upsert", SAMPLES / "articles.jsonl", "-n", "articles", "--json", server=server
    )
    assert result.code == 0, result.stderr
    expected = read_jsonl(SAMPLES / "articles.jsonl")
    stored = server.records("articles")
    assert len(stored) == len(expected) > 100
    first = expected[0]
    assert stored[first["id"]] == (first["data"], first["metadata"])

    result = run_cli(
        "upsert",
        SAMPLES / "products.csv",
        "-n",
        "products",
        "--data-field",
        "description",
        "--json",
        server=server,
    )
    assert result.code == 0, result.stderr
    products = server.records("products")
    assert len(products) == result.summary["records_upserted"] > 100
    data, meta = next(iter(products.values()))
    assert data and meta and "title" in meta and "description" not in meta and "id" not in meta
    assert any(isinstance(m.get("price"), float) for _, m in products.values() if m)
    assert any(isinstance(m.get("in_stock"), bool) for _, m in products.values() if m)


def test_csv_metadata_columns_and_types(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "id,data,price,count,flag,note,skip\r\n"
        'a,"hello, ""world""",1.5,3,true,,x\r\n'
        'b,"multi\nline",2,007,FALSE,n,y\r\n',
        encoding="utf-8",
    )
    result = run_cli("upsert", path, "--metadata-columns", "price,count,flag,note", server=server)
    assert result.code == 0, result.stderr
    stored = server.records("")
    assert stored["a"] == ('hello, "world"', {"price": 1.5, "count": 3, "flag": True})
    assert stored["b"][0] == "multi\nline"
    assert stored["b"][1] == {"price": 2, "count": "007", "flag": False, "note": "n"}


def test_tsv_and_no_infer_types(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("id\tdata\tyear\nx1\tsome text\t2024\n", encoding="utf-8")
    result = run_cli("upsert", path, "--no-infer-types", "-n", "tsv", server=server)
    assert result.code == 0, result.stderr
    assert server.records("tsv") == {"x1": ("some text", {"year": "2024"})}


@pytest.mark.parametrize("args", [(), ("-",)])
def test_stdin(server: LocalServer, args: tuple[str, ...]) -> None:
    payload = b"".join(orjson.dumps(r) + b"\n" for r in docs(30))
    result = run_cli("upsert", *args, "--json", server=server, input=payload)
    assert result.code == 0, result.stderr
    assert result.summary["records_upserted"] == 30
    assert len(server.records("")) == 30


def test_several_files_compressed_in_order(server: LocalServer, tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl", docs(10, 0))
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in docs(10, 10))))
    bz = tmp_path / "c.ndjson.bz2"
    bz.write_bytes(bz2.compress(b"".join(orjson.dumps(r) + b"\n" for r in docs(10, 20))))
    xz = tmp_path / "d.csv.xz"
    xz.write_bytes(lzma.compress(b"id,data,lang\nz1,zed one,en\nz2,zed two,fr\n"))
    # A later record with the same id as an earlier file wins: files are one stream.
    last = write_jsonl(tmp_path / "e.jsonl", [{"id": "doc-0", "data": "replaced"}])
    result = run_cli("upsert", plain, gz, bz, xz, last, "--json", server=server)
    assert result.code == 0, result.stderr
    stored = server.records("")
    assert len(stored) == 32
    assert stored["doc-0"] == ("replaced", None)
    assert stored["doc-25"][0] == "text number 25 about topic 4"
    assert stored["z2"] == ("zed two", {"lang": "fr"})


def test_nested_fields_and_number_ids(server: LocalServer) -> None:
    result = run_cli(
        "upsert",
        SAMPLES / "nested.jsonl",
        "--id-field",
        "doc.uid",
        "--data-field",
        "doc.body",
        "--metadata-field",
        "source",
        "-n",
        "nested",
        "--json",
        server=server,
    )
    assert result.code == 0, result.stderr
    rows = read_jsonl(SAMPLES / "nested.jsonl")
    stored = server.records("nested")
    first = rows[0]
    # The source object's keys, and the rest of doc: neither its id nor its body.
    metadata = {**first["source"], "doc": {"title": first["doc"]["title"]}}
    assert stored[str(first["doc"]["uid"])] == (first["doc"]["body"], metadata)
    assert len(stored) == len(rows)


def test_bad_records_are_rejected_with_file_line_and_run_goes_on(
    server: LocalServer, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    bad = SAMPLES / "bad-records.jsonl"
    result = run_cli("upsert", bad, "--rejects", rejects, "--json", server=server)
    assert result.code == 1, result.stderr
    assert sorted(server.records("")) == sorted(["good-1", "good-2", "12345", "good-3"])
    lines = read_jsonl(rejects)
    summary = result.summary
    assert summary["records_upserted"] == 4
    assert summary["records_rejected"] == len(lines) == 11
    sources = [line["_vupsert"]["source"] for line in lines]
    assert sources == [f"{bad}:{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14)]
    reasons = " | ".join(line["_vupsert"]["reason"] for line in lines)
    for word in ("id", "empty", "data", "metadata", "JSON", "object", "UTF-8", "limit"):
        assert word in reasons
    assert "Traceback" not in result.stderr


def test_bad_csv_rows(server: LocalServer, tmp_path: Path) -> None:
    rejects = tmp_path / "r.jsonl"
    result = run_cli(
        "upsert", SAMPLES / "bad-rows.csv", "--rejects", rejects, "--json", server=server
    )
    assert result.code == 1
    assert result.summary["records_rejected"] == len(read_jsonl(rejects)) == 4
    assert len(server.records("")) == 2


def test_strict_stops_at_first_bad_record(server: LocalServer, tmp_path: Path) -> None:
    """The records before the bad one are loaded, as one by one they would have been; the
    bad one is in the rejects file; nothing after it is read."""
    rejects = tmp_path / "r.jsonl"
    result = run_cli(
        "upsert",
        SAMPLES / "bad-records.jsonl",
        "--strict",
        "--rejects",
        rejects,
        "--json",
        server=server,
    )
    assert result.code == 1
    assert "bad-records.jsonl:2" in result.stderr
    assert list(server.records("")) == ["good-1"]
    assert [r["_vupsert"]["source"] for r in read_jsonl(rejects)] == [
        f"{SAMPLES / 'bad-records.jsonl'}:2"
    ]
    summary = result.summary
    assert (summary["records_read"], summary["records_upserted"]) == (2, 1)
    assert (summary["records_rejected"], summary["records_pending"]) == (1, 0)


def test_rejects_fed_back_upsert_what_now_succeeds(tmp_path: Path) -> None:
    rows = docs(200)
    rows[17]["data"] = "this one has POISON in it"
    rows[150]["data"] = "and POISON again"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    with LocalServer(ServerConfig(port=0, refuse_matching="POISON")) as server:
        result = run_cli(
            "upsert",
            path,
            "--rejects",
            rejects,
            "-n",
            "ns",
            "--id-field",
            "id",
            "--json",
            server=server,
        )
        assert result.code == 1, result.stderr
        assert result.summary["records_rejected"] == 2
        assert len(server.records("ns")) == 198
        lines = read_jsonl(rejects)
        assert [line["id"] for line in lines] == ["doc-17", "doc-150"]
        assert all(line["_vupsert"]["status"] == 400 for line in lines)
        assert "batch 1" in result.stderr and "HTTP 400" in result.stderr
        server.set_faults(refuse_matching=None)
        again = run_cli("upsert", rejects, "-n", "ns", "--json", server=server)
        assert again.code == 0, again.stderr
        assert len(server.records("ns")) == 200
        assert server.records("ns")["doc-17"] == ("this one has POISON in it", rows[17]["metadata"])


def test_empty_input_is_not_an_error(server: LocalServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = run_cli("upsert", empty, "--json", server=server)
    assert result.code == 0, result.stderr
    assert result.summary["records_read"] == 0
    assert upserts(server) == 0


def test_dry_run_sends_nothing(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(1500))
    env = cli_env(None)
    result = run_cli("upsert", path, "--dry-run", "--json", env=env)
    assert result.code == 0, result.stderr
    summary = result.summary
    assert summary["dry_run"] is True and summary["records_read"] == 1500
    assert summary["batches"] == 2 and summary["batches_sent"] == 0
    assert sum(server.stats["requests"].values()) == 0


def test_namespace_is_percent_encoded(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(3))
    result = run_cli("upsert", path, "-n", "my docs/2024?x", server=server)
    assert result.code == 0, result.stderr
    assert len(server.records("my docs/2024?x")) == 3


def test_batch_size_and_bytes_limit(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(100))
    result = run_cli("upsert", path, "-b", "30", "--json", server=server)
    assert result.summary["batches_sent"] == 4
    result = run_cli("upsert", path, "--max-batch-bytes", "2048", "--json", server=server)
    assert result.summary["batches_sent"] >= 5
    assert len(server.records("")) == 100


def test_missing_url_or_token_is_a_usage_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(1))
    result = run_cli("upsert", path, env=cli_env(None))
    assert result.code == 2 and "UPSTASH_VECTOR_REST_URL" in result.stderr
    result = run_cli(
        "upsert", path, env=cli_env(None, UPSTASH_VECTOR_REST_URL="http://127.0.0.1:9")
    )
    assert result.code == 2 and "UPSTASH_VECTOR_REST_TOKEN" in result.stderr


def test_plain_http_to_another_host_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(1))
    env = cli_env(None, UPSTASH_VECTOR_REST_URL="http://example.com", UPSTASH_VECTOR_REST_TOKEN="t")
    result = run_cli("upsert", path, env=env)
    assert result.code == 2 and "--allow-insecure-http" in result.stderr


def test_wrong_token_stops_with_exit_3_and_never_shows_the_token(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(5000))
    secret = "wrong-token-SHOULD-NOT-LEAK"
    env = cli_env(server, UPSTASH_VECTOR_REST_TOKEN=secret)
    result = run_cli("upsert", path, "--json", env=env)
    assert result.code == 3
    assert "401" in result.stderr and "token" in result.stderr.lower()
    assert secret not in result.stdout + result.stderr
    result = run_cli("upsert", path, "--no-preflight", "--json", env=env)
    assert result.code == 3
    assert upserts(server) == 1
    assert secret not in result.stdout + result.stderr


def test_index_without_embedding_model(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(5000))
    with LocalServer(ServerConfig(port=0, embedding=False)) as server:
        result = run_cli("upsert", path, server=server)
        assert result.code == 3
        assert "embedding model" in result.stderr
        assert upserts(server) == 0
        result = run_cli("upsert", path, "--no-preflight", server=server)
        assert result.code == 3
        assert "embedding model" in result.stderr
        assert upserts(server) == 1


def test_missing_file_is_a_usage_error(server: LocalServer, tmp_path: Path) -> None:
    result = run_cli("upsert", tmp_path / "nope.jsonl", server=server)
    assert result.code == 2 and "nope.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_compressed_file_is_unreadable_input(server: LocalServer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"id":"a","data":"x"}\n' * 10)[:-12] + b"garbage!")
    result = run_cli("upsert", bad, server=server)
    assert result.code == 3
    assert "broken.jsonl.gz" in result.stderr and "Traceback" not in result.stderr


def test_quiet_prints_nothing_on_success(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(10))
    result = run_cli("upsert", path, "-q", server=server)
    assert result.code == 0 and result.stderr == "" and result.stdout == ""


def test_summary_goes_to_stderr_and_json_to_stdout(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(10))
    result = run_cli("upsert", path, server=server)
    assert result.stdout == ""
    assert "upserted" in result.stderr and "10" in result.stderr


# Runs vupsert as `python -m vupsert` would, noting which module first imports each of
# WATCHED (the frame that asked for it, past importlib's own), and every import statement
# of a vupsert module that names rich, even once rich is loaded.
_IMPORTERS = r"""
import atexit, builtins, json, os, runpy, sys
WATCHED = {"rich", "httpx", "click"}
seen = {}
by_vupsert = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in seen:
            frame = sys._getframe(1)
            while frame and (
                frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen_importlib"))
                or frame.f_code.co_name == "watching"
            ):
                frame = frame.f_back
            seen[name] = frame.f_globals.get("__name__") if frame else None
        return None
sys.meta_path.insert(0, Watch())
real_import = builtins.__import__
def watching(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and name.split(".")[0] == "rich" and importer.startswith("vupsert"):
        by_vupsert.append(importer)
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = watching
def report():
    with open(os.environ["IMPORTERS"], "w") as f:
        json.dump({"first": seen, "by_vupsert": by_vupsert}, f)
atexit.register(report)
sys.argv[0] = "vupsert"
runpy.run_module("vupsert", run_name="__main__", alter_sys=True)
"""


def test_a_clean_quiet_run_never_imports_rich(tmp_path: Path, server: LocalServer) -> None:
    # rich costs about 0.05 s of CPU at every start; cron and pipes run with -q or --json
    # and, when every record lands, print nothing through it. Where click is installed
    # (a lived-in machine), httpx imports rich for its own command line, which vupsert
    # cannot help: then only vupsert's own modules are held to it.
    path = write_jsonl(tmp_path / "a.jsonl", docs(3))
    log = tmp_path / "importers.json"
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTERS, "upsert", str(path), "--json", "-q"],
        capture_output=True,
        env=cli_env(server, IMPORTERS=str(log)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stderr == b""
    assert orjson.loads(proc.stdout)["records_upserted"] == 3
    assert len(server.records("")) == 3
    imports = orjson.loads(log.read_bytes())
    first = imports["first"]
    assert str(first["httpx"]).startswith("vupsert.")  # the check sees who imports
    assert imports["by_vupsert"] == []
    if not str(first.get("click")).startswith("httpx"):
        assert "rich" not in first, f"{first['rich']} imports rich"


def test_a_quiet_run_with_rejections_still_says_so(tmp_path: Path, server: LocalServer) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "a", "data": "x"}\n{"id": "b"}\n')
    result = run_cli("upsert", path, "-q", server=server)
    assert result.code == 1
    assert "1 record rejected" in result.stderr
    assert list(server.records("")) == ["a"]


def test_lines_sent_as_written_land_as_parsed(server: LocalServer, tmp_path: Path) -> None:
    # Lines that hold exactly {id, data, metadata} are sent as the user wrote them; the
    # index must end up with what a JSON parser reads from each line, whatever the
    # spacing, key order, escapes or line ends, and the same as for lines that are dumped.
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"id": "a", "data": "caf\\u00e9",  "metadata": {"n": 1.50, "tags": ["x"]}}\r\n'
        b'  {"metadata":{"nested":{"id":"inner"}},"data":"b text","id":"b"}\n'
        b'{"id":"c","data":"c text"}\n'
        b'{"id":"d","data":"d text","metadata":null}\n'
        b'{"id":"e","data":"e text","extra":"kept"}\n'
        b'{"id":"f","data":"f text","metadata":{"k":2}}'
    )
    result = run_cli("upsert", path, "--json", server=server)
    assert result.code == 0, result.stderr
    assert server.records("") == {
        "a": ("café", {"n": 1.5, "tags": ["x"]}),
        "b": ("b text", {"nested": {"id": "inner"}}),
        "c": ("c text", None),
        "d": ("d text", None),
        "e": ("e text", {"extra": "kept"}),
        "f": ("f text", {"k": 2}),
    }


def test_with_proxy_variables_upserts_take_httpx_s_route(
    server: LocalServer, tmp_path: Path
) -> None:
    # With a proxy variable set, upserts go through httpx's client, which honours
    # NO_PROXY: the local index is reached directly, and a proxy that does not exist is
    # never used (a request through it would fail to connect).
    path = write_jsonl(tmp_path / "in.jsonl", docs(1500))
    env = cli_env(server, HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
    result = run_cli("upsert", path, "--json", env=env)
    assert result.code == 0, result.stderr
    assert result.summary["records_upserted"] == 1500
    assert len(server.records("")) == 1500
    # Without NO_PROXY the same run goes to the missing proxy, fails, and says so.
    env.pop("NO_PROXY")
    result = run_cli("upsert", path, "--json", env=env)
    assert result.code == 3
    assert "Could not reach" in result.stderr and "NO_PROXY" in result.stderr


@pytest.mark.parametrize("index_type", ["sparse", "hybrid"])
def test_sparse_and_hybrid_indexes_with_models_take_raw_text(
    tmp_path: Path, index_type: str
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(30))
    config = ServerConfig(port=0, index_type=index_type)  # type: ignore[arg-type]
    with LocalServer(config) as server:
        result = run_cli("upsert", path, "--json", server=server)
        assert result.code == 0, result.stderr
        assert len(server.records("")) == 30
        info = run_cli("info", server=server)
        assert info.code == 0 and "sparse embedding model" in info.stdout
        if index_type == "hybrid":
            assert "dense embedding model" in info.stdout


def test_an_index_part_without_a_model_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", docs(3))
    config = ServerConfig(port=0, index_type="sparse", embedding=False)
    with LocalServer(config) as server:
        result = run_cli("upsert", path, server=server)
        assert result.code == 3
        assert "no embedding model" in result.stderr and "Traceback" not in result.stderr
        info = run_cli("info", server=server)
        assert "no embedding model for its sparse part" in info.stderr
        assert server.records("") == {}
