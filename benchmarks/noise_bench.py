"""vupsert against a plain async client, on a fake index whose latency is noisy (issue 26).

    .venv/bin/python benchmarks/noise_bench.py [--records N] [--rounds R] [--noise 0,0.5]

A fake index (``--serve``, in a process of its own) answers ``POST /upsert-data[/ns]``
with success after 50 ms + 2 ms per record, times a uniform factor in ``1 +- noise``
drawn for each answer, and ``/info`` as an index with an embedding model. It does no
other work, so that neither client is bound by the server, and on two cores no client
is bound by its own CPU either: what is left is how many requests each keeps in flight.

The yardstick ("plain client") is what cannot be beaten by pacing: httpx's async client
with every body built before the clock starts and 64 requests in flight from the first
moment. vupsert runs as a user runs it (``python -m vupsert upsert FILE --json -q``,
defaults), timed as a whole process, start-up and ramp-up included. Each run gets a
fresh server; the two clients alternate, and each round's ratio (plain seconds /
vupsert seconds: vupsert's throughput as a share of the plain client's) is paired;
the figure is the median of the rounds' ratios. Prints a table; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from bench import ROOT, TOKEN, _env, _free_port, run_child, write_corpus

BASE_MS = 50.0
PER_RECORD_MS = 2.0
PLAIN_IN_FLIGHT = 64
PLAIN_BATCH = 1000
INFO = {
    "vectorCount": 0,
    "pendingVectorCount": 0,
    "indexSize": 0,
    "dimension": 1024,
    "similarityFunction": "COSINE",
    "denseIndex": {"dimension": 1024, "embeddingModel": "BGE_M3"},
    "namespaces": {"": {"vectorCount": 0, "pendingVectorCount": 0}},
}


# --- the fake index ------------------------------------------------------------------


class FakeIndex:
    """An HTTP/1.1 server (keep-alive, Content-Length bodies) that only waits."""

    def __init__(self, noise: float, seed: int) -> None:
        self.noise = noise
        self.rng = random.Random(seed)
        self.records = 0

    def delay(self, records: int) -> float:
        base = (BASE_MS + PER_RECORD_MS * records) / 1000
        return base * self.rng.uniform(1 - self.noise, 1 + self.noise)

    async def answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        if path.startswith("/upsert-data"):
            records = len(orjson.loads(body))
            await asyncio.sleep(self.delay(records))
            self.records += records
            return 200, b'{"result":"Success"}'
        if path == "/info":
            info = dict(INFO, vectorCount=self.records)
            return 200, orjson.dumps({"result": info})
        return 404, b'{"error":"not here"}'

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                status, payload = await self.answer(path, body)
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve(self, port: int) -> None:
        server = await asyncio.start_server(self.connection, "127.0.0.1", port, backlog=512)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()


@contextmanager
def fake_index(noise: float, seed: int) -> Iterator[str]:
    port = _free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--noise", str(noise)]
    argv += ["--seed", str(seed)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


# --- the clients ---------------------------------------------------------------------


def plain_client(path: str, url: str) -> None:
    """Bodies built first, then 64 in flight; prints its own seconds (sending only)."""
    with open(path, "rb") as f:
        lines = [orjson.loads(line) for line in f]
    bodies = [
        orjson.dumps([{k: r[k] for k in ("id", "data", "metadata")} for r in chunk])
        for chunk in (lines[i : i + PLAIN_BATCH] for i in range(0, len(lines), PLAIN_BATCH))
    ]

    async def load() -> float:
        limits = httpx.Limits(max_connections=PLAIN_IN_FLIGHT)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=url, limits=limits, headers=headers, timeout=300
        ) as client:
            gate = asyncio.Semaphore(PLAIN_IN_FLIGHT)

            async def send(body: bytes) -> None:
                async with gate:
                    response = await client.post("/upsert-data", content=body)
                    response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(send(body) for body in bodies))
            return time.perf_counter() - started

    print(json.dumps({"seconds": asyncio.run(load())}))


def timed_plain(path: Path, noise: float, seed: int) -> float:
    with fake_index(noise, seed) as url:
        argv = [sys.executable, __file__, "--plain", str(path), "--url", url]
        child = run_child(argv, _env(url))
        if child.code:
            raise RuntimeError(f"the plain client failed: {child.stderr[-2000:]}")
        seconds: float = json.loads(child.stdout)["seconds"]
        return seconds


def timed_vupsert(path: Path, records: int, noise: float, seed: int) -> float:
    with fake_index(noise, seed) as url:
        argv = [sys.executable, "-m", "vupsert", "upsert", str(path), "--json", "-q"]
        child = run_child(argv, _env(url))
        summary = json.loads(child.stdout) if child.code == 0 else {}
        if summary.get("records_upserted") != records:
            raise RuntimeError(f"vupsert did not load every record: {child.stderr[-2000:]}")
        return child.wall_s


def rounds(path: Path, records: int, noise: float, count: int) -> dict[str, Any]:
    plain: list[float] = []
    vupsert: list[float] = []
    for n in range(count):
        # Alternate which client goes first: a machine that drifts favours neither.
        order = ("plain", "vupsert") if n % 2 == 0 else ("vupsert", "plain")
        for who in order:
            if who == "plain":
                plain.append(timed_plain(path, noise, seed=n))
            else:
                vupsert.append(timed_vupsert(path, records, noise, seed=n))
        print(
            f"  noise +-{noise:.0%} round {n + 1}: plain {plain[-1]:.2f} s, vupsert "
            f"{vupsert[-1]:.2f} s, ratio {plain[-1] / vupsert[-1]:.2f}",
            file=sys.stderr,
        )
    ratios = [p / v for p, v in zip(plain, vupsert, strict=True)]
    return {
        "noise": noise,
        "plain_s": plain,
        "vupsert_s": vupsert,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="Records (200,000).")
    parser.add_argument("--rounds", type=int, default=3, help="Paired rounds per noise (3).")
    parser.add_argument(
        "--noise", default="0,0.5", help="Latency noise settings, comma-separated (0,0.5)."
    )
    parser.add_argument("--out", help="Where to write every figure as JSON.")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(FakeIndex(float(args.noise), args.seed).serve(args.serve))
        return
    if args.plain:
        plain_client(args.plain, args.url)
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.jsonl"
        write_corpus(path, args.records)
        for noise in (float(n) for n in args.noise.split(",")):
            results.append(rounds(path, args.records, noise, args.rounds))
    print(f"{args.records:,} records; 50 ms + 2 ms a record; {args.rounds} paired rounds")
    print("| latency | plain client (median s) | vupsert (median s) | ratio (median of pairs) |")
    print("| --- | --- | --- | --- |")
    for r in results:
        print(
            f"| +-{r['noise']:.0%} | {statistics.median(r['plain_s']):.2f} | "
            f"{statistics.median(r['vupsert_s']):.2f} | {r['median_ratio']:.2f} "
            f"({', '.join(f'{x:.2f}' for x in r['ratios'])}) |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
