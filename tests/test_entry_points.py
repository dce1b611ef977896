"""The real entry points, each in a process of its own: the ``vupsert`` script and
``python -m vupsert``, the exit codes they leave to the shell, Ctrl-C, and what they make
of a terminal. The rest of the suite runs the CLI in its own process (``run_cli``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from vupsert import __version__
from vupsert.server import LocalServer, ServerConfig

from .conftest import cli_env, communicate, on_a_terminal, vupsert_command, wait_for, write_jsonl

pytestmark = [
    pytest.mark.lived_in,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and terminals"),
]

SCRIPT = Path(sys.executable).with_name("vupsert")
"""The console script that installing the project puts beside the interpreter."""

ENTRY_POINTS = {"script": [str(SCRIPT)], "module": vupsert_command()}

GOOD = [{"id": f"d{i}", "data": f"text {i}"} for i in range(30)]


@pytest.fixture(params=ENTRY_POINTS)
def entry(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "script" and not SCRIPT.exists():
        pytest.skip("the project is not installed: no vupsert script")
    return ENTRY_POINTS[request.param]


def run(entry: list[str], *args: str | Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [*entry, *map(str, args)], capture_output=True, env=env, stdin=subprocess.DEVNULL
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_the_exit_codes_reach_the_shell(
    entry: list[str], server: LocalServer, tmp_path: Path
) -> None:
    env = cli_env(server)
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    bad = write_jsonl(tmp_path / "bad.jsonl", [*GOOD, {"id": "x"}])

    assert run(entry, "--version", env=env)[:2] == (0, f"vupsert {__version__}\n")
    code, out, err = run(entry, "upsert", good, "--json", env=env)
    assert code == 0, err
    assert orjson.loads(out)["records_upserted"] == 30
    assert server.records("") == {r["id"]: (r["data"], None) for r in GOOD}
    code, _, err = run(entry, "upsert", bad, env=env)
    assert code == 1 and "rejected 1 ·" in err
    code, _, err = run(entry, "upsert", tmp_path / "nope.jsonl", env=env)
    assert code == 2 and "nope.jsonl" in err
    code, _, err = run(entry, "upsert", good, env={**env, "UPSTASH_VECTOR_REST_TOKEN": "wrong"})
    assert code == 3 and "401" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_the_script_with_130_and_a_summary(tmp_path: Path) -> None:
    if not SCRIPT.exists():
        pytest.skip("the project is not installed: no vupsert script")
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "data": "x"} for i in range(3000)])
    with LocalServer(ServerConfig(port=0, latency_ms=100)) as server:
        proc = subprocess.Popen(
            [SCRIPT, "upsert", path, "-b", "100", "-c", "1", "--json"],
            env=cli_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: server.stats["records_written"] > 0)
        proc.send_signal(signal.SIGINT)
        out, err = communicate(proc)
    assert proc.returncode == 130, err
    summary = orjson.loads(out.decode().splitlines()[-1])
    assert summary["interrupted"] is True and 0 < summary["records_upserted"] < 3000


def test_a_terminal_gets_a_progress_bar_and_a_table_a_log_one_line_per_event(
    server: LocalServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [*GOOD, {"id": "x"}])
    env = cli_env(server, TERM="xterm")
    env.pop("NO_COLOR")
    code, shown, _ = on_a_terminal(["upsert", path], env)
    assert code == 1, shown
    lines = [" ".join(line.split()) for line in shown.splitlines()]
    assert f'rejected {path}:31: missing data (field "data")' in lines
    assert any(line.startswith("100% ━") for line in shown.split("\r")), shown
    assert [line for line in lines if line.startswith(("records read", "upserted"))] == [
        "records read 31",
        "upserted 30",
    ]
    assert "vupsert: records read" not in shown

    code, _, err = run(vupsert_command(), "upsert", path, env=env)
    assert code == 1
    assert "\x1b" not in err and "━" not in err
    (summary,) = [line for line in err.splitlines() if line.startswith("vupsert: ")]
    assert summary.startswith("vupsert: records read 31 · upserted 30 · rejected 1")
