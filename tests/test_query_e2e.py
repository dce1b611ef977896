"""``vupsert query`` and ``vupsert.query``: what was loaded, found again, end to end against
the local index (the one ``vupsert serve`` runs): JSON Lines in a pipe, a table on a
terminal, one object with --json, the checks made before anything is sent."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rich.cells import cell_len
from rich.console import Console

import vupsert
import vupsert.api
import vupsert.cli.app
from vupsert.cli import Environment, main
from vupsert.cli.display import hits_table
from vupsert.config import Endpoint, Secret
from vupsert.errors import PreflightError, ServerError, UsageError
from vupsert.filters import compile_filter
from vupsert.ops import query as query_namespace
from vupsert.outcomes import Hit, QueryResult
from vupsert.transport import Caller, Client, RetryPolicy
from vupsert_server import LocalServer, ServerConfig

from .conftest import ROOT, SAMPLES, cli_env, on_a_terminal, run_cli, write_jsonl

DOCS: list[dict[str, Any]] = [
    {
        "id": "brew-1",
        "data": "how long should coffee beans rest after roasting",
        "metadata": {"topic": "coffee", "year": 2021},
    },
    {
        "id": "brew-2",
        "data": "grind size for a french press brew",
        "metadata": {"topic": "coffee", "year": 2023},
    },
    {
        "id": "hike-1",
        "data": "pacing yourself on long mountain climbs",
        "metadata": {"topic": "hiking", "year": 2022},
    },
    {
        "id": "sql-1",
        "data": "why count star is slow on large postgres tables",
        "metadata": {"topic": "databases", "year": 2020},
    },
    {"id": "bare", "data": "a note without any metadata at all"},
]
KEYS = {"namespace", "query", "filter", "top_k", "hits", "error"}
"""The --json object's keys."""


@pytest.fixture
def loaded(server: LocalServer, tmp_path: Path) -> LocalServer:
    """The index, with DOCS in namespace ``docs``."""
    path = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    assert run_cli("upsert", path, "-n", "docs", server=server).code == 0
    server.reset_stats()
    return server


def lines(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def answered(server: LocalServer, body: dict[str, Any], namespace: str = "docs") -> Any:
    """What the index answers to ``query-data`` itself."""
    response = httpx.post(
        f"{server.url}/query-data/{namespace}",
        json=body,
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["result"]


# ---------------------------------------------------------------------------------------
# The command line, in a pipe


def test_a_pipe_gets_one_json_object_per_record_as_the_index_ranked_them(
    loaded: LocalServer,
) -> None:
    result = run_cli("query", DOCS[0]["data"], "-n", "docs", server=loaded)
    assert result.code == 0, result.stderr
    hits = lines(result.stdout)
    assert hits[0]["id"] == "brew-1"  # its own text is nearest
    assert loaded.stats["requests"] == {"info": 1, "query-data": 1}
    expected = answered(loaded, {"data": DOCS[0]["data"], "topK": 10, "includeMetadata": True})
    assert [(h["id"], h["score"]) for h in hits] == [(h["id"], h["score"]) for h in expected]
    stored = loaded.records("docs")
    for hit in hits:
        assert set(hit) == {"id", "score", "metadata"}
        assert hit["metadata"] == stored[hit["id"]][1]
    assert next(h for h in hits if h["id"] == "bare")["metadata"] is None
    assert result.stderr == ""


def test_top_k_and_include_data(loaded: LocalServer) -> None:
    result = run_cli(
        "query", DOCS[3]["data"], "-n", "docs", "-k", "2", "--include-data", server=loaded
    )
    assert result.code == 0, result.stderr
    hits = lines(result.stdout)
    assert len(hits) == 2 and hits[0]["id"] == "sql-1"
    stored = loaded.records("docs")
    assert all(hit["data"] == stored[hit["id"]][0] for hit in hits)
    assert hits[0]["score"] >= hits[1]["score"]


@pytest.mark.parametrize(
    "expression", ["topic = 'coffee'", "topic = 'coffee' AND year >= 2022", "year < 2022"]
)
def test_a_filter_keeps_the_records_whose_metadata_matches(
    loaded: LocalServer, expression: str
) -> None:
    result = run_cli("query", "coffee", "-n", "docs", "--filter", expression, server=loaded)
    assert result.code == 0, result.stderr
    predicate = compile_filter(expression)
    assert predicate is not None
    matching = {id_ for id_, (_, meta) in loaded.records("docs").items() if predicate(meta)}
    assert {hit["id"] for hit in lines(result.stdout)} == matching


def test_json_is_one_object_holding_every_hit(loaded: LocalServer) -> None:
    args = ["query", "french press", "-n", "docs", "-k", "3", "--filter", "topic = 'coffee'"]
    piped = lines(run_cli(*args, "--include-data", server=loaded).stdout)
    result = run_cli(*args, "--include-data", "--json", server=loaded)
    assert result.code == 0
    (line,) = result.stdout.splitlines()
    document = orjson.loads(line)
    assert set(document) == KEYS
    assert document["hits"] == piped and len(piped) == 2
    assert document["namespace"] == "docs" and document["query"] == "french press"
    assert document["filter"] == "topic = 'coffee'" and document["top_k"] == 3
    assert document["error"] is None


def test_nothing_found_is_exit_0_and_says_why(loaded: LocalServer) -> None:
    result = run_cli("query", "coffee", "-n", "docs", "--filter", "topic = 'opera'", server=loaded)
    assert (result.code, result.stdout) == (0, "")
    assert (
        result.stderr
        == "vupsert query: no match: no record of namespace 'docs' matches the filter\n"
    )

    result = run_cli("query", "coffee", server=loaded)  # the default namespace, empty
    assert (result.code, result.stdout) == (0, "")
    assert "the default namespace holds no records; the index has 'docs'" in result.stderr
    assert "--namespace" in result.stderr

    result = run_cli("query", "coffee", "--json", server=loaded)
    assert result.code == 0 and orjson.loads(result.stdout)["hits"] == []
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--filter", "topic = "], "--filter 'topic = ': Invalid filter"),
        (["--filter", "(topic = 'a'"], "--filter"),
        (["--top-k", "0"], "--top-k"),
        (["--top-k", "1001"], "--top-k"),
    ],
)
def test_a_bad_filter_or_top_k_is_exit_2_with_nothing_sent(
    loaded: LocalServer, args: list[str], said: str
) -> None:
    result = run_cli("query", "coffee", "-n", "docs", *args, "--json", server=loaded)
    assert result.code == 2
    document = orjson.loads(result.stdout)
    assert set(document) == KEYS and said in document["error"]
    assert said in result.stderr
    assert not loaded.stats["requests"]


