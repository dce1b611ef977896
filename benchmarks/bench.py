"""Benchmark vupsert against the local server: throughput, rate-limit use, CPU, memory.

    .venv/bin/python benchmarks/bench.py [--quick] [--records N] [--out PATH]

Generates a deterministic corpus of English-like records into a temporary folder, then,
with the server (``python -m vupsert serve``) in its own process and a fresh one for each
measured run, so that client and server CPU are measured apart and no run inherits the
previous one's background indexing:

1. vupsert with its defaults (the real CLI, ``python -m vupsert upsert FILE --json -q``)
   against the official ``upstash-vector`` SDK, the server answering in 50 ms + 0.2 ms
   per record: as its users write it naively (1,000-record ``Index.upsert`` calls one
   after another), and as a skilled user writes it in ten lines (``Index.upsert`` per
   1,000 records from a 16-thread pool; ``AsyncIndex.upsert`` with 16 batches in flight).
   vupsert and the two skilled scripts run in turn, ``--repeat`` times, and are compared
   by wall time, start-up included;
2. vupsert against a server that allows 20 writes/s: 0.6 N records at 100 records per
   batch against a token bucket and against a sliding window (at most 20 writes in any
   one second), and 0.4 N records at 250 (160 requests for N = 100,000) against the
   sliding window, in turn: the share of the limit used (start-up included) and the
   share of requests refused with 429;
3. vupsert with no added latency: records/s and client CPU-seconds per 100k records,
   against a floor measured in a fresh process (orjson reading the lines and writing the
   same batches, no network);
4. peak RSS of the client for N/2 and 4N records, and its CPU per record at 4N against
   the floor of (3), start-up included;
5. vupsert against a server that slows down as it gets busier (``--capacity 8``: a write
   arriving with k > 8 in flight takes its latency times k / 8), beside the 16-thread
   pool: the writes in flight the server saw (sampled every 5 ms; this server runs in the
   benchmark's process, to be watched) and the records/s, against what 8 in flight give;

plus the server's own ceiling, and a ``--concurrency`` sweep of (1) and (3). Throughput
figures are medians of ``--repeat`` runs (3; the sweep's of ``--sweep-repeat``, 2): the
machine is small and shared, so single runs vary by 20% or more; comparisons are paired
run by run. Prints a table, writes every figure as JSON (``--out``), and never asserts:
the targets are reported as pass/fail. The full run takes about 7 minutes on 2 CPUs;
``--quick`` about 1.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "vupsert-bench-token"
SEED = 5
SDK_BATCH = 1000
LATENCY = ("--latency-ms", "50", "--latency-per-record-ms", "0.2")
SKILLED_IN_FLIGHT = 16
"""Batches in flight in the skilled SDK scripts, as the issue measured them."""
RATE_LIMIT = 20.0
RATE_LIMIT_BATCH = 100
SHORT_BATCH = 250
"""Batch size of the short rate-limited run, where start-up weighs most."""
CAPACITY = 8
SWEEP = (16, 32, 64, 128)
SIZES = ("small", "large")
EXTRA = -1
"""Key of the corpus whose lines carry one field more (see :func:`with_extra_field`)."""
SECTIONS = {
    "sdk": "(1)",
    "rate_limit": "(2)",
    "cpu": "(3)",
    "rss": "(4)",
    "capacity": "(5)",
    "concurrency_sweep": "sweep",
    "latency": "sweep, latency,",
    "no_latency": "sweep, no latency,",
}
NOISY = 0.25
"""Cores used by other processes during a run above which the run is flagged."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1

# Targets of issues 5 and 16.
TARGET_SDK_RATIO = 10.0
TARGET_SKILLED_RATIO = 1.5
TARGET_LIMIT_USED = 0.85
TARGET_REFUSED = 0.15
TARGET_CPU_RATIO = 3.0
TARGET_RSS_MB = 100.0
TARGET_RSS_GROWTH = 1.2
TARGET_CAPACITY_IN_FLIGHT = 1.5
"""Median writes in flight at most this many times the capacity (+2)."""
TARGET_CAPACITY_KEPT = 0.9
"""Records/s at least this share of the thread pool's, which keeps twice the capacity in
flight: settling near the capacity costs no throughput."""

# --- the corpus ------------------------------------------------------------------------

# About the 300 most frequent English words, most frequent first: drawn with Zipf
# weights, they give text with English's word lengths and repetition.
_WORD_LIST = """
the of and to a in is it you that he was for on are with as I his they be at one have
this from or had by hot word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them write
would like so these her long make thing see him two has look more day could go come did
number sound no most people my over know water than call first who may down side been
now find any new work part take get place made live where after back little only round
man year came show every good me give our under name very through just form sentence
great think say help low line differ turn cause much mean before move right boy old too
same tell does set three want air well also play small end put home read hand port large
spell add even land here must big high such follow act why ask men change went light
kind off need house picture try us again animal point mother world near build self earth
father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross
farm hard start might story saw far sea draw left late run while press close night real
life few north open seem together next white children begin got walk example ease paper
group always music those both mark often letter until mile river car feet care second
book carry took science eat room friend began idea fish mountain stop once base hear
horse cut sure watch color face wood main enough plain girl usual young ready above ever
red list though feel talk bird soon body dog family direct pose leave song measure door
product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb
sing listen six table travel less morning ten simple several vowel toward war lay against
pattern slow center love person money serve appear road map rain rule govern pull cold
notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood contain front
teach week final gave green oh quick develop ocean warm free minute strong special mind
behind clear tail produce fact street inch multiply nothing course stay wheel full force
blue object decide surface deep moon island foot system busy test record boat common gold
"""
_WORDS = _WORD_LIST.split()
_WORD_WEIGHTS = list(itertools.accumulate(1.0 / rank for rank in range(1, len(_WORDS) + 1)))
_CATEGORIES = ("news", "blog", "manual", "review", "forum", "paper", "faq", "note")
_AUTHORS = tuple(f"author-{n:03d}" for n in range(120))
_TAGS = ("python", "vector", "search", "ops", "data", "ml", "web", "db", "cli", "cloud")


def _sentences(rng: random.Random, count: int = 20_000) -> list[str]:
    """A pool of capitalised sentences of 4-18 Zipf-drawn words, some with a comma."""
    pool = []
    for _ in range(count):
        words = rng.choices(_WORDS, cum_weights=_WORD_WEIGHTS, k=rng.randint(4, 18))
        if len(words) > 6 and rng.random() < 0.3:
            words[rng.randint(2, len(words) - 3)] += ","
        sentence = " ".join(words)
        pool.append(sentence[0].upper() + sentence[1:] + rng.choice(".....?!"))
    return pool


