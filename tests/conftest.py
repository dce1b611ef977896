"""Shared fixtures: a local index per module, and the real CLI, in this process or in one
of its own.

``run_cli`` runs ``vupsert ARGS`` in this process as ``python -m vupsert`` would run it,
with its own stdin, stdout, stderr (pipes, not terminals), environment, working folder and
``sys.argv``; what the shell would see comes back. ``run_process`` starts the real
interpreter: for tests where the process is the point (signals, kill -9, import-time
checks, limits of the process, closed standard streams). ``server`` is the module's index,
emptied for each test.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import http.client
import io
import lzma
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

import vupsert.__main__
from vupsert.cli import main as main  # re-exported: test_harness patches its module
from vupsert_server import LocalServer, ServerConfig

# Unexpected exceptions crash loudly under test instead of becoming a polite message.
os.environ["VUPSERT_RAISE_ERRORS"] = "1"
# A suite started in the background (`&`, a job's script) has Ctrl-C ignored, and so would
# every vupsert it starts, as vupsert leaves an ignored Ctrl-C ignored: the tests of
# Ctrl-C need it heard.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for ``-n auto`` (pyproject's addopts): two per core, 4 to 16. Most tests
    wait on servers, backoffs and subprocesses; on 2 cores 4 workers finish the suite in
    three quarters of the time 2 take."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(16, max(4, 2 * (cores or 1)))


ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        value = orjson.loads(self.stdout.strip().splitlines()[-1])
        assert isinstance(value, dict)
        return value


# ---------------------------------------------------------------------------------------
# A local index per module


@pytest.fixture(scope="module")
def module_server() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(port=0, seed=7)) as running:
        yield running


@pytest.fixture
def server(module_server: LocalServer) -> LocalServer:
    """The module's index, as a new one would be: no record, no namespace but the
    default one, no stats, its faults (and their dice) as configured."""
    return emptied(module_server)


def emptied(server: LocalServer) -> LocalServer:
    for namespace in server.namespaces():
        if namespace:
            _request(server, "DELETE", f"/delete-namespace/{quote(namespace, safe='')}")
    _request(server, "POST", "/reset?all")
    config, now = server.config, server.faults
    changed = {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if getattr(now, field.name) != getattr(config, field.name)
    }
    server.set_faults(**{**changed, "seed": config.seed})
    server.reset_stats()
    return server


def _request(server: LocalServer, method: str, path: str) -> None:
    # http.client rather than httpx: an httpx client costs more to build than a server.
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {server.token}"})
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------
# The CLI


def cli_env(server: LocalServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSTASH_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if server is not None:
        env["UPSTASH_VECTOR_REST_URL"] = server.url
        env["UPSTASH_VECTOR_REST_TOKEN"] = server.token
    env.update(extra)
    return env


def run_cli(
    *args: str | Path,
    server: LocalServer | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """``vupsert ARGS`` as a user would run it, pointed at ``server``, in this process.

    A run that hangs is ended by pytest (pyproject's ``faulthandler_timeout``), with the
    traceback of every thread."""
    argv = [str(arg) for arg in args]
    out, err = _Pipe(), _Pipe()
    streams = (
        io.TextIOWrapper(io.BufferedReader(io.BytesIO(input or b"")), **_STDIN),
        io.TextIOWrapper(io.BufferedWriter(out), **_STDOUT),
        io.TextIOWrapper(io.BufferedWriter(err), **_STDERR),
    )
    started = set(threading.enumerate())
    with _process(env if env is not None else cli_env(server), cwd, streams, argv):
        code = _exit_status(argv)
        _join_new_threads(started)
        for stream in streams[1:]:
            stream.flush()
    return Result(code, out.data.decode(), err.data.decode())


def run_process(
    *args: str | Path,
    server: LocalServer | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Result:
    """``python -m vupsert ARGS`` in a process of its own, pointed at ``server``."""
    proc = subprocess.run(
        vupsert_command(*args),
        input=input if input is not None else b"",
        capture_output=True,
        env=env if env is not None else cli_env(server),
        cwd=cwd,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def vupsert_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "vupsert", *map(str, args)]


# How this interpreter sets up its standard streams when they are pipes, under the UTF-8
# locale that the tests (and CI) run in.
_STDIN: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape"}
_STDOUT: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape"}
_STDERR: dict[str, Any] = {"encoding": "utf-8", "errors": "backslashreplace"}


class _Pipe(io.RawIOBase):
    """The test's end of a pipe: every byte written; no terminal, no file descriptor."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.data += chunk
        return len(chunk)


@contextmanager
def _process(
    environ: dict[str, str], cwd: Path | None, streams: Sequence[Any], argv: list[str]
) -> Iterator[None]:
    """What a new process would have: ``environ``, ``cwd``, its streams and ``sys.argv``."""
    saved_environ = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    os.environ.clear()
    os.environ.update(environ)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.argv = [vupsert.__main__.__file__, *argv]
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_environ)


