"""The hashed n-gram embedder: stable, normalised, and it ranks shared words first."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vupsert_server import HashEmbedder
from vupsert_server._vectors import unpack_vector


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_l2_normalised_float32_of_the_dimension() -> None:
    embedder = HashEmbedder(64)
    blob = embedder.embed("A short text, with punctuation!")
    assert len(blob) == 64 * 4
    values = unpack_vector(blob)
    assert math.sqrt(sum(x * x for x in values)) == pytest.approx(1.0, abs=1e-5)


def test_text_without_words_is_the_zero_vector() -> None:
    assert HashEmbedder(8).embed_list(" --- ... ") == [0.0] * 8
    assert HashEmbedder(8).embed_list("") == [0.0] * 8


def test_same_text_same_vector_whatever_the_case_or_spacing() -> None:
    embedder = HashEmbedder(384)
    assert embedder.embed("Hello, World") == embedder.embed("hello,   world")
    assert embedder.embed("hello world") != embedder.embed("world hello")  # bigrams count


def test_it_does_not_depend_on_pythons_hash_seed(tmp_path: Path) -> None:
    script = (
        "import hashlib; from vupsert_server import HashEmbedder; "
        "print(hashlib.sha256(HashEmbedder(384).embed('Déjà vu: the quick brown fox')).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONHASHSEED": seed,
                "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            },
        )
        digests.add(out.stdout.strip())
    here = hashlib.sha256(HashEmbedder(384).embed("Déjà vu: the quick brown fox")).hexdigest()
    assert digests == {here}


def test_texts_sharing_words_with_the_query_rank_first() -> None:
    embedder = HashEmbedder(384)
    documents = {
        "cat": "The cat sat on the mat near the door.",
        "fox": "A quick brown fox jumps over the lazy dog.",
        "stocks": "Stock markets fell sharply on Monday.",
        "rain": "Heavy rain is expected across the region tomorrow.",
    }
    vectors = {key: embedder.embed_list(text) for key, text in documents.items()}
    for query, expected in [
        ("where is the cat sitting", "cat"),
        ("brown foxes jumping", "fox"),
        ("market fell", "stocks"),
        ("rainy weather tomorrow", "rain"),
    ]:
        target = embedder.embed_list(query)
        ranked = sorted(vectors, key=lambda key: -cosine(target, vectors[key]))
        assert ranked[0] == expected, (query, ranked)


def test_unrelated_texts_are_near_orthogonal() -> None:
    embedder = HashEmbedder(384)
    a = embedder.embed_list("quantum chromodynamics lattice simulation")
    b = embedder.embed_list("grandmother bakes blueberry muffins")
    assert abs(cosine(a, b)) < 0.2


def test_long_and_unusual_text() -> None:
    embedder = HashEmbedder(32)
    long_text = "word " * 50_000 + "東京は日本の首都です" + " 🙂" * 10
    values = embedder.embed_list(long_text)
    assert math.fsum(x * x for x in values) == pytest.approx(1.0)
