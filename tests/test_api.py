"""vupsert from Python: vupsert.upsert against a real local index."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import vupsert
from vupsert_server import LocalServer, ServerConfig

from .conftest import ROOT, read_jsonl, run_cli, write_jsonl


def generated(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"g{i}", "data": f"generated text {i}", "metadata": {"i": i}}


def test_a_generator_of_dicts_is_loaded(server: LocalServer) -> None:
    summary = vupsert.upsert(generated(2500), url=server.url, token=server.token, namespace="g")
    assert (summary.records_read, summary.records_upserted) == (2500, 2500)
    assert summary.exit_status is vupsert.ExitStatus.SUCCESS
    stored = server.records("g")
    assert len(stored) == 2500 and stored["g7"] == ("generated text 7", {"i": 7})


def test_dicts_that_cannot_be_records_are_rejected_with_their_number(
    server: LocalServer, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    records: Any = [
        {"id": "a", "data": "fine"},
        {"id": "b"},  # no data
        ["not", "a", "dict"],
        {"id": "c", "data": "big", "metadata": {"n": 2**70}},
    ]
    summary = vupsert.upsert(records, url=server.url, token=server.token, rejects=rejects)
    assert (summary.records_upserted, summary.records_rejected) == (1, 3)
    lines = read_jsonl(rejects)
    assert [line["_vupsert"]["source"] for line in lines] == [
        "<records>:2",
        "<records>:3",
        "<records>:4",
    ]
    assert lines[0] == {"id": "b", "_vupsert": lines[0]["_vupsert"]}
    assert 'missing data (field "data")' in lines[0]["_vupsert"]["reason"]
    assert "64-bit" in lines[2]["_vupsert"]["reason"]
    assert list(server.records("")) == ["a"]


def test_the_summary_names_the_first_rejections_and_the_logger_warns_of_them(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    records: Any = [
        {"id": "a", "data": "fine"},
        {"id": "b"},
        *({"id": f"n{i}", "data": f"big {i}", "metadata": {"n": 2**70}} for i in range(12)),
    ]
    with caplog.at_level(logging.WARNING, logger="vupsert"):
        summary = vupsert.upsert(records, url=server.url, token=server.token)
    assert summary.records_rejected == 13
    first = summary.rejections
    assert len(first) == 10 and all(isinstance(r, vupsert.Rejection) for r in first)
    assert (first[0].where, first[1].where) == ("<records>:2", "<records>:3")
    assert 'missing data (field "data")' in first[0].reason and "64-bit" in first[1].reason
    assert "rejections" not in summary.as_dict()  # the --json document is unchanged
    warned = [r.getMessage() for r in caplog.records if r.name == "vupsert"]
    assert len(warned) == 11
    assert warned[0].startswith('rejected <records>:2: missing data (field "data")')
    assert warned[-1] == (
        "... and 3 more rejected records: a rejects file (rejects=...) keeps every one "
        "with its reason"
    )


def test_an_application_without_logging_configured_sees_the_rejections_on_stderr(
    server: LocalServer,
) -> None:
    script = textwrap.dedent(
        """
        import sys, vupsert
        records = [{"id": "a", "data": "fine"}, {"id": "b"}]
        summary = vupsert.upsert(records, url=sys.argv[1], token=sys.argv[2])
        print(summary.records_rejected)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, server.url, server.token],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\n"
    assert done.stderr == 'rejected <records>:2: missing data (field "data")\n'
    silenced = "import logging; logging.getLogger('vupsert').setLevel(logging.ERROR)\n" + script
    done = subprocess.run(
        [sys.executable, "-c", silenced, server.url, server.token],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")


def test_the_command_line_names_a_rejection_once(server: LocalServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "data": "x"}, {"id": "b"}])
    result = run_cli("upsert", path, server=server)
    assert result.code == 1
    assert result.stderr.count("rejected") == 2  # its line, and the summary's count
    assert result.stderr.startswith(f"rejected {path}:2: missing data")


def test_a_path_a_list_of_paths_and_a_binary_file(server: LocalServer, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "text": "from a file"}])
    csv = tmp_path / "b.csv"
    csv.write_text("id,text,lang\nb,from a csv,en\n")
    one = vupsert.upsert(first, url=server.url, token=server.token, data_field="text")
    assert one.records_upserted == 1
    paths: list[str | Path] = [str(first), csv]
    both = vupsert.upsert(
        paths, url=server.url, token=server.token, namespace="two", data_field="text"
    )
    assert both.records_upserted == 2
    assert server.records("two")["b"] == ("from a csv", {"lang": "en"})
    stream = io.BytesIO(b'{"id":"s","data":"from a stream"}\n')
    assert vupsert.upsert(stream, url=server.url, token=server.token).records_upserted == 1
    assert server.records("")["s"] == ("from a stream", None)


def test_the_url_and_token_come_from_the_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTASH_VECTOR_REST_URL", server.url)
    monkeypatch.setenv("UPSTASH_VECTOR_REST_TOKEN", server.token + "\n")  # a copy-paste
    assert vupsert.upsert(generated(3)).records_upserted == 3


