"""``medbot run`` on the console transport, with stdout captured line by line.

The storage faults use the console transport: each message the bot sends is one line
on stdout, so counting lines counts sends, and no chat server is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from campaign.bot import STOP_TIMEOUT, medbot_command

MESSAGE_MARK = " medbot -> "


@dataclass
class ConsoleBot:
    """One ``medbot run`` process; stdin stays open so the console never sees its end."""

    config: Path
    log_file: Path
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                medbot_command("run", "--config", str(self.config)),
                cwd=self.config.parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    @property
    def messages(self) -> list[str]:
        return [line for line in self.lines if MESSAGE_MARK in line]

    def wait(self, seconds: float) -> int | None:
        """Wait up to ``seconds`` for the bot to exit; return its code, None if running."""
        assert self.process is not None
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def wait_for_messages(self, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return True
            if self.process is not None and self.process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> int | None:
        """Stop with SIGTERM (SIGKILL after a timeout) and return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            if self.wait(STOP_TIMEOUT) is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self._reader is not None:
            self._reader.join(5)
        return self.process.returncode
