"""Compact durations such as "20m", "1h30m" or "2d", parsed to and formatted from timedelta.

The grammar is one or more ``<integer><unit>`` parts, largest unit first, each unit at
most once, with optional spaces between parts and between a number and its unit. Units
are ``d``, ``h``, ``m`` and ``s``, plus the long forms in ``UNIT_ALIASES``. Fractions are
rejected because "1.5h" reads differently to different people; write "1h30m".
"""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}

UNIT_ALIASES = {
    "d": "d",
    "day": "d",
    "days": "d",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
}

MAX_SECONDS = timedelta.max.days * 86_400

_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*", re.ASCII)
_BARE_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?", re.ASCII)
_FRACTION = re.compile(r"\d*\.\d+", re.ASCII)

_ALLOWED = "an integer with a unit, such as 20m, 90s, 1h30m or 2d (units: d, h, m, s)"


class DurationError(ValueError):
    """Raised when a text is not a valid duration. The message shows the value and the fix."""


def parse_duration(text: str, *, allow_zero: bool = False) -> timedelta:
    """Parse ``text`` such as "1h 30m" into a timedelta.

    Raises DurationError for empty text, a bare number, a negative or fractional amount,
    an unknown or repeated unit, units out of order, a zero duration (unless
    ``allow_zero``) and a total above ``timedelta.max``.
    """
    cleaned = text.strip().lower()
    _reject_obvious(cleaned)
    total = _sum_parts(cleaned)
    if total == 0 and not allow_zero:
        raise DurationError(f"zero duration {text!r} is not allowed; give one such as 20m")
    if total > MAX_SECONDS:
        raise _too_large(text)
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Format ``value`` in the compact form that ``parse_duration`` reads, e.g. "1h30m".

    Zero is "0s". Raises DurationError for a negative value or one with fractional seconds.
    """
    if value < timedelta(0):
        raise DurationError(f"cannot format negative duration {value!r}")
    if value.microseconds:
        raise DurationError(f"cannot format fractional seconds in {value!r}")
    remaining = value.days * 86_400 + value.seconds
    if remaining == 0:
        return "0s"
    parts = []
    for unit, seconds in UNIT_SECONDS.items():
        amount, remaining = divmod(remaining, seconds)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _reject_obvious(cleaned: str) -> None:
    if not cleaned:
        raise DurationError(f"empty duration; expected {_ALLOWED}")
    if _BARE_NUMBER.fullmatch(cleaned):
        raise DurationError(f"duration {cleaned!r} has no unit; add a unit, such as {cleaned}m")
    if cleaned.startswith("-"):
        raise DurationError(f"negative duration {cleaned!r} is not allowed; expected {_ALLOWED}")
    if _FRACTION.search(cleaned):
        raise DurationError(
            f"fractional duration {cleaned!r} is not allowed; use smaller units, such as 1h30m"
        )


def _sum_parts(cleaned: str) -> int:
    total = 0
    position = 0
    seen: list[str] = []
    while position < len(cleaned):
        match = _PART.match(cleaned, position)
        if match is None:
            raise DurationError(f"invalid duration {cleaned!r}; expected {_ALLOWED}")
        unit = _canonical_unit(match.group(2), cleaned)
        _check_order(unit, seen, cleaned)
        seen.append(unit)
        total += _amount(match.group(1), cleaned) * UNIT_SECONDS[unit]
        position = match.end()
    return total


def _amount(digits: str, cleaned: str) -> int:
    # A cap on the digit count keeps int() away from its own limit on huge inputs.
    if len(digits) > 15:
        raise _too_large(cleaned)
    return int(digits)


def _canonical_unit(word: str, cleaned: str) -> str:
    unit = UNIT_ALIASES.get(word)
    if unit is None:
        raise DurationError(
            f"unknown unit {word!r} in duration {cleaned!r}; use d, h, m or s, such as 1h30m"
        )
    return unit


def _check_order(unit: str, seen: list[str], cleaned: str) -> None:
    order = list(UNIT_SECONDS)
    if unit in seen:
        raise DurationError(f"unit {unit!r} appears twice in duration {cleaned!r}; give it once")
    if seen and order.index(unit) < order.index(seen[-1]):
        raise DurationError(
            f"units in {cleaned!r} are out of order; write the largest first, such as 1h30m"
        )


def _too_large(text: str) -> DurationError:
    return DurationError(f"duration {text!r} is too large; the maximum is {timedelta.max.days}d")