def test_an_error_that_stops_the_run_raises_with_the_summary(server: LocalServer) -> None:
    with pytest.raises(vupsert.VupsertError) as caught:
        vupsert.upsert(generated(10), url=server.url, token="wrong-token")
    assert isinstance(caught.value, vupsert.ServerError) and caught.value.status == 401
    assert "wrong-token" not in str(caught.value)
    assert caught.value.exit_status is vupsert.ExitStatus.STOPPED
    with pytest.raises(vupsert.InputError) as unreadable:
        vupsert.upsert(io.BytesIO(b"\x1f\x8b\x08broken"), url=server.url, token=server.token)
    assert unreadable.value.summary is not None
    assert server.records("") == {}


class Boom(Exception):
    """An exception of the caller's own."""


def test_an_exception_of_the_records_generator_is_raised_with_the_summary(
    server: LocalServer, tmp_path: Path
) -> None:
    def broken() -> Iterator[dict[str, Any]]:
        yield from generated(2500)
        raise Boom("the source broke")

    checkpoint = tmp_path / "ckpt"
    with pytest.raises(Boom) as caught:
        vupsert.upsert(
            broken(), url=server.url, token=server.token, namespace="g", checkpoint=checkpoint
        )
    summary = caught.value.summary  # type: ignore[attr-defined]
    assert isinstance(summary, vupsert.Summary)
    assert isinstance(summary.error, vupsert.CallerError) and summary.error.raised is caught.value
    assert summary.error.message == "the records iterable raised Boom: the source broke"
    # Every record read before it was sent, the batch being filled among them.
    assert (summary.records_read, summary.records_upserted) == (2500, 2500)
    assert len(server.records("g")) == 2500
    # The checkpoint covers them: a rerun sends the rest only.
    again = vupsert.upsert(
        generated(3000), url=server.url, token=server.token, namespace="g", checkpoint=checkpoint
    )
    assert (again.records_skipped, again.records_upserted) == (2500, 500)


def test_an_exception_of_the_progress_callback_is_raised_once_what_is_in_flight_settles(
    server: LocalServer, tmp_path: Path
) -> None:
    calls: list[int] = []

    def progress(summary: vupsert.Summary) -> None:
        calls.append(summary.records_upserted)
        if len(calls) == 3:
            raise Boom("enough")

    checkpoint = tmp_path / "ckpt"
    options: dict[str, Any] = {"url": server.url, "token": server.token, "batch_size": 100}
    with pytest.raises(Boom) as caught:
        vupsert.upsert(
            generated(50_000), progress=progress, concurrency=4, checkpoint=checkpoint, **options
        )
    summary = caught.value.summary  # type: ignore[attr-defined]
    assert isinstance(summary.error, vupsert.CallerError) and summary.error.raised is caught.value
    assert summary.error.message == "the progress callback raised Boom: enough"
    assert len(calls) == 3 and not summary.interrupted  # not called again once it raised
    # Reading stopped; the batches in flight settled, and they are what the index holds.
    upserted = summary.records_upserted
    assert 300 <= upserted < 50_000 and summary.records_rejected == 0
    assert upserted + summary.records_pending == summary.records_read
    assert len(server.records("")) == upserted
    again = vupsert.upsert(generated(50_000), checkpoint=checkpoint, **options)
    assert (again.records_skipped, again.records_upserted) == (upserted, 50_000 - upserted)


def test_an_exception_of_an_events_listener_stops_a_sync_before_it_deletes(
    server: LocalServer,
) -> None:
    vupsert.upsert(generated(10), url=server.url, token=server.token, namespace="s")

    class Listener(vupsert.NoEvents):
        def batch_done(self, settlement: vupsert.Settlement, summary: vupsert.Summary) -> None:
            raise Boom("listener")

    changed = ({**r, "data": "changed"} for r in generated(5))
    with pytest.raises(Boom) as caught:
        vupsert.sync(changed, url=server.url, token=server.token, namespace="s", events=Listener())
    summary = caught.value.summary  # type: ignore[attr-defined]
    assert isinstance(summary, vupsert.SyncSummary) and summary.records_deleted == 0
    assert summary.records_upserted == 5 and len(server.records("s")) == 10


def test_no_model_raises_before_anything_is_sent(tmp_path: Path) -> None:
    with (
        LocalServer(ServerConfig(port=0, embedding=False)) as server,
        pytest.raises(vupsert.PreflightError, match="preflight=False"),
    ):
        vupsert.upsert(generated(5), url=server.url, token=server.token)


