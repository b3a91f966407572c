from __future__ import annotations

from datetime import datetime, time, timedelta

from medbot.core.models import Cycle, DailySchedule, DoseKey, Medication, Phase, utc
from medbot.core.routing import OpenDose, answered_dose

DUE = utc(2026, 12, 4, 19)
MINUTE = timedelta(minutes=1)


def open_dose(name: str, asked: list[int], rank: int = 0, due_minute: int = 0) -> OpenDose:
    """An ASKING dose of ``name`` asked at the given minutes after 19:00."""
    medication = Medication(name, name, DailySchedule((time(19, due_minute),)))
    times = tuple(DUE + minute * MINUTE for minute in asked)
    cycle = Cycle(
        DoseKey("bob", name, DUE + due_minute * MINUTE),
        Phase.ASKING,
        asks_sent=len(times),
        next_at=times[-1] + medication.reask_interval,
        first_asked_at=times[0],
        last_asked_at=times[-1],
    )
    return OpenDose(cycle, medication, times, rank)


def at(minute: int) -> datetime:
    return DUE + minute * MINUTE


def test_latest_ask_before_reply_wins() -> None:
    insulin = open_dose("insulin", [0, 20])
    vitamin = open_dose("vitamin", [10], rank=1, due_minute=10)
    assert answered_dose([insulin, vitamin], at(15)) is vitamin.cycle
    assert answered_dose([insulin, vitamin], at(25)) is insulin.cycle


def test_reply_before_every_ask_none() -> None:
    assert answered_dose([open_dose("insulin", [10])], at(5)) is None


def test_clock_skew_tolerated() -> None:
    insulin = open_dose("insulin", [10])
    assert answered_dose([insulin], at(10) - timedelta(seconds=1)) is insulin.cycle


def test_tie_goes_to_config_order() -> None:
    first = open_dose("insulin", [0], rank=0)
    second = open_dose("metformin", [0], rank=1)
    assert answered_dose([second, first], at(1)) is first.cycle


def test_reply_after_dose_closes_none() -> None:
    insulin = open_dose("insulin", [0])
    assert answered_dose([insulin], DUE + timedelta(days=2)) is None


def test_reply_inside_late_window_counts() -> None:
    insulin = open_dose("insulin", [0])
    assert answered_dose([insulin], at(59)) is insulin.cycle


def test_no_open_doses_none() -> None:
    assert answered_dose([], at(1)) is None
