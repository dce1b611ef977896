"""When 429s mean a quota used up (:class:`QuotaWatch`), on a clock the test turns."""

from __future__ import annotations

from pathlib import Path

from vupsert.config.settings import THROTTLED_TIMEOUT
from vupsert.transport import Answer, Kind, QuotaWatch

OK = Answer(Kind.OK, 200, "Success")
LIMITED = Answer(Kind.TRANSIENT, 429, "Too many requests", retry_after=1.0)
DOWN = Answer(Kind.TRANSIENT, 503, "busy")


def watch(timeout: float = 60.0) -> tuple[QuotaWatch, list[float]]:
    now = [0.0]
    return QuotaWatch(timeout, clock=lambda: now[0]), now


def test_a_rate_limit_that_lets_writes_through_never_looks_like_a_quota() -> None:
    quota, now = watch()
    for second in range(0, 600, 5):
        now[0] = second
        assert quota.answered(LIMITED) is None
        assert quota.answered(OK) is None
    assert quota.spent is None and quota.stops_in() is None


def test_nothing_but_429s_for_the_bound_is_a_quota_and_other_failures_do_not_reset_it() -> None:
    quota, now = watch(60)
    assert quota.answered(LIMITED) is None
    now[0] = 30
    assert quota.stops_in() == 30
    assert quota.answered(DOWN) is None  # nothing landed: the clock runs on
    now[0] = 59
    assert quota.answered(LIMITED) is None
    now[0] = 60
    spent = quota.answered(LIMITED)
    assert spent is not None and spent.reason == "stalled" and spent.waited == 60
    assert quota.answered(OK) is spent  # decided for good


def test_a_429_that_names_a_quota_or_asks_too_long_a_wait_is_one_at_once() -> None:
    for message in ("ERR max daily updates limit exceeded", "Monthly quota reached"):
        quota, _ = watch()
        spent = quota.answered(Answer(Kind.TRANSIENT, 429, message))
        assert spent is not None and spent.reason == "said"
    quota, _ = watch(60)
    spent = quota.answered(Answer(Kind.TRANSIENT, 429, "slow down", retry_after=3600))
    assert spent is not None and spent.reason == "retry_after"
    quota, _ = watch()
    assert quota.answered(Answer(Kind.TRANSIENT, 503, "daily maintenance")) is None


def test_the_readme_gives_the_default_bound() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"(default {THROTTLED_TIMEOUT:.0f})" in readme
    assert f"for `--throttled-timeout` seconds (default {THROTTLED_TIMEOUT:.0f})" in " ".join(
        readme.split()
    )
