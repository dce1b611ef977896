"""``vupsert serve`` as a user runs it: its options reach the server, bad ones are refused."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from vupsert.cli.app import Environment, main
from vupsert_server import LocalServer, ServerConfig

pytestmark = pytest.mark.lived_in
"""``vupsert serve``, an entry point of its own."""

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=out, stderr=err, environ={"NO_COLOR": "1"}
    )
    try:
        main(list(args), environment)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_help_says_what_a_million_records_cost_and_names_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    # The options' help is in a box: drop its borders, then the line breaks.
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "about 2.3 GB per million records of 384 dimensions" in text
    for option in (
        "--index-type",
        "--similarity",
        "--readonly-token",
        "--max-body-mb",
        "--read-timeout",
        "--max-connections",
        "--capacity",
        "--rate-limiter",
    ):
        assert option in text, option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--index-type", "graph"],
            "--index-type must be one of dense, sparse, hybrid, not 'graph'.",
        ),
        (
            ["--similarity", "cosine"],
            "--similarity must be one of COSINE, EUCLIDEAN, DOT_PRODUCT, not 'cosine'.",
        ),
        (
            ["--rate-limiter", "fixed"],
            "--rate-limiter must be one of bucket, sliding, not 'fixed'.",
        ),
        (["--capacity", "4"], "--capacity multiplies the latency of writes, and there is none."),
        (["--fail-rate", "0.6", "--drop-rate", "0.6"], "--fail-rate + --drop-rate is 1.2;"),
        (["--latency-ms", "-1"], "--latency-ms must be a finite number >= 0, not -1.0."),
    ],
)
def test_bad_options_are_refused_before_serving(args: list[str], message: str) -> None:
    code, out, err = run("serve", "--port", "0", *args)
    assert code == 2
    assert out == ""
    assert message in " ".join(err.split())


def test_a_second_serve_on_one_db_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    with LocalServer(ServerConfig(port=0, db=db)):
        code, out, err = run("serve", "--port", "0", "--db", db)
    assert code == 2
    assert out == ""
    assert f"{db} is in use by another vupsert serve" in " ".join(err.split())
    assert "another --db file" in err


def test_the_options_reach_the_server() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vupsert",
            "serve",
            "--port",
            "0",
            "--index-type",
            "hybrid",
            "--dimension",
            "4",
            "--similarity",
            "EUCLIDEAN",
            "--readonly-token",
            "reader",
            "--rate-limit",
            "2",
            "--rate-limiter",
            "sliding",
            "--latency-ms",
            "1",
            "--capacity",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip().split("=", 1)[1]
        token = process.stdout.readline().strip().split("=", 1)[1]
        description = process.stdout.readline()
        assert "hybrid index, dimension 4 EUCLIDEAN" in description
        assert "a read-only token too" in description
        assert "capacity=3" in description and "rate_limiter=sliding" in description
        info = httpx.post(f"{url}/info", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["result"]["indexType"] == "HYBRID"
        assert info["result"]["denseIndex"]["similarityFunction"] == "EUCLIDEAN"
        refused = httpx.post(
            f"{url}/upsert-data",
            headers={"Authorization": "Bearer reader"},
            json=[{"id": "a", "data": "text"}],
        )
        assert refused.status_code == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()
