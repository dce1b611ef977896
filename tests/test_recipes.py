"""The README's recipes, run as written against a local index, so they cannot rot.

Every fenced block between ``<!-- recipes:start -->`` and ``<!-- recipes:end -->`` in
README.md is preceded by ``<!-- test: NAME -->``, and every NAME has a test below that
runs the block's commands the way the recipe's host would: through bash for ``sh`` blocks
and GitHub Actions steps, ``sh -c`` for a Kubernetes container, and for cron and logrotate
``sh -c`` with nothing in the environment but a short PATH. Nothing is rewritten but what a
test machine cannot have: ``/var/...`` paths move into ``tmp_path``, ``sudo`` is dropped
(and ``runuser`` when the tests do not run as root), and the URL and token point at a
:class:`LocalServer`. ``vupsert`` is a shim on PATH that runs this checkout's
``python -m vupsert``.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from vupsert.errors import ExitStatus
from vupsert.mapping._mapper import hash_id
from vupsert_server import LocalServer, ServerConfig

from .conftest import ROOT, SAMPLES, Result, cli_env, communicate, read_jsonl, write_jsonl

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or shutil.which("bash") is None,
    reason="the recipes are POSIX shell commands",
)

README = ROOT / "README.md"
WORKFLOW = SAMPLES / "github-actions.yml"
START, END = "<!-- recipes:start -->", "<!-- recipes:end -->"

TESTED = {
    "jq-pipe",
    "zcat-pipe",
    "sync",
    "github-sync",
    "sync-cron",
    "export",
    "delete",
    "github-actions",
    "k8s-indexed-job",
    "xargs",
    "gnu-parallel",
    "cron-setup",
    "cron-job",
    "cron",
    "logrotate",
}
"""The tagged blocks this file runs; a new block in the section needs a test here."""


# ---------------------------------------------------------------------------------------
# Reading the recipes


def recipes_section() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, "README needs one recipes section"
    return text[text.index(START) + len(START) : text.index(END)]


_BLOCK = re.compile(r"<!-- test: ([\w-]+) -->\n```([\w-]+)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    name: str
    lang: str
    text: str


def recipe_blocks() -> list[Block]:
    return [Block(m[1], m[2], m[3]) for m in _BLOCK.finditer(recipes_section())]


def blocks(name: str) -> list[Block]:
    found = [b for b in recipe_blocks() if b.name == name]
    assert found, f"README has no block tagged <!-- test: {name} -->"
    return found


def block(name: str) -> Block:
    (only,) = blocks(name)
    return only


def shell_lines(text: str) -> list[str]:
    """The commands of a shell block: comments and blank lines out, ``\\`` lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def one_line(text: str) -> str:
    (line,) = shell_lines(text)
    return line


def squash(text: str) -> str:
    """Whitespace as Markdown renders it: any run is one space (and rich's wrapping)."""
    return " ".join(text.split())


def localize(command: str, root: Path) -> str:
    """Move absolute ``/var/...`` paths of a recipe under ``root``."""
    return re.sub(r"(?<![\w./-])/var/", f"{root}/var/", command)


# ---------------------------------------------------------------------------------------
# Running them


