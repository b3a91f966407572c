"""Waiting for a herd to be handed over, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# Seconds between checks of whether the herd is done. The interval is short next to the
# 2 s window and long enough that the checks cost the measured scheduler next to nothing.
POLL_INTERVAL = 0.05


async def wait_until(settled: Callable[[], bool], deadline: datetime) -> None:
    """Return once ``settled()`` is true or the UTC ``deadline`` has passed."""
    while not settled():
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return
        await asyncio.sleep(min(POLL_INTERVAL, remaining))


def deadline_after(window_end: datetime, grace: float) -> datetime:
    return window_end + timedelta(seconds=grace)
