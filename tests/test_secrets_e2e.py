"""No secret in any output: a canary token and a canary URL password are driven through
every way a run can end, and looked for in everything vupsert writes."""

from __future__ import annotations

import io
import secrets
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import vupsert
import vupsert.api
import vupsert.cli.app
from vupsert.cli.app import Environment, main
from vupsert.config.settings import Settings
from vupsert.errors import ConfigError
from vupsert.outcomes import Summary
from vupsert_server import LocalServer, ServerConfig

from .conftest import Result, cli_env, run_cli, write_jsonl

CANARY = "tok-CANARY-" + secrets.token_hex(16)
PASSWORD = "pw-CANARY-" + secrets.token_hex(8)


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"doc-{i}", "data": f"text {i}"} for i in range(n)]


class Outputs:
    """One run's files: every one of them is searched for the canaries."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.input = write_jsonl(folder / "in.jsonl", [*rows(20), {"id": "bad", "data": ""}])

    def args(self) -> list[str | Path]:
        return [
            "upsert",
            self.input,
            "--json",
            "--rejects",
            self.folder / "rejects.jsonl",
            "--report",
            self.folder / "report.jsonl",
            "--checkpoint",
            self.folder / "run.ckpt",
        ]

    def assert_clean(self, result: Result) -> None:
        written = "".join(
            p.read_text(errors="replace") for p in self.folder.iterdir() if p != self.input
        )
        for where, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            for canary in (CANARY, PASSWORD):
                assert canary not in text, f"{canary} in {where}:\n{text}"
        for canary in (CANARY, PASSWORD):
            assert canary not in written, f"{canary} in a file of {self.folder}"
        assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture(params=["raise", "polite"])
def raising(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both with and without VUPSERT_RAISE_ERRORS: a traceback must not show one either."""
    return {"VUPSERT_RAISE_ERRORS": "1" if request.param == "raise" else ""}


@pytest.fixture
def canary_index() -> Iterator[LocalServer]:
    """An index whose real token is the canary."""
    with LocalServer(ServerConfig(port=0, token=CANARY, refuse_matching="BADWORD")) as server:
        yield server


def run_with(
    outputs: Outputs, url: str, token: str, raising: dict[str, str], *extra: str
) -> Result:
    env = cli_env(None, UPSTASH_VECTOR_REST_URL=url, UPSTASH_VECTOR_REST_TOKEN=token, **raising)
    result = run_cli(*outputs.args(), *extra, env=env)
    outputs.assert_clean(result)
    return result


def test_the_real_token_through_a_run_that_rejects_and_times_out(
    tmp_path: Path, raising: dict[str, str]
) -> None:
    config = ServerConfig(port=0, token=CANARY, refuse_matching="BADWORD", latency_ms=400)
    with LocalServer(config) as server:
        outputs = Outputs(tmp_path / "run")
        write_jsonl(outputs.input, [*rows(3), {"id": "x", "data": "BADWORD"}])
        slow = run_with(
            outputs, server.url, CANARY, raising, "--timeout", "0.1", "--retries", "0", "-b", "2"
        )
        assert slow.code == 1 and slow.summary["records_rejected"] > 0
        assert "timed out" in (tmp_path / "run/report.jsonl").read_text()


@pytest.mark.parametrize("preflight", ["--preflight", "--no-preflight"])
def test_a_refused_token(
    tmp_path: Path, canary_index: LocalServer, raising: dict[str, str], preflight: str
) -> None:
    outputs = Outputs(tmp_path / "run")
    wrong = CANARY[:-1] + "x"
    result = run_with(outputs, canary_index.url, wrong, raising, preflight)
    assert result.code == 3 and "401" in result.stderr
    assert wrong not in result.stdout + result.stderr


def test_an_unreachable_index(tmp_path: Path, raising: dict[str, str]) -> None:
    # Each batch fails for good at once; its records, with the error, go to --rejects.
    outputs = Outputs(tmp_path / "run")
    result = run_with(
        outputs, "http://127.0.0.1:9", CANARY, raising, "--no-preflight", "--retries", "0"
    )
    assert result.code == 1 and result.summary["records_rejected"] == 21
    assert "connection failed" in (tmp_path / "run/rejects.jsonl").read_text()