def test_an_empty_text_is_exit_2_with_nothing_sent(loaded: LocalServer) -> None:
    result = run_cli("query", "  ", "-n", "docs", server=loaded)
    assert result.code == 2 and "The query text is empty" in result.stderr
    assert not loaded.stats["requests"]


def test_a_namespace_the_index_lacks_is_exit_2_naming_those_it_has(loaded: LocalServer) -> None:
    result = run_cli("query", "coffee", "-n", "dosc", "--json", server=loaded)
    assert result.code == 2
    message = orjson.loads(result.stdout)["error"]
    assert message == (
        "--namespace dosc: the index has no such namespace; it has 'docs' (the nearest) and "
        "the default namespace."
    )
    assert "`vupsert info` lists the namespaces" in result.stderr
    assert loaded.stats["requests"] == {"info": 1}


def test_a_wrong_token_is_exit_3(loaded: LocalServer) -> None:
    env = cli_env(loaded, UPSTASH_VECTOR_REST_TOKEN="wrong-token")
    result = run_cli("query", "coffee", "-n", "docs", "--json", env=env)
    assert result.code == 3
    document = orjson.loads(result.stdout)
    assert set(document) == KEYS and "401" in document["error"]
    assert "The token was refused" in result.stderr
    assert "query-data" not in loaded.stats["requests"]


def test_an_index_without_an_embedding_model_is_exit_3_with_nothing_queried() -> None:
    with LocalServer(ServerConfig(port=0, embedding=False)) as server:
        result = run_cli("query", "coffee", server=server)
        assert result.code == 3
        assert "has no embedding model, so it cannot embed the query text" in result.stderr
        assert "queried with vectors, not text" in result.stderr
        assert server.stats["requests"] == {"info": 1}


