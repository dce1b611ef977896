"""What a user reads, in a log and on a terminal, from the real CLI against a local index:
whole lines at any width, messages that say what to do, the demo's own commands."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

import vupsert.api
import vupsert.cli.app
import vupsert.cli.demo
import vupsert.run._pipeline
from vupsert.cli.app import Environment, main, upsert_command
from vupsert.config import Secret
from vupsert.config.settings import MappingOptions, ReadOptions, Settings
from vupsert.outcomes import Summary
from vupsert_server import LocalServer, ServerConfig

from .conftest import ROOT, SAMPLES, Result, cli_env, run_cli, write_jsonl

pytestmark = pytest.mark.lived_in
"""A log's lines, closed streams, and the messages a user reads: the CLI end to end."""


def rows(n: int, prefix: str = "doc") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "data": f"{prefix} text {i}"} for i in range(n)]


def run(*args: str, server: LocalServer | None = None, stdin: bytes = b"") -> Result:
    """The CLI in this process, stderr a file (as in a log), as a user would call it."""
    out, err = io.StringIO(), io.StringIO()
    environ = {"NO_COLOR": "1"}
    if server is not None:
        environ["UPSTASH_VECTOR_REST_URL"] = server.url
        environ["UPSTASH_VECTOR_REST_TOKEN"] = server.token
    environment = Environment(stdin=io.BytesIO(stdin), stdout=out, stderr=err, environ=environ)
    try:
        main(list(args), environment)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


# ---------------------------------------------------------------------------------------
# One line per event in a log


@pytest.fixture
def refusing() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, refuse_matching="BADWORD")) as running:
        yield running


def test_every_message_is_one_whole_line_in_a_narrow_log(
    tmp_path: Path, refusing: LocalServer
) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 6)
    folder.mkdir()
    path = write_jsonl(folder / "docs.jsonl", [*rows(30), {"id": "x", "data": "BADWORD"}])
    rejects = folder / "rejects.jsonl"
    env = cli_env(refusing, COLUMNS="40")
    result = run_cli("upsert", path, "-n", "docs", "--rejects", rejects, env=env)
    assert result.code == 1, result.stderr
    lines = result.stderr.splitlines()
    (batch,) = [line for line in lines if line.startswith("batch ")]
    assert f"({path}:1-31)" in batch and f"(written to {rejects})" in batch
    (warning,) = [line for line in lines if line.startswith("warning: ")]
    assert "namespace 'docs' does not exist in the index yet" in warning
    (summary,) = [line for line in lines if line.startswith("vupsert: ")]
    assert "upserted 30" in summary and summary.endswith(f"rejects in {rejects}")
    (rejected,) = [line for line in lines if line.startswith("rejected ")]
    assert rejected.startswith(f"rejected {path}:31: ")
    assert len(lines) == 4, lines

    missing = run_cli("upsert", folder / "nope.jsonl", env=env)
    assert missing.code == 2
    assert missing.stderr.count("\n") == 1
    assert missing.stderr.startswith(f"error: {folder / 'nope.jsonl'}: no such file. Check")