def test_options_are_checked_and_named_the_python_way(server: LocalServer) -> None:
    with pytest.raises(vupsert.UsageError, match="Unknown option: bath_size"):
        vupsert.upsert(generated(1), url=server.url, token=server.token, bath_size=5)  # type: ignore[call-arg]
    with pytest.raises(vupsert.UsageError, match=r"batch_size=5000: it must be a number"):
        vupsert.upsert(generated(1), url=server.url, token=server.token, batch_size=5000)
    with pytest.raises(vupsert.UsageError, match=r"shard=\(4, 4\) is not K/N"):
        vupsert.upsert(generated(1), url=server.url, token=server.token, shard=(4, 4))
    with pytest.raises(vupsert.ConfigError, match=r"No token: set UPSTASH_VECTOR_REST_TOKEN or "):
        vupsert.upsert(generated(1), url=server.url, token="", environ={})
    assert "batch_size" in vupsert.OPTIONS and "data_field" in vupsert.OPTIONS


def test_every_option_of_the_command_line_is_an_option_of_upsert() -> None:
    from typer.main import get_command

    from vupsert.cli.app import app

    upsert = get_command(app).commands["upsert"]  # type: ignore[attr-defined]
    cli_only = {"files", "url", "token", "namespace", "json_out", "quiet", "seed"}
    assert {p.name for p in upsert.params} - cli_only == set(vupsert.OPTIONS)


def test_shards_strict_and_dry_run_as_keywords(server: LocalServer) -> None:
    total = 0
    for k in range(3):
        summary = vupsert.upsert(
            generated(300), url=server.url, token=server.token, namespace="s", shard=(k, 3)
        )
        total += summary.records_upserted
        assert summary.records_skipped == 300 - summary.records_upserted
    assert total == 300 and len(server.records("s")) == 300
    dry = vupsert.upsert(generated(10), dry_run=True, environ={})
    assert dry.dry_run and dry.records_valid == 10
    with pytest.raises(vupsert.StrictModeError) as strict:
        vupsert.upsert(
            [{"id": "a", "data": "x"}, {"id": "b"}],
            url=server.url,
            token=server.token,
            namespace="strict",
            strict=True,
        )
    assert strict.value.summary is not None and strict.value.summary.records_upserted == 1


def test_progress_is_silent_by_default_and_a_callback_on_request(
    server: LocalServer, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[int] = []
    summary = vupsert.upsert(
        generated(2500),
        url=server.url,
        token=server.token,
        batch_size=500,
        progress=lambda s: seen.append(s.records_upserted),
    )
    assert summary.records_upserted == 2500
    assert seen == sorted(seen) and seen[-1] == 2500 and len(seen) >= 5
    assert seen.count(2500) == 1  # the final totals, once
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_syncs_progress_ends_once_with_its_deletions(server: LocalServer) -> None:
    keywords: dict[str, Any] = {"url": server.url, "token": server.token, "namespace": "p"}
    vupsert.sync(generated(30), **keywords)
    seen: list[tuple[int, int]] = []
    summary = vupsert.sync(
        generated(20),
        max_delete="100%",
        progress=lambda s: seen.append((s.records_read, getattr(s, "records_deleted", 0))),
        **keywords,
    )
    assert summary.records_deleted == 10
    assert seen[-1] == (20, 10) and seen.count((20, 10)) == 1


def test_a_checkpoint_resumes_records_in_hand(server: LocalServer, tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    first = vupsert.upsert(
        generated(100), url=server.url, token=server.token, checkpoint=checkpoint
    )
    assert first.records_upserted == 100
    again = vupsert.upsert(
        generated(150), url=server.url, token=server.token, checkpoint=checkpoint
    )
    assert (again.records_skipped, again.records_upserted) == (100, 50)


def test_100k_generated_records_stream_in_flat_memory(server: LocalServer) -> None:
    """100k records from a generator load under 150 MB of peak RSS, measured in a client
    process of its own (the index runs in this one)."""
    client = textwrap.dedent(
        r"""
        import re, resource, sys
        import vupsert

        def records(n):
            for i in range(n):
                yield {"id": f"m{i}", "data": "word " * 60 + str(i), "metadata": {"i": i}}

        summary = vupsert.upsert(records(100_000), url=sys.argv[1], token=sys.argv[2])
        # VmHWM is this process's own peak; ru_maxrss also counts the parent's size at the
        # fork, which is the test runner's.
        try:
            peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read())[1])
        except OSError:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(summary.records_upserted, peak)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", client, server.url, server.token],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    upserted, peak_kib = map(int, done.stdout.split())
    assert upserted == 100_000 and len(server.records("")) == 100_000
    assert peak_kib / 1024 < 150, f"peak RSS {peak_kib / 1024:.0f} MB"


def test_the_readme_example_runs(server: LocalServer, tmp_path: Path) -> None:
    """The code under 'Use it from Python', as written, against the local index."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- test: python-api -->")
    code = readme[start:].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "docs.jsonl").write_bytes(
        b"".join(orjson.dumps({"id": f"d{i}", "text": f"doc {i}"}) + b"\n" for i in range(20))
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "UPSTASH_VECTOR_REST_URL": server.url,
            "UPSTASH_VECTOR_REST_TOKEN": server.token,
            "PATH": "/usr/bin:/bin",
        },
    )
    assert done.returncode == 0, done.stderr
    assert len(server.records("docs")) == 20 and len(server.records("generated")) == 1000
