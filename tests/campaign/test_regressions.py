"""Failures the campaign found, reduced to the smallest reproduction."""

from __future__ import annotations

from datetime import time, timedelta
from zoneinfo import ZoneInfo

from medbot.core import conversation
from medbot.core.models import DailySchedule, DoseKey, Medication, Patient, Phase, utc

DUE = utc(2026, 12, 4, 19, 0, 0)


def _patient(medication: Medication) -> Patient:
    return Patient("bob", "Bob", "bob@medbot.test", "en", ZoneInfo("UTC"), (medication,))


def test_short_late_window_stop_is_missed() -> None:
    # Found by the crash campaign: with a 4 s late window, a bot stopped across a dose for
    # 9 s sent the first ask on restart instead of recording the dose as missed.
    medication = Medication("insulin", "Insulin", DailySchedule((time(19),)),
                            reask_interval=timedelta(seconds=2), asks=2)
    cycle = conversation.new_cycle(DoseKey("bob", "insulin", DUE))
    now = DUE + timedelta(seconds=9)
    transition = conversation.on_timer(cycle, _patient(medication), medication, now)
    assert transition.cycle.phase is Phase.MISSED
    assert transition.messages == ()


def test_long_late_window_stop_is_missed() -> None:
    medication = Medication("insulin", "Insulin", DailySchedule((time(19),)))
    cycle = conversation.new_cycle(DoseKey("bob", "insulin", DUE))
    now = DUE + timedelta(hours=2)
    transition = conversation.on_timer(cycle, _patient(medication), medication, now)
    assert transition.cycle.phase is Phase.MISSED
    assert transition.messages == ()
