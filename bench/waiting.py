"""Waiting for a herd to be handed over, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# How often the harness checks whether the herd is done; short against the 2 s window,
# long enough to cost the measured scheduler next to nothing.
POLL_INTERVAL = 0.05


async def wait_until(settled: Callable[[], bool], deadline: datetime) -> None:
    """Return once ``settled()`` is true or the UTC ``deadline`` has passed."""
    while not settled():
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return
        await asyncio.sleep(min(POLL_INTERVAL, remaining))


async def sleep_until(instant: datetime) -> None:
    """Sleep until the UTC ``instant``; return at once when it has passed."""
    remaining = (instant - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        await asyncio.sleep(remaining)


def deadline_after(window_end: datetime, grace: float) -> datetime:
    return window_end + timedelta(seconds=grace)
