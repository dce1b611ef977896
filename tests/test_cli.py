"""The CLI's contract: help everywhere, exit codes documented, the environment injectable."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
import typer

from vupsert.cli.app import Environment, app, main
from vupsert.config.settings import Format, IdFrom, IdsFormat
from vupsert.errors import ExitStatus
from vupsert.outcomes import Summary
from vupsert_server import ServerConfig

pytestmark = pytest.mark.lived_in
"""Help and exit codes go through Typer and rich, which a lived-in machine may have
in other versions."""

COMMANDS = ["upsert", "sync", "export", "verify", "delete", "info", "query", "serve", "demo"]


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
    group = typer.main.get_command(app)
    context = typer.Context(group)
    assert group.list_commands(context) == COMMANDS  # type: ignore[attr-defined]
    for name in COMMANDS:
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        assert command is not None and command.help, name


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    # The help names the command and opens with the first sentence of its docstring.
    group = typer.main.get_command(app)
    found = group.get_command(typer.Context(group), command)  # type: ignore[attr-defined]
    first = " ".join((found.help or "").split(".")[0].split())
    assert f"Usage: vupsert {command} [OPTIONS]" in text and first and first in text


@pytest.mark.parametrize("command", ["upsert", "sync"])
def test_help_documents_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for piece in (
        "0 every record upserted",
        "1 the run finished",
        "2 usage",
        "3 stopped",
        "4 (sync) the --max-delete guard refused to delete",
        "130 interrupted",
        "an output that cannot be written",
    ):
        assert piece in text
    assert sorted(int(code) for code in re.findall(r"[;:] (\d+) ", text)) == sorted(ExitStatus)
    if command == "sync":  # and where the guard is set
        assert "deletion with exit 4. Default: 50%" in text


def test_readme_exit_codes_are_the_programs() -> None:
    readme = README.read_text(encoding="utf-8")
    table = readme.split("### Exit codes", 1)[1].split("###", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M))
    assert sorted(map(int, rows)) == sorted(status.value for status in ExitStatus)
    # Every cause of exit 3 the errors name, the README names too.
    assert "bad token" in rows["3"] and "unreadable input" in rows["3"]
    assert "cannot be written" in rows["3"] and "full disk" in rows["3"]
    assert "`--max-delete`" in rows["4"] and "nothing was deleted" in rows["4"]
    assert int(ExitStatus.DELETION_REFUSED) == 4 and "Exit 4 is a change made on purpose" in table


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


def test_typer_is_imported_only_by_the_cli_package() -> None:
    import pathlib

    top = pathlib.Path(__file__).resolve().parent.parent
    cli = top / "vupsert" / "cli"
    offenders = [
        str(p.relative_to(top))
        for root in (top / "vupsert", top / "vupsert_server")
        for p in root.rglob("*.py")
        if cli not in p.parents
        and ("import typer" in p.read_text() or "from typer" in p.read_text())
    ]
    assert offenders == []


def test_stdin_on_a_terminal_is_not_waited_on() -> None:
    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    err = io.StringIO()
    environment = Environment(stdin=Terminal(), stdout=io.StringIO(), stderr=err, environ={})
    with pytest.raises(SystemExit) as exit:
        main(["upsert", "--dry-run"], environment)
    assert exit.value.code == 2 and "stdin is a terminal" in err.getvalue()


# ---------------------------------------------------------------------------------------
# The README's option table and --json keys against the real CLI, both ways

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_option_rows() -> dict[str, str]:
    """Each flag of the README's option table, with the code span that names it."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| option | what it does |") :].split("\n\n", 1)[0]
    flags: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        first = row.split(" | ", 1)[0]
        for span in re.findall(r"`([^`]+)`", first):
            flag = span.split()[0]
            assert flag.startswith("-"), f"not an option in the README's table: {span!r}"
            flags[flag] = span.replace("\\|", "|")
    return flags


def cli_options() -> dict[str, Any]:
    """Every spelling of every visible option of ``vupsert upsert``."""
    command = typer.main.get_command(app).commands["upsert"]  # type: ignore[attr-defined]
    options = {}
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        for flag in [*param.opts, *param.secondary_opts]:
            options[flag] = param
    return options


def test_readme_options_are_the_cli_options_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    readme, cli = readme_option_rows(), cli_options()
    assert sorted(set(cli) - set(readme)) == [], "options the README does not describe"
    assert sorted(set(readme) - set(cli)) == [], "README options the CLI does not have"
    with pytest.raises(SystemExit):
        main(["upsert", "--help"])
    shown = capsys.readouterr().out
    for flag in cli:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown), f"{flag} not in --help"


def test_readme_option_values_are_the_accepted_values() -> None:
    readme = readme_option_rows()
    assert readme["--id-from"] == "--id-from " + "|".join(get_args(IdFrom))
    text = README.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `-f`, `--format` |"))
    for value in get_args(Format):
        assert f"`{value}`" in row


def test_readme_json_keys_are_the_summary_keys_both_ways() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("with `--json` one object on")
    paragraph = text[start : text.index("For a finished run", start)]
    keys = re.findall(r"`(\w+)`", paragraph)
    assert len(keys) == len(set(keys))
    assert set(keys) == set(Summary().as_dict())


