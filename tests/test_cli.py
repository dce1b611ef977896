"""The CLI's contract: help everywhere, exit codes documented, the environment injectable."""

from __future__ import annotations

import io

import pytest
import typer

from vupsert.cli import Environment, app, main

COMMANDS = ["upsert", "serve", "info", "demo"]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(
        stdin=io.BytesIO(b""), stdout=out, stderr=err, environ={"NO_COLOR": "1"}
    )
    try:
        main(list(args), environment)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_every_command_is_registered_and_has_help() -> None:
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert names == set(COMMANDS)
    for command in app.registered_commands:
        assert command.callback is not None and command.callback.__doc__, command.name


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    assert "Usage" in text and len(text) > 200


def test_upsert_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["upsert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for piece in (
        "0 every record upserted",
        "1 the run finished",
        "2 usage",
        "3 stopped",
        "130 interrupted",
    ):
        assert piece in text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_paragraphs_flow_at_any_width(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Docstrings are wrapped at 99 columns in the source; the help must rewrap them to the
    # terminal, not keep the source's line ends (which left one-word lines at 80 columns).
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    prose = [
        line.strip()
        for line in capsys.readouterr().out.splitlines()
        if line.strip() and not line.strip().startswith(("│", "╭", "╰", "Usage"))
    ]
    assert len(prose) >= 2
    for line in prose:
        # Only the last line of a paragraph may be short, and it ends a sentence.
        assert len(line) > 40 or line.endswith((".", ":")), f"{line!r} in {command} --help"


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("vupsert ")


def test_missing_url_names_the_variable() -> None:
    code, out, err = run("upsert")
    assert code == 2 and "UPSTASH_VECTOR_REST_URL" in err and out == ""


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["upsert", "--dry-run", "-f", "xml"], "--format"),
        (["upsert", "--dry-run", "--shard", "3/2"], "--shard"),
        (["upsert", "--dry-run", "--id-from", "uuid"], "--id-from"),
        (["upsert", "--dry-run", "--delimiter", "ab"], "--delimiter"),
    ],
)
def test_bad_options_exit_2(args: list[str], word: str) -> None:
    code, _, err = run(*args)
    assert code == 2 and word in err


def test_dry_run_from_injected_stdin() -> None:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.BytesIO(b'{"id":"a","data":"x"}\n{"id":"b"}\n')
    environment = Environment(stdin=stdin, stdout=out, stderr=err, environ={})
    with pytest.raises(SystemExit) as exit:
        main(["upsert", "--dry-run", "--json"], environment)
    assert exit.value.code == 1
    assert '"records_read":2' in out.getvalue()
    assert '"records_rejected":1' in out.getvalue()


def test_typer_is_imported_only_by_cli() -> None:
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent / "vupsert"
    offenders = [
        p.name
        for p in root.rglob("*.py")
        if p.name != "cli.py" and ("import typer" in p.read_text() or "from typer" in p.read_text())
    ]
    assert offenders == []
    assert typer  # the CLI's own dependency


def test_stdin_on_a_terminal_is_not_waited_on() -> None:
    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    err = io.StringIO()
    environment = Environment(stdin=Terminal(), stdout=io.StringIO(), stderr=err, environ={})
    with pytest.raises(SystemExit) as exit:
        main(["upsert", "--dry-run"], environment)
    assert exit.value.code == 2 and "stdin is a terminal" in err.getvalue()
