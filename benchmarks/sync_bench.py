"""How long a sync takes when little changed, against an export of the same namespace.

A local server (``vupsert serve``, its own process) is loaded with N records. Then, in
turns, ``vupsert export`` of the namespace and ``vupsert sync`` of a source in which 1% of
the records changed (two versions of the source alternate, so every sync has the same
work to do), each as a user runs it, timed as a whole process with its peak RSS
(``wait4``). Prints the medians, their ratio, and what each sync sent.

    python benchmarks/sync_bench.py                    # 200,000 records, 3 pairs
    python benchmarks/sync_bench.py --records 1000000 --pairs 1   # the 1M-id figure

Never asserts: the figures are for the notes.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "index",
    "vector",
    "search",
    "text",
    "record",
    "batch",
    "token",
    "namespace",
    "query",
    "model",
    "embed",
    "data",
    "source",
    "stream",
    "cluster",
    "shard",
    "window",
    "latency",
    "answer",
    "retry",
    "export",
    "backup",
    "memory",
]


def corpus(path: Path, n: int, changed: set[int], version: int) -> None:
    rng = random.Random(5)
    with path.open("wb") as out:
        for i in range(n):
            words = " ".join(rng.choice(WORDS) for _ in range(50))
            tag = f" v{version}" if i in changed else ""
            record: dict[str, Any] = {
                "id": f"doc-{i}",
                "data": f"{words}{tag}",
                "metadata": {"n": i, "kind": WORDS[i % len(WORDS)], "score": i % 97 / 10},
            }
            out.write(orjson.dumps(record) + b"\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS in MB, and stdout of one whole process."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {text[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def settled(url: str, token: str) -> None:
    """Wait until the index has embedded what it was sent: its background work would
    otherwise slow whichever run comes next."""
    import httpx

    for _ in range(600):
        info = httpx.post(f"{url}/info", headers={"Authorization": f"Bearer {token}"}).json()
        if info["result"]["pendingVectorCount"] == 0:
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3, help="export + sync pairs (median)")
    parser.add_argument("--changed", type=float, default=0.01, help="share changed per sync")
    args = parser.parse_args()

    n = args.records
    rng = random.Random(1)
    changed = set(rng.sample(range(n), int(n * args.changed)))
    work = Path(tempfile.mkdtemp(prefix="vupsert-sync-bench-"))
    sources = [work / "v0.jsonl", work / "v1.jsonl"]
    for version, path in enumerate(sources):
        corpus(path, n, changed, version)
    port = free_port()
    token = "bench-token-000000"
    server = subprocess.Popen(
        [sys.executable, "-m", "vupsert", "serve", "--port", str(port), "--token", token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    env = dict(os.environ)
    env.update(
        UPSTASH_VECTOR_REST_URL=f"http://127.0.0.1:{port}",
        UPSTASH_VECTOR_REST_TOKEN=token,
    )
    vupsert = [sys.executable, "-m", "vupsert"]
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        load = timed([*vupsert, "upsert", str(sources[0]), "-n", "bench", "-q"], env)
        print(f"{n:,} records loaded in {load[0]:.1f} s; {len(changed):,} change per sync")
        exports, syncs = [], []
        url = env["UPSTASH_VECTOR_REST_URL"]
        for pair in range(args.pairs):
            settled(url, token)
            exports.append(
                timed([*vupsert, "export", "-n", "bench", "-o", str(work / "out.jsonl"), "-q"], env)
            )
            source = sources[(pair + 1) % 2]
            settled(url, token)
            syncs.append(timed([*vupsert, "sync", str(source), "-n", "bench", "--json", "-q"], env))
        sent = [orjson.loads(s[3].strip().splitlines()[-1])["records_upserted"] for s in syncs]
        row = "{:<8} {:>10} {:>10} {:>12}"
        print(row.format("", "wall s", "CPU s", "peak RSS MB"))
        for name, runs in (("export", exports), ("sync", syncs)):
            print(
                row.format(
                    name,
                    f"{statistics.median(r[0] for r in runs):.2f}",
                    f"{statistics.median(r[1] for r in runs):.2f}",
                    f"{max(r[2] for r in runs):.0f}",
                )
            )
        ratios = [s[0] / e[0] for e, s in zip(exports, syncs, strict=True)]
        print(f"sync / export, wall, pair by pair: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"median {statistics.median(ratios):.2f}x; records each sync sent: {sent}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
