"""Upstash's metadata filter language, on the example metadata of Upstash's documentation."""

from __future__ import annotations

from typing import Any

import pytest

from vupsert.filters import MAX_DEPTH, FilterError, compile_filter

CITY: dict[str, Any] = {
    "city": "Istanbul",
    "country": "Turkey",
    "is_capital": False,
    "population": 15460000,
    "geography": {
        "continent": "Asia",
        "coordinates": {"latitude": 41.0082, "longitude": 28.9784},
    },
    "economy": {"currency": "TRY", "major_industries": ["Tourism", "Textiles", "Finance"]},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("country = 'Turkey' AND population = 15460000 AND is_capital = false", True),
        ("country != 'Germany' AND population != 12500000 AND is_capital != true", True),
        ("population < 20000000 AND geography.coordinates.longitude <= 28.9784", True),
        ("population > 20000000", False),
        ('population >= 15460000 AND geography.continent = "Asia"', True),
        ("city GLOB '?[sz]tanbul'", True),
        ("city GLOB 'i*'", False),
        ("city NOT GLOB 'A*'", True),
        ("city GLOB '[^I]stanbul'", False),
        ("country IN ('Germany', 'Turkey', 'Italy')", True),
        ("country NOT IN ('Germany', 'Italy')", True),
        ("economy.major_industries CONTAINS 'Tourism'", True),
        ("economy.major_industries NOT CONTAINS 'Agriculture'", True),
        ("economy.major_industries[0] = 'Tourism'", True),
        ("economy.major_industries[#-1] = 'Finance'", True),
        ("economy.major_industries[5] = 'Finance'", False),
        ("HAS FIELD geography.coordinates", True),
        ("HAS NOT FIELD geography.coordinates.altitude", True),
        ("has field lake", False),
        ("country = 'Germany' OR country = 'Turkey' and population > 1", True),
        ("(country = 'Germany' OR country = 'Turkey') AND population < 1", False),
        ("missing = 1", False),
        ("missing != 1", False),
        ("is_capital = 0", False),
    ],
)
def test_documented_operators(text: str, expected: bool) -> None:
    predicate = compile_filter(text)
    assert predicate is not None
    assert predicate(CITY) is expected


def test_empty_filter_matches_everything() -> None:
    assert compile_filter("") is None
    assert compile_filter("   ") is None


def test_vectors_without_metadata_match_only_negative_field_tests() -> None:
    absent = compile_filter("HAS NOT FIELD a")
    present = compile_filter("a = 1")
    assert absent is not None
    assert present is not None
    assert absent(None) is True
    assert present(None) is False


@pytest.mark.parametrize(
    "text",
    [
        "country =",
        "country == 'x'",
        "(a = 1",
        "a = 1 b = 2",
        "a < 'text'",
        "a IN 1",
        "@",
        "a NOT = 1",
    ],
)
def test_malformed_filters_say_so(text: str) -> None:
    with pytest.raises(FilterError, match="Invalid filter"):
        compile_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 100_000 + "a = 1" + ")" * 100_000,  # Python's stack would give out first
        "(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1),
        "a GLOB '[z-a]'",  # not a range
        "a GLOB '[^]'",
    ],
)
def test_filters_that_would_break_the_reader_are_refused(text: str) -> None:
    with pytest.raises(FilterError, match="Invalid filter"):
        compile_filter(text)


def test_parentheses_nest_up_to_the_limit() -> None:
    predicate = compile_filter("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH)
    assert predicate is not None and predicate({"a": 1})
    nested = compile_filter("(" * 50 + "a = 1 OR (b = 2 AND (c = 3" + ")" * 52)
    assert nested is not None and nested({"b": 2, "c": 3})


def test_in_compares_as_equality_does() -> None:
    predicate = compile_filter("v IN (1, 'two', true, 2.5)")
    assert predicate is not None
    matches = [1, 1.0, "two", True, 2.5]
    others = [0, "1", False, "true", [1], {"v": 1}, None, 2]
    assert [predicate({"v": value}) for value in matches] == [True] * len(matches)
    assert [predicate({"v": value}) for value in others] == [False] * len(others)
    assert predicate({}) is False
    negated = compile_filter("v NOT IN (1, 'two')")
    assert negated is not None and negated({"v": 3}) and not negated({"v": 1.0})
