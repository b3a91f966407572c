"""The herd on the medbot runtime: one patient per dose, a real SqliteStore, no network.

The service runs with the settings medbot ships (``ServiceOptions()`` and a
``SqliteStore`` with its default ``synchronous`` mode) in a temporary directory. Its
transport records when each first ask is handed to it and returns at once, so the
figures measure the runtime, the core and the store, not a chat server.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.measure import HerdPlan, ScenarioResult, SendLog, summarise
from bench.waiting import deadline_after, wait_until
from medbot.config import Config, TransportKind
from medbot.core.models import (
    DailySchedule,
    Medication,
    MessageKind,
    OutgoingMessage,
    Patient,
)
from medbot.runtime.clock import SystemClock
from medbot.runtime.service import Service
from medbot.store.sqlite import SqliteStore
from medbot.transports.base import InboundHandler

_ZONE = ZoneInfo("UTC")


class CountingTransport:
    """A transport that records each first ask's hand-over time and sends nothing."""

    def __init__(self, log: SendLog, index_by_patient: dict[str, int]) -> None:
        self._log = log
        self._index_by_patient = index_by_patient
        self.started = asyncio.Event()
        self.other_sends = 0

    async def start(self, handler: InboundHandler) -> None:
        self.started.set()

    async def send(self, message: OutgoingMessage) -> None:
        if message.kind is MessageKind.ASK:
            self._log.record(self._index_by_patient[message.patient_id])
        else:
            self.other_sends += 1

    async def was_delivered(self, message: OutgoingMessage) -> bool:
        return False

    async def stop(self) -> None:
        return None


def build_config(plan: HerdPlan, database: Path) -> Config:
    """Build N patients with one daily medication each, due at the plan's instants."""
    patients = tuple(_patient(index, plan.due_at(index)) for index in range(plan.size))
    return Config(
        source=Path("bench/herd.py"),
        default_zone=_ZONE,
        database=database,
        transport=TransportKind.CONSOLE,
        patients=patients,
    )


def _patient(index: int, due: datetime) -> Patient:
    medication = Medication(
        id="evening",
        name="Evening tablet",
        schedule=DailySchedule(times=(due.astimezone(UTC).time(),)),
    )
    return Patient(
        id=_patient_id(index),
        name=f"Patient {index}",
        address=f"{_patient_id(index)}@localhost",
        language="en",
        zone=_ZONE,
        medications=(medication,),
    )


def _patient_id(index: int) -> str:
    return f"p{index:06d}"


async def run_herd(
    scenario: str, plan: HerdPlan, lead: float, deadline_grace: float
) -> ScenarioResult:
    """Start the service on the herd, wait for the window and the deadline, and summarise."""
    log = SendLog(plan)
    with tempfile.TemporaryDirectory(prefix="medbot-herd-") as directory:
        setup_started = time.monotonic()
        config = build_config(plan, Path(directory) / "medbot.sqlite3")
        index_by_patient = {_patient_id(index): index for index in range(plan.size)}
        transport = CountingTransport(log, index_by_patient)
        service = Service(config, SqliteStore(config.database), transport, SystemClock())
        running = asyncio.create_task(service.run())
        await _wait_started(transport, running)

        # The service calls Transport.start after it has stored and loaded every cycle
        # and armed its timers, so setup ends here.
        setup_s = time.monotonic() - setup_started
        setup_done = datetime.now(UTC)

        deadline = deadline_after(plan.window_end, deadline_grace)
        await wait_until(lambda: log.complete or running.done(), deadline)
        error = _failure(running)
        service.stop()
        await running
    return summarise(scenario, log, setup_s, lead, setup_done, deadline, error)


def _failure(running: asyncio.Task[int]) -> str | None:
    """Describe why the service ended before it was asked to stop, or return None."""
    if not running.done():
        return None
    status = running.result()
    return f"the service stopped on its own with exit status {status}; see its log above"


async def _wait_started(transport: CountingTransport, running: asyncio.Task[int]) -> None:
    """Wait for the transport's start; raise when the service ended before that."""
    started = asyncio.create_task(transport.started.wait())
    await asyncio.wait({started, running}, return_when=asyncio.FIRST_COMPLETED)
    if started.done():
        return
    started.cancel()
    status = running.result()  # re-raises the service's own error, if any
    raise RuntimeError(f"the medbot service stopped during start-up with exit status {status}")