# ---------------------------------------------------------------------------------------
# Help that reads at 80 columns


def help_at(columns: int, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        environment = Environment(stdin=io.BytesIO(b""), stdout=out, stderr=io.StringIO())
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COLUMNS", str(columns))
            patch.setenv("NO_COLOR", "1")
            main([*args, "--help"], environment)
    return out.getvalue()


def visible_params(*args: str) -> list[Any]:
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), args[0]) if args else group  # type: ignore[attr-defined]
    return [p for p in command.params if not getattr(p, "hidden", False)]


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_every_help_reads_at_80_columns(command: list[str]) -> None:
    text = help_at(80, *command)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text, "a cut name or word"
    # Every name of every option is there whole.
    for param in visible_params(*command):
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
    # The help beside the names starts where at least 40 columns are left for it.
    inside = [line[2:-2] for line in lines if line.startswith("│") and line.endswith("│")]
    columns = [column for row in inside if (column := help_column(row)) is not None]
    assert columns and len(inside[0]) - max(columns) >= 40


def help_column(row: str) -> int | None:
    """Where the help starts in a row of a panel: after the names and two spaces, or
    after the blanks of a line that carries on a help text."""
    if not row.strip():
        return None
    if row.startswith(" "):
        return len(row) - len(row.lstrip())
    names = re.match(r"\S+(?: \S+)*  +(?=\S)", row)
    return names.end() if names else None


def test_upsert_and_sync_help_is_shorter_than_before() -> None:
    # 178 and 177 lines at 80 columns, about 5 lines a parameter, when --x/--no-x pairs
    # squeezed the help to 22 columns; parameters keep coming, so the bound is per one.
    for command in ("upsert", "sync"):
        options = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
        assert len(help_at(80, command).splitlines()) <= 3.5 * len(options)


@pytest.mark.parametrize("command", ["upsert", "sync", "verify"])
def test_format_shows_its_choices_and_the_usage_names_files(command: str) -> None:
    text = " ".join(help_at(200, command).split())
    assert f"-f, --format [{'|'.join(get_args(Format))}]" in text
    assert f"--id-from [{'|'.join(get_args(IdFrom))}]" in text
    assert f"Usage: vupsert {command} [OPTIONS] [FILE]..." in text
    assert "<str>" not in text


def test_delete_format_shows_the_formats_of_ids() -> None:
    text = " ".join(help_at(200, "delete").split())
    assert f"-f, --format [{'|'.join(get_args(IdsFormat))}]" in text


@pytest.mark.parametrize("command", ["export", "delete"])
def test_export_and_delete_speak_of_requests_not_batches(command: str) -> None:
    text = help_at(200, command)
    assert "Results and recovery" not in text
    retries = next(line for line in text.splitlines() if "--retries" in line)
    assert "a request" in retries and "batch" not in retries


def test_the_id_template_example_names_fields_a_record_has(tmp_path: Path) -> None:
    text = " ".join(help_at(200, "upsert").replace("│", " ").split())
    example = re.search(r"--id-template TEMPLATE Compose the id .*?, e\.g\. '([^']+)'", text)
    assert example is not None
    template = example.group(1)
    fields = re.findall(r"{(\w+)}", template)
    assert fields and "n" not in fields
    record = {name: f"{name}-value" for name in fields} | {"data": "text"}
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(record) + b"\n")
    code, out, err = run("upsert", str(source), "--dry-run", "--json", "--id-template", template)
    assert code == 0, err
    assert orjson.loads(out)["records_valid"] == 1


def test_serve_has_an_option_for_every_setting_of_the_server() -> None:
    from vupsert.cli.serve import MIB, NOT_OPTIONS, OPTIONS

    names = [field.name for field in dataclasses.fields(ServerConfig)]
    assert sorted(names) == sorted([*OPTIONS, *NOT_OPTIONS]), "a setting serve says nothing of"
    assert not set(OPTIONS) & set(NOT_OPTIONS)
    params = {param.name: param for param in visible_params("serve")}
    config = ServerConfig()
    for name in OPTIONS:
        assert params[name].default == getattr(config, name), name
    assert params["max_body_mb"].default * MIB == config.max_body_bytes


def test_the_readmes_cli_row_names_every_module_of_the_cli() -> None:
    text = README.read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `cli/` |")]
    named = set(re.findall(r"\(`(\w+)`\)", row))
    modules = {p.stem for p in (README.parent / "vupsert" / "cli").glob("[a-z]*.py")}
    assert named == modules


def test_a_groups_options_are_options_of_every_command_that_names_it() -> None:
    from vupsert.cli.options import Connection, Load, Records, Target

    def names(group: Any) -> set[str]:
        return {param.name for param in group.parameters()}

    takes = {
        "upsert": [Target, Load],
        "sync": [Target, Load],
        "verify": [Target, Records, Connection],
        "export": [Target, Connection],
        "delete": [Target, Connection],
    }
    assert names(Records) | names(Connection) <= names(Load)
    for command, groups in takes.items():
        params = {param.name for param in visible_params(command)}
        for group in groups:
            assert names(group) <= params, (command, group)
