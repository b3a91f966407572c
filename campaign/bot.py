"""A ``medbot`` child process: start, kill, restart, log capture and memory samples."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
TIMED_OUT = -1000  # return code reported for a command killed after its timeout


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Exit status and output of one finished ``medbot`` command."""

    returncode: int
    stdout: str
    stderr: str


def medbot_command(*arguments: str) -> list[str]:
    """Return the argument list that runs the medbot CLI of this interpreter."""
    return [sys.executable, "-m", "medbot", *arguments]


def run_medbot(
    arguments: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> CommandResult:
    """Run one ``medbot`` command to completion and capture its output.

    A command still running after ``timeout`` seconds is killed and reported with
    return code TIMED_OUT.
    """
    try:
        completed = subprocess.run(
            medbot_command(*arguments),
            cwd=cwd,
            env=_environment(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        output = _text(expired.stdout) + _text(expired.stderr)
        return CommandResult(TIMED_OUT, output, f"timed out after {timeout} s")
    return CommandResult(completed.returncode, completed.stdout, completed.stderr)


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class BotProcess:
    """``medbot run`` as a child process whose output is appended to one log file.

    Each start writes a marker line to the log, so the log of a whole campaign shows
    where every process began.
    """

    config: Path
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    rss_samples: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("medbot is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start ``medbot run`` in its own process group."""
        if self.running:
            raise RuntimeError("medbot is already running")
        self.starts += 1
        with self.log_file.open("ab") as output:
            output.write(f"=== campaign: start {self.starts} at {time.time():.3f}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                medbot_command("run", "--config", str(self.config)),
                cwd=self.config.parent,
                env=_environment(self.env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.debug("started medbot pid %d", self.process.pid)

    def kill(self) -> None:
        """Kill the bot with SIGKILL and reap it, as a crash or power loss would."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def stop(self) -> int | None:
        """Stop the bot with SIGTERM (SIGKILL after a timeout); return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def sample_rss(self) -> int | None:
        """Record and return the bot's resident set size in bytes; None if it is gone."""
        if not self.running:
            return None
        try:
            rss = int(psutil.Process(self.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return None
        self.rss_samples.append(rss)
        return rss

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, needle: str, timeout: float, after: int = 0) -> bool:
        """Wait until ``needle`` appears in the log past byte ``after``; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_file.open("rb") as handle:
                handle.seek(after)
                if needle.encode() in handle.read():
                    return True
            if not self.running:
                return False
            time.sleep(0.02)
        return False

    def log_size(self) -> int:
        return self.log_file.stat().st_size if self.log_file.exists() else 0
