"""Schedule math: when does the next dose fall due, in UTC, for a schedule in a time zone.

PLACEHOLDER: signatures only; the implementation replaces this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from medbot.core.models import DailySchedule


def next_occurrence(schedule: DailySchedule, zone: ZoneInfo, after: datetime) -> datetime:
    """Return the first due instant (aware, UTC) strictly after the UTC instant ``after``."""
    raise NotImplementedError


def occurrences(
    schedule: DailySchedule, zone: ZoneInfo, after: datetime, until: datetime
) -> Iterator[datetime]:
    """Yield every due instant in (after, until], in order."""
    raise NotImplementedError