def test_an_unreachable_index_at_preflight(tmp_path: Path) -> None:
    # The preflight tries four times, 7 s in all: once is enough here.
    result = run_with(Outputs(tmp_path / "run"), "http://127.0.0.1:9", CANARY, {})
    assert result.code == 3 and "Could not reach" in result.stderr


@pytest.mark.parametrize("around", ["{}\n", "  {}  ", "\t{}\r\n"])
def test_a_token_pasted_with_whitespace_around_it_works(
    tmp_path: Path, canary_index: LocalServer, raising: dict[str, str], around: str
) -> None:
    outputs = Outputs(tmp_path / "run")
    result = run_with(outputs, canary_index.url, around.format(CANARY), raising)
    assert result.code == 1, result.stderr  # the one bad record
    assert len(canary_index.records("")) == 20


@pytest.mark.parametrize("inside", [" ", "\n", "\x01", "\x7f", "é"])
def test_a_token_with_whitespace_or_control_characters_inside_is_a_usage_error(
    tmp_path: Path, canary_index: LocalServer, raising: dict[str, str], inside: str
) -> None:
    outputs = Outputs(tmp_path / "run")
    token = CANARY[:12] + inside + CANARY[12:]
    result = run_with(outputs, canary_index.url, token, raising)
    assert result.code == 2 and "token" in result.stderr
    assert CANARY[:12] not in result.stderr and CANARY[12:] not in result.stderr
    info = run_cli("info", env=cli_env(canary_index, UPSTASH_VECTOR_REST_TOKEN=token))
    assert info.code == 2 and CANARY[12:] not in info.stdout + info.stderr


@pytest.mark.parametrize("command", ["upsert", "info"])
def test_a_url_with_a_password(
    tmp_path: Path, canary_index: LocalServer, raising: dict[str, str], command: str
) -> None:
    url = canary_index.url.replace("http://", f"http://user:{PASSWORD}@")
    outputs = Outputs(tmp_path / "run")
    if command == "upsert":
        result = run_with(outputs, url, CANARY, raising)
    else:
        result = run_cli("info", env=cli_env(canary_index, UPSTASH_VECTOR_REST_URL=url))
        outputs.assert_clean(result)
    assert result.code == 2 and "***@" in result.stderr
    flag = run_cli("upsert", outputs.input, "--url", url, env=cli_env(canary_index, **raising))
    outputs.assert_clean(flag)
    assert flag.code == 2