def _text(rng: random.Random, pool: list[str]) -> str:
    """200-600 characters: sentences from the pool, the last one cut at a word."""
    target = rng.randint(200, 600)
    parts: list[str] = []
    length = -1
    while length < target:
        sentence = rng.choice(pool)
        parts.append(sentence)
        length += len(sentence) + 1
    text = " ".join(parts)
    if len(text) > 600:
        text = text[: text.rfind(" ", 0, 600)].rstrip(",") + "."
    return text


def _record(n: int, rng: random.Random, pool: list[str]) -> dict[str, Any]:
    return {
        "id": f"doc-{n:07d}",
        "data": _text(rng, pool),
        "metadata": {
            "category": rng.choice(_CATEGORIES),
            "author": rng.choice(_AUTHORS),
            "year": rng.randint(1995, 2025),
            "rating": round(rng.uniform(1, 5), 2),
            "draft": rng.random() < 0.1,
            "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        },
    }


def write_corpus(path: Path, count: int, seed: int = SEED) -> int:
    """Write ``count`` JSONL records; the first n are the same for any ``count`` >= n."""
    rng = random.Random(seed)
    pool = _sentences(rng)
    with path.open("wb") as f:
        for chunk in range(0, count, 10_000):
            f.write(
                b"".join(
                    orjson.dumps(_record(n, rng, pool)) + b"\n"
                    for n in range(chunk, min(count, chunk + 10_000))
                )
            )
    return path.stat().st_size


def copy_prefix(source: Path, target: Path, count: int) -> None:
    with source.open("rb") as f, target.open("wb") as out:
        out.writelines(itertools.islice(f, count))


def with_extra_field(source: Path, target: Path) -> None:
    """The same records, each line with one field more (``"source"``): vupsert sends a
    line that is exactly ``{id, data, metadata}`` as written, and must map and dump
    one like these."""
    with source.open("rb") as f, target.open("wb") as out:
        # Each line is "{...}\n": the field goes in before its closing brace.
        out.writelines(line.rstrip(b"\n")[:-1] + b',"source":"bench"}\n' for line in f)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    """What one client process did, as the kernel saw it."""

    code: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], env: dict[str, str], timeout: float = 900.0) -> Child:
    """Run a process to its end; its own CPU time and peak RSS come from ``wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(
            code=process.returncode,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``python -m vupsert serve`` in its own process, on a port chosen here."""

    def __init__(self, faults: Sequence[str], log: Path) -> None:
        self.faults = tuple(faults)
        self.log = log
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for _ in range(5):
            self.port = _free_port()
            argv = [sys.executable, "-m", "vupsert", "serve", "--port", str(self.port)]
            argv += ["--token", TOKEN, *self.faults]
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT
                )
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"the local server did not start; see {self.log}")

    def _wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False  # e.g. the port was taken meanwhile
            try:
                self.info()
                return True
            except httpx.HTTPError:
                time.sleep(0.05)
        return False

    def info(self) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/info", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()["result"]
        return result

    def cpu_s(self) -> float:
        """User + system CPU of the server process so far, from /proc."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextmanager
def server(faults: Sequence[str], log: Path) -> Iterator[Server]:
    running = Server(faults, log)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        UPSTASH_VECTOR_REST_URL=url,
        UPSTASH_VECTOR_REST_TOKEN=TOKEN,
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("VUPSERT_RAISE_ERRORS", None)
    # As installed: a user's interpreter loads cached bytecode (see benchmark()).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# --- the runs ----------------------------------------------------------------------------


def _box_busy_s() -> float:
    """CPU-seconds every process on the machine has used so far (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class Measured:
    """One client run against a fresh server."""

    client: str
    records: int
    upserted: int
    elapsed_s: float
    """The client's own timer: the run, without the interpreter's start."""
    wall_s: float
    client_cpu_s: float
    client_max_rss_mb: float
    server_cpu_s: float
    server_max_rss_mb: float
    other_cpu_s: float
    """CPU the rest of the machine used meanwhile: noise from other processes."""
    in_index: int
    """``vectorCount`` of the index afterwards: what really landed."""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.upserted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "records": self.records,
            "upserted": self.upserted,
            "in_index": self.in_index,
            "records_per_s": round(self.records_per_s, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "wall_s": round(self.wall_s, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cpu_s_per_100k": round(self.client_cpu_s * 1e5 / max(1, self.records), 3),
            "client_cores": round(self.client_cores, 2),
            "client_max_rss_mb": round(self.client_max_rss_mb, 1),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "server_cores": round(self.server_cores, 2),
            "server_max_rss_mb": round(self.server_max_rss_mb, 1),
            "other_cpu_s": round(self.other_cpu_s, 3),
            "summary": self.summary,
        }


def measure(
    name: str, argv: Sequence[str], records: int, faults: Sequence[str], log: Path
) -> Measured:
    """Run one client process against a fresh server; the client prints a JSON summary."""
    with server(faults, log) as running:
        server_before, box_before = running.cpu_s(), _box_busy_s()
        child = run_child(argv, _env(running.url))
        server_cpu = running.cpu_s() - server_before
        box = _box_busy_s() - box_before
        in_index = int(running.info().get("vectorCount", -1))
        server_rss = running.rss_mb()
    if child.code not in (0, 1):
        raise RuntimeError(f"{name} exited with {child.code}:\n{child.stderr[-3000:]}")
    summary: dict[str, Any] = orjson.loads(child.stdout.strip().splitlines()[-1])
    return Measured(
        client=name,
        records=records,
        upserted=int(summary.get("records_upserted", 0)),
        elapsed_s=float(summary.get("elapsed_s") or child.wall_s),
        wall_s=child.wall_s,
        client_cpu_s=child.cpu_s,
        client_max_rss_mb=child.max_rss_mb,
        server_cpu_s=server_cpu,
        server_max_rss_mb=server_rss,
        other_cpu_s=max(0.0, box - child.cpu_s - server_cpu),
        in_index=in_index,
        summary=summary,
    )


def run_vupsert(
    path: Path,
    records: int,
    faults: Sequence[str],
    log: Path,
    options: Sequence[str] = (),
) -> Measured:
    """The real CLI, as a user runs it: ``python -m vupsert upsert FILE --json -q``."""
    argv = [sys.executable, "-m", "vupsert", "upsert", str(path), "--json", "-q", *options]
    label = " ".join(["vupsert", *options])
    return measure(label, argv, records, faults, log)


SDK_SCRIPTS = {
    "naive": ("--sdk-client", "upstash-vector SDK"),
    "pool": ("--sdk-pool", f"SDK, {SKILLED_IN_FLIGHT}-thread pool"),
    "async": ("--sdk-async", f"SDK async, {SKILLED_IN_FLIGHT} in flight"),
}


def sdk_argv(path: Path, script: str = "naive") -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), SDK_SCRIPTS[script][0], str(path)]


