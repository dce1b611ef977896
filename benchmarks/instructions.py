"""Issue 5's CPU comparison (3) counted in instructions instead of seconds.

CPU-seconds on a small shared VM drift by 1.5x from one minute to the next; instruction
counts do not. This runs, each under valgrind's callgrind (Linux, ``apt install
valgrind``; about two minutes in all):

- the floor of ``bench.py`` (read the lines, ``orjson.loads`` each, ``orjson.dumps``
  ``{id, data, metadata}``, join batches of 1,000), one pass, and the same interpreter
  with nothing to read, whose count is taken off the floor's;
- vupsert as a user runs it, ``python -m vupsert upsert FILE --json -q``, against a local
  server (not under valgrind), on one record (its start-up) and on N records;
- the same two with ``--dry-run``, so that what sending costs (per request, and at
  start-up: the client, the preflight, the sender threads) is told apart from reading,
  parsing, mapping and batching.

It prints instructions per record and the ratios: the whole process, and net of
start-up. What it cannot show is what seconds also hold: cache misses, page faults,
the kernel, a busy neighbour. Read it beside ``bench.py``, not instead of it.
"""

from __future__ import annotations

import argparse
import compileall
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The corpus, the server and the environment are bench.py's.
import bench

from vupsert.records import MAX_BATCH_RECORDS

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions executed by ``argv`` and its threads, counted by callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=bench.ROOT)
    found = _REFS.search(done.stderr)
    if done.returncode not in (0, 1) or found is None:
        raise RuntimeError(f"{argv[:4]} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(records: int, folder: Path) -> dict[str, Any]:
    corpus, one = folder / "corpus.jsonl", folder / "one.jsonl"
    bench.write_corpus(corpus, records)
    bench.copy_prefix(corpus, one, 1)
    me = [sys.executable, str(Path(__file__).resolve())]
    floor_start = instructions([*me, "--floor"])
    floor = instructions([*me, "--floor", str(corpus)]) - floor_start
    vupsert = [sys.executable, "-m", "vupsert", "upsert"]
    with bench.server((), folder / "server.log") as running:
        env = bench._env(running.url)
        startup = instructions([*vupsert, str(one), "--json", "-q"], env)
        whole = instructions([*vupsert, str(corpus), "--json", "-q"], env)
        # The same with --dry-run: everything but the client, the preflight and sending.
        dry_startup = instructions([*vupsert, str(one), "--dry-run", "--json", "-q"], env)
        dry_whole = instructions([*vupsert, str(corpus), "--dry-run", "--json", "-q"], env)
        landed = (
            int(running.info().get("vectorCount", -1)) == records
        )  # the one record is the first
    return {
        "records": records,
        "floor_per_record": round(floor / records),
        "floor_interpreter": floor_start,
        "vupsert_startup": startup,
        "vupsert_whole": whole,
        "vupsert_per_record_net": round((whole - startup) / records),
        "ratio_whole_at_100k": round(
            (startup + (whole - startup) / records * 1e5) / (floor / records * 1e5), 2
        ),
        "ratio_net": round((whole - startup) / floor, 2),
        "dry_run_per_record_net": round((dry_whole - dry_startup) / records),
        "sending_startup": startup - dry_startup,
        "sending_per_request": round(
            ((whole - startup) - (dry_whole - dry_startup)) / -(-records // MAX_BATCH_RECORDS)
        ),
        "every_record_landed": landed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="Corpus size (20,000).")
    parser.add_argument("--out", type=Path, help="Also write the figures here as JSON.")
    parser.add_argument("--floor", nargs="?", const="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor is not None:
        if args.floor:  # with no file: only the interpreter and its imports
            bench.floor_pass(Path(args.floor))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt install valgrind)")
    compileall.compile_dir(bench.ROOT / "vupsert", quiet=1)
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(args.records, Path(folder))
    n = figures["records"]
    print(f"{n:,} records, instructions counted by callgrind")
    print(f"  floor (orjson parse + dump):      {figures['floor_per_record']:>10,} per record")
    print(
        f"  vupsert, net of start-up:         {figures['vupsert_per_record_net']:>10,} per record"
    )
    print(f"  vupsert start-up (one record):    {figures['vupsert_startup']:>10,}")
    print(f"  ratio net of start-up:            {figures['ratio_net']:>10.2f}x")
    print(f"  ratio, whole process at 100,000:  {figures['ratio_whole_at_100k']:>10.2f}x")
    print("  of which (a --dry-run on the same input taken off):")
    print(
        f"    read, parse, map, batch:        {figures['dry_run_per_record_net']:>10,} per record"
    )
    print(f"    sending:                        {figures['sending_per_request']:>10,} per request")
    print(f"    client, preflight, threads:     {figures['sending_startup']:>10,} at start-up")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
