"""The README's first two commands, on any machine with Python 3.10+: a virtual environment
in .venv with vupsert installed, then the demo or the test suite run in it.

    python3 quickstart.py demo [ARGS]    # vupsert demo on the bundled samples
    python3 quickstart.py test [ARGS]    # the test suite (ARGS go to pytest)

Only the standard library, so it runs where nothing else is installed: a fresh Debian or
Ubuntu, whose Python has no `python` command, refuses `pip install` outside a virtual
environment (PEP 668), and may have neither pip nor ensurepip. The environment gets pip
from ensurepip where there is one; else from the machine's own pip (`pip --python`); else
pip's wheel is fetched from the package index pip would use and run as `python
pip.whl/pip install pip.whl`, as pip's documentation allows. It is always .venv, whatever
environment is active: CI and the README's next steps find it there.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MINIMUM = (3, 10)
INDEX = "https://pypi.org/simple"
COMMANDS = {
    "demo": ("", ["-m", "vupsert", "demo"]),
    "test": ("[test]", ["-m", "pytest"]),
}
"""Each command: the extra it installs and what it runs with the environment's Python."""
SYMLINKS = os.name != "nt"
"""As ``python3 -m venv`` makes them."""
PIP_INSTALL = ("install", "--quiet", "--disable-pip-version-check")
_JSON = "application/vnd.pypi.simple.v1+json"
_EDITABLE_WARNING = "ignore:Editable installation"


class Failed(Exception):
    """A step that cannot go on: the message says what to do."""


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in COMMANDS:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        check_python(sys.version_info[:2])
        python = environment()
        install(python, COMMANDS[command][0])
    except Failed as failed:
        print(f"quickstart: {failed}", file=sys.stderr)
        return 1
    run([str(python), *COMMANDS[command][1], *args])
    return 0  # not reached: run() replaces this process


def check_python(version: tuple[int, ...]) -> None:
    if version < MINIMUM:
        raise Failed(
            f"vupsert needs Python {'.'.join(map(str, MINIMUM))} or newer; this is "
            f"{'.'.join(map(str, version))}. Run this with a newer python3."
        )


# --- the environment ------------------------------------------------------------------------


def environment() -> Path:
    """The Python of .venv, made (with pip) if it is not there or does not work."""
    python = venv_python(VENV)
    if works(python, "import pip"):
        return python
    if VENV.exists():
        say(f"{VENV.name} has no working Python with pip: making it again")
    make_venv(VENV)
    return python


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def works(python: Path, code: str) -> bool:
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", code], capture_output=True)
    return done.returncode == 0


def make_venv(venv: Path) -> None:
    """A virtual environment at ``venv`` with pip in it, by the first way that works."""
    say(f"making a virtual environment in {venv.name}")
    try:
        import venv as venv_module
    except ImportError:  # pragma: no cover - every CPython has it
        raise Failed("this Python has no venv module: install python3-venv") from None
    if has_ensurepip():
        try:
            venv_module.EnvBuilder(with_pip=True, clear=True, symlinks=SYMLINKS).create(venv)
            return
        except subprocess.CalledProcessError:
            say("ensurepip failed; making it without pip, then bringing pip in")
    venv_module.EnvBuilder(with_pip=False, clear=True, symlinks=SYMLINKS).create(venv)
    bring_pip(venv_python(venv))


def has_ensurepip() -> bool:
    """Whether this Python may put pip in a new environment itself (Debian's and Ubuntu's
    cannot without their python3-venv package: ensurepip is missing, or fails)."""
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        return False
    return True


def bring_pip(python: Path) -> None:
    """pip into the environment of ``python``: by the machine's pip if it has one that
    can (``--python``, pip 22.3), else from pip's own wheel, fetched from the index."""
    system = system_pip()
    if system is not None:
        say("installing pip into it with the machine's pip")
        check([*system, "--python", str(python), *PIP_INSTALL, "pip"])
        return
    say(f"no pip on this machine: fetching pip's wheel from {shown(index_url())}")
    with tempfile.TemporaryDirectory() as folder:
        wheel = fetch_pip_wheel(index_url(), Path(folder))
        check([str(python), f"{wheel}/pip", *PIP_INSTALL, "--no-index", str(wheel)])


def system_pip() -> list[str] | None:
    """The command of a pip outside any environment that can install into another."""
    for python in (sys.executable, shutil.which("python3")):
        if python is None:
            continue
        done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
        found = re.match(r"pip (\d+)\.(\d+)", done.stdout)
        if done.returncode == 0 and found and (int(found[1]), int(found[2])) >= (22, 3):
            return [python, "-m", "pip"]
    return None


# --- pip's wheel from the index ---------------------------------------------------------------


def pip_config_files() -> list[Path]:
    """pip's configuration files, in the order pip reads them (later ones win)."""
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path("/etc/xdg/pip/pip.conf"), Path("/etc/pip.conf"), home / ".pip/pip.conf"]
    files.append(xdg / "pip/pip.conf")
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return [f for f in files if f.is_file()]


def pip_setting(name: str, default: str = "") -> str:
    """A setting as pip would see it: its environment variable, else its files."""
    value = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if value:
        return value
    config = configparser.ConfigParser()
    config.read(pip_config_files())
    for section in ("install", "global"):
        if config.has_option(section, name):
            return config.get(section, name)
    return default


