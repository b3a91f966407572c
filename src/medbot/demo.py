"""``medbot demo``: one dose conversation in the terminal, on embedded defaults.

The demo needs no configuration: a sample patient, Bob, in the local time zone, one
medication, a throw-away database in a temporary directory, the console transport, and
a clock that runs ``speed`` times faster than real time.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from medbot.config import Config, TransportKind
from medbot.core.durations import format_duration
from medbot.core.models import Cycle, DailySchedule, Medication, Patient
from medbot.runtime.clock import ScaledClock
from medbot.runtime.service import EXIT_OK, Service
from medbot.store.sqlite import SqliteStore
from medbot.transports.console import ConsoleTransport

PATIENT_ID = "bob"
MEDICATION_ID = "insulin"
# Real seconds from the start of the demo to the first ask.
FIRST_ASK_AFTER = 1.0
# The medication's name and sample replies in each language the demo offers, so a German
# demo reads German throughout.
MEDICATION_NAMES = {"en": "long-acting insulin", "de": "Langzeitinsulin"}
SAMPLE_REPLIES = {
    "en": "yes, skip, later, snooze 10",
    "de": "ja, auslassen, später, in 10 minuten",
}


@dataclass(frozen=True, slots=True)
class DemoSettings:
    speed: float = 60.0
    language: str = "en"
    asks: int = 3
    interval: timedelta = timedelta(minutes=20)
    loop: bool = False


def local_zone() -> ZoneInfo:
    """Return the IANA zone of this machine from $TZ or /etc/localtime, or UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        candidates.append(target.partition("zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def demo_config(database: Path, settings: DemoSettings, now: datetime, zone: ZoneInfo) -> Config:
    """Build the demo's configuration, with the dose due shortly after ``now``."""
    lead = timedelta(seconds=math.ceil(FIRST_ASK_AFTER * settings.speed))
    due_local = (now + lead).astimezone(zone)
    medication = Medication(
        id=MEDICATION_ID,
        name=MEDICATION_NAMES.get(settings.language, MEDICATION_NAMES["en"]),
        schedule=DailySchedule(times=(due_local.time().replace(microsecond=0, tzinfo=None),)),
        reask_interval=settings.interval,
        asks=settings.asks,
    )
    patient = Patient(
        id=PATIENT_ID,
        name="Bob",
        address="bob@console",
        language=settings.language,
        zone=zone,
        medications=(medication,),
    )
    return Config(
        source=Path("<demo>"),
        default_zone=zone,
        database=database,
        transport=TransportKind.CONSOLE,
        patients=(patient,),
    )


def banner(settings: DemoSettings) -> str:
    interval = format_duration(settings.interval)
    real = settings.interval.total_seconds() / settings.speed
    return "\n".join(
        [
            "medbot demo: you are Bob, and it is time for your"
            f" {MEDICATION_NAMES.get(settings.language, MEDICATION_NAMES['en'])}.",
            f"Time runs {settings.speed:g} times faster: medbot asks up to {settings.asks}"
            f" times, every {interval} ({real:g} s of real time).",
            f"Answer as Bob: {SAMPLE_REPLIES.get(settings.language, SAMPLE_REPLIES['en'])},"
            " or anything else. Ctrl-D or Ctrl-C ends the demo.",
            "",
        ]
    )


async def run_demo(settings: DemoSettings) -> int:
    """Run the demo until its dose closes (or forever with ``loop``); return the exit code."""
    click.echo(banner(settings))
    with tempfile.TemporaryDirectory(prefix="medbot-demo-") as directory:
        database = Path(directory) / "demo.db"
        origin = datetime.now(UTC)
        config = demo_config(database, settings, origin, local_zone())
        exit_code, closed = await _serve(config, settings, ScaledClock(settings.speed, origin))
        for cycle in closed:
            click.echo(describe_outcome(await _recorded(database, cycle.id), config))
    return exit_code


async def _serve(
    config: Config, settings: DemoSettings, clock: ScaledClock
) -> tuple[int, list[Cycle]]:
    closed: list[Cycle] = []
    first_closed = asyncio.Event()

    def on_closed(cycle: Cycle) -> None:
        closed.append(cycle)
        first_closed.set()

    transport = ConsoleTransport(config.patients, clock, on_eof=lambda: service.stop())
    service = Service(config, SqliteStore(config.database), transport, clock, on_closed=on_closed)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, service.stop)
    running = asyncio.create_task(service.run())
    if not settings.loop:
        await _stop_after_first_dose(service, running, first_closed)
    exit_code = await running
    return exit_code, closed


async def _stop_after_first_dose(
    service: Service, running: asyncio.Task[int], first_closed: asyncio.Event
) -> None:
    closed = asyncio.create_task(first_closed.wait())
    await asyncio.wait({running, closed}, return_when=asyncio.FIRST_COMPLETED)
    if closed.done():
        # Let the praise or give-up message appear before the summary.
        await service.wait_idle()
        service.stop()
    closed.cancel()


async def _recorded(database: Path, dose_id: str) -> Cycle | None:
    store = SqliteStore(database)
    await store.open()
    try:
        return await store.load_cycle(dose_id)
    finally:
        await store.close()


def describe_outcome(cycle: Cycle | None, config: Config) -> str:
    """Describe the recorded outcome of a demo dose in one line."""
    if cycle is None:
        return "Recorded: nothing (the dose was not found in the database)."
    zone = config.default_zone
    due = cycle.key.due_at.astimezone(zone).strftime("%H:%M")
    text = f"Recorded in the database: dose due {due} is {cycle.phase.value}"
    text += f" after {cycle.asks_sent} ask(s)"
    if cycle.answered_at is not None:
        text += f", answered at {cycle.answered_at.astimezone(zone):%H:%M}"
    return text + "."


__all__ = ["EXIT_OK", "DemoSettings", "run_demo"]
