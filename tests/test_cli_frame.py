"""The frame every command runs in: with --json exactly one object on every exit, one
``error:`` line for the parser's errors and vupsert's own, and messages joined into
sentences in a log."""

from __future__ import annotations

import io
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

import vupsert.cli.app
from vupsert.cli import Environment, main
from vupsert.cli.display import Terminal, failure, joined
from vupsert.errors import VupsertError
from vupsert.outcomes import (
    DeleteSummary,
    ExportSummary,
    QueryResult,
    Summary,
    SyncSummary,
    VerifySummary,
)
from vupsert_server import LocalServer, ServerConfig

from .conftest import Result, cli_env, communicate, emptied, vupsert_command, write_jsonl

pytestmark = pytest.mark.lived_in
"""Errors and exit statuses go through Typer's parser, which a lived-in machine may have
in another version."""

READER = "reader"
KEYS: dict[str, set[str]] = {
    "upsert": set(Summary().as_dict()),
    "sync": set(SyncSummary().as_dict()),
    "export": set(ExportSummary().as_dict()),
    "verify": set(VerifySummary().as_dict()),
    "delete": set(DeleteSummary().as_dict()),
    "query": set(QueryResult().as_dict()),
    "info": {"error"},
}
"""What each command's --json object holds when it failed."""


@pytest.fixture(scope="module")
def index() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, readonly_token=READER, seed=1)) as running:
        yield running


@pytest.fixture
def server(index: LocalServer) -> LocalServer:
    return emptied(index)


def run(*args: str | Path, server: LocalServer | None = None, **environ: str) -> Result:
    """The CLI in this process, stderr a log (not a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    variables = {"NO_COLOR": "1"}
    if server is not None:
        variables["UPSTASH_VECTOR_REST_URL"] = server.url
        variables["UPSTASH_VECTOR_REST_TOKEN"] = server.token
    variables.update(environ)
    environment = Environment(stdin=io.BytesIO(b""), stdout=out, stderr=err, environ=variables)
    with pytest.raises(SystemExit) as exit:
        main([str(arg) for arg in args], environment)
    return Result(int(exit.value.code or 0), out.getvalue(), err.getvalue())


def one_object(result: Result, command: str) -> dict[str, Any]:
    """The one JSON object of a failed run, with the command's usual keys and its error."""
    (line,) = result.stdout.splitlines()
    document = orjson.loads(line)
    assert set(document) == KEYS[command]
    assert isinstance(document["error"], str) and document["error"]
    assert document["error"] in " ".join(result.stderr.split())
    said = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1 or (document["error"] == "interrupted" and not said)
    return dict(document)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "records": write_jsonl(
            tmp_path / "in.jsonl", [{"id": "a", "data": "x"}, {"id": "b", "data": "y"}]
        ),
        "ids": tmp_path / "ids.txt",
        "missing": tmp_path / "nope.jsonl",
        "out": tmp_path / "out.jsonl",
    }


def command_line(command: str, files: dict[str, Path]) -> list[str | Path]:
    """A run of ``command`` that works against the index."""
    files["ids"].write_text("a\nb\n")
    lines: dict[str, list[str | Path]] = {
        "upsert": ["upsert", files["records"]],
        "sync": ["sync", files["records"]],
        "export": ["export", "-o", files["out"]],
        "verify": ["verify", files["records"]],
        "delete": ["delete", "--ids", files["ids"]],
        "query": ["query", "x"],
        "info": ["info"],
    }
    return lines[command]


