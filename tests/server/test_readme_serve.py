"""The README's section on `vupsert serve` is a contract: what it lists is what runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vupsert.cli.app import main
from vupsert.filters import MAX_DEPTH
from vupsert_server import NO_EMBEDDING, ServerConfig
from vupsert_server._app import ROUTES
from vupsert_server._limits import (
    MAX_FILTER_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_NAMESPACE_BYTES,
    MAX_RANGE_LIMIT,
    MAX_TOP_K,
)

from .conftest import Serve
from .run_sdk_suite import WHOLE
from .server_helpers import Api, docs

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## A local index: `vupsert serve`")
    return readme[start : readme.index("\n## ", start + 1)]


def flowing(text: str) -> str:
    return " ".join(text.split())


def serve_help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "300")  # wide enough that no option name is cut
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    return flowing(capsys.readouterr().out.replace("│", " "))


def test_it_lists_exactly_the_endpoints_the_server_answers() -> None:
    text = flowing(section())
    listed = text.split("REST API: ", 1)[1].split(". ", 1)[0]
    names = {name.strip() for name in re.split(r",| and ", listed) if name.strip()}
    assert names == set(ROUTES)


def test_every_option_it_names_is_an_option_of_serve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    named = set(re.findall(r"`(--[a-z-]+)", section()))
    assert len(named) >= 15
    options = set(re.findall(r"--[a-z-]+", serve_help(capsys, monkeypatch)))
    assert named <= options


def test_the_defaults_and_the_memory_figure_it_gives_are_the_real_ones(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = flowing(section())
    config = ServerConfig()
    assert f"`--max-body-mb` ({config.max_body_bytes // (1024 * 1024)})" in text
    assert f"`--read-timeout` ({config.read_timeout:g} s)" in text
    assert f"`--max-connections` ({config.max_connections})" in text
    assert "about 2.3 GB per million records of 384 dimensions" in text
    assert "about 2.3 GB per million records of 384 dimensions" in serve_help(capsys, monkeypatch)


def test_the_limits_it_states_are_the_servers() -> None:
    text = flowing(section())
    assert f"`topK` and a `range` page up to {MAX_RANGE_LIMIT:,}" in text
    assert MAX_TOP_K == MAX_RANGE_LIMIT
    assert f"metadata nested more than {MAX_METADATA_DEPTH} levels deep" in text
    assert f"a filter over {MAX_FILTER_LENGTH // 1024} KiB" in text
    assert f"parentheses nested more than {MAX_DEPTH} deep" in text
    assert f"a namespace name over {MAX_NAMESPACE_BYTES} bytes" in text
    assert "fails unless every test passes (253 of 253)" in text
    assert WHOLE == 1.0


def test_no_embedding_turns_every_model_off(serve: Serve) -> None:
    for kind in ("dense", "sparse", "hybrid"):
        api = Api(serve(index_type=kind, embedding=False, dimension=2))
        assert api.error("/upsert-data", docs(1), status=422) == NO_EMBEDDING
        info = api.result("/info")
        parts = [info["denseIndex"], info["sparseIndex"]]
        assert [part["embeddingModel"] for part in parts if part] in ([""], ["", ""])


def test_its_python_example_runs() -> None:
    code = section().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