def _exit_status(argv: list[str]) -> int:
    """What ``sys.exit(main())`` in ``python -m vupsert`` would leave to the shell."""
    try:
        code: object = main(argv)
    except SystemExit as stop:
        code = stop.code
    except KeyboardInterrupt:
        raise  # the test run's own Ctrl-C
    except BaseException:
        traceback.print_exc()  # as the interpreter does, to the run's stderr
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _join_new_threads(started: set[threading.Thread]) -> None:
    """A process ends once its non-daemon threads have: the run's must end too."""
    for thread in threading.enumerate():
        if thread not in started and not thread.daemon:
            thread.join()


def on_a_terminal(
    args: Sequence[str | Path], env: dict[str, str], *, stream: str = "stderr"
) -> tuple[int, str, str]:
    """``python -m vupsert ARGS`` with ``stream`` (``stderr`` or ``stdout``) on a
    pseudo-terminal and the other one a file: its exit code, what the terminal showed (its
    escape sequences taken out), and what the file got."""
    try:
        leader, follower = pty.openpty()
    except OSError as error:  # a container or chroot without /dev/pts
        pytest.skip(f"no pseudo-terminal here: {error}")
    with tempfile.TemporaryFile() as other:
        streams: dict[str, Any] = {"stdout": other, "stderr": other, stream: follower}
        proc = subprocess.Popen(
            vupsert_command(*args), stdin=subprocess.DEVNULL, env=env, **streams
        )
        os.close(follower)
        shown = bytearray()
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed: the process is done with it
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        code = proc.wait(timeout=60)
        other.seek(0)
        written = other.read().decode()
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode()), written


def communicate(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[bytes, bytes]:
    """``proc.communicate``, killing the process if it outlasts ``timeout``: a test that
    fails on a hung vupsert must not leave it running behind the suite."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def wait_for(predicate: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def kill_when(
    *args: str | Path,
    server: LocalServer,
    ready: Callable[[], object],
    delay: float = 0.0,
    timeout: float = 60,
) -> None:
    """Start ``python -m vupsert ARGS`` against ``server`` and ``kill -9`` it once
    ``ready()`` (and ``delay`` seconds more); it must still be running then."""
    proc = subprocess.Popen(
        vupsert_command(*args),
        env=cli_env(server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout)
        time.sleep(delay)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"vupsert ended first, with {proc.returncode}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


CUTTERS: dict[str, tuple[Callable[[bytes], bytes], Callable[[], Any]]] = {
    "gzip": (gzip.compress, lambda: zlib.decompressobj(wbits=31)),
    # 100 KB blocks, so that a cut file still holds whole ones: bzip2 decodes by block.
    "bzip2": (lambda data: bz2.compress(data, 1), bz2.BZ2Decompressor),
    "xz": (lzma.compress, lzma.LZMADecompressor),
}


def cut_short(kind: str, data: bytes) -> tuple[bytes, bytes]:
    """``data`` compressed and cut at two thirds, and what a decompressor (``zcat``)
    decodes of it before the break."""
    compress, decompressor = CUTTERS[kind]
    whole = compress(data)
    cut = whole[: len(whole) * 2 // 3]
    return cut, decompressor().decompress(cut)
