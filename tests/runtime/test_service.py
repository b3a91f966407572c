from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from medbot.config import Config, TransportKind
from medbot.core import replies
from medbot.core.models import (
    DailySchedule,
    InboundMessage,
    Medication,
    Patient,
    Phase,
    utc,
)
from medbot.errors import StoreError
from medbot.runtime.dispatcher import RetryPolicy
from medbot.runtime.service import Service, ServiceOptions
from medbot.store.base import Change
from medbot.store.sqlite import SqliteStore
from tests.runtime.fakes import FakeClock, RecordingTransport, eventually

START = utc(2026, 12, 4, 18, 59)
DUE = utc(2026, 12, 4, 19)
DOSE = "bob/insulin/20261204T190000Z"
OPTIONS = ServiceOptions(retry=RetryPolicy(initial=0.001, maximum=0.004), drain_timeout=2.0)


def make_patient(number: int = 0) -> Patient:
    medication = Medication(
        id="insulin",
        name="long-acting insulin",
        schedule=DailySchedule(times=(time(19, 0),)),
        reask_interval=timedelta(minutes=20),
        asks=3,
    )
    patient_id = "bob" if number == 0 else f"p{number}"
    return Patient(
        id=patient_id,
        name="Bob",
        address=f"{patient_id}@example.org",
        language="en",
        zone=ZoneInfo("UTC"),
        medications=(medication,),
    )


def make_config(database: Path, patients: Sequence[Patient] | None = None) -> Config:
    return Config(
        source=Path("test.toml"),
        default_zone=ZoneInfo("UTC"),
        database=database,
        transport=TransportKind.CONSOLE,
        patients=tuple(patients or (make_patient(),)),
    )


class CountingStore(SqliteStore):
    commits = 0

    async def commit(self, changes: Sequence[Change]) -> None:
        self.commits += 1
        await super().commit(changes)


class FailingStore(CountingStore):
    """Raises StoreError on every commit once ``failing`` is set, as on a full disk."""

    failing = False

    async def commit(self, changes: Sequence[Change]) -> None:
        if self.failing:
            raise StoreError("cannot write /tmp/medbot.db: disk full (test)")
        await super().commit(changes)


class OfflineTransport(RecordingTransport):
    """Hands stored messages to the handler before ``start`` returns, as XMPP does."""

    def __init__(self, offline: Sequence[InboundMessage]) -> None:
        super().__init__()
        self.offline = offline

    async def start(self, handler: object) -> None:
        await super().start(handler)  # type: ignore[arg-type]
        assert self.handler is not None
        for message in self.offline:
            await self.handler(message)


class Harness:
    def __init__(self, tmp_path: Path, start: datetime, patients: Sequence[Patient] | None = None):
        self.database = tmp_path / "medbot.db"
        self.clock = FakeClock(start)
        self.config = make_config(self.database, patients)
        self.task: asyncio.Task[int] | None = None

    async def start(
        self, transport: RecordingTransport | None = None, store: CountingStore | None = None
    ) -> RecordingTransport:
        self.transport = transport or RecordingTransport()
        self.store = store or CountingStore(self.database)
        self.service = Service(self.config, self.store, self.transport, self.clock, OPTIONS)
        self.task = asyncio.create_task(self.service.run())
        await asyncio.wait_for(self.service.wait_started(), 5)
        await self.settle()
        return self.transport

    async def settle(self) -> None:
        # Twice in a row, so work started by the first quiet check is seen.
        for _ in range(2):
            await asyncio.sleep(0.005)
            await eventually(lambda: not self.service.busy)

    async def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        await self.settle()

    async def reply(self, body: str, message_id: str | None = None) -> None:
        assert self.transport.handler is not None
        sent = self.clock.now()
        message = InboundMessage("bob@example.org/phone", body, sent, message_id)
        await self.transport.handler(message)
        await self.settle()

    async def stop(self) -> int:
        assert self.task is not None
        self.service.stop()
        return await asyncio.wait_for(self.task, 5)

    async def phase(self, dose_id: str = DOSE) -> Phase | None:
        store = SqliteStore(self.database)
        await store.open()
        try:
            cycle = await store.load_cycle(dose_id)
        finally:
            await store.close()
        return cycle.phase if cycle is not None else None


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, START)
    yield harness
    if harness.task is not None and not harness.task.done():
        await harness.stop()


async def test_ask_reask_praise(harness: Harness) -> None:
    transport = await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.advance(timedelta(minutes=20))
    await harness.reply("yes", "m1")
    assert transport.suffixes() == ["ask-1", "reask-2", "praise"]
    assert await harness.stop() == 0
    assert await harness.phase() is Phase.TAKEN


