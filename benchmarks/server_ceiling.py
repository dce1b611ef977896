"""Measure the local server: the embedder's cost per record, upsert-data's ceiling, and
what an in-memory index costs per million records.

    python benchmarks/server_ceiling.py [--batches 40] [--clients 4] [--batch-size 1000]
    python benchmarks/server_ceiling.py --memory 100000

The server runs in its own process (as ``vupsert serve`` does), the clients are threads
of this one, each with its own keep-alive connection, sending prebuilt ~300-character
records so that the number measures the server, not the client. ``--memory N`` loads N
such records (384 dimensions) into an in-memory index and reads the server process's
RSS: once written (still pending), once embedded, and after a query over all of them;
then N records of 384-dimension vectors and no text. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import statistics
import threading
import time
from typing import Any

import httpx
import orjson

from vupsert_server import HashEmbedder, ServerConfig, serve_forever

_SYLLABLES = (
    "ka",
    "ro",
    "ten",
    "mi",
    "sa",
    "lor",
    "ve",
    "du",
    "pin",
    "shi",
    "an",
    "gre",
    "tho",
    "el",
)


_COMMON = ("the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "on")


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    """Common words first (Zipf's top ranks), then pseudo-words about 5 letters long."""
    words = dict.fromkeys(_COMMON)
    while len(words) < size:
        syllables = rng.choices((1, 2, 3, 4), weights=(30, 45, 20, 5))[0]
        words.setdefault("".join(rng.choice(_SYLLABLES) for _ in range(syllables)))
    return list(words)


def sample_texts(count: int, length: int = 300, seed: int = 1) -> list[str]:
    """Deterministic texts of about ``length`` characters, with English-like statistics.

    Words come from a 20,000-word vocabulary with Zipf frequencies, so the embedder's
    token cache sees the hit rate it would see on a real corpus.
    """
    rng = random.Random(seed)
    vocabulary = _vocabulary(20_000, rng)
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(vocabulary) + 1)))
    texts = []
    for _ in range(count):
        words = rng.choices(vocabulary, cum_weights=weights, k=length // 4)
        text = " ".join(words)[:length]
        texts.append(text[: text.rfind(" ")] + ".")
    return texts


def embedder_micros(dimension: int = 384, count: int = 5000) -> float:
    """Mean µs to embed one ~300-character text, caches warm (as during a long load)."""
    embedder = HashEmbedder(dimension)
    texts = sample_texts(count)
    for text in texts:
        embedder.embed(text)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for text in texts:
            embedder.embed(text)
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def _serve(queue: Any, embedding: bool = True) -> None:
    queue.put(os.getpid())
    serve_forever(ServerConfig(port=0, token="bench", embedding=embedding), queue.put)


def _start(embedding: bool = True) -> tuple[Any, int, str]:
    """A server process: ``(process, pid, url)``."""
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, embedding), daemon=True)
    process.start()
    pid = int(queue.get(timeout=30))
    url = str(queue.get(timeout=30)).split("=", 1)[1]
    for _ in range(2):
        queue.get(timeout=30)
    return process, pid, url


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc: --memory needs Linux")


def memory(records: int) -> dict[str, float]:
    """GB of server RSS per million records, at each stage (see the module docstring)."""
    headers = {"Authorization": "Bearer bench"}
    texts = sample_texts(5000, seed=2)
    per_million = 1e6 / records / 1e9
    result: dict[str, float] = {}
    process, pid, url = _start()
    with httpx.Client(timeout=300, headers=headers) as client:
        client.post(f"{url}/info").raise_for_status()
        empty = _rss(pid)
        for b in range(records // 1000):
            body = [
                {"id": f"{b}-{i}", "data": texts[(b * 1000 + i) % len(texts)], "metadata": {"i": i}}
                for i in range(1000)
            ]
            client.post(f"{url}/upsert-data", content=orjson.dumps(body)).raise_for_status()
        result["text, pending"] = (_rss(pid) - empty) * per_million
        while client.post(f"{url}/info").json()["result"]["pendingVectorCount"]:
            time.sleep(0.5)
        result["text, embedded"] = (_rss(pid) - empty) * per_million
        started = time.perf_counter()
        client.post(f"{url}/query-data", content=orjson.dumps({"data": texts[0]}))
        result["query seconds"] = time.perf_counter() - started
        result["text, after a query"] = (_rss(pid) - empty) * per_million
    process.terminate()
    process.join(10)
    process, pid, url = _start(embedding=False)
    rng = random.Random(3)
    with httpx.Client(timeout=300, headers=headers) as client:
        client.post(f"{url}/info").raise_for_status()
        empty = _rss(pid)
        for b in range(records // 1000):
            vectors = [
                {"id": f"{b}-{i}", "vector": [rng.random() for _ in range(384)]}
                for i in range(1000)
            ]
            client.post(f"{url}/upsert", content=orjson.dumps(vectors)).raise_for_status()
        result["vectors only"] = (_rss(pid) - empty) * per_million
    process.terminate()
    process.join(10)
    return result


def throughput(batches: int, clients: int, batch_size: int) -> dict[str, float]:
    process, _, url = _start()
    texts = sample_texts(batch_size * 4, seed=2)
    bodies = [
        orjson.dumps(
            [
                {
                    "id": f"{b}-{i}",
                    "data": texts[(b * batch_size + i) % len(texts)],
                    "metadata": {"i": i},
                }
                for i in range(batch_size)
            ]
        )
        for b in range(batches)
    ]
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    next_batch = iter(range(batches))
    lock = threading.Lock()
    latencies: list[float] = []

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    b = next(next_batch, None)
                if b is None:
                    return
                sent = time.perf_counter()
                answer = client.post(f"{url}/upsert-data", content=bodies[b], headers=headers)
                answer.raise_for_status()
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    process.terminate()
    process.join(10)
    return {
        "records_per_s": batches * batch_size / elapsed,
        "median_request_ms": statistics.median(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--memory", type=int, metavar="RECORDS", help="measure memory only")
    args = parser.parse_args()
    if args.memory:
        for stage, value in memory(args.memory).items():
            unit = "s" if "seconds" in stage else "GB per million records"
            print(f"in-memory index, {stage}: {value:.2f} {unit}")
        return
    print(f"embedder: {embedder_micros():.1f} µs per 300-character text (dimension 384)")
    result = throughput(args.batches, args.clients, args.batch_size)
    print(
        f"upsert-data: {result['records_per_s']:,.0f} records/s with {args.clients} clients "
        f"x {args.batch_size}-record batches (median request {result['median_request_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