@dataclass
class Shell:
    """Runs recipe commands in ``cwd`` with this checkout's vupsert first on PATH."""

    cwd: Path
    bin: Path
    env: dict[str, str]

    def path(self, rest: str | None = None) -> str:
        tail = os.environ.get("PATH", "/usr/bin:/bin") if rest is None else rest
        return os.pathsep.join([str(self.bin), str(Path(sys.executable).parent), tail])

    def argv(self, command: str, shell: str) -> list[str]:
        if shell == "bash":
            return ["bash", "-c", command]
        if shell == "actions":  # what `shell: bash` runs in a GitHub Actions step
            return ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command]
        assert shell == "sh"
        return ["/bin/sh", "-c", command]

    def environ(self, extra: Mapping[str, str] | None, inherit: bool = True) -> dict[str, str]:
        env = dict(self.env) if inherit else {}
        env.update(extra or {})
        return env

    def run(
        self,
        command: str,
        *,
        shell: str = "bash",
        env: Mapping[str, str] | None = None,
        inherit: bool = True,
    ) -> Result:
        """``inherit=False``: ``env`` is the whole environment, as cron gives a job."""
        proc = subprocess.run(
            self.argv(command, shell),
            cwd=self.cwd,
            env=self.environ(env, inherit),
            capture_output=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def run_all(
        self, commands: Sequence[tuple[str, Mapping[str, str] | None]], *, shell: str = "bash"
    ) -> list[Result]:
        """Start every command at once, as N jobs of a matrix would, and wait for all."""
        procs = [
            subprocess.Popen(
                self.argv(command, shell),
                cwd=self.cwd,
                env=self.environ(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for command, env in commands
        ]
        results = []
        for proc in procs:
            out, err = communicate(proc)
            results.append(Result(proc.returncode, out.decode(), err.decode()))
        return results


def make_shell(tmp_path: Path, server: LocalServer | None) -> Shell:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "vupsert"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m vupsert "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    shell = Shell(work, bin_dir, cli_env(server))
    shell.env["PATH"] = shell.path()
    return shell


@pytest.fixture
def sh(tmp_path: Path, server: LocalServer) -> Shell:
    return make_shell(tmp_path, server)


def docs(n: int, prefix: str = "doc") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "data": f"{prefix} text {i} about topic {i % 7}",
            "metadata": {"n": i},
        }
        for i in range(n)
    ]


def as_stored(rows: list[dict[str, Any]]) -> dict[str, tuple[str | None, dict[str, Any] | None]]:
    return {r["id"]: (r["data"], r.get("metadata")) for r in rows}


def received(server: LocalServer) -> int:
    count = server.stats["records_received"]
    assert isinstance(count, int)
    return count


# ---------------------------------------------------------------------------------------
# The section itself


def test_every_recipe_block_is_tagged_and_tested() -> None:
    section = recipes_section()
    fences = [line for line in section.splitlines() if line.startswith("```")]
    found = recipe_blocks()
    assert len(fences) == 2 * len(found), "every fenced block in the recipes needs a test tag"
    assert {b.name for b in found} == TESTED
    text = README.read_text(encoding="utf-8")
    after = text[text.index(END) + len(END) :]
    assert after.lstrip().startswith("## A local index"), "recipes go just before it"


# ---------------------------------------------------------------------------------------
# From a pipe


@pytest.mark.skipif(
    shutil.which("jq") is None,
    reason="jq is not installed: the jq recipe cannot run here (the zcat recipe is the "
    "pipe that needs no jq)",
)
def test_jq_pipe(sh: Shell, server: LocalServer) -> None:
    articles = [
        {
            "slug": "router-reset",
            "title": "Reset a router",
            "body": "Hold the button.",
            "tags": ["net"],
        },
        {"slug": "cold-brew", "title": "Cold brew", "body": "Steep it overnight.", "tags": []},
        {
            "slug": "tire-patch",
            "title": "Patch a tube",
            "body": "Find the hole.",
            "tags": ["bike", "diy"],
        },
    ]
    (sh.cwd / "docs.json").write_bytes(orjson.dumps(articles))
    result = sh.run(one_line(block("jq-pipe").text))
    assert result.code == 0, result.stderr
    assert server.records("docs") == {
        a["slug"]: (f"{a['title']}\n\n{a['body']}", {"tags": a["tags"]}) for a in articles
    }


@pytest.mark.lived_in  # a pipeline through the shell
@pytest.mark.skipif(
    shutil.which("zcat") is None or shutil.which("grep") is None, reason="needs zcat and grep"
)
def test_zcat_pipe_is_idempotent(sh: Shell, server: LocalServer) -> None:
    logs = sh.cwd / "logs"
    logs.mkdir()
    lines = [
        {"ts": f"2025-06-0{day}T10:{i:02d}:00Z", "level": level, "service": svc, "msg": msg}
        for day in (1, 2)
        for i, (level, svc, msg) in enumerate(
            [
                ("info", "api", "request served"),
                ("error", "api", "upstream timed out"),
                ("error", "worker", f"job {day} failed: disk full"),
                ("warn", "api", "slow query"),
                ("error", "billing", "card declined"),
            ]
        )
    ]
    for day in (1, 2):
        rows = [line for line in lines if line["ts"].startswith(f"2025-06-0{day}")]
        body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        (logs / f"app-{day}.jsonl.gz").write_bytes(gzip.compress(body))
    errors = [line for line in lines if line["level"] == "error"]
    texts = {f"{e['service']}: {e['msg']}" for e in errors}
    assert len(errors) == 6 and len(texts) == 4  # the same message on both days: one record

    command = one_line(block("zcat-pipe").text)
    first = sh.run(command)
    assert first.code == 0, first.stderr
    stored = server.records("errors")
    # Six error lines, four messages: one record each, the service its metadata, whatever
    # the timestamps of the two days say.
    assert len(stored) == 4 and {data for data, _ in stored.values()} == texts
    assert {id_: meta for id_, (_, meta) in stored.items()} == {
        hash_id(text, {"service": text.split(":")[0]}): {"service": text.split(":")[0]}
        for text in texts
    }

    again = sh.run(command)
    assert again.code == 0, again.stderr
    assert server.records("errors") == stored  # same ids: nothing duplicated


# ---------------------------------------------------------------------------------------
# Keep an index in step: sync, export, delete


def test_sync_keeps_the_namespace_in_step(sh: Shell, server: LocalServer) -> None:
    command = one_line(block("sync").text)
    rows = docs(200)
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    first = sh.run(command)
    assert first.code == 0, first.stderr
    assert server.records("docs") == as_stored(rows) and received(server) == 200
    rows = rows[:150]  # 50 removed from the source
    rows[0] = {**rows[0], "data": "changed"}
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    second = sh.run(command)
    assert second.code == 0, second.stderr
    assert server.records("docs") == as_stored(rows)
    assert received(server) == 201  # only the changed record was sent again
    write_jsonl(sh.cwd / "docs.jsonl", rows[:10])  # a truncated source: the guard holds
    guarded = sh.run(command)
    assert guarded.code == ExitStatus.DELETION_REFUSED and "--max-delete" in guarded.stderr
    assert server.records("docs") == as_stored(rows)


def test_github_sync_workflow(sh: Shell, server: LocalServer) -> None:
    workflow = (SAMPLES / "github-sync.yml").read_text(encoding="utf-8")
    assert "Exit 4: more than half of the" in workflow  # the guard's own exit code
    for excerpt in blocks("github-sync"):
        assert excerpt.text in workflow, f"README excerpt not in github-sync.yml:\n{excerpt.text}"
    for name in ("UPSTASH_VECTOR_REST_URL", "UPSTASH_VECTOR_REST_TOKEN"):
        assert f"{name}: ${{{{ secrets.{name} }}}}" in workflow
    steps = [run for run in workflow_runs(workflow) if run.startswith("vupsert ")]
    assert [step.split()[1] for step in steps] == ["sync", "verify"]
    rows, bad = data_dir(sh.cwd)
    for attempt in (1, 2):
        sync, verify = (sh.run(step, shell="actions") for step in steps)
        # Exit 1 while the two bad lines are there: rejected, and they cannot be checked.
        expected = ExitStatus.PARTIAL if bad else ExitStatus.SUCCESS
        assert sync.code == expected, sync.stderr
        assert sync.summary["records_rejected"] == bad
        # The second run rejects nothing: the first's rejects file is gone with it.
        assert rejected_lines(sh.cwd / "rejects.jsonl") == bad
        assert verify.code == expected, verify.stderr
        assert "0 missing · 0 different" in verify.stderr
        assert server.records("docs") == as_stored(rows)
        if attempt == 1:
            # A merge that edits one record, removes 100 articles and fixes the bad
            # lines: the next run sends one record and deletes the 100.
            more = [r for r in rows if r["id"].startswith("more")]
            more[0] = {**more[0], "data": "edited"}
            articles = [r for r in rows if not r["id"].startswith("more")][100:]
            write_jsonl(sh.cwd / "data/more.jsonl", more)
            write_jsonl(sh.cwd / "data/articles.jsonl", articles)
            sent = received(server)
            rows, bad = articles + more, 0
    assert received(server) == sent + 1
    # --exact: a record the index holds that data/ does not is a difference too.
    assert steps[1].endswith("--exact")
    write_jsonl(sh.cwd / "stray.jsonl", [{"id": "stray", "data": "not in data/"}])
    assert sh.run("vupsert upsert stray.jsonl -n docs").code == 0
    verify = sh.run(steps[1], shell="actions")
    assert verify.code == ExitStatus.PARTIAL, verify.stderr
    assert "'stray' is in the index, not in the source" in verify.stderr


def test_sync_cron_entry(tmp_path: Path, server: LocalServer) -> None:
    shell = make_shell(tmp_path, server)
    (tmp_path / "var/lock").mkdir(parents=True)
    variables: dict[str, str] = {}
    jobs = []
    for line in shell_lines(block("sync-cron").text):
        name, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", name):
            variables[name] = value
        else:
            jobs.append(line)
    (job,) = jobs
    assert variables.keys() == {"PATH", "UPSTASH_VECTOR_REST_URL", "UPSTASH_VECTOR_REST_TOKEN"}
    env = {
        "PATH": shell.path(variables["PATH"]),
        "UPSTASH_VECTOR_REST_URL": server.url,
        "UPSTASH_VECTOR_REST_TOKEN": server.token,
    }
    m = re.match(r"^(\S+\s+){5}(.+)$", job)
    assert m, f"not a crontab job line: {job}"
    source = re.search(r"vupsert sync (\S+)", m[2])
    assert source
    command = m[2].replace(source[1], str(tmp_path / "export.jsonl"))
    command = command.replace("/var/lock/", f"{tmp_path}/var/lock/")

    def tick() -> str:
        result = shell.run(command, shell="sh", env=env, inherit=False)
        assert result.code == 0, result
        return result.stdout + result.stderr

    rows = docs(100)
    write_jsonl(tmp_path / "export.jsonl", rows)
    assert tick() == ""  # a clean run mails nothing
    rows = rows[10:] + docs(5, "added")
    write_jsonl(tmp_path / "export.jsonl", rows)
    assert tick() == ""
    assert server.records("docs") == as_stored(rows)
    write_jsonl(tmp_path / "export.jsonl", [])  # an empty export must not wipe the index
    mail = tick()
    assert "vupsert sync docs: exit 4" in mail and "--max-delete" in mail
    notes = README.read_text(encoding="utf-8").split("<!-- test: sync-cron -->")[1]
    notes = notes.split("```\n\n", 1)[1].split("\n\n", 1)[0]
    assert "`exit 4`" in notes and "nothing was deleted" in notes
    assert server.records("docs") == as_stored(rows)


def test_export_then_upsert_makes_a_copy(sh: Shell, server: LocalServer) -> None:
    rows = docs(1500)
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    assert sh.run("vupsert upsert docs.jsonl -n docs -q").code == 0
    for line in shell_lines(block("export").text):
        result = sh.run(line)
        assert result.code == 0, (line, result.stderr)
    assert (sh.cwd / "docs-backup.jsonl.gz").exists()
    assert server.records("docs-copy") == server.records("docs") == as_stored(rows)


def test_delete_lines(sh: Shell, server: LocalServer) -> None:
    rows = docs(20) + [
        {"id": f"drafts/{i}", "data": f"draft {i}", "metadata": {"status": "draft"}}
        for i in range(5)
    ]
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    assert sh.run("vupsert upsert docs.jsonl -n docs -q").code == 0
    (sh.cwd / "retired.txt").write_text("doc-1\ndoc-2\n")
    retire, count, drafts = shell_lines(block("delete").text)
    assert sh.run(retire).code == 0
    counted = sh.run(count)
    assert counted.code == 0 and "would delete 5 records" in counted.stderr
    assert len(server.records("docs")) == 23
    assert sh.run(drafts).code == 0
    assert set(server.records("docs")) == {f"doc-{i}" for i in range(20)} - {"doc-1", "doc-2"}


# ---------------------------------------------------------------------------------------
# --shard: GitHub Actions, Kubernetes, xargs, GNU parallel


def workflow_runs(text: str) -> list[str]:
    """The ``run:`` scripts of a workflow: one-line values and ``|`` blocks."""
    runs = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*(?:- )?)run:\s*(.*)$", line)
        if not m or not m[2].strip():  # not a run, or `defaults: run:`
            continue
        indent, value = len(m[1]), m[2].strip()
        if value not in ("|", "|-", ">", ">-"):
            runs.append(value)
            continue
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        runs.append("\n".join(b[width:] for b in body).strip() + "\n")
    return runs


