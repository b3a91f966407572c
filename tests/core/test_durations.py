from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medbot.core.durations import DurationError, format_duration, parse_duration

VALID = [
    ("20m", timedelta(minutes=20)),
    ("5s", timedelta(seconds=5)),
    ("90s", timedelta(seconds=90)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1h 30m", timedelta(hours=1, minutes=30)),
    ("2d", timedelta(days=2)),
    ("2d4h", timedelta(days=2, hours=4)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("  20m  ", timedelta(minutes=20)),
    ("20 min", timedelta(minutes=20)),
    ("20MIN", timedelta(minutes=20)),
    ("1 hour", timedelta(hours=1)),
    ("2 hours 15 minutes", timedelta(hours=2, minutes=15)),
    ("3 days", timedelta(days=3)),
    ("45 sec", timedelta(seconds=45)),
    ("1hr", timedelta(hours=1)),
    ("120m", timedelta(hours=2)),
]

INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    ("20", "add a unit"),
    ("-5", "add a unit"),
    ("1.5", "add a unit"),
    ("-5m", "negative"),
    ("0m", "zero"),
    ("0h0m", "zero"),
    ("1.5h", "fractional"),
    ("5w", "unknown unit 'w'"),
    ("5 fortnights", "unknown unit"),
    ("m", "invalid"),
    ("1h1h", "twice"),
    ("30m1h", "out of order"),
    ("1h,30m", "invalid"),
    ("999999999999999999999d", "too large"),
    ("1000000000d", "too large"),
    ("9" * 5000 + "s", "too large"),
    ("abc", "invalid"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


def test_parse_zero_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == timedelta(0)


def test_parse_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_parse_maximum() -> None:
    assert parse_duration(f"{timedelta.max.days}d") == timedelta(days=timedelta.max.days)


FORMATTED = [
    (timedelta(0), "0s"),
    (timedelta(seconds=5), "5s"),
    (timedelta(seconds=90), "1m30s"),
    (timedelta(minutes=20), "20m"),
    (timedelta(hours=1, minutes=30), "1h30m"),
    (timedelta(days=2), "2d"),
    (timedelta(days=1, seconds=1), "1d1s"),
]


@pytest.mark.parametrize(("value", "expected"), FORMATTED)
def test_format(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_negative() -> None:
    with pytest.raises(DurationError, match="negative"):
        format_duration(timedelta(seconds=-1))


def test_format_fraction() -> None:
    with pytest.raises(DurationError, match="fractional"):
        format_duration(timedelta(milliseconds=1500))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=timedelta.max.days * 86_400))
def test_format_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_junk_raises_duration_error(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except DurationError:
        return
    assert parsed > timedelta(0)


def test_parse_non_ascii_digits() -> None:
    with pytest.raises(DurationError):
        parse_duration("\u0663m")
