"""One heap of timers for every open dose cycle, and the wake-up signal of its task.

The heap contains ``(next_at, dose id)`` entries. Re-arming a dose pushes a new entry and
leaves the old one in place; ``pop_due`` skips entries that no longer match the dose's
current time (lazy deletion), which keeps every update O(log n).
"""

from __future__ import annotations

import asyncio
import heapq
from datetime import datetime
from typing import Any

# Rebuild the heap once stale entries outnumber live ones by this factor.
_STALE_FACTOR = 4


class TimerHeap:
    """Timers of many doses, served by one task that waits for the earliest."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._armed: dict[str, datetime] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        """Return the number of armed doses (stale heap entries excluded)."""
        return len(self._armed)

    def arm(self, dose_id: str, when: datetime) -> None:
        """Set the timer of ``dose_id`` to ``when``, replacing any earlier setting."""
        if self._armed.get(dose_id) == when:
            return
        earliest = self.earliest()
        self._armed[dose_id] = when
        heapq.heappush(self._heap, (when, dose_id))
        self._compact_if_sparse()
        if earliest is None or when < earliest:
            self._wake.set()

    def disarm(self, dose_id: str) -> None:
        """Cancel the timer of ``dose_id``; its heap entry is dropped when it surfaces."""
        self._armed.pop(dose_id, None)

    def earliest(self) -> datetime | None:
        """Return the earliest armed time, or None when nothing is armed."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int | None = None) -> list[str]:
        """Remove and return the ids of doses due at ``now``, earliest first.

        At most ``limit`` ids are returned; the rest stay armed for the next call.
        """
        due: list[str] = []
        while limit is None or len(due) < limit:
            self._drop_stale_top()
            if not self._heap or self._heap[0][0] > now:
                break
            _, dose_id = heapq.heappop(self._heap)
            del self._armed[dose_id]
            due.append(dose_id)
        return due

    async def wait(self, sleep_until: asyncio.Future[None] | None) -> None:
        """Wait until ``sleep_until`` finishes or an earlier timer is armed.

        Call ``clear_wake`` before reading ``earliest`` and building ``sleep_until``, so
        that a timer armed in between is not missed.
        """
        waker = asyncio.ensure_future(self._wake.wait())
        waiters: set[asyncio.Future[Any]] = {waker}
        if sleep_until is not None:
            waiters.add(sleep_until)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def clear_wake(self) -> None:
        self._wake.clear()

    def _drop_stale_top(self) -> None:
        while self._heap:
            when, dose_id = self._heap[0]
            if self._armed.get(dose_id) == when:
                return
            heapq.heappop(self._heap)

    def _compact_if_sparse(self) -> None:
        # Re-armed doses leave stale entries behind; without this the heap of a
        # long-running service with many snoozes would only grow.
        if len(self._heap) <= _STALE_FACTOR * len(self._armed) + 64:
            return
        self._heap = [(when, dose_id) for dose_id, when in self._armed.items()]
        heapq.heapify(self._heap)