def matrix_values(text: str, key: str) -> list[str]:
    m = re.search(rf"^\s*{key}:\s*\[([^\]]*)\]", text, re.M)
    assert m, f"no matrix {key} in the workflow"
    return [v.strip() for v in m[1].split(",")]


def data_dir(root: Path) -> tuple[list[dict[str, Any]], int]:
    """data/*.jsonl for the workflow: the articles sample, more records and 2 bad lines."""
    data = root / "data"
    data.mkdir()
    shutil.copy(SAMPLES / "articles.jsonl", data / "articles.jsonl")
    more = docs(250, "more")
    lines = [orjson.dumps(r) for r in more]
    lines.insert(40, b'{"id": "cut-off", "data": "half a rec')
    lines.insert(90, orjson.dumps({"id": "no-text", "data": ""}))
    (data / "more.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return read_jsonl(SAMPLES / "articles.jsonl") + more, 2


def test_github_actions_matrix_loads_every_record_once(sh: Shell, server: LocalServer) -> None:
    workflow = WORKFLOW.read_text(encoding="utf-8")
    # The README shows the workflow's own lines.
    for excerpt in blocks("github-actions"):
        assert excerpt.text in workflow, f"README excerpt not in {WORKFLOW.name}:\n{excerpt.text}"
    for name in ("UPSTASH_VECTOR_REST_URL", "UPSTASH_VECTOR_REST_TOKEN"):
        assert f"{name}: ${{{{ secrets.{name} }}}}" in workflow
    assert "fail-fast: false" in workflow
    upload = workflow[workflow.index("uses: actions/upload-artifact@") :]
    assert "if: always()" in workflow[workflow.rindex("- name:", 0, workflow.index(upload)) :]
    for kept in ("rejects-${{ matrix.shard }}.jsonl", "report-${{ matrix.shard }}.jsonl"):
        assert kept in upload
    # A clean shard has no rejects file: the upload must not fail for want of it.
    assert "if-no-files-found: ignore" in upload

    shards = matrix_values(workflow, "shard")
    (script,) = [run for run in workflow_runs(workflow) if run.startswith("vupsert ")]
    assert f"--shard ${{{{ matrix.shard }}}}/{len(shards)} " in script
    rows, bad = data_dir(sh.cwd)
    scripts = [script.replace("${{ matrix.shard }}", shard) for shard in shards]
    assert not any("${{" in s for s in scripts)

    results = sh.run_all([(s, None) for s in scripts], shell="actions")

    summaries = [r.summary for r in results]
    for shard, result, summary in zip(shards, results, summaries, strict=True):
        expected = ExitStatus.PARTIAL if summary["records_rejected"] else ExitStatus.SUCCESS
        assert result.code == expected, result.stderr
        assert summary["records_read"] == len(rows) + bad
        assert summary["records_pending"] == 0 and summary["error"] is None
        assert (
            summary["records_upserted"] + summary["records_rejected"] + summary["records_skipped"]
            == summary["records_read"]
        )
        report = read_jsonl(sh.cwd / f"report-{shard}.jsonl")
        assert sum(b["upserted"] for b in report) == summary["records_upserted"]
        assert rejected_lines(sh.cwd / f"rejects-{shard}.jsonl") == summary["records_rejected"]
    # Complete and disjoint: every record stored, none sent by two shards.
    assert server.records("") == as_stored(rows)
    assert sum(s["records_upserted"] for s in summaries) == len(rows) == received(server)
    assert sum(s["records_rejected"] for s in summaries) == bad
    sources = sorted(
        r["_vupsert"]["source"]
        for shard in shards
        if (sh.cwd / f"rejects-{shard}.jsonl").exists()
        for r in read_jsonl(sh.cwd / f"rejects-{shard}.jsonl")
    )
    assert sources == ["data/more.jsonl:41", "data/more.jsonl:91"]


BIG = 400


def rejected_lines(path: Path) -> int:
    """The lines of a rejects file, which exists only once a record was rejected."""
    if not path.exists():
        return 0
    lines = len(read_jsonl(path))
    assert lines, f"{path} is there, empty"
    return lines


def big_input(cwd: Path) -> list[dict[str, Any]]:
    rows = docs(BIG, "big")
    write_jsonl(cwd / "big.jsonl", rows)
    return rows


def assert_big_loaded(
    server: LocalServer, rows: list[dict[str, Any]], results: list[Result]
) -> None:
    for result in results:
        assert result.code == 0, result.stderr
    assert server.records("big") == as_stored(rows)
    assert received(server) == len(rows)  # disjoint: no shard sent another's record


def test_kubernetes_indexed_job(tmp_path: Path, server: LocalServer) -> None:
    manifest = block("k8s-indexed-job").text
    found = re.search(r"^\s*completions:\s*(\d+)", manifest, re.M)
    assert found, "no completions in the Job"
    completions = int(found[1])
    assert re.search(rf"^\s*parallelism:\s*{completions}\b", manifest, re.M)
    assert "completionMode: Indexed" in manifest
    assert 'command: ["sh", "-c"]' in manifest
    args = re.search(r'^\s*args:\s*\[(".*")\]\s*$', manifest, re.M)
    assert args, "args must be one JSON string"
    command = orjson.loads(args[1])
    assert isinstance(command, str)
    assert f"--shard $JOB_COMPLETION_INDEX/{completions} " in command
    # What the pod failure policy expects of the exit codes.
    codes = {
        m[1]: [int(v) for v in m[2].split(",")]
        for m in re.finditer(
            r"action: (\w+)\n\s*onExitCodes: \{.*values: \[([\d, ]+)\]\}", manifest
        )
    }
    assert codes == {
        "FailIndex": [ExitStatus.PARTIAL],
        "FailJob": [ExitStatus.USAGE, ExitStatus.STOPPED],
    }
    workdir = re.search(r"^\s*workingDir:\s*(\S+)", manifest, re.M)
    assert workdir and workdir[1] == "/data"
    shell = make_shell(tmp_path, server)
    shell.cwd = tmp_path / "data"  # the volume mounted at /data
    shell.cwd.mkdir()
    rows = big_input(shell.cwd)

    pods = [(command, {"JOB_COMPLETION_INDEX": str(k)}) for k in range(completions)]
    results = shell.run_all(pods, shell="sh")
    assert_big_loaded(server, rows, results)
    for k in range(completions):
        assert (shell.cwd / f"big-{k}.ckpt").exists()

    # A retried pod carries on from its checkpoint: nothing is sent again.
    retry = shell.run(command, shell="sh", env={"JOB_COMPLETION_INDEX": "0"})
    assert retry.code == 0, retry.stderr
    assert retry.summary["records_upserted"] == retry.summary["records_rejected"] == 0
    assert retry.summary["records_skipped"] == retry.summary["records_read"] > 0
    assert received(server) == len(rows)


def test_retried_shard_counts_the_whole_input(sh: Shell, server: LocalServer) -> None:
    rows = big_input(sh.cwd)
    command = "vupsert upsert big.jsonl -n big --shard 0/4 --checkpoint big-0.ckpt --json -q"
    first, again = sh.run(command), sh.run(command)
    assert first.code == again.code == 0
    assert first.summary["records_read"] == len(rows)
    assert again.summary["records_read"] == again.summary["records_skipped"] == len(rows)


@pytest.mark.skipif(shutil.which("xargs") is None, reason="xargs is not installed")
def test_xargs_shards(sh: Shell, server: LocalServer) -> None:
    rows = big_input(sh.cwd)
    result = sh.run(one_line(block("xargs").text))
    assert_big_loaded(server, rows, [result])
    assert result.stdout == result.stderr == ""
    for k in range(4):
        assert not (sh.cwd / f"big-{k}.rejects.jsonl").exists()  # made by a first reject


def gnu_parallel() -> bool:
    if shutil.which("parallel") is None:
        return False
    proc = subprocess.run(["parallel", "--version"], capture_output=True, text=True)
    return proc.returncode == 0 and "GNU parallel" in proc.stdout


def test_gnu_parallel_shards(sh: Shell, server: LocalServer) -> None:
    rows = big_input(sh.cwd)
    line = one_line(block("gnu-parallel").text)
    if gnu_parallel():
        results = [sh.run(line)]
    else:
        # No GNU parallel here: run the commands it would run, all at once.
        command, sep, values = line.partition(" ::: ")
        assert sep and command.startswith("parallel ")
        command = command.removeprefix("parallel ")
        results = sh.run_all([(command.replace("{}", v), None) for v in values.split()])
    assert_big_loaded(server, rows, results)


# ---------------------------------------------------------------------------------------
# cron


CRON_PATH = "/usr/bin:/bin"
"""All the PATH that cron (and logrotate run from cron) gives a job: no variables of ours."""


@dataclass
class Cron:
    """The README's cron job, made runnable: its script, its crontab line, its lock."""

    shell: Shell
    command: str
    log: Path
    lib: Path
    script: Path

    def tick(self) -> str:
        """Run the job as cron would; return what cron would mail."""
        result = self.shell.run(self.command, shell="sh", env={"PATH": CRON_PATH}, inherit=False)
        assert result.code == 0, result  # cron ignores it; `|| echo` always ends in 0
        return result.stdout + result.stderr

    def append(self, rows: list[dict[str, Any]]) -> None:
        with self.log.open("ab") as f:
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def crontab(tmp_path: Path, server: LocalServer) -> Cron:
    shell = make_shell(tmp_path, server)
    (tmp_path / "var/log/app").mkdir(parents=True)
    (tmp_path / "var/lock").mkdir(parents=True)
    setup = one_line(block("cron-setup").text).removeprefix("sudo ")
    result = shell.run(localize(setup, tmp_path), shell="sh")
    assert result.code == 0, result.stderr
    lib = tmp_path / "var/lib/vupsert"
    assert lib.is_dir() and lib.stat().st_mode & 0o777 == 0o700

    # The job's script, as the README says to save it; only what points at this machine
    # changes: this checkout's vupsert first on its PATH, the local index.
    section = recipes_section()
    name = re.search(r"Save the job as a script in that folder, `([^`]+)`", section)
    assert name and f"chmod 700 {name[1]}" in section
    script = Path(localize(name[1], tmp_path))
    exports: dict[str, str] = {}
    lines = []
    for line in block("cron-job").text.splitlines():
        if m := re.match(r"^export ([A-Z_]+)=(.*)$", line):
            exports[m[1]] = m[2]
            value = {
                "PATH": shell.path(m[2]),
                "UPSTASH_VECTOR_REST_URL": server.url,
                "UPSTASH_VECTOR_REST_TOKEN": server.token,
            }[m[1]]
            line = f"export {m[1]}={shlex.quote(value)}"
        lines.append(localize(line, tmp_path))
    assert lines[0] == "#!/bin/sh"
    assert exports.keys() == {"PATH", "UPSTASH_VECTOR_REST_URL", "UPSTASH_VECTOR_REST_TOKEN"}
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o700)

    (job,) = shell_lines(block("cron").text)
    m = re.match(r"^(\S+\s+){5}(.+)$", job)
    assert m, f"not a crontab job line: {job}"
    assert name[1] in m[2]
    command = localize(m[2], tmp_path)
    return Cron(shell, command, tmp_path / "var/log/app/docs.jsonl", lib, script)


