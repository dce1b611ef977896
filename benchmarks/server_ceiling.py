"""Measure the local server: the embedder's cost per record, and upsert-data's ceiling.

    python benchmarks/server_ceiling.py [--batches 40] [--clients 4] [--batch-size 1000]

The server runs in its own process (as ``vupsert serve`` does), the clients are threads
of this one, each with its own keep-alive connection, sending prebuilt ~300-character
records so that the number measures the server, not the client. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import random
import statistics
import threading
import time
from typing import Any

import httpx
import orjson

from vupsert.server import HashEmbedder, ServerConfig, serve_forever

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


def _serve(queue: Any) -> None:
    serve_forever(ServerConfig(port=0, token="bench"), queue.put)


def throughput(batches: int, clients: int, batch_size: int) -> dict[str, float]:
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    process.start()
    url = str(queue.get(timeout=30)).split("=", 1)[1]
    for _ in range(2):
        queue.get(timeout=30)
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
    args = parser.parse_args()
    print(f"embedder: {embedder_micros():.1f} µs per 300-character text (dimension 384)")
    result = throughput(args.batches, args.clients, args.batch_size)
    print(
        f"upsert-data: {result['records_per_s']:,.0f} records/s with {args.clients} clients "
        f"x {args.batch_size}-record batches (median request {result['median_request_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
