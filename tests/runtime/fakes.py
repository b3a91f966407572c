"""Test doubles for the runtime: a clock that moves only when told, a recording transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from medbot.core.models import OutgoingMessage
from medbot.errors import TransportUnavailable
from medbot.transports.base import InboundHandler


class FakeClock:
    """A clock whose time changes only through ``advance``, which wakes due sleepers."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[asyncio.Future[None]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            future = asyncio.get_running_loop().create_future()
            self._sleepers.append(future)
            await future

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        sleepers, self._sleepers = self._sleepers, []
        for future in sleepers:
            if not future.done():
                future.set_result(None)


class RecordingTransport:
    """Records sent messages; fails the first ``failures`` sends with TransportUnavailable."""

    def __init__(self, failures: int = 0, delivered: bool = False) -> None:
        self.sent: list[OutgoingMessage] = []
        self.attempts = 0
        self.failures = failures
        self.delivered = delivered
        self.handler: InboundHandler | None = None
        self.started = False
        self.stopped = False

    async def start(self, handler: InboundHandler) -> None:
        self.handler = handler
        self.started = True

    async def send(self, message: OutgoingMessage) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise TransportUnavailable("not connected (test)")
        self.sent.append(message)

    async def was_delivered(self, message: OutgoingMessage) -> bool:
        return self.delivered

    async def stop(self) -> None:
        self.stopped = True

    def suffixes(self) -> list[str]:
        """Return the last part of each sent message id, such as "ask-1"."""
        return [m.message_id.rpartition("/")[2] for m in self.sent]


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, polling every few milliseconds of real time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout:.1f} s")
        await asyncio.sleep(0.005)
