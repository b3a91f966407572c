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
    OutgoingMessage,
    Patient,
    Phase,
    utc,
)
from medbot.errors import StoreError, TransportUnavailable
from medbot.runtime.dispatcher import RetryPolicy
from medbot.runtime.service import Service, ServiceOptions
from medbot.store.base import Change
from medbot.store.sqlite import SqliteStore
from tests.runtime.fakes import FakeClock, RecordingTransport, eventually

START = utc(2026, 12, 4, 18, 59)
DUE = utc(2026, 12, 4, 19)
DOSE = "bob/insulin/20261204T190000Z"
OPTIONS = ServiceOptions(retry=RetryPolicy(initial=0.001, maximum=0.004), drain_timeout=2.0)


def make_medication(medication_id: str = "insulin", at: time = time(19, 0)) -> Medication:
    return Medication(
        id=medication_id,
        name=medication_id,
        schedule=DailySchedule(times=(at,)),
        reask_interval=timedelta(minutes=20),
        asks=3,
    )


def make_patient(
    number: int = 0, medications: Sequence[Medication] | None = None, zone: str = "UTC"
) -> Patient:
    patient_id = "bob" if number == 0 else f"p{number}"
    return Patient(
        id=patient_id,
        name="Bob",
        address=f"{patient_id}@example.org",
        language="en",
        zone=ZoneInfo(zone),
        medications=tuple(medications or (make_medication(),)),
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


# --- Edited configuration ---------------------------------------------------------------


def open_dues(harness: Harness) -> list[datetime]:
    return sorted(cycle.key.due_at for cycle in harness.service.open_cycles.values())


async def restart_with(harness: Harness, patient: Patient, after: timedelta) -> RecordingTransport:
    await harness.stop()
    harness.config = make_config(harness.database, [patient])
    harness.clock.advance(after)
    return await harness.start()


async def test_time_change_after_ask(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.reply("yes", "m1")
    later = make_patient(medications=[make_medication(at=time(20, 0))])
    transport = await restart_with(harness, later, timedelta(minutes=30))
    assert open_dues(harness) == [utc(2026, 12, 5, 20)]
    await harness.advance(timedelta(days=1, minutes=30))  # Dec 5 20:01
    assert [m.message_id for m in transport.sent] == ["bob/insulin/20261205T200000Z/ask-1"]


async def test_time_change_before_ask(harness: Harness) -> None:
    await harness.start()
    later = make_patient(medications=[make_medication(at=time(20, 0))])
    transport = await restart_with(harness, later, timedelta(minutes=5))
    assert open_dues(harness) == [utc(2026, 12, 4, 20)]
    await harness.advance(timedelta(hours=1))
    assert [m.message_id for m in transport.sent] == ["bob/insulin/20261204T200000Z/ask-1"]
    assert await harness.phase() is None


async def test_zone_change_after_ask(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.reply("yes", "m1")
    moved = make_patient(zone="America/New_York")
    await restart_with(harness, moved, timedelta(minutes=30))
    # 19:00 in New York on Dec 4 is only five hours after the dose just asked, so the
    # new schedule starts with Dec 5.
    assert open_dues(harness) == [utc(2026, 12, 6, 0)]


async def test_removed_medication_dose_dropped(harness: Harness) -> None:
    await harness.start()
    other = make_patient(medications=[make_medication("vitamin", at=time(21, 0))])
    await restart_with(harness, other, timedelta(minutes=5))
    assert open_dues(harness) == [utc(2026, 12, 4, 21)]
    assert await harness.phase() is None


# --- Which dose a reply answers ---------------------------------------------------------


def two_doses(second_at: time, second: str = "vitamin") -> Patient:
    return make_patient(medications=[make_medication(), make_medication(second, at=second_at)])


async def step(harness: Harness, minutes: int) -> None:
    """Advance one minute at a time, so every timer fires on time."""
    for _ in range(minutes):
        await harness.advance(timedelta(minutes=1))


async def delayed_reply(harness: Harness, body: str, sent_at: datetime, message_id: str) -> None:
    assert harness.transport.handler is not None
    await harness.transport.handler(InboundMessage("bob@example.org", body, sent_at, message_id))
    await harness.settle()


async def test_delayed_reply_answers_earlier_ask(tmp_path: Path) -> None:
    harness = Harness(tmp_path, START, [two_doses(time(19, 10))])
    await harness.start()
    await step(harness, 22)  # insulin 19:00, vitamin 19:10, insulin again 19:20
    await delayed_reply(harness, "yes", utc(2026, 12, 4, 19, 15), "m1")
    assert await harness.phase("bob/vitamin/20261204T191000Z") is Phase.TAKEN
    assert await harness.phase(DOSE) is Phase.ASKING
    await harness.stop()


async def test_delayed_reply_not_dropped(tmp_path: Path) -> None:
    harness = Harness(tmp_path, START, [two_doses(time(19, 30))])
    await harness.start()
    await step(harness, 32)  # insulin 19:00 and 19:20, vitamin 19:30
    await delayed_reply(harness, "yes", utc(2026, 12, 4, 19, 5), "m1")
    assert await harness.phase(DOSE) is Phase.TAKEN
    assert await harness.phase("bob/vitamin/20261204T193000Z") is Phase.ASKING
    await harness.stop()


async def test_same_time_doses_in_config_order(tmp_path: Path) -> None:
    harness = Harness(tmp_path, START, [two_doses(time(19, 0), second="metformin")])
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.reply("yes", "m1")
    assert await harness.phase(DOSE) is Phase.TAKEN
    assert await harness.phase("bob/metformin/20261204T190000Z") is Phase.ASKING
    await harness.reply("yes", "m2")
    assert await harness.phase("bob/metformin/20261204T190000Z") is Phase.TAKEN
    await harness.stop()


async def test_offline_reply_after_window_ignored(harness: Harness) -> None:
    await harness.start()
    await harness.advance(timedelta(minutes=1))
    await harness.stop()
    harness.clock.advance(timedelta(days=2, minutes=29))  # Dec 6 19:30
    offline = InboundMessage("bob@example.org", "yes", utc(2026, 12, 6, 19, 10), "m1")
    transport = await harness.start(OfflineTransport([offline]))
    assert await harness.phase() is Phase.MISSED
    assert "praise" not in transport.suffixes()


# --- Obsolete asks ----------------------------------------------------------------------


class SwitchableTransport(RecordingTransport):
    """Fails every send while ``available`` is False, as during a server outage."""

    available = True

    async def send(self, message: OutgoingMessage) -> None:
        if not self.available:
            raise TransportUnavailable("server unreachable (test)")
        await super().send(message)


async def advance_during_outage(harness: Harness, delta: timedelta) -> None:
    # Harness.advance waits until the service is idle, which it never is while every
    # send fails, so this only gives the timer loop time to commit.
    harness.clock.advance(delta)
    await asyncio.sleep(0.1)


async def test_outage_sends_latest_ask_only(harness: Harness) -> None:
    transport = SwitchableTransport()
    transport.available = False
    await harness.start(transport)
    await advance_during_outage(harness, timedelta(minutes=1))
    await advance_during_outage(harness, timedelta(minutes=20))
    transport.available = True
    await eventually(lambda: len(transport.sent) == 1)
    await harness.settle()
    assert transport.suffixes() == ["reask-2"]


async def test_closed_dose_pending_ask_dropped(harness: Harness) -> None:
    transport = SwitchableTransport()
    transport.available = False
    await harness.start(transport)
    await advance_during_outage(harness, timedelta(minutes=1))
    assert transport.handler is not None
    await transport.handler(InboundMessage("bob@example.org", "yes", harness.clock.now(), "m1"))
    transport.available = True
    await eventually(lambda: len(transport.sent) >= 1)
    await harness.settle()
    assert transport.suffixes() == ["praise"]
    assert await harness.phase() is Phase.TAKEN


async def test_outage_past_give_up_asks_once(harness: Harness) -> None:
    transport = SwitchableTransport()
    transport.available = False
    await harness.start(transport)
    for minutes in (1, 20, 20, 20):
        await advance_during_outage(harness, timedelta(minutes=minutes))
    transport.available = True
    await eventually(lambda: len(transport.sent) == 2)
    await harness.settle()
    assert transport.suffixes() == ["reask-3", "give-up"]
    assert await harness.phase() is Phase.MISSED