def run_sdk(
    path: Path, records: int, faults: Sequence[str], log: Path, script: str = "naive"
) -> Measured:
    return measure(SDK_SCRIPTS[script][1], sdk_argv(path, script), records, faults, log)


def sdk_client(path: str) -> None:
    """What a user of the official SDK writes to load a JSONL file (run as a child)."""
    from upstash_vector import Index
    from upstash_vector.types import Data

    started = time.monotonic()
    index = Index(os.environ["UPSTASH_VECTOR_REST_URL"], os.environ["UPSTASH_VECTOR_REST_TOKEN"])
    upserted = 0
    batch: list[Data] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            batch.append(
                Data(id=record["id"], data=record["data"], metadata=record.get("metadata"))
            )
            if len(batch) == SDK_BATCH:
                index.upsert(vectors=batch)
                upserted += len(batch)
                batch = []
    if batch:
        index.upsert(vectors=batch)
        upserted += len(batch)
    elapsed = time.monotonic() - started
    print(json.dumps({"records_upserted": upserted, "elapsed_s": round(elapsed, 3)}))


def _sdk_batches(path: str) -> Iterator[list[Any]]:
    """The JSONL file as lists of ``Data``, 1,000 at a time."""
    from upstash_vector.types import Data

    batch: list[Any] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            batch.append(Data(id=record["id"], data=record["data"], metadata=record["metadata"]))
            if len(batch) == SDK_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def sdk_pool(path: str) -> None:
    """What a skilled user of the SDK writes: ``Index.upsert`` from a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    from upstash_vector import Index

    started = time.monotonic()
    index = Index(os.environ["UPSTASH_VECTOR_REST_URL"], os.environ["UPSTASH_VECTOR_REST_TOKEN"])

    def send(batch: list[Any]) -> int:
        index.upsert(vectors=batch)
        return len(batch)

    with ThreadPoolExecutor(SKILLED_IN_FLIGHT) as pool:
        upserted = sum(pool.map(send, _sdk_batches(path)))
    elapsed = time.monotonic() - started
    print(json.dumps({"records_upserted": upserted, "elapsed_s": round(elapsed, 3)}))


def sdk_async(path: str) -> None:
    """The same with ``AsyncIndex``: a semaphore keeps 16 batches in flight."""
    from upstash_vector import AsyncIndex

    async def load() -> int:
        index = AsyncIndex(
            os.environ["UPSTASH_VECTOR_REST_URL"], os.environ["UPSTASH_VECTOR_REST_TOKEN"]
        )
        in_flight = asyncio.Semaphore(SKILLED_IN_FLIGHT)

        async def send(batch: list[Any]) -> int:
            async with in_flight:
                await index.upsert(vectors=batch)
            return len(batch)

        return sum(await asyncio.gather(*(send(b) for b in _sdk_batches(path))))

    started = time.monotonic()
    upserted = asyncio.run(load())
    elapsed = time.monotonic() - started
    print(json.dumps({"records_upserted": upserted, "elapsed_s": round(elapsed, 3)}))


def floor_pass(path: Path, batch_size: int = 1000) -> bytes:
    """Parse every line and build the same request bodies as vupsert, no network.

    Each body is held until the next one is made (returned at the end). Dropped at once,
    the top of glibc's heap is trimmed and faulted back in for every batch: 24 times the
    page faults and 1.5 times the CPU, and a floor must be the cheapest way to do the work.
    """
    loads, dumps = orjson.loads, orjson.dumps
    body = b"[]"
    with path.open("rb") as f:
        batch: list[bytes] = []
        for line in f:
            value = loads(line)
            batch.append(
                dumps({"id": value["id"], "data": value["data"], "metadata": value["metadata"]})
            )
            if len(batch) == batch_size:
                body = b"[" + b",".join(batch) + b"]"
                batch = []
        if batch:
            body = b"[" + b",".join(batch) + b"]"
    return body


def floor_cpu_s(path: Path, repeats: int = 7) -> float:
    """CPU-seconds of :func:`floor_pass`: the best of ``repeats`` passes, a floor, not an
    average."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        floor_pass(path)
        best = min(best, time.process_time() - started)
    return best


def floor_in_child(path: Path) -> float:
    """The floor, measured in a fresh interpreter like the client's (the benchmark's own
    heap, after dozens of runs, makes it vary)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--floor", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    return float(done.stdout.strip())


def median_run(runs: Sequence[Measured]) -> Measured:
    """The run with the median records/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.records_per_s)
    return ordered[(len(ordered) - 1) // 2]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def repeated(
    repeat: int,
    path: Path,
    records: int,
    faults: Sequence[str],
    log: Path,
    options: Sequence[str] = (),
) -> dict[str, Any]:
    """``repeat`` runs of vupsert: the medians, and every run."""
    return summarised([run_vupsert(path, records, faults, log, options) for _ in range(repeat)])


def summarised(runs: Sequence[Measured]) -> dict[str, Any]:
    """The medians of some runs of the same thing, and every run."""
    records = runs[0].records
    middle = median_run(runs)
    return {
        "records": records,
        "records_per_s": round(middle.records_per_s, 1),
        "records_per_s_all": [round(r.records_per_s, 1) for r in runs],
        "client_cpu_s": round(median([r.client_cpu_s for r in runs]), 3),
        "client_cpu_s_all": [round(r.client_cpu_s, 3) for r in runs],
        "server_cpu_s": round(median([r.server_cpu_s for r in runs]), 3),
        "client_max_rss_mb": round(median([r.client_max_rss_mb for r in runs]), 1),
        "all_landed": all(r.in_index == r.records == r.upserted for r in runs),
        "median_run": middle.as_dict(),
        "runs": [r.as_dict() for r in runs],
    }


# --- the scenarios -----------------------------------------------------------------------


