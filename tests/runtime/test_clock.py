from __future__ import annotations

import time
from datetime import timedelta

import pytest

from medbot.core.models import utc
from medbot.runtime.clock import ScaledClock, SystemClock

T0 = utc(2026, 12, 4, 19)


def test_scaled_clock_runs_faster() -> None:
    clock = ScaledClock(speed=1000, origin=T0)
    time.sleep(0.01)
    assert clock.now() - T0 >= timedelta(seconds=10)


async def test_scaled_sleep_reaches_target() -> None:
    clock = ScaledClock(speed=1000, origin=T0)
    target = clock.now() + timedelta(seconds=20)
    started = time.monotonic()
    await clock.sleep_until(target)
    assert clock.now() >= target
    assert time.monotonic() - started < 1.0


def test_scaled_clock_rejects_zero_speed() -> None:
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(speed=0, origin=T0)


async def test_system_sleep_past_returns() -> None:
    clock = SystemClock()
    await clock.sleep_until(clock.now() - timedelta(hours=1))
    assert clock.now().utcoffset() == timedelta(0)
