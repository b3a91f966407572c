from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TextIO
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


async def test_caregiver_alert_names_recipient() -> None:
    output = io.StringIO()
    devnull = os.open(os.devnull, os.O_RDONLY)
    transport = ConsoleTransport(PATIENTS, FakeClock(T0), input_fd=devnull, output=output)
    await transport.start(lambda message: asyncio.sleep(0))
    alert = OutgoingMessage(
        "bob/x/caregiver-alert", "bob", "carol@example.org", MessageKind.CAREGIVER_ALERT, "!", T0
    )
    await transport.send(alert)
    await transport.stop()
    os.close(devnull)
    assert output.getvalue() == "[20:00 CET] medbot -> carol@example.org: !\n"


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


async def send_to(output: TextIO, name: str, body: str) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    transport = ConsoleTransport(
        (patient("bob", name),), FakeClock(T0), input_fd=devnull, output=output
    )
    await transport.start(lambda message: asyncio.sleep(0))
    message = OutgoingMessage("bob/x/ask-1", "bob", "bob@example.org", MessageKind.ASK, body, T0)
    await transport.send(message)
    await transport.stop()
    os.close(devnull)


async def test_send_escapes_unencodable() -> None:
    raw = io.BytesIO()
    output = io.TextIOWrapper(raw, encoding="ascii")
    await send_to(output, "Jürgen", "Grüß dich")
    assert raw.getvalue() == b"[20:00 CET] medbot -> J\\xfcrgen: Gr\\xfc\\xdf dich\n"


async def test_send_keeps_encodable() -> None:
    raw = io.BytesIO()
    output = io.TextIOWrapper(raw, encoding="utf-8")
    await send_to(output, "Jürgen", "Hi")
    assert raw.getvalue() == "[20:00 CET] medbot -> Jürgen: Hi\n".encode()


ASCII_STDOUT_SCRIPT = """
import asyncio
import sys
from tests.transports.test_console import send_to
asyncio.run(send_to(sys.stdout, "Jürgen", "Hi"))
"""


def test_send_ascii_stdout() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-c", ASCII_STDOUT_SCRIPT],
        capture_output=True,
        env=env,
        cwd=Path(__file__).parents[2],
        timeout=60,
        check=False,
    )
    assert result.stderr == b""
    assert result.returncode == 0
    assert result.stdout == b"[20:00 CET] medbot -> J\\xfcrgen: Hi\n"