@dataclass
class Plan:
    records: int
    repeat: int
    sweep: tuple[int, ...]
    sweep_repeat: int
    work: Path

    @property
    def rate_limited(self) -> int:
        return max(RATE_LIMIT_BATCH, self.records * 6 // 10)

    @property
    def rate_limited_short(self) -> int:
        return max(SHORT_BATCH, self.records * 4 // 10)

    @property
    def rss_small(self) -> int:
        return max(1, self.records // 2)

    @property
    def rss_large(self) -> int:
        return self.records * 4

    @property
    def pairs(self) -> int:
        """Runs behind the median of (3), each paired with its own floor."""
        return 2 * self.repeat - 1

    @property
    def log(self) -> Path:
        return self.work / "server.log"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make_corpus(plan: Plan) -> tuple[dict[int, Path], dict[str, Any]]:
    started = time.perf_counter()
    biggest = plan.work / f"corpus-{plan.rss_large}.jsonl"
    size = write_corpus(biggest, plan.rss_large)
    files = {plan.rss_large: biggest}
    for n in (plan.records, plan.rate_limited, plan.rate_limited_short, plan.rss_small, 1):
        if n not in files:
            files[n] = plan.work / f"corpus-{n}.jsonl"
            copy_prefix(biggest, files[n], n)
    files[EXTRA] = plan.work / f"corpus-{plan.records}-extra-field.jsonl"
    with_extra_field(files[plan.records], files[EXTRA])
    info = {
        "records": plan.rss_large,
        "bytes": size,
        "mean_record_bytes": round(size / plan.rss_large, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "seed": SEED,
    }
    say(f"corpus: {plan.rss_large:,} records, {size / 1e6:.0f} MB in {info['seconds']} s")
    return files, info


def versus_sdk(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    say(
        f"(1) vupsert, the SDK from a thread pool and async, x{plan.repeat} in turn, then the "
        f"SDK one call at a time; {plan.records:,} records, 50 ms + 0.2 ms/record"
    )
    path, n = files[plan.records], plan.records
    runs: dict[str, list[Measured]] = {"vupsert": [], "pool": [], "async": []}
    for _ in range(plan.repeat):
        runs["vupsert"].append(run_vupsert(path, n, LATENCY, plan.log))
        for script in ("pool", "async"):
            runs[script].append(run_sdk(path, n, LATENCY, plan.log, script))
    ours = summarised(runs["vupsert"])
    sdk = run_sdk(path, n, LATENCY, plan.log)
    ratio = ours["records_per_s"] / sdk.records_per_s if sdk.records_per_s else 0.0
    # What the latency alone allows one request at a time: the SDK's ceiling.
    per_request = (50 + 0.2 * SDK_BATCH) / 1000
    # Each round's faster skilled script against vupsert in the same round, by wall time
    # (start-up included): the machine's speed drifts between rounds, less within one.
    paired = [
        min(pool.wall_s, aio.wall_s) / ours_.wall_s
        for ours_, pool, aio in zip(runs["vupsert"], runs["pool"], runs["async"], strict=True)
    ]
    walls = {name: median([r.wall_s for r in measured]) for name, measured in runs.items()}
    return {
        "vupsert": ours,
        "sdk": sdk.as_dict(),
        "sdk_latency_ceiling_records_per_s": round(SDK_BATCH / per_request, 1),
        "ratio": round(ratio, 2),
        "skilled": {
            "wall_s": {name: round(w, 3) for name, w in walls.items()},
            "wall_s_all": {
                name: [round(r.wall_s, 3) for r in measured] for name, measured in runs.items()
            },
            "client_cpu_s": {
                name: round(median([r.client_cpu_s for r in measured]), 3)
                for name, measured in runs.items()
            },
            "client_max_rss_mb": {
                name: round(median([r.client_max_rss_mb for r in measured]), 1)
                for name, measured in runs.items()
            },
            "ratio_paired": round(median(paired), 2),
            "ratio_paired_all": [round(r, 2) for r in paired],
            "ratio": round(min(walls["pool"], walls["async"]) / walls["vupsert"], 2),
            "all_landed": all(r.in_index == n for measured in runs.values() for r in measured),
            "runs": {
                name: [r.as_dict() for r in measured]
                for name, measured in runs.items()
                if name != "vupsert"
            },
        },
    }


@dataclass(frozen=True)
class Limited:
    """One rate-limited workload of (2)."""

    limiter: str
    records: int
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.limiter}, {self.records // self.batch_size} x {self.batch_size}"


def _rate_limited_once(plan: Plan, files: dict[int, Path], case: Limited) -> dict[str, Any]:
    faults = ("--rate-limit", f"{RATE_LIMIT:g}", "--rate-limiter", case.limiter)
    options = ("--batch-size", str(case.batch_size))
    run = run_vupsert(files[case.records], case.records, faults, plan.log, options)
    requests, throttled = int(run.summary["requests"]), int(run.summary["throttled"])
    # Start-up included: the process's wall time, not the client's own timer.
    ok_per_s = (requests - throttled) / run.wall_s
    return {
        "requests": requests,
        "throttled": throttled,
        "retries": int(run.summary["retries"]),
        "elapsed_s": run.elapsed_s,
        "wall_s": run.wall_s,
        "ok_requests_per_s": round(ok_per_s, 3),
        "limit_used": round(ok_per_s / RATE_LIMIT, 4),
        "limit_used_without_start_up": round(
            (requests - throttled) / run.elapsed_s / RATE_LIMIT, 4
        ),
        "refused": round(throttled / requests, 4) if requests else 0.0,
        "landed": run.in_index == run.records == run.upserted,
        "run": run.as_dict(),
    }


def rate_limited(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    cases = (
        Limited("bucket", plan.rate_limited, RATE_LIMIT_BATCH),
        Limited("sliding", plan.rate_limited, RATE_LIMIT_BATCH),
        Limited("sliding", plan.rate_limited_short, SHORT_BATCH),
    )
    say(
        f"(2) vupsert x{plan.repeat} on each of: "
        + "; ".join(c.name for c in cases)
        + f"; in turn, {RATE_LIMIT:g} writes/s"
    )
    runs: dict[Limited, list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(plan.repeat):
        for case in cases:
            runs[case].append(_rate_limited_once(plan, files, case))
    return {
        "rate_limit": RATE_LIMIT,
        "note": "medians of the runs, start-up included; the bucket starts full (one "
        "second of writes), so a run against it can use slightly more than 100%",
        "all_landed": all(r["landed"] for measured in runs.values() for r in measured),
        "cases": [
            {
                "name": case.name,
                "limiter": case.limiter,
                "records": case.records,
                "batch_size": case.batch_size,
                "limit_used": round(median([r["limit_used"] for r in measured]), 4),
                "refused": round(median([r["refused"] for r in measured]), 4),
                "ok_requests_per_s": round(median([r["ok_requests_per_s"] for r in measured]), 3),
                "limit_used_all": [r["limit_used"] for r in measured],
                "refused_all": [r["refused"] for r in measured],
                "runs": measured,
            }
            for case, measured in runs.items()
        ],
    }


def cpu_against_floor(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    say(
        f"(3) vupsert x{plan.pairs} and x{plan.repeat} with an extra field per line, "
        f"{plan.records:,} records, no added latency; each after a floor"
    )
    path = files[plan.records]
    # The machine's speed drifts: identical runs here differed by 1.5x a minute apart. So
    # each run is paired with a floor measured just before it, and judged against that;
    # the pairs are cheap, so there are more of them than --repeat.
    runs, floors = _paired_runs(plan.pairs, path, plan.records, plan.log)
    ours = summarised(runs)
    paired = [run.client_cpu_s / f for run, f in zip(runs, floors, strict=True)]
    extra_runs, extra_floors = _paired_runs(plan.repeat, files[EXTRA], plan.records, plan.log)
    extra_paired = [r.client_cpu_s / f for r, f in zip(extra_runs, extra_floors, strict=True)]
    startup = median(
        [run_vupsert(files[1], 1, (), plan.log).client_cpu_s for _ in range(plan.repeat)]
    )
    floor = median(floors)
    per_100k = 1e5 / plan.records
    cpu = ours["client_cpu_s"]
    net = max(0.0, cpu - startup)
    middle = ours["median_run"]
    # Busy share of the run (the client's own timer, start-up left out) for each process.
    # Both are one interpreter with one GIL: near 1 core means that side is the limit.
    elapsed = middle["elapsed_s"]
    server_busy = middle["server_cpu_s"] / elapsed
    client_busy = max(0.0, middle["client_cpu_s"] - startup) / elapsed
    other_busy = middle["other_cpu_s"] / middle["wall_s"]
    server_ceiling = plan.records / ours["server_cpu_s"] if ours["server_cpu_s"] else 0.0
    client_ceiling = plan.records / net if net else 0.0
    busiest, busy = max(("client", client_busy), ("server", server_busy), key=lambda x: x[1])
    if busy >= 0.8:
        bottleneck = f"the {busiest}"
    elif client_busy + server_busy + other_busy >= 0.85 * CPUS:
        bottleneck = f"the machine's {CPUS} CPUs (other processes took {other_busy:.2f})"
    else:
        bottleneck = "neither process is CPU-bound: waiting (pipeline stalls), not working"
    bottleneck += (
        f"; busy cores: client {client_busy:.2f}, server {server_busy:.2f}, "
        f"other processes {other_busy:.2f}; the server was "
        + ("" if busiest == "server" and busy >= 0.8 else "not ")
        + "the bottleneck"
    )
    return {
        "records": plan.records,
        "records_per_s": ours["records_per_s"],
        "client_cpu_s": cpu,
        "client_cpu_s_per_100k": round(cpu * per_100k, 3),
        "startup_cpu_s": round(startup, 3),
        "client_cpu_s_per_100k_net": round(net * per_100k, 3),
        "floor_cpu_s": round(floor, 3),
        "floor_cpu_s_per_100k": round(floor * per_100k, 3),
        "ratio": round(cpu / floor, 2),
        "ratio_net": round(net / floor, 2),
        # The floor runs in two speed modes from one process to the next here; the best
        # of each side compares both at their fastest.
        "ratio_best": round(min(r.client_cpu_s for r in runs) / min(floors), 2),
        "floor_cpu_s_all": [round(f, 3) for f in floors],
        "ratio_paired": round(median(paired), 2),
        "ratio_paired_all": [round(r, 2) for r in paired],
        "extra_field": {
            "note": "the same records with one more field per line, so that each line is "
            "mapped and dumped instead of sent as written",
            "client_cpu_s_per_100k": round(
                median([r.client_cpu_s for r in extra_runs]) * per_100k, 3
            ),
            "floor_cpu_s_per_100k": round(median(extra_floors) * per_100k, 3),
            "ratio_paired": round(median(extra_paired), 2),
            "ratio_paired_all": [round(r, 2) for r in extra_paired],
            "all_landed": all(r.in_index == r.records == r.upserted for r in extra_runs),
        },
        "server_cpu_s": ours["server_cpu_s"],
        "server_cpu_s_per_100k": round(ours["server_cpu_s"] * per_100k, 3),
        "server_busy_cores": round(server_busy, 2),
        "client_busy_cores": round(client_busy, 2),
        "other_busy_cores": round(other_busy, 2),
        "server_ceiling_records_per_s": round(server_ceiling),
        "client_ceiling_records_per_s": round(client_ceiling),
        "bottleneck": bottleneck,
        "vupsert": ours,
    }


def _paired_runs(
    count: int, path: Path, records: int, log: Path
) -> tuple[list[Measured], list[float]]:
    """``count`` vupsert runs, each after a floor measured on the same file."""
    floors: list[float] = []
    runs: list[Measured] = []
    for _ in range(count):
        floors.append(floor_in_child(path))
        runs.append(run_vupsert(path, records, (), log))
    return runs, floors


def peak_rss(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    say(f"(4) vupsert, {plan.rss_small:,} and {plan.rss_large:,} records: peak RSS")
    small, large = (
        run_vupsert(files[n], n, (), plan.log) for n in (plan.rss_small, plan.rss_large)
    )
    # CPU per record once start-up and the pipeline's fill are paid: a second view of (3).
    marginal = (large.client_cpu_s - small.client_cpu_s) / (large.records - small.records)
    return {
        "small": small.as_dict(),
        "large": large.as_dict(),
        "growth": round(large.client_max_rss_mb / small.client_max_rss_mb, 3),
        "marginal_client_cpu_s_per_100k": round(marginal * 1e5, 3),
    }


@contextmanager
def watched_server(**faults: Any) -> Iterator[tuple[Any, list[int]]]:
    """A local server in this process, its writes in flight sampled every 5 ms."""
    from vupsert_server import LocalServer, ServerConfig

    seen: list[int] = []
    done = threading.Event()
    with LocalServer(ServerConfig(port=0, token=TOKEN, **faults)) as local:

        def watch() -> None:
            while not done.wait(0.005):
                seen.append(local.stats["writes_in_flight"])

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield local, seen
        finally:
            done.set()
            watcher.join()


def _capacity_once(argv: Sequence[str], records: int) -> dict[str, Any]:
    with watched_server(latency_ms=50, latency_per_record_ms=0.2, capacity=CAPACITY) as (
        local,
        seen,
    ):
        child = run_child(argv, _env(local.url))
        landed = int(local.stats["records_written"])
    if child.code not in (0, 1):
        raise RuntimeError(f"{argv[:3]} exited with {child.code}:\n{child.stderr[-3000:]}")
    summary = orjson.loads(child.stdout.strip().splitlines()[-1])
    busy = sorted(n for n in seen if n)
    elapsed = float(summary.get("elapsed_s") or child.wall_s)
    return {
        "records_per_s": round(int(summary["records_upserted"]) / elapsed, 1),
        "wall_s": round(child.wall_s, 3),
        "in_flight_median": median(busy) if busy else 0,
        "in_flight_p90": busy[len(busy) * 9 // 10] if busy else 0,
        "in_flight_max": busy[-1] if busy else 0,
        "landed": landed == records,
    }


def at_capacity(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    say(
        f"(5) vupsert and the SDK from a thread pool x{plan.repeat} in turn, {plan.records:,} "
        f"records, 50 ms + 0.2 ms/record, capacity {CAPACITY}"
    )
    path, n = files[plan.records], plan.records
    clients = {
        "vupsert": [sys.executable, "-m", "vupsert", "upsert", str(path), "--json", "-q"],
        "pool": sdk_argv(path, "pool"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    for _ in range(plan.repeat):
        for name, argv in clients.items():
            runs[name].append(_capacity_once(argv, n))
    # With CAPACITY in flight every write takes its plain latency: the most this server
    # gives, however many more are sent.
    ideal = CAPACITY * SDK_BATCH / ((50 + 0.2 * SDK_BATCH) / 1000)
    kept = [
        ours["records_per_s"] / pool["records_per_s"]
        for ours, pool in zip(runs["vupsert"], runs["pool"], strict=True)
    ]
    return {
        "capacity": CAPACITY,
        "ideal_records_per_s": ideal,
        "kept_paired": round(median(kept), 3),
        "kept_paired_all": [round(k, 3) for k in kept],
        "all_landed": all(r["landed"] for measured in runs.values() for r in measured),
        "clients": {
            name: {
                "records_per_s": median([r["records_per_s"] for r in measured]),
                "used": round(median([r["records_per_s"] for r in measured]) / ideal, 3),
                "in_flight_median": median([r["in_flight_median"] for r in measured]),
                "in_flight_p90": median([r["in_flight_p90"] for r in measured]),
                "wall_s": median([r["wall_s"] for r in measured]),
                "runs": measured,
            }
            for name, measured in runs.items()
        },
    }


def concurrency_sweep(plan: Plan, files: dict[int, Path]) -> dict[str, Any]:
    say(f"--concurrency sweep {plan.sweep}, x{plan.sweep_repeat} each, with and without latency")
    runs = []
    for concurrency in plan.sweep:
        option = ("--concurrency", str(concurrency))
        path, n = files[plan.records], plan.records
        with_latency = repeated(plan.sweep_repeat, path, n, LATENCY, plan.log, option)
        without = repeated(plan.sweep_repeat, path, n, (), plan.log, option)
        runs.append(
            {
                "concurrency": concurrency,
                "latency_records_per_s": with_latency["records_per_s"],
                "no_latency_records_per_s": without["records_per_s"],
                "latency_max_rss_mb": with_latency["client_max_rss_mb"],
                "latency": with_latency,
                "no_latency": without,
            }
        )
    return {
        "runs": runs,
        "best_latency": max(runs, key=lambda r: r["latency_records_per_s"])["concurrency"],
        "best_no_latency": max(runs, key=lambda r: r["no_latency_records_per_s"])["concurrency"],
    }


def large_run_cpu_ratio(results: dict[str, Any]) -> float:
    """CPU per record of the 4N run of (4), start-up included, over the floor of (3)."""
    large = results["rss"]["large"]
    per_100k = large["client_cpu_s"] * 1e5 / large["records"]
    return float(per_100k / results["cpu"]["floor_cpu_s_per_100k"])


def targets(plan: Plan, results: dict[str, Any]) -> list[dict[str, Any]]:
    one, two, four, five = (results[k] for k in ("sdk", "rate_limit", "rss", "capacity"))
    ours, sdk = one["vupsert"]["records_per_s"], one["sdk"]["records_per_s"]
    skilled = one["skilled"]
    small, large = four["small"]["client_max_rss_mb"], four["large"]["client_max_rss_mb"]
    cpu = large_run_cpu_ratio(results)
    ours5 = five["clients"]["vupsert"]
    most_in_flight = TARGET_CAPACITY_IN_FLIGHT * CAPACITY + 2
    rows = [
        {
            "target": f"(1) >= {TARGET_SDK_RATIO:g}x the SDK's records/s",
            "measured": f"{one['ratio']:.1f}x ({ours:,.0f} vs {sdk:,.0f})",
            "pass": one["ratio"] >= TARGET_SDK_RATIO,
        },
        {
            "target": f"(1) >= {TARGET_SKILLED_RATIO:g}x faster than the faster skilled SDK "
            "script (wall, start-up included)",
            "measured": f"{skilled['ratio_paired']:.2f}x paired (runs: "
            + ", ".join(f"{r:.2f}x" for r in skilled["ratio_paired_all"])
            + f"; medians {skilled['ratio']:.2f}x)",
            "pass": skilled["ratio_paired"] >= TARGET_SKILLED_RATIO,
        },
    ]
    for case in two["cases"]:
        rows += [
            {
                "target": f"(2) {case['name']}: >= {TARGET_LIMIT_USED:.0%} of the limit used",
                "measured": f"{case['limit_used']:.1%} (runs: "
                + ", ".join(f"{x:.0%}" for x in case["limit_used_all"])
                + ")",
                "pass": case["limit_used"] >= TARGET_LIMIT_USED,
            },
            {
                "target": f"(2) {case['name']}: <= {TARGET_REFUSED:.0%} of requests refused",
                "measured": f"{case['refused']:.1%} (runs: "
                + ", ".join(f"{x:.1%}" for x in case["refused_all"])
                + ")",
                "pass": case["refused"] <= TARGET_REFUSED,
            },
        ]
    rows += [
        {
            "target": f"(4) client CPU per record at {plan.rss_large:,} (start-up included) "
            f"<= {TARGET_CPU_RATIO:g}x the floor of (3)",
            "measured": f"{cpu:.2f}x",
            "pass": cpu <= TARGET_CPU_RATIO,
        },
        {
            "target": f"(4) peak RSS <= {TARGET_RSS_MB:g} MB at {plan.rss_large:,}",
            "measured": f"{large:.1f} MB",
            "pass": large <= TARGET_RSS_MB,
        },
        {
            "target": f"(4) RSS at {plan.rss_large:,} <= {TARGET_RSS_GROWTH:g}x "
            f"RSS at {plan.rss_small:,}",
            "measured": f"{large / small:.2f}x ({large:.1f} / {small:.1f} MB)",
            "pass": large / small <= TARGET_RSS_GROWTH,
        },
        {
            "target": f"(5) capacity {CAPACITY}: median writes in flight <= {most_in_flight:g}",
            "measured": f"{ours5['in_flight_median']:g} (the thread pool: "
            f"{five['clients']['pool']['in_flight_median']:g})",
            "pass": ours5["in_flight_median"] <= most_in_flight,
        },
        {
            "target": f"(5) capacity {CAPACITY}: records/s >= {TARGET_CAPACITY_KEPT:.0%} of "
            "the thread pool's",
            "measured": f"{five['kept_paired']:.0%} paired (runs: "
            + ", ".join(f"{k:.0%}" for k in five["kept_paired_all"])
            + f"); {ours5['used']:.0%} of the {five['ideal_records_per_s']:,.0f}/s "
            f"{CAPACITY} in flight give",
            "pass": five["kept_paired"] >= TARGET_CAPACITY_KEPT,
        },
    ]
    return rows


# --- the report --------------------------------------------------------------------------


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print(_line(header, widths))
    print(_line(["-" * w for w in widths], widths))
    for row in rows:
        print(_line(row, widths))


def report(results: dict[str, Any]) -> None:
    one, two, three, four = (results[k] for k in ("sdk", "rate_limit", "cpu", "rss"))
    ours, sdk, skilled = one["vupsert"], one["sdk"], one["skilled"]
    table(
        f"(1) vs the SDK, server 50 ms + 0.2 ms/record (SDK ceiling "
        f"{one['sdk_latency_ceiling_records_per_s']:,.0f}/s)",
        ["client", "records", "records/s", "all runs", "client CPU s", "server CPU s"],
        [
            ["vupsert (defaults)", f"{ours['records']:,}", f"{ours['records_per_s']:,.0f}",
             " ".join(f"{x:,.0f}" for x in ours["records_per_s_all"]),
             f"{ours['client_cpu_s']:.2f}", f"{ours['server_cpu_s']:.2f}"],
            ["upstash-vector SDK", f"{sdk['records']:,}", f"{sdk['records_per_s']:,.0f}", "",
             f"{sdk['client_cpu_s']:.2f}", f"{sdk['server_cpu_s']:.2f}"],
        ],
    )  # fmt: skip
    names = {"vupsert": "vupsert (defaults)", "pool": SDK_SCRIPTS["pool"][1],
             "async": SDK_SCRIPTS["async"][1]}  # fmt: skip
    table(
        "(1) vs the skilled SDK scripts, in turn: wall time, start-up included",
        ["client", "median wall s", "all runs", "client CPU s", "peak RSS MB"],
        [
            [label, f"{skilled['wall_s'][name]:.2f}",
             " ".join(f"{x:.2f}" for x in skilled["wall_s_all"][name]),
             f"{skilled['client_cpu_s'][name]:.2f}",
             f"{skilled['client_max_rss_mb'][name]:.0f}"]
            for name, label in names.items()
        ],
    )  # fmt: skip
    print(
        f"faster skilled script / vupsert, each round: {skilled['ratio_paired']:.2f}x "
        f"(median of {', '.join(f'{r:.2f}' for r in skilled['ratio_paired_all'])})"
    )
    table(
        f"(2) rate limit {two['rate_limit']:g} writes/s, start-up included",
        ["limiter, requests x records", "run", "requests", "429s", "ok req/s", "limit used",
         "refused", "wall s"],
        [
            [case["name"] if i == 1 else "", f"#{i}", f"{r['requests']:,}",
             f"{r['throttled']:,}", f"{r['ok_requests_per_s']:.2f}", f"{r['limit_used']:.1%}",
             f"{r['refused']:.1%}", f"{r['wall_s']:.1f}"]
            for case in two["cases"]
            for i, r in enumerate(case["runs"], 1)
        ],
    )  # fmt: skip
    for case in two["cases"]:
        print(
            f"{case['name']}: median {case['limit_used']:.1%} of the limit used, "
            f"{case['refused']:.1%} refused"
        )
    table(
        "(3) no added latency: CPU-seconds per 100k records",
        ["what", "records/s", "CPU s/100k", "x floor"],
        [
            ["vupsert, whole process", f"{three['records_per_s']:,.0f}",
             f"{three['client_cpu_s_per_100k']:.2f}", f"{three['ratio']:.2f}"],
            [f"  minus start-up ({three['startup_cpu_s']:.2f} s)", "",
             f"{three['client_cpu_s_per_100k_net']:.2f}", f"{three['ratio_net']:.2f}"],
            ["  marginal, from (4)", "", f"{four['marginal_client_cpu_s_per_100k']:.2f}",
             f"{four['marginal_client_cpu_s_per_100k'] / three['floor_cpu_s_per_100k']:.2f}"],
            ["floor: orjson parse + dump", "", f"{three['floor_cpu_s_per_100k']:.2f}", "1.00"],
            ["best vupsert run / best floor", "", "", f"{three['ratio_best']:.2f}"],
            ["vupsert, each run / its own floor", "", "",
             f"{three['ratio_paired']:.2f} ("
             + " ".join(f"{r:.2f}" for r in three["ratio_paired_all"]) + ")"],
            ["  lines with one more field (dumped)", "",
             f"{three['extra_field']['client_cpu_s_per_100k']:.2f}",
             f"{three['extra_field']['ratio_paired']:.2f} ("
             + " ".join(f"{r:.2f}" for r in three["extra_field"]["ratio_paired_all"]) + ")"],
            ["server process", f"{three['server_ceiling_records_per_s']:,.0f} max",
             f"{three['server_cpu_s_per_100k']:.2f}", ""],
            ["(client work, one core)", f"{three['client_ceiling_records_per_s']:,.0f} max",
             "", ""],
        ],
    )  # fmt: skip
    print(f"bottleneck in (3): {three['bottleneck']}")
    table(
        "(4) peak RSS of the client",
        ["records", "peak RSS MB", "client CPU s", "CPU s/100k", "x floor of (3)"],
        [
            [f"{r['records']:,}", f"{r['client_max_rss_mb']:.1f}", f"{r['client_cpu_s']:.2f}",
             f"{r['client_cpu_s_per_100k']:.2f}",
             f"{r['client_cpu_s_per_100k'] / three['floor_cpu_s_per_100k']:.2f}"]
            for r in (four["small"], four["large"])
        ],
    )  # fmt: skip
    five = results["capacity"]
    table(
        f"(5) server capacity {five['capacity']}, 50 ms + 0.2 ms/record (at most "
        f"{five['ideal_records_per_s']:,.0f} records/s)",
        ["client", "records/s", "of the most", "in flight: median", "p90", "wall s"],
        [
            [names[name], f"{c['records_per_s']:,.0f}", f"{c['used']:.0%}",
             f"{c['in_flight_median']:g}", f"{c['in_flight_p90']:g}", f"{c['wall_s']:.2f}"]
            for name, c in five["clients"].items()
        ],
    )  # fmt: skip
    sweep = results.get("concurrency_sweep")
    if sweep:
        table(
            "--concurrency sweep (median records/s)",
            ["concurrency", "50 ms + 0.2 ms/rec", "no latency", "peak RSS MB"],
            [
                [str(r["concurrency"]), f"{r['latency_records_per_s']:,.0f}",
                 f"{r['no_latency_records_per_s']:,.0f}", f"{r['latency_max_rss_mb']:.0f}"]
                for r in sweep["runs"]
            ],
        )  # fmt: skip
        print(
            f"best: --concurrency {sweep['best_latency']} with latency, "
            f"{sweep['best_no_latency']} without"
        )
    table(
        "targets",
        ["target", "measured", "verdict"],
        [[t["target"], t["measured"], "PASS" if t["pass"] else "FAIL"] for t in results["targets"]],
    )
    noisy = sorted(_noisy_runs(results), key=lambda x: -x[1])
    if noisy:
        worst = ", ".join(f"{name} ({share:.2f})" for name, share in noisy[:6])
        print(
            f"\nwarning: other processes used over {NOISY:.2f} of a core during "
            f"{len(noisy)} run(s), which slows them: {worst}"
        )
    meta = results["meta"]
    dirty = meta["uncommitted_in_vupsert"]
    print(
        f"\nvupsert at {meta['git_head']}"
        + (f" with uncommitted changes to {', '.join(dirty)}" if dirty else "")
        + f"; load average {meta['loadavg_before']} before, {meta['loadavg_after']} after; "
        f"every record landed: {results['all_landed']}"
    )


def _noisy_runs(value: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Every run (anywhere in the results) during which other processes were busy."""
    if isinstance(value, dict):
        if "other_cpu_s" in value and value.get("wall_s"):
            share = value["other_cpu_s"] / value["wall_s"]
            if share > NOISY:
                yield f"{where} {value['client']}".strip(), share
            return
        for key, item in value.items():
            if key != "median_run":  # the same run again
                yield from _noisy_runs(item, SECTIONS.get(key, where))
    elif isinstance(value, list):
        for item in value:
            yield from _noisy_runs(item, where)


# --- main --------------------------------------------------------------------------------


def _meta() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("orjson", "httpx", "upstash-vector"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "vupsert"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split("\n")
    return {
        "uncommitted_in_vupsert": [line[3:] for line in dirty if line.strip()],
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "cpus": CPUS,
        "git_head": head or None,
        "versions": versions,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[0],
    }


def benchmark(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"meta": _meta()}
    # pip compiles an installed package; a checkout has no bytecode until a run writes it
    # (or never, under PYTHONDONTWRITEBYTECODE), and compiling vupsert's modules anew in
    # each run would add about 0.05 s to every start-up measured here.
    compileall.compile_dir(ROOT / "vupsert", quiet=1)
    files, results["corpus"] = make_corpus(plan)
    results["sdk"] = versus_sdk(plan, files)
    results["rate_limit"] = rate_limited(plan, files)
    results["cpu"] = cpu_against_floor(plan, files)
    results["rss"] = peak_rss(plan, files)
    if plan.sweep:
        results["concurrency_sweep"] = concurrency_sweep(plan, files)
    # Last: its server grows this process, and a child's peak RSS counts the parent's at
    # the fork (Linux keeps the larger through exec), so every later client would show it.
    results["capacity"] = at_capacity(plan, files)
    results["targets"] = targets(plan, results)
    results["all_landed"] = (
        results["sdk"]["vupsert"]["all_landed"]
        and results["sdk"]["sdk"]["in_index"] == plan.records
        and results["sdk"]["skilled"]["all_landed"]
        and results["capacity"]["all_landed"]
        and results["rate_limit"]["all_landed"]
        and results["cpu"]["vupsert"]["all_landed"]
        and results["cpu"]["extra_field"]["all_landed"]
        and all(results["rss"][k]["in_index"] == results["rss"][k]["records"] for k in SIZES)
    )
    results["meta"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark vupsert against the official SDK on the local server."
    )
    parser.add_argument(
        "--quick", action="store_true", help="20,000 records, one run of each (~1 minute)."
    )
    parser.add_argument(
        "--records", type=int, help="Base size N (default 100,000; 20,000 with --quick)."
    )
    parser.add_argument(
        "--repeat", type=int, help="Runs of each vupsert throughput figure (median; default 3)."
    )
    parser.add_argument(
        "--sweep",
        default=",".join(map(str, SWEEP)),
        help="--concurrency values to compare, comma-separated; '' skips the sweep.",
    )
    parser.add_argument(
        "--sweep-repeat", type=int, help="Runs of each sweep point (median; default 2)."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results.json",
        help="Where to write every figure as JSON.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the corpus folder.")
    parser.add_argument("--sdk-client", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--sdk-pool", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--sdk-async", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--floor", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sdk_client:
        sdk_client(args.sdk_client)
        return
    if args.sdk_pool:
        sdk_pool(args.sdk_pool)
        return
    if args.sdk_async:
        sdk_async(args.sdk_async)
        return
    if args.floor:
        print(f"{floor_cpu_s(Path(args.floor)):.6f}")
        return
    records = args.records or (20_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    if records < 2 or repeat < 1:
        parser.error("--records must be at least 2 and --repeat at least 1")
    try:
        sweep = tuple(int(c) for c in args.sweep.split(",") if c.strip())
    except ValueError:
        parser.error(f"--sweep {args.sweep!r}: give numbers like 4,8,16,32")
    work = Path(tempfile.mkdtemp(prefix="vupsert-bench-"))
    started = time.perf_counter()
    try:
        sweep_repeat = args.sweep_repeat or max(1, repeat - 1)
        results = benchmark(Plan(records, repeat, sweep, sweep_repeat, work))
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["argv"] = sys.argv[1:] if argv is None else list(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    report(results)
    print(f"\n{results['seconds']:.0f} s in all; every figure is in {args.out}")


if __name__ == "__main__":
    main()
