from __future__ import annotations

import asyncio
import io
import os
from datetime import timedelta
from zoneinfo import ZoneInfo

from medbot.core.models import (
    DailySchedule,
    InboundMessage,
    Medication,
    MessageKind,
    OutgoingMessage,
    Patient,
    utc,
)
from medbot.transports.console import ConsoleTransport
from tests.runtime.fakes import FakeClock

T0 = utc(2026, 12, 4, 19)


def patient(patient_id: str, name: str) -> Patient:
    medication = Medication("insulin", "insulin", DailySchedule(times=()), timedelta(minutes=20))
    zone = ZoneInfo("Europe/Berlin")
    return Patient(patient_id, name, f"{patient_id}@example.org", "en", zone, (medication,))


PATIENTS = (patient("bob", "Bob"), patient("ann", "Ann"))


async def read_lines(text: bytes) -> list[InboundMessage]:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, text)
    os.close(write_fd)
    received: list[InboundMessage] = []
    ended = asyncio.Event()

    async def handler(message: InboundMessage) -> None:
        received.append(message)

    transport = ConsoleTransport(PATIENTS, FakeClock(T0), input_fd=read_fd, on_eof=ended.set)
    await transport.start(handler)
    await asyncio.wait_for(ended.wait(), 5)
    await transport.stop()
    os.close(read_fd)
    return received


async def test_send_prints_local_time() -> None:
    output = io.StringIO()
    devnull = os.open(os.devnull, os.O_RDONLY)
    transport = ConsoleTransport(PATIENTS, FakeClock(T0), input_fd=devnull, output=output)
    await transport.start(lambda message: asyncio.sleep(0))
    message = OutgoingMessage("bob/x/ask-1", "bob", "bob@example.org", MessageKind.ASK, "Hi", T0)
    await transport.send(message)
    await transport.stop()
    os.close(devnull)
    assert output.getvalue() == "[20:00 CET] medbot -> Bob: Hi\n"


async def test_bare_line_first_patient() -> None:
    received = await read_lines(b"yes\n")
    assert [m.sender for m in received] == ["bob@example.org"]


async def test_addressed_line_routed() -> None:
    received = await read_lines(b"ann: done\n")
    assert [(m.sender, m.body) for m in received] == [("ann@example.org", "done")]


async def test_unknown_prefix_kept() -> None:
    received = await read_lines(b"note: hi\n")
    assert [(m.sender, m.body) for m in received] == [("bob@example.org", "note: hi")]


async def test_last_line_without_newline() -> None:
    received = await read_lines(b"\n\nyes")
    assert [m.body for m in received] == ["yes"]