@pytest.mark.parametrize("index_type", ["sparse", "hybrid"])
def test_sparse_and_hybrid_indexes_are_queried_as_the_index_fuses(
    index_type: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    with LocalServer(ServerConfig(port=0, index_type=index_type)) as server:  # type: ignore[arg-type]
        assert run_cli("upsert", path, "-n", "docs", server=server).code == 0
        result = run_cli("query", DOCS[2]["data"], "-n", "docs", "-k", "3", server=server)
        assert result.code == 0, result.stderr
        hits = lines(result.stdout)
        assert hits[0]["id"] == "hike-1"
        body = {"data": DOCS[2]["data"], "topK": 3, "includeMetadata": True}
        assert [h["id"] for h in hits] == [h["id"] for h in answered(server, body)]


def test_help_describes_the_options() -> None:
    result = run_cli("query", "--help")
    assert result.code == 0
    text = " ".join(result.stdout.split())
    for piece in (
        "Usage: vupsert query [OPTIONS] {TEXT}",
        "-k, --top-k N",
        "at most 1,000",
        "--filter FILTER",
        "--include-data",
        "--json",
        "a table of id, score and metadata",
        "JSON Lines",
        "Exit 0 whether anything matches or not",
    ):
        assert piece in text, piece


# ---------------------------------------------------------------------------------------
# On a terminal: a table


def test_a_terminal_gets_a_table_that_fits_its_width(loaded: LocalServer) -> None:
    env = cli_env(loaded, COLUMNS="60", TERM="xterm")
    args = ["query", DOCS[0]["data"], "-n", "docs", "-k", "3", "--include-data"]
    code, shown, err = on_a_terminal(args, env, stream="stdout")
    assert code == 0 and err == ""
    rows = [line.rstrip() for line in shown.splitlines() if line.strip()]
    assert rows[0].split() == ["id", "score", "metadata", "data"]
    assert rows[1].startswith('brew-1  1.0000  {"topic":"coffe')
    assert len(rows) == 4 and all(cell_len(row) <= 60 for row in rows)
    assert "…" in rows[1]  # the data is cut to fit
    assert not any(row.startswith("{") for row in rows)  # no JSON Lines


def test_the_table_keeps_ids_whole_and_cuts_the_rest_to_the_width() -> None:
    long_meta = {"title": "t" * 100, "tags": ["a" * 60, "b"], "n": 3}
    result = QueryResult(
        query="q",
        top_k=2,
        include_data=True,
        hits=[
            Hit("docs/2024/a-rather-long-id#12", 0.83333, long_meta, "line one\nline two " * 30),
            Hit("x\x1b[2Jy", 0.5, None, None),
        ],
    )
    for width in (40, 60, 80, 120, 400):
        console = Console(file=io.StringIO(), width=width, no_color=True)
        console.print(hits_table(result, width))
        rows = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
        assert all(cell_len(row) <= width for row in rows), (width, rows)
        if width < 60:  # too narrow for the id: folded, not cut
            assert rows[1].startswith("docs/2024/a") and "…" not in rows[1].split()[0]
            continue
        assert rows[1].startswith("docs/2024/a-rather-long-id#12  0.8333  {")
        assert rows[2].startswith("x\\x1b[2Jy  ")  # no escape reaches the terminal
        assert len(rows) == 3  # a row a hit: the data's lines are one
    assert f'"title":"{"t" * 39}…"' in rows[1] and '"n":3' in rows[1]
    assert "line one line two line one" in rows[1]


# ---------------------------------------------------------------------------------------
# From Python


def test_python_gets_the_hits(loaded: LocalServer) -> None:
    result = vupsert.query(
        DOCS[1]["data"],
        url=loaded.url,
        token=loaded.token,
        namespace="docs",
        top_k=2,
        filter="topic = 'coffee'",
        include_data=True,
    )
    assert isinstance(result, vupsert.QueryResult)
    assert [hit.id for hit in result.hits] == ["brew-2", "brew-1"]
    first = result.hits[0]
    assert isinstance(first, vupsert.Hit)
    assert (first.data, first.metadata) == (DOCS[1]["data"], DOCS[1]["metadata"])
    assert set(result.as_dict()) == KEYS
    assert result.as_dict()["hits"][0] == {
        "id": "brew-2",
        "score": first.score,
        "metadata": DOCS[1]["metadata"],
        "data": DOCS[1]["data"],
    }


def test_python_errors_raise_with_the_result(loaded: LocalServer) -> None:
    connection: dict[str, Any] = {"url": loaded.url, "token": loaded.token}
    with pytest.raises(UsageError, match=r"filter='topic = ': Invalid filter") as refused:
        vupsert.query("coffee", namespace="docs", filter="topic = ", **connection)
    assert refused.value.summary.query == "coffee"
    with pytest.raises(UsageError, match="top_k=0"):
        vupsert.query("coffee", namespace="docs", top_k=0, **connection)
    assert not loaded.stats["requests"]
    with pytest.raises(
        UsageError,
        match=r"namespace='dosc': the index has no such namespace; it has 'docs' \(the nearest\)",
    ):
        vupsert.query("coffee", namespace="dosc", **connection)
    with pytest.raises(ServerError) as stopped:
        vupsert.query("coffee", url=loaded.url, token="wrong-token")
    assert stopped.value.status == 401
    with LocalServer(ServerConfig(port=0, embedding=False)) as bare, pytest.raises(PreflightError):
        vupsert.query("coffee", url=bare.url, token=bare.token)


def test_a_query_is_retried_like_any_request() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/info":
            if seen.count("/info") == 1:
                return httpx.Response(503, json={"error": "busy", "status": 503})
            return httpx.Response(200, json={"result": {"denseIndex": {"embeddingModel": "M"}}})
        if seen.count(request.url.path) == 1:
            return httpx.Response(502, text="<html>bad gateway</html>")
        return httpx.Response(200, json={"result": [{"id": "a", "score": 0.9}]})

    endpoint = Endpoint("http://127.0.0.1:1", Secret("token"))
    with Client(endpoint, namespace="docs", transport=httpx.MockTransport(answer)) as client:
        caller = Caller(client, RetryPolicy(base=0.0, jitter=False), sleep=lambda _: None)
        result = query_namespace(caller, "coffee", top_k=1)
    assert [hit.id for hit in result.hits] == ["a"]
    assert seen == ["/info", "/info", "/query-data/docs", "/query-data/docs"]
    assert caller.retries == 1


# ---------------------------------------------------------------------------------------
# The README and the demo


def readme_block(name: str, lang: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"<!-- test: {name} -->")
    return readme[start:].split(f"```{lang}\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def articles(server: LocalServer) -> LocalServer:
    """The index with the samples' articles in namespace ``articles``."""
    path = SAMPLES / "articles.jsonl"
    assert run_cli("upsert", path, "-n", "articles", "-q", server=server).code == 0
    return server


def test_the_readme_commands_run_as_written(articles: LocalServer, tmp_path: Path) -> None:
    shim = tmp_path / "vupsert"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m vupsert "$@"\n')
    shim.chmod(0o755)
    env = cli_env(articles, PATH=f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    commands = [line for line in readme_block("query", "sh").splitlines() if line.strip()]
    assert len(commands) == 3
    outputs = []
    for command in commands:
        if "| jq" in command and shutil.which("jq") is None:
            continue
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout.splitlines())
    first, filtered = (lines("\n".join(out)) for out in outputs[:2])
    assert len(first) == 10 and first[0]["metadata"]["topic"] == "coffee"
    assert len(filtered) == 3
    assert all(hit["metadata"]["topic"] == "coffee" and hit["data"] for hit in filtered)
    if len(outputs) == 3:
        assert len(outputs[2]) == 10 and all(re.fullmatch(r"kb-\d{4}", id_) for id_ in outputs[2])


def test_the_readme_python_example_runs(articles: LocalServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", readme_block("query-python", "python")],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(articles),
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert len(printed) == 3
    titles = {meta["title"] for _, meta in articles.records("articles").values() if meta}
    for line in printed:
        score, id_, title = line.split(" ", 2)
        assert float(score) > 0 and re.fullmatch(r"kb-\d{4}", id_) and title in titles


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of each query the demo makes, made for real."""
    calls: list[dict[str, Any]] = []
    real = vupsert.api.query

    def recording(text: str, **options: Any) -> QueryResult:
        calls.append({"text": text, **options})
        return real(text, **options)

    monkeypatch.setattr(vupsert.cli.app, "query_records", recording)
    yield calls


def test_the_demo_queries_with_vupsert_query_and_prints_its_table(
    recorded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=out, stderr=io.StringIO(), environ={"NO_COLOR": "1"}
    )
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit:
        main(["demo", "samples"], environment)
    assert exit.value.code == 0
    shown = out.getvalue().splitlines()
    (at,) = [i for i, line in enumerate(shown) if line.startswith("vupsert query ")]
    (call,) = recorded
    # The printed command makes the same query.
    made = {"filter": None, **{k: call[k] for k in ("text", "namespace", "top_k", "include_data")}}
    assert parsed_query(shown[at], monkeypatch) == made
    header, *rows = shown[at + 1 :]
    assert header.split() == ["id", "score", "metadata", "data"]
    assert len(rows) == call["top_k"] == 3
    assert rows[0].split()[0] == "kb-0188"  # "Storing coffee beans"


def parsed_query(command: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``vupsert query ...`` as printed asks of the library."""
    argv = shlex.split(command)
    assert argv[:2] == ["vupsert", "query"]
    seen: list[dict[str, Any]] = []

    def capture(text: str, **options: Any) -> QueryResult:
        seen.append({"text": text, **options})
        return QueryResult()

    monkeypatch.setattr(vupsert.cli.app, "query_records", capture)
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=io.StringIO(), stderr=io.StringIO(), environ={}
    )
    with pytest.raises(SystemExit):
        main(argv[1:], environment)
    (options,) = seen
    return {key: options[key] for key in ("text", "namespace", "top_k", "filter", "include_data")}
