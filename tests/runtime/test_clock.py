from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

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


class SteppedWall:
    """A wall clock that follows real time plus an offset the test can step."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_system_sleep_follows_wall_step() -> None:
    wall = SteppedWall()
    clock = SystemClock(wall, max_chunk=0.05)
    target = clock.now() + timedelta(hours=1)
    sleeper = asyncio.create_task(clock.sleep_until(target))
    await asyncio.sleep(0.1)
    assert not sleeper.done()
    wall.offset = timedelta(hours=1)
    await asyncio.wait_for(sleeper, timeout=2)
    assert clock.now() >= target


def test_system_clock_uses_wall_source() -> None:
    clock = SystemClock(lambda: T0)
    assert clock.now() == T0


def test_system_clock_rejects_zero_chunk() -> None:
    with pytest.raises(ValueError, match="positive"):
        SystemClock(max_chunk=0)
