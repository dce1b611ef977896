"""The script CI runs the official SDK's suite with: its count, its threshold, its skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run_sdk_suite import WHOLE, _counts, main, run, verdict


def test_the_count_comes_from_the_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest" tests="253" failures="9" errors="2" '
        'skipped="1"></testsuite></testsuites>'
    )
    counts = _counts(report)
    assert counts == {"tests": 253, "failures": 9, "errors": 2, "skipped": 1}
    assert verdict(counts, 0.95) == (241, True)
    assert verdict(counts, 0.96) == (241, False)
    assert verdict({"tests": 0, "failures": 0, "errors": 0, "skipped": 0}, 0.95) == (0, False)


def test_ci_fails_unless_the_suite_passes_whole() -> None:
    whole = {"tests": 253, "failures": 0, "errors": 0, "skipped": 0}
    assert verdict(whole, WHOLE) == (253, True)
    for missing in ("failures", "errors", "skipped"):
        assert verdict({**whole, missing: 1}, WHOLE) == (252, False)


def test_the_script_asks_for_the_whole_suite_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[float] = []

    def fake_run(peers: Path, minimum: float, pytest_args: list[str]) -> int:
        asked.append(minimum)
        return 0

    monkeypatch.setattr("tests.server.run_sdk_suite.run", fake_run)
    for argv, minimum in (([], 1.0), (["--minimum", "0.9"], 0.9)):
        monkeypatch.setattr("sys.argv", ["run_sdk_suite", "--peers", str(tmp_path), *argv])
        with pytest.raises(SystemExit):
            main()
        assert asked.pop() == minimum


def test_without_the_peers_folder_the_step_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "missing", 0.95, []) == 0
    assert "skipped" in capsys.readouterr().out