COMMANDS = list(KEYS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_usage_error_from_the_parser_is_one_object_and_one_error_line(
    command: str, files: dict[str, Path], server: LocalServer
) -> None:
    result = run(*command_line(command, files), "--json", "--bogus", server=server)
    assert result.code == 2
    document = one_object(result, command)
    assert "No such option: --bogus" in document["error"]
    assert f"Run 'vupsert {command} --help' for usage." in result.stderr
    assert not server.stats["requests"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_config_error_is_one_object(
    command: str, files: dict[str, Path], server: LocalServer
) -> None:
    url = server.url.replace("://", "://user:secret@")  # refused before anything is sent
    result = run(*command_line(command, files), "--json", "--url", url, server=server)
    assert result.code == 2
    assert "user name or password" in one_object(result, command)["error"]
    assert "secret" not in result.stdout + result.stderr
    assert not server.stats["requests"]


@pytest.mark.parametrize("command", ["upsert", "sync", "verify", "delete", "export"])
def test_an_input_error_is_one_object(
    command: str, files: dict[str, Path], server: LocalServer
) -> None:
    args = command_line(command, files)
    if command == "delete":
        args = ["delete", "--ids", files["missing"]]
    elif command == "export":
        args = ["export", "-o", files["missing"].parent / "no" / "such" / "folder.jsonl"]
    else:
        args = [command, files["missing"]]
    result = run(*args, "--json", server=server)
    assert result.code in (2, 3)
    assert "no" in one_object(result, command)["error"]


@pytest.mark.parametrize("command", ["upsert", "sync", "delete"])
def test_a_server_error_mid_run_is_the_summary_so_far_with_the_error(
    command: str, files: dict[str, Path], server: LocalServer
) -> None:
    if command == "delete":
        run("upsert", files["records"], server=server)
    # A read-only token: /info and the reads pass, the first write is refused.
    result = run(
        *command_line(command, files), "--json", server=server, UPSTASH_VECTOR_REST_TOKEN=READER
    )
    assert result.code == 3
    document = one_object(result, command)
    assert "403" in document["error"]
    assert (document.get("records_read") or document.get("ids_read")) == 2


@pytest.mark.parametrize("command", ["export", "verify"])
def test_a_read_that_fails_mid_run_is_one_object(
    command: str, files: dict[str, Path], server: LocalServer
) -> None:
    run("upsert", files["records"], server=server)
    server.set_faults(fail_rate=1.0, faulty_reads=True)
    result = run(*command_line(command, files), "--json", "--retries", "0", server=server)
    assert result.code == 3
    assert "gave up after 1 attempts" in one_object(result, command)["error"]


def test_info_refused_is_one_object(server: LocalServer) -> None:
    result = run("info", "--json", server=server, UPSTASH_VECTOR_REST_TOKEN="wrong")
    assert result.code == 3
    assert "401" in one_object(result, "info")["error"]


@pytest.mark.parametrize(
    ("command", "called"),
    [
        ("upsert", "prepare"),
        ("sync", "prepare_sync"),
        ("export", "export_records"),
        ("verify", "verify_records"),
        ("delete", "delete_records"),
        ("query", "query_records"),
        ("info", "index_info"),
    ],
)
def test_an_interrupt_is_one_object_and_exit_130(
    command: str,
    called: str,
    files: dict[str, Path],
    server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(vupsert.cli.app, called, interrupted)
    result = run(*command_line(command, files), "--json", server=server)
    assert result.code == 130
    assert one_object(result, command)["error"] == "interrupted"


class Silent(BaseHTTPRequestHandler):
    """Takes a request and never answers it."""

    arrived = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        Silent.arrived.set()
        Silent.release.wait(60)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_ctrl_c_while_export_waits_for_the_index_is_one_object_and_exit_130(
    tmp_path: Path,
) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        proc = subprocess.Popen(
            vupsert_command("export", "-o", tmp_path / "out.jsonl", "--json"),
            env=cli_env(None, UPSTASH_VECTOR_REST_URL=url, UPSTASH_VECTOR_REST_TOKEN="t"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert Silent.arrived.wait(60), "the export never asked"
        proc.send_signal(signal.SIGINT)
        out, err = communicate(proc)
    finally:
        Silent.release.set()
        httpd.shutdown()
    assert proc.returncode == 130, err
    (line,) = out.decode().splitlines()
    assert orjson.loads(line)["error"] == "interrupted"
    assert err.decode().splitlines()[-1] == "interrupted"


# ---------------------------------------------------------------------------------------
# One format for errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upsert", "--bogus"], "error: No such option: --bogus"),
        (["upsert", "-b", "x"], "error: Invalid value for '-b' / '--batch-size': 'x'"),
        (["upsert", "--dry-run", "-b"], "error: Option '-b' requires an argument."),
        (["delete", "--ids"], "error: Option '--ids' requires an argument."),
        (["bogus"], "error: No such command 'bogus'."),
    ],
)
def test_the_parsers_errors_are_one_error_line_with_the_help_hint(
    args: list[str], message: str
) -> None:
    result = run(*args)
    assert result.code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(message), line
    command = " ".join(["vupsert", *args[:1]]) if args[0] != "bogus" else "vupsert"
    assert line.endswith(f" Run '{command} --help' for usage.")
    assert not {"╭", "│", "╰"} & set(result.stderr)


def test_an_option_without_its_value_is_one_object_too() -> None:
    result = run("upsert", "--json", "--dry-run", "-b")
    assert result.code == 2
    assert one_object(result, "upsert")["error"] == "Option '-b' requires an argument."


def test_in_a_log_the_parts_of_a_message_are_sentences(server: LocalServer) -> None:
    result = run("info", server=server, UPSTASH_VECTOR_REST_TOKEN="wrong")
    assert result.code == 3
    (line,) = result.stderr.splitlines()
    assert "invalid token. The token was refused." in line


def test_info_says_which_index_it_describes(server: LocalServer) -> None:
    result = run("info", "--url", server.url + "/", server=server)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["url", server.url]
    assert "dimension" in result.stdout.splitlines()[1]


def test_json_on_success_is_still_the_result_alone(server: LocalServer) -> None:
    result = run("info", "--json", server=server)
    assert result.code == 0
    assert "error" not in orjson.loads(result.stdout) and result.stderr == ""


def test_on_a_terminal_what_to_do_is_a_line_of_its_own() -> None:
    error = VupsertError("invalid token", hint="The token was refused.")
    shown, logged = io.StringIO(), io.StringIO()
    failure(Terminal(shown, tty=True), error)
    failure(Terminal(logged, tty=False), error)
    assert shown.getvalue().splitlines() == ["error: invalid token", "The token was refused."]
    assert logged.getvalue() == "error: invalid token. The token was refused.\n"


@pytest.mark.parametrize(
    ("parts", "line"),
    [
        (("No such option: --x", "Run it."), "No such option: --x. Run it."),
        (("Done.", "Next."), "Done. Next."),
        (("Cannot go:", "because."), "Cannot go: because."),
        (("Alone", None), "Alone"),
    ],
)
def test_message_parts_join_as_sentences(parts: tuple[str, str | None], line: str) -> None:
    assert joined(*parts) == line