class _Echo(BaseHTTPRequestHandler):
    """A server (or a proxy) that repeats the request's Authorization header in its errors."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/info":
            status = 200
            body = b'{"result":{"dimension":3,"denseIndex":{"embeddingModel":"BGE"}}}'
        else:
            status = 400
            body = f'{{"error":"bad request from {self.headers["Authorization"]}"}}'.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_that_echoes_the_token(tmp_path: Path, raising: dict[str, str]) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        outputs = Outputs(tmp_path / "run")
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = run_with(outputs, url, CANARY, raising, "-b", "4")
        assert result.code == 1 and result.summary["records_rejected"] == 21
        assert "bad request from Bearer ***" in (tmp_path / "run/rejects.jsonl").read_text()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_no_repr_of_the_settings_holds_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    class Capture:
        def __init__(self, settings: Settings, **kwargs: object) -> None:
            seen.append(settings)

        def execute(self) -> Summary:
            return Summary()

    monkeypatch.setattr(vupsert.api, "Run", Capture)
    environ = {"UPSTASH_VECTOR_REST_URL": "http://127.0.0.1:1"}
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=io.StringIO(), stderr=io.StringIO(), environ=environ
    )
    with pytest.raises(SystemExit):
        main(["upsert", "--token", CANARY + "\n", "-"], environment)
    (settings,) = seen
    assert settings.token.reveal() == CANARY
    assert CANARY not in repr(settings) and CANARY not in str(vars(settings))


USER = "usr-CANARY-" + secrets.token_hex(8)
QUERY = "qry-CANARY-" + secrets.token_hex(8)
HEAD, TAIL = "pwa-CANARY-" + secrets.token_hex(8), "pwb-CANARY-" + secrets.token_hex(8)
"""A password's two halves, around the character that cuts it: each half on its own
must not be shown either."""
URL_CANARIES = (USER, QUERY, HEAD, TAIL)
URL_SHAPES = {
    "password with ?": f"http://{USER}:{HEAD}?{TAIL}@{{host}}",
    "password with #": f"http://{USER}:{HEAD}#{TAIL}@{{host}}",
    "password with /": f"http://{USER}:{HEAD}/{TAIL}@{{host}}",
    "https password with /": f"https://{USER}:{HEAD}/{TAIL}@{{host}}",
    "password with @": f"http://{USER}:{HEAD}@{TAIL}@{{host}}",
    "password with %": f"http://{USER}:{HEAD}%{TAIL}@{{host}}",
    "password with %40": f"http://{USER}:{HEAD}%40{TAIL}@{{host}}",
    "token in the query": f"http://{{host}}/?token={QUERY}",
    "query without a path": f"http://{{host}}?token={QUERY}",
    "query after a path": f"http://{{host}}/proxy/path?token={QUERY}&x=1",
    "fragment": f"http://{{host}}/#{QUERY}",
}
"""URLs that are refused, and what a message may show of each: the scheme and host."""


def _host(index: LocalServer) -> str:
    return index.url.partition("://")[2]


def _shown(shape: str, index: LocalServer) -> str:
    scheme = shape.partition("://")[0]
    return f"{scheme}://{'***@' if '@' in shape else ''}{_host(index)}"


def _commands(folder: Path) -> dict[str, list[str]]:
    """Each command, with every file it can write, in ``folder``."""
    source = str(write_jsonl(folder / "in.jsonl", [*rows(3), {"id": "bad", "data": ""}]))
    ids = folder / "ids.txt"
    ids.write_text("doc-1\n")
    files = ["--rejects", str(folder / "rejects.jsonl"), "--report", str(folder / "report.jsonl")]
    return {
        "upsert": ["upsert", source, "--json", *files, "--checkpoint", str(folder / "run.ckpt")],
        "sync": ["sync", source, "--json", *files],
        "export": ["export", "-o", str(folder / "export.jsonl"), "--json"],
        "verify": ["verify", source, "--json"],
        "delete": ["delete", "--ids", str(ids), "--json"],
        "info": ["info", "--json"],
    }


def run_in_process(argv: list[str], environ: dict[str, str]) -> Result:
    """``main(argv)`` in this process; an exception that escapes it (under
    VUPSERT_RAISE_ERRORS) is part of stderr, traceback and all."""
    stdout, stderr = io.StringIO(), io.StringIO()
    environment = Environment(stdin=io.BytesIO(b""), stdout=stdout, stderr=stderr, environ=environ)
    try:
        main(argv, environment)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except Exception as exc:
        stderr.write("".join(traceback.format_exception(exc)))
        code = -1
    return Result(code, stdout.getvalue(), stderr.getvalue())


def assert_no_url_secret(texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for canary in URL_CANARIES:
            assert canary not in text, f"{canary} in {where}:\n{text}"


def _written(folder: Path) -> dict[str, str]:
    return {
        str(p): p.read_text(errors="replace")
        for p in folder.iterdir()
        if p.is_file() and p.name not in ("in.jsonl", "ids.txt")
    }


@pytest.mark.parametrize("shape", URL_SHAPES.values(), ids=URL_SHAPES.keys())
def test_a_url_with_userinfo_or_a_query_is_refused_by_every_command_showing_only_its_host(
    tmp_path: Path, canary_index: LocalServer, shape: str
) -> None:
    url = shape.format(host=_host(canary_index))
    for raising in ("1", ""):
        for how in ("flag", "env"):
            folder = tmp_path / f"{how}-{raising}"
            folder.mkdir()
            environ = {"UPSTASH_VECTOR_REST_TOKEN": CANARY, "VUPSERT_RAISE_ERRORS": raising}
            if how == "env":
                environ["UPSTASH_VECTOR_REST_URL"] = url
            for command, argv in _commands(folder).items():
                result = run_in_process(argv + (["--url", url] if how == "flag" else []), environ)
                said = {f"{command} stdout": result.stdout, f"{command} stderr": result.stderr}
                assert_no_url_secret(said)
                assert result.code == 2, said
                assert f"{_shown(shape, canary_index)!r}" in result.stderr, said
            assert_no_url_secret(_written(folder))
    assert canary_index.records("") == {}


@pytest.mark.parametrize("shape", URL_SHAPES.values(), ids=URL_SHAPES.keys())
def test_a_url_with_userinfo_or_a_query_is_refused_by_the_python_api(
    tmp_path: Path, canary_index: LocalServer, shape: str
) -> None:
    url = shape.format(host=_host(canary_index))
    source = write_jsonl(tmp_path / "in.jsonl", rows(3))
    calls: dict[str, Any] = {
        "upsert": lambda: vupsert.upsert(source, url=url, token=CANARY),
        "sync": lambda: vupsert.sync(source, url=url, token=CANARY),
        "export": lambda: vupsert.export(tmp_path / "out.jsonl", url=url, token=CANARY),
        "verify": lambda: vupsert.verify(source, url=url, token=CANARY),
        "delete": lambda: vupsert.delete(ids=["doc-1"], url=url, token=CANARY),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError) as caught:
            call()
        error = caught.value
        assert_no_url_secret(
            {
                f"{name}: str": str(error),
                f"{name}: repr": repr(error) + repr(error.args) + repr(vars(error)),
                f"{name}: traceback": "".join(traceback.format_exception(error)),
            }
        )
        assert _shown(shape, canary_index) in str(error)


@pytest.mark.parametrize("raising", ["1", ""])
@pytest.mark.parametrize("shape", list(URL_SHAPES.values())[::3], ids=list(URL_SHAPES)[::3])
def test_a_url_with_userinfo_or_a_query_in_a_real_run(
    tmp_path: Path, canary_index: LocalServer, shape: str, raising: str
) -> None:
    url = shape.format(host=_host(canary_index))
    outputs = Outputs(tmp_path / "run")
    result = run_with(outputs, url, CANARY, {"VUPSERT_RAISE_ERRORS": raising})
    assert_no_url_secret({"stdout": result.stdout, "stderr": result.stderr})
    assert_no_url_secret(_written(outputs.folder))
    assert result.code == 2 and _shown(shape, canary_index) in result.stderr
    assert canary_index.records("") == {}


NOT_URLS = {
    "the token": CANARY,
    "the token with a slash": f"{CANARY}/x",
    "a JWT": f"eyJhbGciOiJIUzI1NiJ9.{CANARY}.{QUERY}",
    "a base64 token": f"{CANARY}==",
    "userinfo without a scheme": f"{USER}:{HEAD}@example-us1-vector.upstash.io",
    "a host and a query": f"example-us1-vector.upstash.io/?token={QUERY}",
    "a host and a path": f"example-us1-vector.upstash.io/{QUERY}",
}
"""Values without a scheme, set in the URL's place: only a host name they start with is
ever shown."""


@pytest.mark.parametrize("value", NOT_URLS.values(), ids=NOT_URLS.keys())
def test_a_value_without_a_scheme_is_shown_only_as_a_host_name(
    tmp_path: Path, canary_index: LocalServer, value: str
) -> None:
    host = "example-us1-vector.upstash.io"
    named = value.startswith(host)
    for command, argv in _commands(tmp_path).items():
        environ = {"UPSTASH_VECTOR_REST_URL": value, "UPSTASH_VECTOR_REST_TOKEN": CANARY}
        result = run_in_process(argv, environ)
        said = {f"{command} stdout": result.stdout, f"{command} stderr": result.stderr}
        assert_no_url_secret(said)
        for where, text in said.items():
            assert CANARY not in text, f"the token in {where}:\n{text}"
        assert result.code == 2, said
        if named:
            assert f"The URL {host!r} has no scheme" in result.stderr, said
            assert f"to https://{host}" in result.stderr, said
        else:
            assert "The URL given is not an http(s) URL. It is not shown" in result.stderr
    assert_no_url_secret(_written(tmp_path))
    assert canary_index.records("") == {}


def test_a_local_address_without_a_scheme_is_shown_with_http() -> None:
    with pytest.raises(ConfigError) as caught:
        vupsert.info(url="127.0.0.1:8787", token=CANARY)
    assert "The URL '127.0.0.1:8787' has no scheme" in caught.value.message
    assert str(caught.value.hint).endswith("to http://127.0.0.1:8787")
