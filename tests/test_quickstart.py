"""quickstart.py, the README's first two commands: which way it gets pip into a new
environment on machines that lack ensurepip or pip (simulated here; a fresh Debian is what
they stand for), and that the README, .ci/run and the script agree."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import ROOT


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quickstart = load()


# --- the README and CI ------------------------------------------------------------------------


def quickstart_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Quickstart") : readme.index("## Using it")]
    block = section[section.index("```sh\n") + 6 :]
    return block[: block.index("```")].splitlines()


def test_the_readme_runs_the_demo_and_the_tests_with_python3_alone() -> None:
    assert quickstart_lines() == ["python3 quickstart.py demo", "python3 quickstart.py test"]
    assert sorted(quickstart.COMMANDS) == ["demo", "test"]


def test_ci_runs_the_readmes_test_command_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quickstart_lines()[1] in ci


# --- how pip gets into a new environment ------------------------------------------------------


class Recorded:
    """What the script would have run, instead of running it."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **environ: str) -> None:
        self.commands.append(command)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    calls = Recorded()
    monkeypatch.setattr(quickstart, "check", calls)
    return calls


def test_without_ensurepip_the_machines_pip_installs_pip_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    """Debian with python3-pip but not python3-venv."""
    monkeypatch.setattr(quickstart, "has_ensurepip", lambda: False)
    monkeypatch.setattr(quickstart, "system_pip", lambda: ["/usr/bin/python3", "-m", "pip"])
    quickstart.make_venv(tmp_path / "env")
    python = quickstart.venv_python(tmp_path / "env")
    assert python.exists() and not quickstart.works(python, "import pip")
    (command,) = recorded.commands
    assert command[:5] == ["/usr/bin/python3", "-m", "pip", "--python", str(python)]
    assert command[5] == "install" and command[-1] == "pip"


def test_an_ensurepip_that_fails_falls_back_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    """Ubuntu's ensurepip stub, which is there and fails."""
    import venv

    made: list[bool] = []
    create = venv.EnvBuilder.create

    def failing(self: venv.EnvBuilder, env_dir: Any) -> None:
        made.append(self.with_pip)
        if self.with_pip:
            raise subprocess.CalledProcessError(1, ["ensurepip"])
        create(self, env_dir)

    monkeypatch.setattr(quickstart, "has_ensurepip", lambda: True)
    monkeypatch.setattr(venv.EnvBuilder, "create", failing)
    monkeypatch.setattr(quickstart, "system_pip", lambda: ["pip3"])
    quickstart.make_venv(tmp_path / "env")
    assert made == [True, False]
    assert recorded.commands[0][:2] == ["pip3", "--python"]