def test_a_quiet_run_prints_nothing_when_all_is_well_even_with_a_note(
    tmp_path: Path, server: LocalServer
) -> None:
    # A half-written last line and a namespace the index does not have yet are normal in
    # cron: under -q they make no mail.
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"id":"a","data":"x"}\n{"id":"b","da')
    checkpoint = tmp_path / "docs.ckpt"
    result = run(
        "upsert", str(path), "-n", "new", "--checkpoint", str(checkpoint), "-q", server=server
    )
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert list(server.records("new")) == ["a"]
    loud = run(
        "upsert", str(path), "-n", "other", "--checkpoint", str(tmp_path / "o.ckpt"), server=server
    )
    assert "namespace 'other' does not exist in the index yet" in loud.stderr
    assert "it has 'new'" in loud.stderr and "newline yet" in loud.stderr


def test_the_new_namespace_warning_is_said_once_and_not_for_an_existing_one(
    tmp_path: Path, server: LocalServer
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(2500))
    first = run("upsert", str(path), "-n", "articles", server=server)
    assert first.stderr.count("does not exist in the index yet") == 1
    typo = run("upsert", str(path), "-n", "artciles", server=server)
    assert typo.stderr.count("namespace 'artciles' does not exist") == 1
    assert "it has 'articles'" in typo.stderr
    again = run("upsert", str(path), "-n", "articles", server=server)
    assert "does not exist" not in again.stderr
    assert len(server.records("artciles")) == 2500  # a warning, not a refusal


@pytest.mark.parametrize("count", [5, 150])
def test_a_run_that_sends_nothing_does_not_warn_of_the_namespace_it_would_create(
    tmp_path: Path, server: LocalServer, count: int
) -> None:
    # 5 records all rejected: nothing to send. 150: the run stops at the 100th (exit 2).
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": "x"} for i in range(count)])
    result = run("upsert", str(path), "-n", "fresh", server=server)
    assert result.code == (1 if count == 5 else 2), result.stderr
    assert "does not exist" not in result.stderr
    assert "fresh" not in server.namespaces()


# ---------------------------------------------------------------------------------------
# Closed standard streams


def closed_stdin(*args: str | Path, env: dict[str, str]) -> Result:
    proc = subprocess.run(
        ["sh", "-c", 'exec "$0" -m vupsert "$@" <&-', sys.executable, *map(str, args)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell")
def test_a_closed_stdin_only_matters_to_reading_it(tmp_path: Path, server: LocalServer) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(5))
    env = cli_env(server)
    loaded = closed_stdin("upsert", path, "--json", env=env)
    assert loaded.code == 0, loaded.stderr
    assert len(server.records("")) == 5
    assert closed_stdin("serve", "--help", env=env).code == 0
    dash = closed_stdin("upsert", "-", env=env)
    assert dash.code == 2 and "Traceback" not in dash.stderr
    assert "stdin is closed" in dash.stderr


# ---------------------------------------------------------------------------------------
# Messages that say what to do


def test_a_csv_without_the_id_column_stops_before_anything_is_sent(
    tmp_path: Path, server: LocalServer
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("id,data\n1,one\n2,two\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,data\n1,one\n2,two\n")
    result = run("upsert", str(good), str(bad), "--json", server=server)
    assert result.code == 2, result.stderr
    # The run never started: --json prints its one object, nothing done, the error set.
    (line,) = result.stdout.splitlines()
    summary = orjson.loads(line)
    assert summary["records_read"] == summary["records_upserted"] == 0
    assert "no column 'id'" in summary["error"]
    assert "bad.csv" in result.stderr and "no column 'id'" in result.stderr
    assert "--id-field" in result.stderr and "records read" not in result.stderr
    assert server.stats["records_received"] == 0
    # stdin can only be looked at when its first row comes: still before anything is sent.
    piped = run("upsert", "-f", "csv", "-", stdin=bad.read_bytes(), server=server)
    assert piped.code == 2 and "no column 'id'" in piped.stderr
    assert "records read" not in piped.stderr
    assert server.stats["records_received"] == 0


def test_an_endpoint_url_says_to_use_the_base_url(tmp_path: Path, server: LocalServer) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(3))
    env = cli_env(server, UPSTASH_VECTOR_REST_URL=server.url + "/upsert-data")
    result = run_cli("upsert", path, env=env)
    assert result.code == 2
    assert f"Use the index's base URL, with no path: {server.url}" in result.stderr
    assert server.stats["records_received"] == 0


class _Redirecting(BaseHTTPRequestHandler):
    """An address that answers every request with a redirect, as a moved host does."""

    seen = 0

    def do_POST(self) -> None:
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(301)
        self.send_header("Location", "https://elsewhere.example/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Redirecting.seen = 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("preflight", ["--preflight", "--no-preflight"])
def test_a_redirect_stops_the_run_and_names_where_it_points(
    tmp_path: Path, redirecting: str, preflight: str
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows(3))
    env = cli_env(None, UPSTASH_VECTOR_REST_URL=redirecting, UPSTASH_VECTOR_REST_TOKEN="t")
    result = run_cli("upsert", path, preflight, "--retries", "5", env=env)
    assert result.code == 3, result.stderr
    assert "redirected to https://elsewhere.example " in result.stderr
    assert "does not follow redirects" in result.stderr
    assert _Redirecting.seen == 1  # a configuration error: not retried


# ---------------------------------------------------------------------------------------
# The demo prints what it runs


def parsed(command: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings that the CLI builds from ``command``, without running anything."""
    argv = shlex.split(command)
    assert argv[:2] == ["vupsert", "upsert"]
    seen: list[Settings] = []

    class Capture:
        def __init__(self, settings: Settings, **kwargs: object) -> None:
            seen.append(settings)

        def execute(self) -> Summary:
            return Summary()

    monkeypatch.setattr(vupsert.api, "Run", Capture)
    environ = {"UPSTASH_VECTOR_REST_URL": "http://127.0.0.1:1", "UPSTASH_VECTOR_REST_TOKEN": "t"}
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=io.StringIO(), stderr=io.StringIO(), environ=environ
    )
    with pytest.raises(SystemExit):
        main(argv[1:], environment)
    (settings,) = seen
    return settings


def same_run(settings: Settings) -> Settings:
    """``settings`` with the connection the parsed command gets from the environment."""
    fields = {**vars(settings), "url": "http://127.0.0.1:1", "token": Secret("t")}
    return Settings(**fields)


@pytest.mark.parametrize(
    "settings",
    [
        Settings(url="", token=Secret("")),
        Settings(
            url="",
            token=Secret(""),
            inputs=("a b.csv", "-"),
            namespace="docs",
            read=ReadOptions(format="tsv", delimiter="\t", columns=("id", "text")),
            mapping=MappingOptions(
                data_field="text",
                metadata_columns=("lang", "n"),
                infer_types=False,
                data_template="{title}\n\n{body}",
                shard=(1, 4),
            ),
            batch_size=10,
            concurrency=3,
            timeout=2.5,
            rejects=Path("r.jsonl"),
            checkpoint=Path("c.ckpt"),
            restart=True,
            dry_run=True,
            preflight=False,
            allow_insecure_http=True,
        ),
        Settings(url="", token=Secret(""), mapping=MappingOptions(id_from="hash")),
    ],
)
def test_upsert_command_runs_the_same_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parsed(upsert_command(settings), monkeypatch) == same_run(settings)


def test_the_demo_prints_exactly_what_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Settings] = []
    real = vupsert.run._pipeline.Run

    def recording(settings: Settings, **kwargs: Any) -> Any:
        ran.append(settings)
        return real(settings, **kwargs)

    monkeypatch.setattr(vupsert.cli.demo, "Run", recording)
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=out, stderr=err, environ={"NO_COLOR": "1"}
    )
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit:
        main(["demo", str(SAMPLES.relative_to(ROOT))], environment)
    assert exit.value.code == 0
    # Each bad record is said once, with its reason: 11 of them, none twice.
    said = (out.getvalue() + err.getvalue()).splitlines()
    # (A warning may name a line too: the hint of --encoding for the one not in UTF-8.)
    reasons = [
        line for line in said if "bad-records.jsonl:" in line and not line.startswith("warning:")
    ]
    assert len(reasons) == len({r.split("jsonl:")[1] for r in reasons}) == 11, said
    printed = [line for line in out.getvalue().splitlines() if line.startswith("vupsert upsert")]
    assert len(printed) == len(ran) == 3
    assert "--data-field description" in printed[1]
    for command, settings in zip(printed, ran, strict=True):
        assert parsed(command, monkeypatch) == same_run(settings)
