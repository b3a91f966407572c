from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medbot.core.models import MessageKind, OutgoingMessage, utc
from medbot.errors import TransportFatal
from medbot.runtime.dispatcher import Dispatcher, RetryPolicy, message_ref
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


class BrokenRecipientTransport(RecordingTransport):
    """Raises ValueError for sends to ``broken`` until ``broken`` is cleared."""

    def __init__(self, broken: str | None) -> None:
        super().__init__()
        self.broken = broken
        self.errors = 0

    async def send(self, message: OutgoingMessage) -> None:
        if message.recipient == self.broken:
            self.errors += 1
            raise ValueError("unexpected library error (test)")
        await super().send(message)


async def test_unexpected_error_keeps_others(store: SqliteStore) -> None:
    broken = message(1, recipient="carol@example.org")
    others = [message(n) for n in range(2, 4)]
    await store.commit([Change(messages=[broken, *others])])
    transport = BrokenRecipientTransport("carol@example.org")
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue([broken, *others])
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: len(transport.sent) == 2)
    await asyncio.sleep(0.05)
    pending = [entry.message for entry in await store.pending_outbox()]
    assert not task.done()
    assert transport.sent == others
    assert pending == [broken]
    task.cancel()


async def test_unexpected_error_retried(store: SqliteStore) -> None:
    first = message(1)
    await store.commit([Change(messages=[first])])
    transport = BrokenRecipientTransport(first.recipient)
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue([first])
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: transport.errors >= 2)
    transport.broken = None
    await asyncio.wait_for(dispatcher.wait_idle(), timeout=5)
    task.cancel()
    entries = await store.outbox_for_dose("bob/insulin/20261204T190000Z")
    assert transport.sent == [first]
    assert entries[0].attempts > 1
    assert entries[0].delivered_at is not None


class StallingTransport(RecordingTransport):
    """Sends to bob at once and never finishes a send to anyone else."""

    async def send(self, message: OutgoingMessage) -> None:
        if message.recipient != "bob@example.org":
            await asyncio.Event().wait()
        await super().send(message)


async def test_sent_marked_on_cancel(store: SqliteStore) -> None:
    sent = message(1)
    stalled = message(2, recipient="carol@example.org")
    await store.commit([Change(messages=[sent, stalled])])
    transport = StallingTransport()
    dispatcher = Dispatcher(store, transport, FakeClock(T0))
    dispatcher.enqueue([sent, stalled])
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: transport.sent == [sent])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pending = [entry.message for entry in await store.pending_outbox()]
    assert pending == [stalled]


async def test_logs_hide_medication(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    sent = message(1)
    broken = message(2, recipient="carol@example.org")
    await store.commit([Change(messages=[sent, broken])])
    transport = BrokenRecipientTransport("carol@example.org")
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue([sent, broken])
    caplog.set_level(logging.DEBUG, logger="medbot.runtime.dispatcher")
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: len(caplog.records) > 6)
    task.cancel()
    visible = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert visible
    assert not [line for line in visible if "insulin" in line]
    assert f"sent ask {message_ref(sent.message_id)} for bob" in visible
    assert any(sent.message_id in line for line in debug)


async def test_unexpected_traceback_logged_once(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    broken = message(1)
    await store.commit([Change(messages=[broken])])
    transport = BrokenRecipientTransport(broken.recipient)
    dispatcher = Dispatcher(store, transport, FakeClock(T0), retry=FAST_RETRY)
    dispatcher.enqueue([broken])
    caplog.set_level(logging.INFO, logger="medbot.runtime.dispatcher")
    task = asyncio.create_task(dispatcher.run())
    await eventually(lambda: len(caplog.records) > 4)
    task.cancel()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


def test_retry_delay_after_many_rounds() -> None:
    policy = RetryPolicy(initial=0.5, maximum=30.0)
    assert 15.0 <= policy.delay(5000) <= 30.0


def test_message_ref_is_short_hex() -> None:
    ref = message_ref("bob/insulin/20261204T190000Z/ask-1")
    assert len(ref) == 10
    assert int(ref, 16) >= 0
    assert ref != message_ref("bob/insulin/20261204T190000Z/ask-2")
