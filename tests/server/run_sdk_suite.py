"""Run the official Python SDK's own test suite against local servers, and count.

    python -m tests.server.run_sdk_suite [--peers PATH] [--minimum 1.0] [pytest args...]

The suite (``tests/core`` of upstash-vector-py, written against the real service) is the
specification of ``vupsert serve``: it lives outside the project, in ``../shared/peers``
next to the project root, and is run from there, never copied. This starts one
:class:`LocalServer` per kind of index the suite names in its environment variables,
runs pytest on the suite's folder, prints how many of its tests passed, and exits
non-zero unless every one did (``--minimum`` lowers the bar, for a look while work is
under way). Without the peers folder it says so and exits 0: the step is skipped, not
failed. Needs the suite's own test packages
(pytest-asyncio, python-dotenv, numpy, pandas); ``.ci/run`` installs them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from vupsert_server import LocalServer, ServerConfig

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "peers" / "upstash-vector-py"

KINDS: dict[str, dict[str, Any]] = {
    "": {"index_type": "dense", "dimension": 2, "embedding": False},
    "SPARSE_": {"index_type": "sparse", "embedding": False},
    "HYBRID_": {"index_type": "hybrid", "dimension": 2, "embedding": False},
    "EMBEDDING_": {"index_type": "dense", "embedding": True},
    "HYBRID_EMBEDDING_": {"index_type": "hybrid", "embedding": True},
}
"""Environment variable prefix (``URL``, ``SPARSE_URL``...) -> the index it names."""


WHOLE = 1.0
"""The share of the suite that must pass: all of it."""


def run(peers: Path, minimum: float, pytest_args: list[str]) -> int:
    suite = peers / "tests" / "core"
    if not suite.is_dir():
        print(f"SDK suite: skipped, {suite} is not there (the peers folder is missing).")
        return 0
    environ = {k: v for k, v in os.environ.items() if not k.endswith(("URL", "TOKEN"))}
    environ["PYTHONDONTWRITEBYTECODE"] = "1"  # the peers folder stays as it was laid
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        for prefix, kind in KINDS.items():
            server = stack.enter_context(LocalServer(ServerConfig(port=0, **kind)))
            environ[f"{prefix}URL"] = server.url
            environ[f"{prefix}TOKEN"] = server.token
        report = Path(scratch) / "report.xml"
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/core",
                "-o",
                "asyncio_mode=auto",
                "-o",
                "asyncio_default_fixture_loop_scope=function",
                "-p",
                "no:cacheprovider",
                "-q",
                f"--junitxml={report}",
                *pytest_args,
            ],
            cwd=peers,
            env=environ,
            check=False,
        )
        elapsed = time.monotonic() - started
        if not report.exists():
            print("SDK suite: pytest wrote no report; see its output above.")
            return 1
        counts = _counts(report)
    passed, enough = verdict(counts, minimum)
    share = passed / counts["tests"] if counts["tests"] else 0.0
    print(
        f"SDK suite (upstash-vector-py tests/core) against local servers: {passed} of "
        f"{counts['tests']} passed ({share:.1%}) in {elapsed:.0f} s: "
        + ("ok" if enough else "FAIL" + ("" if minimum >= 1 else f", under {minimum:.0%}"))
    )
    return 0 if enough else 1


def verdict(counts: dict[str, int], minimum: float) -> tuple[int, bool]:
    """Tests passed, and whether they are at least ``minimum`` of all the suite holds."""
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return passed, counts["tests"] > 0 and passed >= minimum * counts["tests"]


def _counts(report: Path) -> dict[str, int]:
    root = ElementTree.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    keys = ("tests", "failures", "errors", "skipped")
    return {key: sum(int(suite.get(key, "0")) for suite in suites) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=PEERS)
    parser.add_argument("--minimum", type=float, default=WHOLE)
    args, pytest_args = parser.parse_known_args()
    sys.exit(run(args.peers, args.minimum, pytest_args))


if __name__ == "__main__":
    main()
