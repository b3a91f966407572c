"""Clocks: the runtime's only source of the current time.

Every instant a clock returns is an aware UTC datetime. The runtime reads time only
through a ``Clock``, so tests can drive it with a fake clock and the demo can compress
time with ``ScaledClock``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now()`` has reached ``when``; return at once if it already has."""


class SystemClock:
    """The real time of the machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # Wall-clock jumps (NTP, suspend) shift the target, so re-check after each sleep.
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)


class ScaledClock:
    """Virtual time that runs ``speed`` times faster than real time, starting at ``origin``.

    Virtual time is ``origin + real elapsed * speed``, measured with a monotonic clock so
    a wall-clock jump does not move it.
    """

    def __init__(self, speed: float, origin: datetime) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        if origin.tzinfo is None:
            raise ValueError(f"clock origin must be timezone-aware, got {origin!r}")
        self.speed = speed
        self._origin = origin.astimezone(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._started
        return self._origin + timedelta(seconds=elapsed * self.speed)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining / self.speed)