def index_url() -> str:
    return pip_setting("index-url", INDEX).split()[0].rstrip("/")


def fetch_pip_wheel(index: str, folder: Path) -> Path:
    """The newest pip wheel this Python can run, from ``index`` (a PEP 503/691 simple
    index), checked against the hash the index gives, saved in ``folder``."""
    page = get(f"{index}/pip/", accept=f"{_JSON}, text/html;q=0.1")
    name, url, sha256 = newest_wheel(page.decode("utf-8"), f"{index}/pip/")
    data = get(url)
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise Failed(f"{name} from {shown(url)} does not have the hash the index gives")
    path = folder / name
    path.write_bytes(data)
    return path


def newest_wheel(page: str, base: str) -> tuple[str, str, str]:
    """``(file name, URL, sha256)`` of the newest pip wheel for any Python 3 on an index
    page (JSON or HTML), yanked files and ones this Python cannot run left out."""
    found = []
    for name, url, hashes, requires, yanked in _files(page, base):
        version = re.fullmatch(r"pip-([\d.]+)-py3-none-any\.whl", name)
        if version is None or yanked or not _runs_here(requires):
            continue
        found.append((tuple(int(p) for p in version[1].split(".")), name, url, hashes))
    if not found:
        raise Failed(f"the index at {shown(base)} lists no pip wheel for this Python")
    _, name, url, hashes = max(found)
    return name, url, hashes.get("sha256", "")


def _files(page: str, base: str) -> list[tuple[str, str, dict[str, str], str, bool]]:
    if page.lstrip().startswith("{"):
        return [
            (
                f["filename"],
                urllib.parse.urljoin(base, f["url"]),
                f.get("hashes", {}),
                f.get("requires-python") or "",
                bool(f.get("yanked")),
            )
            for f in json.loads(page)["files"]
        ]
    files = []
    for attributes, text in re.findall(r"<a\s([^>]*)>([^<]*)</a>", page, re.I):
        href = re.search(r'href="([^"]*)"', attributes)
        if href is None:
            continue
        url, _, fragment = urllib.parse.urljoin(base, _unescape(href[1])).partition("#")
        algorithm, _, digest = fragment.partition("=")
        requires = re.search(r'data-requires-python="([^"]*)"', attributes)
        files.append(
            (
                text.strip(),
                url,
                {algorithm: digest} if digest else {},
                _unescape(requires[1]) if requires else "",
                "data-yanked" in attributes,
            )
        )
    return files


def _unescape(text: str) -> str:
    return text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")


def _runs_here(requires: str) -> bool:
    """Whether this Python meets a ``requires-python`` of ``>=`` and ``!=`` clauses (what
    pip's wheels give)."""
    here = sys.version_info[:3]
    for clause in filter(None, (c.strip() for c in requires.split(","))):
        found = re.fullmatch(r"(>=|>|<=|<|!=|==)\s*([\d.]+)(\.\*)?", clause)
        if found is None:
            continue
        op, version = found[1], tuple(int(p) for p in found[2].split("."))
        mine = here[: len(version)]
        ok = {
            ">=": mine >= version,
            ">": mine > version,
            "<=": mine <= version,
            "<": mine < version,
            "!=": mine != version,
            "==": mine == version,
        }[op]
        if not ok:
            return False
    return True


def get(url: str, accept: str = "*/*") -> bytes:
    """The body at ``url``, with the certificates and credentials pip would use."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": accept, "User-Agent": "vupsert-quickstart"}
    if parts.username is not None:
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or ""))
    cafile = pip_setting("cert") or None
    context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=60, context=context
        ) as answer:
            body: bytes = answer.read()
            return body
    except OSError as exc:
        raise Failed(f"could not fetch {shown(url)}: {exc}") from None


def shown(url: str) -> str:
    """``url`` without a password it may hold."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{parts.hostname}"))


# --- the project ---------------------------------------------------------------------------


def install(python: Path, extra: str) -> None:
    """vupsert, editable, with ``extra``, unless it is there already as pyproject.toml
    says now."""
    stamp = python.parent.parent / f".vupsert-installed{extra}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and works(python, "import vupsert"):
        return
    what = "vupsert and its test dependencies" if extra else "vupsert"
    say(f"installing {what} into {python.parent.parent.name} (pip install -e '.{extra}')")
    # setuptools warns of every editable install, to no purpose here.
    quiet = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), _EDITABLE_WARNING]))
    check([str(python), "-m", "pip", *PIP_INSTALL, "-e", f".{extra}"], PYTHONWARNINGS=quiet)
    stamp.write_text(want)


def check(command: list[str], **environ: str) -> None:
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **environ})
    if done.returncode != 0:
        raise Failed(f"this failed (exit {done.returncode}): {' '.join(command)}")


def run(command: list[str]) -> None:
    """Become ``command`` (its exit status is this one's, Ctrl-C reaches it alone)."""
    os.chdir(ROOT)
    if os.name == "nt":  # pragma: no cover - no exec there
        sys.exit(subprocess.run(command).returncode)
    os.execv(command[0], command)


def say(message: str) -> None:
    print(f"quickstart: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
