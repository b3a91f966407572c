from __future__ import annotations

import asyncio
from datetime import timedelta

from medbot.core.models import utc
from medbot.runtime.timers import TimerHeap

T0 = utc(2026, 12, 4, 19)


def test_earliest_first() -> None:
    heap = TimerHeap()
    heap.arm("b", T0 + timedelta(minutes=5))
    heap.arm("a", T0)
    heap.arm("c", T0 + timedelta(minutes=9))
    assert heap.pop_due(T0 + timedelta(minutes=10)) == ["a", "b", "c"]


def test_pop_due_leaves_future() -> None:
    heap = TimerHeap()
    heap.arm("now", T0)
    heap.arm("later", T0 + timedelta(minutes=1))
    assert heap.pop_due(T0) == ["now"]
    assert heap.earliest() == T0 + timedelta(minutes=1)


def test_rearm_replaces_time() -> None:
    heap = TimerHeap()
    heap.arm("a", T0)
    heap.arm("a", T0 + timedelta(minutes=20))
    assert heap.pop_due(T0) == []
    assert heap.pop_due(T0 + timedelta(minutes=20)) == ["a"]


def test_rearm_back_fires_once() -> None:
    heap = TimerHeap()
    heap.arm("a", T0)
    heap.arm("a", T0 + timedelta(minutes=20))
    heap.arm("a", T0)
    assert heap.pop_due(T0 + timedelta(hours=1)) == ["a"]


def test_disarm_drops_entry() -> None:
    heap = TimerHeap()
    heap.arm("a", T0)
    heap.disarm("a")
    assert heap.earliest() is None
    assert len(heap) == 0


def test_pop_due_respects_limit() -> None:
    heap = TimerHeap()
    for index in range(10):
        heap.arm(f"dose-{index}", T0)
    assert len(heap.pop_due(T0, limit=4)) == 4
    assert len(heap) == 6


def test_stale_entries_compacted() -> None:
    heap = TimerHeap()
    heap.arm("a", T0)
    for minute in range(1, 1000):
        heap.arm("a", T0 + timedelta(minutes=minute))
    assert len(heap._heap) < 100
    assert heap.pop_due(T0 + timedelta(days=1)) == ["a"]


async def test_wait_wakes_on_earlier_timer() -> None:
    heap = TimerHeap()
    heap.clear_wake()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiter = asyncio.create_task(heap.wait(never))
    await asyncio.sleep(0)
    heap.arm("a", T0)
    await asyncio.wait_for(waiter, timeout=1)
    assert never.cancelled()


async def test_wait_ignores_later_timer() -> None:
    heap = TimerHeap()
    heap.arm("a", T0)
    heap.clear_wake()
    waiter = asyncio.create_task(heap.wait(None))
    heap.arm("b", T0 + timedelta(minutes=1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    waiter.cancel()