def logrotate_scripts(root: Path) -> tuple[str, dict[str, str]]:
    """The logrotate block's log path and its ``prerotate``/``postrotate`` scripts."""
    text = block("logrotate").text
    head = re.match(r"^(\S+) \{\n", text)
    assert head, "the block starts with the log's path"
    scripts = {
        m[1]: "\n".join(line.strip() for line in m[2].strip().splitlines())
        for m in re.finditer(r"^\s*(prerotate|postrotate)\n(.*?)^\s*endscript$", text, re.S | re.M)
    }
    assert scripts.keys() == {"prerotate", "postrotate"}
    if os.geteuid() != 0 or shutil.which("runuser", path="/usr/sbin:/sbin") is None:
        # Only root can switch users: elsewhere the scripts run as this (the folder's) user.
        scripts = {
            k: re.sub(r"/usr/sbin/runuser -u \"\$\(stat -c %U [^)]+\)\" -- ", "", v)
            for k, v in scripts.items()
        }
    return localize(head[1], root), {k: localize(v, root) for k, v in scripts.items()}


def logrotate_runs(script: str, log: str, cwd: Path) -> Result:
    """A script the way logrotate runs it: ``sh -c SCRIPT logrotate_script LOG``, with
    logrotate's environment when cron starts it, and from ``/``."""
    proc = subprocess.run(
        ["/bin/sh", "-c", script, "logrotate_script", log],
        cwd="/",
        env={"PATH": CRON_PATH},
        capture_output=True,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


needs_flock = pytest.mark.skipif(
    shutil.which("flock") is None, reason="flock (util-linux) is not installed"
)


@pytest.mark.lived_in  # cron's bare environment
@needs_flock
def test_cron_job_sends_nothing_twice(tmp_path: Path, server: LocalServer) -> None:
    import fcntl  # POSIX only, like flock(1)

    cron = crontab(tmp_path, server)
    rows = docs(300)
    cron.append(rows[:100])
    assert cron.tick() == ""  # a clean run mails nothing
    cron.append(rows[100:250])
    assert cron.tick() == ""
    cron.append(rows[250:])
    assert cron.tick() == ""
    assert server.records("docs") == as_stored(rows)
    assert received(server) == len(rows)

    # A run still in progress holds the lock: the next one is skipped without a word.
    more = docs(10, "late")
    cron.append(more)
    with (tmp_path / "var/lock/vupsert-docs.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert cron.tick() == ""
        assert received(server) == len(rows)
    assert cron.tick() == ""
    rows += more
    assert received(server) == len(rows) and server.records("docs") == as_stored(rows)

    # Without flock, a second run would stop at the checkpoint's own lock with exit 2.
    bare = re.sub(r"^flock -n -E 0 \S+ ", "", cron.command)
    assert bare != cron.command and bare.startswith(str(cron.script))
    with (cron.lib / "docs.ckpt.lock").open("a") as lock:  # what a running vupsert holds
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = cron.shell.run(bare, shell="sh", env={"PATH": CRON_PATH}, inherit=False)
    assert result.stdout == "vupsert docs: exit 2\n", result.stderr

    # A rejected record: one line of cron mail, the record in the rejects file.
    cron.append([{"id": "empty", "data": ""}])
    lines = cron.tick().splitlines()
    assert any(line.startswith("vupsert: 1 record rejected") for line in lines)
    assert "vupsert docs: exit 1" in lines and len(lines) == 2
    (reject,) = read_jsonl(cron.lib / "docs.rejects.jsonl")
    assert reject["_vupsert"]["source"].endswith("docs.jsonl:311")
    assert cron.tick() == ""

    # A file replaced without the logrotate block stops the job (exit 2) and says why.
    cron.log.rename(cron.log.with_name("docs.jsonl.0"))
    cron.log.write_bytes(cron.log.with_name("docs.jsonl.0").read_bytes()[:-5] + b"\n")
    mail = cron.tick()
    assert "vupsert docs: exit 2\n" in mail and "changed since the checkpoint" in mail
    cron.log.with_name("docs.jsonl.0").rename(cron.log)
    assert cron.tick() == ""
    assert received(server) == len(rows)


@needs_flock
def test_logrotate_block_loads_the_old_file_then_starts_afresh(
    tmp_path: Path, server: LocalServer
) -> None:
    cron = crontab(tmp_path, server)
    log, scripts = logrotate_scripts(tmp_path)
    assert log == str(cron.log)
    rows = docs(50)
    cron.append([*rows[:30], {"id": "empty", "data": ""}])
    assert "vupsert docs: exit 1" in cron.tick().splitlines()
    last = docs(20, "last")
    cron.append(last)  # written after the last cron run: prerotate must load them

    pre = logrotate_runs(scripts["prerotate"], log, cron.lib)
    assert pre.code == 0 and pre.stdout == pre.stderr == "", pre
    rows = rows[:30] + last
    assert server.records("docs") == as_stored(rows)
    cron.log.rename(cron.log.with_name("docs.jsonl.1"))  # what logrotate does in between
    cron.log.touch()
    post = logrotate_runs(scripts["postrotate"], log, cron.lib)
    assert post.code == 0 and post.stdout == post.stderr == "", post
    assert not (cron.lib / "docs.ckpt").exists()
    assert len(read_jsonl(cron.lib / "docs.rejects.jsonl.1")) == 1
    owner = cron.lib.stat().st_uid
    assert {p.stat().st_uid for p in cron.lib.iterdir()} == {owner}

    fresh = docs(20, "fresh")
    cron.append(fresh)
    assert cron.tick() == ""
    rows += fresh
    assert server.records("docs") == as_stored(rows)
    assert received(server) == len(rows)  # nothing sent twice across the rotation
    # postrotate again with nothing to move aside (no rejects since): still fine.
    again = logrotate_runs(scripts["postrotate"], log, cron.lib)
    assert again.code == 0, again


@needs_flock
def test_cron_job_waits_for_a_half_written_line(tmp_path: Path, server: LocalServer) -> None:
    cron = crontab(tmp_path, server)
    rows = docs(4)
    cron.append(rows[:2])
    line = orjson.dumps(rows[2]) + b"\n"
    with cron.log.open("ab") as f:
        f.write(line[:10])  # the application is in the middle of a write
    assert cron.tick() == ""  # normal in a growing log: no mail
    with cron.log.open("ab") as f:
        f.write(line[10:])
    cron.append(rows[3:])
    assert cron.tick() == ""
    assert server.records("docs") == as_stored(rows)


# ---------------------------------------------------------------------------------------
# Troubleshooting


def troubleshooting() -> dict[int, str]:
    """Status -> the advice the README says vupsert prints (``says `...```)."""
    section = recipes_section()
    text = section[section.index("### Troubleshooting") :]
    items = re.split(r"^- ", text, flags=re.M)[1:]
    advice = {}
    for item in items:
        status = re.match(r"\*\*(\d{3}) ", item)
        says = re.search(r"says `([^`]+)`", item)
        if status and says:
            advice[int(status[1])] = squash(says[1])
    return advice


def test_troubleshooting_covers_the_statuses() -> None:
    statuses = re.findall(r"^- \*\*(\d{3}) ", recipes_section(), re.M)
    assert statuses == ["401", "403", "422", "429"]
    assert troubleshooting().keys() == {401, 403, 422, 429}


def test_401_message_gives_the_advice(sh: Shell, server: LocalServer) -> None:
    advice = troubleshooting()[401]
    write_jsonl(sh.cwd / "docs.jsonl", docs(5))
    wrong = {"UPSTASH_VECTOR_REST_TOKEN": "not-" + server.token}
    upsert = sh.run("vupsert upsert docs.jsonl -n docs", env=wrong)
    assert upsert.code == ExitStatus.STOPPED
    assert "401" in upsert.stderr and advice in squash(upsert.stderr)
    assert received(server) == 0  # stopped before sending anything
    info = sh.run("vupsert info", env=wrong)  # "tests the pair without writing"
    assert info.code == ExitStatus.STOPPED and advice in squash(info.stderr)


def test_422_message_gives_the_advice(tmp_path: Path) -> None:
    advice = troubleshooting()[422]
    with LocalServer(ServerConfig(port=0, embedding=False)) as plain:
        sh = make_shell(tmp_path, plain)
        write_jsonl(sh.cwd / "docs.jsonl", docs(5))
        upsert = sh.run("vupsert upsert docs.jsonl -n docs")
        assert upsert.code == ExitStatus.STOPPED
        assert "422" in upsert.stderr and advice in squash(upsert.stderr)
        assert received(plain) == 0  # the /info check caught it
        # Without the check, the first batch's 422 gives the same advice.
        unchecked = sh.run("vupsert upsert docs.jsonl -n docs --no-preflight")
        assert unchecked.code == ExitStatus.STOPPED and advice in squash(unchecked.stderr)
        info = sh.run("vupsert info")  # "vupsert info shows the model"
        assert info.code == 0 and "embedding model" in info.stdout


class _ReadOnlyIndex(BaseHTTPRequestHandler):
    """An index whose token may read (/info) but not write, like a read-only token."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: dict[str, Any]
        if self.path == "/info":
            dense = {"dimension": 384, "similarityFunction": "COSINE", "embeddingModel": "BGE"}
            status, body = 200, {"result": {"dimension": 384, "denseIndex": dense}}
        else:
            status, body = 403, {"error": "Forbidden: read-only token", "status": 403}
        payload = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def read_only_index() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ReadOnlyIndex)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_403_message_gives_the_advice(tmp_path: Path, read_only_index: str) -> None:
    advice = troubleshooting()[403]
    sh = make_shell(tmp_path, None)
    write_jsonl(sh.cwd / "docs.jsonl", docs(5))
    env = {"UPSTASH_VECTOR_REST_URL": read_only_index, "UPSTASH_VECTOR_REST_TOKEN": "read-only"}
    result = sh.run("vupsert upsert docs.jsonl -n docs", env=env)
    assert result.code == ExitStatus.STOPPED
    assert "403" in result.stderr and advice in squash(result.stderr)
    # Said once: the server's words, then the advice, not three ways of one fact.
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert squash(error).count("read-only token") == 1 and "not allowed to write" not in error
    assert "cannot upsert" not in error  # a delete gets the same advice


def test_429_is_waited_out(tmp_path: Path) -> None:
    sh = make_shell(tmp_path, None)
    rows = docs(40)
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    with LocalServer(ServerConfig(port=0, rate_limit=5)) as limited:
        env = {"UPSTASH_VECTOR_REST_URL": limited.url, "UPSTASH_VECTOR_REST_TOKEN": limited.token}
        result = sh.run("vupsert upsert docs.jsonl -n docs -b 5 --json", env=env)
        assert result.code == 0, result.stderr
        assert result.summary["throttled"] > 0 and result.summary["records_rejected"] == 0
        assert limited.records("docs") == as_stored(rows)


def test_a_used_up_quota_stops_with_the_advice_and_rejects_nothing(tmp_path: Path) -> None:
    advice = troubleshooting()[429]
    sh = make_shell(tmp_path, None)
    rows = docs(300)
    write_jsonl(sh.cwd / "docs.jsonl", rows)
    with LocalServer(ServerConfig(port=0, daily_quota=100)) as spent:
        env = {"UPSTASH_VECTOR_REST_URL": spent.url, "UPSTASH_VECTOR_REST_TOKEN": spent.token}
        load = "vupsert upsert docs.jsonl -n docs -b 50 --rejects rejects.jsonl"
        result = sh.run(f"{load} --checkpoint docs.ckpt --json", env=env)
        assert result.code == ExitStatus.STOPPED
        assert advice in squash(result.stderr) and "100 records landed" in result.stderr
        assert result.summary["records_rejected"] == 0
        assert not (sh.cwd / "rejects.jsonl").exists()
        spent.set_faults(daily_quota=0)  # reset: "with --checkpoint, the same command"
        again = sh.run(f"{load} --checkpoint docs.ckpt --json", env=env)
        assert again.code == 0, again.stderr
        assert spent.records("docs") == as_stored(rows)
