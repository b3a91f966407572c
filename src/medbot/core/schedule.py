"""Schedule math: when the next dose of a wall-clock schedule falls due, as a UTC instant.

A configured local time on a local date resolves to the first instant at which the
zone's wall clock shows that time or a later one. That one rule covers every case:

- a time that exists once resolves to that instant;
- a time inside a fall-back overlap resolves to its first occurrence (``fold=0``);
- a time inside a spring-forward gap resolves to the transition instant, the first
  valid instant after the gap, so two times inside one gap resolve to one instant and
  the dose fires once.

Dates are local calendar dates. A date that the zone skipped entirely (Pacific/Apia
skipped 2011-12-30) has no doses, and every-N-days keeps counting calendar dates
across it. The module is pure: it reads no clock and does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from medbot.core.models import DailySchedule

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A matching date lies within 7 steps of every_days days from any aligned date, because
# weekdays repeat every 7 days. The extra steps allow for dates that a zone skipped.
_EXTRA_PERIODS = 3


def validate_schedule(schedule: DailySchedule) -> None:
    """Raise ValueError when ``schedule`` is malformed or can never fire."""
    if not schedule.times:
        raise ValueError("a schedule needs at least one time")
    if schedule.every_days < 1:
        raise ValueError(f"every_days must be 1 or more, got {schedule.every_days}")
    if schedule.every_days > 1 and schedule.start is None:
        raise ValueError("every_days above 1 needs a start date to count from")
    if not schedule.weekdays <= set(range(7)):
        weekdays = sorted(schedule.weekdays)
        raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), got {weekdays}")
    if not _reachable_weekdays(schedule) & _allowed_weekdays(schedule):
        raise ValueError("the schedule never fires because every_days skips all its weekdays")


def resolve_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """Return the first UTC instant at which the clock in ``zone`` shows ``day`` ``wall`` or later.

    A time that exists resolves to itself, or to its first occurrence when it occurs twice.
    A time inside a gap resolves to the end of the gap, which may lie on the next date.
    """
    naive = datetime.combine(day, wall)
    valid = [
        instant
        for instant in (_to_utc(naive, zone, fold) for fold in (0, 1))
        if _wall_time(instant, zone) == naive
    ]
    if valid:
        return min(valid)
    return _gap_end(naive, zone)


def date_exists(day: date, zone: ZoneInfo) -> bool:
    """Tell whether the wall clock in ``zone`` shows ``day`` at some instant."""
    return _wall_time(resolve_local(day, time(0), zone), zone).date() == day


def next_occurrence(schedule: DailySchedule, zone: ZoneInfo, after: datetime) -> datetime:
    """Return the first due instant (aware, UTC) strictly after the aware instant ``after``.

    Raises ValueError for a naive ``after`` or a schedule that ``validate_schedule``
    rejects, and OverflowError when the next dose would fall after the year 9999.
    """
    validate_schedule(schedule)
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"after must be an aware datetime, got {after!r}")
    after = after.astimezone(UTC)

    # A time in a gap on the previous date can resolve to an instant on this date.
    first_day = after.astimezone(zone).date() - timedelta(days=1)
    walls = sorted(set(schedule.times))
    for day in _matching_days(schedule, first_day):
        if not date_exists(day, zone):
            continue
        for wall in walls:
            instant = resolve_local(day, wall, zone)
            if instant > after:
                return instant
    raise AssertionError("unreachable: validate_schedule guarantees a matching date")


def occurrences(
    schedule: DailySchedule, zone: ZoneInfo, after: datetime, until: datetime
) -> Iterator[datetime]:
    """Yield every due instant in (after, until], in order, each once."""
    current = next_occurrence(schedule, zone, after)
    while current <= until:
        yield current
        current = next_occurrence(schedule, zone, current)


def describe_schedule(schedule: DailySchedule) -> str:
    """Return the schedule in English words, such as "at 08:00 and 20:00 on mon, thu"."""
    walls = " and ".join(_format_wall(wall) for wall in sorted(set(schedule.times)))
    text = f"at {walls}"
    if schedule.weekdays:
        text += " on " + ", ".join(WEEKDAY_NAMES[day] for day in sorted(schedule.weekdays))
    if schedule.every_days > 1:
        text += f", every {schedule.every_days} days"
    elif not schedule.weekdays:
        text += " every day"
    if schedule.start is not None:
        text += f", from {schedule.start.isoformat()}"
    return text


def _format_wall(wall: time) -> str:
    return wall.strftime("%H:%M:%S" if wall.second else "%H:%M")


def _to_utc(naive: datetime, zone: ZoneInfo, fold: int) -> datetime:
    return naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _wall_time(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _gap_end(naive: datetime, zone: ZoneInfo) -> datetime:
    """Return the transition instant that ends the gap containing the nonexistent ``naive``.

    With ``fold=1`` the naive time maps through the offset after the transition to an
    instant before it, and with ``fold=0`` through the offset before it to an instant at
    or after it. Transitions in the tz database fall on whole seconds, so a bisection
    over whole seconds between the two finds the transition exactly.
    """
    low = math.floor(_to_utc(naive, zone, 1).timestamp())
    high = math.ceil(_to_utc(naive, zone, 0).timestamp())
    before_offset = _offset_at(low, zone)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_at(middle, zone) == before_offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _offset_at(timestamp: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()


def _matching_days(schedule: DailySchedule, first_day: date) -> Iterator[date]:
    """Yield the dates from ``first_day`` on that the schedule's calendar rules select."""
    step = schedule.every_days
    day = first_day
    if schedule.start is not None and day < schedule.start:
        day = schedule.start
    elif schedule.start is not None:
        day += timedelta(days=-(day - schedule.start).days % step)
    allowed = _allowed_weekdays(schedule)
    for _ in range(7 + _EXTRA_PERIODS * 7):
        if day.weekday() in allowed:
            yield day
        day += timedelta(days=step)


def _allowed_weekdays(schedule: DailySchedule) -> frozenset[int]:
    return schedule.weekdays or frozenset(range(7))


def _reachable_weekdays(schedule: DailySchedule) -> set[int]:
    """Return the weekdays that dates ``start + k * every_days`` fall on."""
    anchor = schedule.start or date(2000, 1, 3)
    return {(anchor + timedelta(days=k * schedule.every_days)).weekday() for k in range(7)}
