"""Clocks: the runtime's only source of the current time.

Every instant a clock returns is an aware UTC datetime. The runtime reads time only
through a ``Clock``, so tests can drive it with a fake clock and the demo can compress
time with ``ScaledClock``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now()`` has reached ``when``; return at once if it already has."""


class SystemClock:
    """The real time of the machine.

    ``asyncio.sleep`` counts on the monotonic clock, which does not follow a step of the
    wall clock (an NTP correction on a board without a real-time clock) and on Linux
    does not count time spent in suspend. ``sleep_until`` therefore sleeps in chunks of
    at most ``max_chunk`` seconds and rereads the wall clock after each one, so such a
    jump delays a wake-up by at most ``max_chunk`` seconds.
    """

    def __init__(
        self,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        max_chunk: float = 30.0,
    ) -> None:
        if max_chunk <= 0:
            raise ValueError(f"max_chunk must be positive, got {max_chunk}")
        self._wall = wall
        self.max_chunk = max_chunk

    def now(self) -> datetime:
        return self._wall()

    async def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self.max_chunk))


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