async def test_gives_up_after_asks(harness: Harness) -> None:
    transport = await harness.start()
    for minutes in (1, 20, 20, 20):
        await harness.advance(timedelta(minutes=minutes))
    assert transport.suffixes() == ["ask-1", "reask-2", "reask-3", "give-up"]
    await harness.stop()
    assert await harness.phase() is Phase.MISSED


async def test_reply_just_before_reask(harness: Harness) -> None:
    transport = await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.advance(timedelta(minutes=19, seconds=59))
    await harness.reply("yes", "m1")
    await harness.advance(timedelta(seconds=1))
    assert transport.suffixes() == ["ask-1", "praise"]


async def test_next_dose_scheduled(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    assert "bob/insulin/20261205T190000Z" in harness.service.open_cycles


async def test_failures_retried(harness: Harness) -> None:
    transport = await harness.start(RecordingTransport(failures=4))
    await harness.advance(timedelta(minutes=1))
    await harness.advance(timedelta(minutes=20))
    assert transport.suffixes() == ["ask-1", "reask-2"]
    assert await harness.store.pending_outbox() == []


async def test_restart_resumes_cycle(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.stop()
    transport = await harness.start()
    await harness.advance(timedelta(minutes=20))
    assert transport.suffixes() == ["reask-2"]


async def test_late_dose_asked_once(harness: Harness) -> None:
    await harness.start()
    await harness.stop()
    harness.clock.advance(timedelta(minutes=45))
    transport = await harness.start()
    assert transport.suffixes() == ["ask-1"]


async def test_old_doses_summarised_once(harness: Harness) -> None:
    await harness.start()
    await harness.stop()
    harness.clock.advance(timedelta(days=2, minutes=31))
    transport = await harness.start()
    assert sorted(transport.suffixes()) == ["ask-1", "missed-summary"]
    assert await harness.phase() is Phase.MISSED


async def test_offline_reply_counts(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.stop()
    harness.clock.advance(timedelta(hours=2))
    offline = InboundMessage("bob@example.org", "yes", DUE + timedelta(minutes=5), "m1")
    transport = await harness.start(OfflineTransport([offline]))
    assert transport.suffixes() == ["praise"]
    assert await harness.phase() is Phase.TAKEN


async def test_duplicate_inbound_once(harness: Harness) -> None:
    transport = await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.reply("later", "m1")
    await harness.reply("later", "m1")
    assert transport.suffixes() == ["ask-1", "snooze-ack-1"]


async def test_unknown_sender_ignored(harness: Harness) -> None:
    transport = await harness.start()
    await harness.advance(timedelta(minutes=1))
    assert transport.handler is not None
    stranger = InboundMessage("mallory@example.org", "yes", harness.clock.now(), "m1")
    await transport.handler(stranger)
    await harness.settle()
    assert transport.suffixes() == ["ask-1"]


async def test_failing_reply_keeps_running(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = replies.classify

    def classify(text: str, language: str) -> replies.Reply:
        if text == "boom":
            raise RuntimeError("unexpected input (test)")
        return original(text, language)

    monkeypatch.setattr(replies, "classify", classify)
    transport = await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.reply("boom", "m1")
    await harness.reply("yes", "m2")
    assert transport.suffixes() == ["ask-1", "praise"]


async def test_store_failure_on_timer_stops(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore(harness.database)
    transport = await harness.start(store=store)
    store.failing = True
    harness.clock.advance(timedelta(minutes=1))
    assert harness.task is not None
    code = await asyncio.wait_for(harness.task, 5)
    assert code == 1
    assert transport.sent == []
    assert "disk full" in caplog.text
    assert "Traceback" not in caplog.text
    assert await harness.phase() is Phase.SCHEDULED


async def test_store_failure_on_reply_stops(harness: Harness) -> None:
    store = FailingStore(harness.database)
    transport = await harness.start(store=store)
    await harness.advance(timedelta(minutes=1))
    store.failing = True
    await harness.reply("yes", "m1")
    assert harness.task is not None
    code = await asyncio.wait_for(harness.task, 5)
    assert code == 1
    assert transport.suffixes() == ["ask-1"]
    assert await harness.phase() is Phase.ASKING


async def test_due_together_one_commit(tmp_path: Path) -> None:
    patients = [make_patient(number) for number in range(1, 201)]
    harness = Harness(tmp_path, START, patients)
    transport = await harness.start()
    commits_before = harness.store.commits
    await harness.advance(timedelta(minutes=1))
    assert len(transport.sent) == 200
    assert harness.store.commits - commits_before == 1
    await harness.stop()


async def test_stop_closes_transport(harness: Harness) -> None:
    transport = await harness.start()
    assert await harness.stop() == 0
    assert transport.stopped


async def test_eventually_helper_times_out() -> None:
    with pytest.raises(AssertionError):
        await eventually(lambda: False, timeout=0.01)
