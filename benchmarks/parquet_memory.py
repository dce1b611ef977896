"""Peak memory of ``vupsert upsert`` reading a large Parquet file (issue 17).

    .venv/bin/python benchmarks/parquet_memory.py [--rows 1000000] [--row-group 1000000]

Writes a deterministic Parquet file into a temporary folder (``id``; ``data`` of 200-600
characters of English-like words; ``info``, a struct of title, author and a nullable
series; ``published``, a UTC timestamp; ``rating``, a nullable float; ``tags``, a list of
strings), pyarrow's default compression (snappy) and, by default, pyarrow's default row
group of a million rows, the largest a writer commonly makes. Then runs the real CLI on
it twice, in a process of its own each time, and reports its peak RSS (``wait4``):

1. ``--dry-run``: read, map and batch every row, send nothing;
2. a real run against a sink that answers every upsert at once without keeping it (the
   local server would hold a million records in memory: its memory is not the client's).

Needs pyarrow (``pip install -e '.[test]'``). Linux only: peak RSS comes from ``wait4``.
Never asserts; prints a table and the figures as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "vupsert-parquet-bench"
_TEXT = (
    "index vector query record batch model text search data token field value stream "
    "memory file column row group schema nested struct list time server client network "
    "retry answer write read store load chunk page buffer offset number string object"
)
WORDS = _TEXT.split()


def write_file(path: Path, rows: int, row_group: int, seed: int = 17) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("data", pa.string()),
            (
                "info",
                pa.struct(
                    [("title", pa.string()), ("author", pa.string()), ("series", pa.int32())]
                ),
            ),
            ("published", pa.timestamp("us", tz="UTC")),
            ("rating", pa.float64()),
            ("tags", pa.list_(pa.string())),
        ]
    )
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    with pq.ParquetWriter(path, schema) as writer:
        step = min(row_group, 100_000)
        written = 0
        # Whole row groups of ``row_group`` rows, built a slice at a time.
        while written < rows:
            group = min(row_group, rows - written)
            columns: dict[str, list[Any]] = {name: [] for name in schema.names}
            for i in range(written, written + group):
                n = rng.randrange(30, 90)
                columns["id"].append(f"doc-{i}")
                columns["data"].append(" ".join(rng.choice(WORDS) for _ in range(n)))
                columns["info"].append(
                    {
                        "title": f"Title {i % 997}",
                        "author": f"Author {i % 101}",
                        "series": i % 7 if i % 3 else None,
                    }
                )
                columns["published"].append(start + datetime.timedelta(minutes=i))
                columns["rating"].append(round(rng.uniform(1, 5), 1) if i % 5 else None)
                columns["tags"].append([rng.choice(WORDS) for _ in range(i % 4)])
                if len(columns["id"]) == step:
                    writer.write_batch(pa.record_batch(columns, schema=schema), group)
                    columns = {name: [] for name in schema.names}
            if columns["id"]:
                writer.write_batch(pa.record_batch(columns, schema=schema), group)
            written += group


class Sink(BaseHTTPRequestHandler):
    """Answers like an Upstash index with a BGE model, keeping nothing."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        del body
        if self.path.startswith("/info"):
            result: Any = {
                "vectorCount": 0,
                "dimension": 384,
                "denseIndex": {"embeddingModel": "BAAI/bge-small-en-v1.5"},
                "namespaces": {"": {"vectorCount": 0}},
            }
        else:
            result = "Success"
        payload = json.dumps({"result": result}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The CLI run to its end in a process of its own; its peak RSS from ``wait4``."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vupsert", "upsert", *args],
            stdout=out,
            stderr=err,
            env=env,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    summary = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    return {
        "exit": process.returncode,
        "seconds": round(elapsed, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "records_read": summary.get("records_read"),
        "records_upserted": summary.get("records_upserted"),
        "stderr": stderr[-500:] if process.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.write is not None:
        write_file(options.write, options.rows, options.row_group)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.parquet"
        started = time.monotonic()
        # In a process of its own: a child's peak RSS counts what it shared with its parent
        # when it was forked, so the parent stays small.
        sizes = ["--rows", str(options.rows), "--row-group", str(options.row_group)]
        subprocess.run([sys.executable, __file__, *sizes, "--write", str(path)], check=True)
        figures: dict[str, Any] = {
            "rows": options.rows,
            "row_group": options.row_group,
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "write_s": round(time.monotonic() - started, 1),
        }
        sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        env = dict(os.environ)
        env["UPSTASH_VECTOR_REST_URL"] = f"http://127.0.0.1:{sink.server_port}"
        env["UPSTASH_VECTOR_REST_TOKEN"] = TOKEN
        figures["dry_run"] = run([str(path), "--dry-run", "--json", "-q"], env)
        figures["sent"] = run([str(path), "--json", "-q"], env)
        sink.shutdown()
    print(f"{figures['rows']:,} rows, {figures['file_mb']} MB of Parquet")
    for name in ("dry_run", "sent"):
        f = figures[name]
        print(
            f"  {name:8} peak RSS {f['peak_rss_mb']:6.1f} MB  {f['seconds']:6.1f} s  "
            f"{f['records_read']} read, {f['records_upserted']} upserted, exit {f['exit']}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
