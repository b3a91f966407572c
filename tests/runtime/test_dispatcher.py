from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medbot.core.models import MessageKind, OutgoingMessage, utc
from medbot.errors import TransportFatal
from medbot.runtime.dispatcher import Dispatcher, RetryPolicy
from medbot.store.base import Change
from medbot.store.sqlite import SqliteStore
from tests.runtime.fakes import FakeClock, RecordingTransport, eventually

T0 = utc(2026, 12, 4, 19)
FAST_RETRY = RetryPolicy(initial=0.001, maximum=0.004)


def message(number: int, recipient: str = "bob@example.org") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"bob/insulin/20261204T190000Z/ask-{number}",
        patient_id="bob",
        recipient=recipient,
        kind=MessageKind.ASK,
        body=f"ask {number}",
        created_at=T0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "medbot.db")
    await store.open()
    yield store
    await store.close()


async def run_until_idle(dispatcher: Dispatcher) -> None:
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    await asyncio.wait_for(dispatcher.wait_idle(), timeout=5)
    task.cancel()


async def test_delivers_in_order(store: SqliteStore) -> None:
    messages = [message(n) for n in range(1, 4)]
    await store.commit([Change(messages=messages)])
    transport = RecordingTransport()
    dispatcher = Dispatcher(store, transport, FakeClock(T0))
    dispatcher.enqueue(messages)
    await run_until_idle(dispatcher)
    assert transport.sent == messages
    assert await store.pending_outbox() == []


async def test_retries_until_delivered(store: SqliteStore) -> None:
    messages = [message(n) for n in range(1, 4)]
    await store.commit([Change(messages=messages)])
    transport = RecordingTransport(failures=5)
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue(messages)
    await run_until_idle(dispatcher)
    assert transport.sent == messages
    assert await store.pending_outbox() == []


async def test_counts_attempts(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    transport = RecordingTransport(failures=2)
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue([first])
    await run_until_idle(dispatcher)
    entries = await store.outbox_for_dose("bob/insulin/20261204T190000Z")
    assert entries[0].attempts == 3


async def test_duplicate_enqueue_sent_once(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    transport = RecordingTransport()
    dispatcher = Dispatcher(store, transport, FakeClock(T0))
    dispatcher.enqueue([first])
    dispatcher.enqueue([first])
    await run_until_idle(dispatcher)
    assert transport.sent == [first]


async def test_resume_skips_delivered(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    await store.mark_attempted([first.message_id], T0)
    transport = RecordingTransport(delivered=True)
    dispatcher = Dispatcher(store, transport, FakeClock(T0))
    await dispatcher.resume_pending()
    await run_until_idle(dispatcher)
    assert transport.sent == []
    assert await store.pending_outbox() == []


async def test_resume_resends_unconfirmed(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    await store.mark_attempted([first.message_id], T0)
    transport = RecordingTransport(delivered=False)
    dispatcher = Dispatcher(store, transport, FakeClock(T0))
    await dispatcher.resume_pending()
    await run_until_idle(dispatcher)
    assert [m.message_id for m in transport.sent] == [first.message_id]


class FatalTransport(RecordingTransport):
    async def send(self, message: OutgoingMessage) -> None:
        raise TransportFatal("credentials rejected (test)")


async def test_fatal_error_reported(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    errors: list[TransportFatal] = []
    dispatcher = Dispatcher(
        store, FatalTransport(), FakeClock(T0), retry=FAST_RETRY, on_fatal=errors.append
    )
    dispatcher.enqueue([first])
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: bool(errors))
    task.cancel()
    assert len(await store.pending_outbox()) == 1


def test_retry_delay_capped() -> None:
    policy = RetryPolicy(initial=0.5, maximum=30.0)
    delays = [policy.delay(round_number) for round_number in range(1, 20)]
    assert max(delays) <= 30.0
    assert delays[0] <= 0.5