def fake_pip_wheel() -> bytes:
    """A wheel named pip whose ``__main__`` installs a wheel as pip would (unpacked into
    the running environment's site-packages) and otherwise logs what it was asked."""
    main = (
        "import os, sys, sysconfig, zipfile\n"
        "args = sys.argv[1:]\n"
        "with open(os.environ['FAKE_PIP_LOG'], 'a') as log:\n"
        "    log.write(' '.join(a.rsplit('/', 1)[-1] for a in args) + '\\n')\n"
        "if args[0] == 'install' and args[-1].endswith('.whl'):\n"
        "    zipfile.ZipFile(args[-1]).extractall(sysconfig.get_paths()['purelib'])\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("pip/__init__.py", "")
        wheel.writestr("pip/__main__.py", main)
    return buffer.getvalue()


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A package index on 127.0.0.1 that lists pip's wheels (one yanked, one for a Python
    to come) as PEP 691 JSON, and serves the fake one."""
    wheel = fake_pip_wheel()
    digest = hashlib.sha256(wheel).hexdigest()
    files = [
        {"filename": "pip-25.0-py3-none-any.whl", "url": "/files/good.whl",
         "hashes": {"sha256": digest}, "requires-python": ">=3.8"},
        {"filename": "pip-26.0-py3-none-any.whl", "url": "/files/yanked.whl",
         "hashes": {"sha256": digest}, "yanked": "broken"},
        {"filename": "pip-27.0-py3-none-any.whl", "url": "/files/future.whl",
         "hashes": {"sha256": digest}, "requires-python": ">=3.99"},
        {"filename": "pip-25.0.tar.gz", "url": "/files/sdist", "hashes": {}},
    ]  # fmt: skip
    page = json.dumps({"meta": {"api-version": "1.0"}, "name": "pip", "files": files})

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode() if self.path == "/simple/pip/" else wheel
            self.send_response(200 if self.path in ("/simple/pip/", "/files/good.whl") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/simple"
    monkeypatch.setenv("PIP_INDEX_URL", url)
    monkeypatch.setenv("FAKE_PIP_LOG", str(tmp_path / "pip.log"))
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_with_no_pip_at_all_pips_wheel_is_fetched_from_the_index_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: str
) -> None:
    """A fresh Debian: no ensurepip, no pip. The newest wheel this Python can run is
    fetched, checked against its hash, and runs as ``python pip.whl/pip install
    pip.whl``: the environment then has a pip of its own."""
    monkeypatch.setattr(quickstart, "has_ensurepip", lambda: False)
    monkeypatch.setattr(quickstart, "system_pip", lambda: None)
    quickstart.make_venv(tmp_path / "env")
    python = quickstart.venv_python(tmp_path / "env")
    assert subprocess.run([str(python), "-m", "pip", "--version"]).returncode == 0
    log = (tmp_path / "pip.log").read_text().splitlines()
    assert log == [
        "install --quiet --disable-pip-version-check --no-index pip-25.0-py3-none-any.whl",
        "--version",
    ]


def test_a_wheel_whose_hash_differs_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = {"filename": "pip-25.0-py3-none-any.whl", "url": "x", "hashes": {"sha256": "0"}}
    page = json.dumps({"files": [file]}).encode()
    monkeypatch.setattr(
        quickstart, "get", lambda url, accept="": page if url.endswith("/pip/") else b"other"
    )
    with pytest.raises(quickstart.Failed, match="does not have the hash the index gives"):
        quickstart.fetch_pip_wheel("https://index.example/simple", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_html_index_page_is_read_too() -> None:
    page = (
        '<a href="../../files/pip-24.0-py3-none-any.whl#sha256=ab" '
        'data-requires-python="&gt;=3.7">pip-24.0-py3-none-any.whl</a>\n'
        '<a href="/f/pip-24.1-py3-none-any.whl#sha256=cd" data-yanked="">'
        "pip-24.1-py3-none-any.whl</a>\n"
        '<a href="/f/pip-24.2.tar.gz#sha256=ef">pip-24.2.tar.gz</a>\n'
    )
    name, url, digest = quickstart.newest_wheel(page, "https://example.org/simple/pip/")
    assert (name, url, digest) == (
        "pip-24.0-py3-none-any.whl",
        "https://example.org/files/pip-24.0-py3-none-any.whl",
        "ab",
    )


def test_the_index_is_the_one_pip_would_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setattr(quickstart, "pip_config_files", lambda: [])
    assert quickstart.index_url() == "https://pypi.org/simple"
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://mirror.example/simple/\n")
    monkeypatch.setattr(quickstart, "pip_config_files", lambda: [config])
    assert quickstart.index_url() == "https://mirror.example/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert quickstart.index_url() == "https://env.example/simple"


# --- the rest -----------------------------------------------------------------------------


def test_an_old_python_is_told_what_it_needs() -> None:
    with pytest.raises(quickstart.Failed, match=r"needs Python 3\.10 or newer; this is 3\.9"):
        quickstart.check_python((3, 9))


def test_the_environment_is_the_projects_whatever_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another virtual environment (as the suite is), it still makes and uses
    .venv, where CI and the README look for it."""
    assert sys.prefix != sys.base_prefix
    venv = tmp_path / ".venv"
    monkeypatch.setattr(quickstart, "VENV", venv)
    made: list[Path] = []
    monkeypatch.setattr(quickstart, "make_venv", made.append)
    assert quickstart.environment() == quickstart.venv_python(venv)
    assert made == [venv]
    monkeypatch.setattr(quickstart, "works", lambda python, code: True)
    assert quickstart.environment() == quickstart.venv_python(venv)
    assert made == [venv]


def test_an_install_that_pyproject_has_not_changed_since_is_not_done_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    python = tmp_path / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    monkeypatch.setattr(quickstart, "works", lambda python, code: True)
    quickstart.install(python, "[test]")
    assert len(recorded.commands) == 1
    assert recorded.commands[0][-2:] == ["-e", ".[test]"]
    quickstart.install(python, "[test]")
    assert len(recorded.commands) == 1
    quickstart.install(python, "")
    assert recorded.commands[-1][-2:] == ["-e", "."]


def test_an_unknown_command_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert quickstart.main(["demos"]) == 2
    assert "python3 quickstart.py demo" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "runs", "extra"),
    [
        (["demo"], ["-m", "vupsert", "demo"], ""),
        (["test", "-n", "0", "tests/x.py"], ["-m", "pytest", "-n", "0", "tests/x.py"], "[test]"),
    ],
)
def test_each_command_installs_its_extra_then_becomes_what_it_runs(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], runs: list[str], extra: str
) -> None:
    python = Path("/env/bin/python")
    done: list[object] = []
    monkeypatch.setattr(quickstart, "environment", lambda: python)
    monkeypatch.setattr(quickstart, "install", lambda python, extra: done.append(extra))
    monkeypatch.setattr(quickstart, "run", lambda command: done.append(command))
    quickstart.main(argv)
    assert done == [extra, [str(python), *runs]]
