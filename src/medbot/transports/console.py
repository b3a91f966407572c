"""The console transport: outgoing messages on stdout, patient replies from stdin.

Each outgoing message is printed as ``[HH:MM ZONE] medbot -> Name: text`` in the
patient's local time. Each input line is a reply. With several patients, a line that
starts with a patient id and a colon (``bob: yes``) is that patient's reply, and any
other line is the first configured patient's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from medbot.core.models import InboundMessage, OutgoingMessage, Patient
from medbot.errors import TransportUnavailable
from medbot.runtime.clock import Clock
from medbot.transports.base import InboundHandler

log = logging.getLogger(__name__)

_ADDRESSED = re.compile(r"^\s*([\w.@+-]+)\s*:\s*(.*)$")
_READ_SIZE = 65536


class ConsoleTransport:
    """Talks to the person at the terminal, who answers as the patient."""

    def __init__(
        self,
        patients: Sequence[Patient],
        clock: Clock,
        *,
        input_fd: int | None = None,
        output: TextIO | None = None,
        on_eof: Callable[[], None] | None = None,
    ) -> None:
        if not patients:
            raise ValueError("the console transport needs at least one patient")
        self._patients = tuple(patients)
        self._clock = clock
        self._input_fd = sys.stdin.fileno() if input_fd is None else input_fd
        self._output = output
        self._on_eof = on_eof
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._pending = b""
        self._reader_added = False
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    async def start(self, handler: InboundHandler) -> None:
        """Begin reading stdin; returns at once because a terminal stores no messages."""
        loop = asyncio.get_running_loop()
        self._running = True
        self._tasks.append(asyncio.create_task(self._consume(handler)))
        try:
            loop.add_reader(self._input_fd, self._on_readable)
            self._reader_added = True
        except (PermissionError, OSError):
            # Regular files and /dev/null cannot be polled, but reading them never blocks.
            self._tasks.append(asyncio.create_task(self._read_file()))

    async def send(self, message: OutgoingMessage) -> None:
        """Print ``message`` with the time and the name of its recipient.

        A message to the patient shows the patient's name; one to anybody else, such as
        a caregiver alert, shows the recipient's address, so nobody mistakes it for a
        message the patient received.
        """
        if not self._running:
            raise TransportUnavailable("the console transport is stopped")
        patient = self._patient(message.patient_id)
        to_patient = patient is not None and message.recipient == patient.address
        name = patient.name if to_patient and patient is not None else message.recipient
        zone = patient.zone if patient is not None else None
        stamp = self._clock.now().astimezone(zone).strftime("%H:%M %Z")
        stream = self._stream()
        stream.write(_encodable(f"[{stamp}] medbot -> {name}: {message.body}\n", stream))
        stream.flush()

    async def was_delivered(self, message: OutgoingMessage) -> bool:
        """Return False: a terminal cannot tell whether a line was printed before a crash."""
        return False

    async def stop(self) -> None:
        self._running = False
        if self._reader_added:
            asyncio.get_running_loop().remove_reader(self._input_fd)
            self._reader_added = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _stream(self) -> TextIO:
        return self._output if self._output is not None else sys.stdout

    def _patient(self, patient_id: str) -> Patient | None:
        return next((p for p in self._patients if p.id == patient_id), None)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._input_fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            # A closed terminal reads as EIO; treat it like the end of input.
            log.debug("reading the console failed: %s", error)
            chunk = b""
        self._feed(chunk)

    async def _read_file(self) -> None:
        while True:
            chunk = await asyncio.to_thread(os.read, self._input_fd, _READ_SIZE)
            self._feed(chunk)
            if not chunk:
                return

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            if self._reader_added:
                asyncio.get_running_loop().remove_reader(self._input_fd)
                self._reader_added = False
            if self._pending:
                self._lines.put_nowait(self._pending.decode("utf-8", errors="replace"))
                self._pending = b""
            self._lines.put_nowait(None)
            return
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        for raw in complete:
            self._lines.put_nowait(raw.decode("utf-8", errors="replace"))

    async def _consume(self, handler: InboundHandler) -> None:
        """Hand lines to ``handler`` one at a time, in the order they were typed."""
        while True:
            line = await self._lines.get()
            if line is None:
                log.info("end of console input")
                if self._on_eof is not None:
                    self._on_eof()
                return
            message = self._to_message(line.strip())
            if message is not None:
                await handler(message)

    def _to_message(self, line: str) -> InboundMessage | None:
        if not line:
            return None
        patient, body = self._addressee(line)
        return InboundMessage(sender=patient.address, body=body, sent_at=self._clock.now())

    def _addressee(self, line: str) -> tuple[Patient, str]:
        """Split ``bob: yes`` into the patient bob and "yes"; other lines go to the first."""
        match = _ADDRESSED.match(line)
        if match is not None:
            wanted = match.group(1).casefold()
            for patient in self._patients:
                if patient.id.casefold() == wanted:
                    return patient, match.group(2)
        return self._patients[0], line


def _encodable(text: str, stream: TextIO) -> str:
    """Escape the characters of ``text`` that ``stream`` cannot encode, as ``\\xfc``.

    A stdout with ASCII encoding (for example with ``PYTHONIOENCODING=ascii``) would
    otherwise raise UnicodeEncodeError on a name such as "Jürgen".
    """
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return text
    return text.encode(encoding, errors="backslashreplace").decode(encoding)
