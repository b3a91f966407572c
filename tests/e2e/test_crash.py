"""Kill ``medbot run`` with SIGKILL in the middle of a dose cycle and start it again.

The real clock runs unscaled, so the restarted process sees the same times as the
killed one. The dose falls due a few seconds after the test starts, with a re-ask
interval of three seconds.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

INTERVAL_SECONDS = 3
TIMEOUT = 30.0


def write_config(tmp_path: Path, due: datetime) -> Path:
    path = tmp_path / "medbot.toml"
    path.write_text(
        f"""\
[bot]
database = "{tmp_path / 'medbot.db'}"
time_zone = "UTC"
transport = "console"

[[patients]]
id = "bob"
name = "Bob"
address = "bob@example.org"
language = "en"
time_zone = "UTC"

[[patients.medications]]
id = "insulin"
name = "long-acting insulin"
times = ["{due:%H:%M:%S}"]
reask_interval = "{INTERVAL_SECONDS}s"
asks = 3
""",
        encoding="utf-8",
    )
    return path


def medbot(*args: str) -> list[str]:
    return [sys.executable, "-m", "medbot", *args]


def start_run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            # DEBUG lines carry the full message ids that the transcript is checked by.
            medbot("run", "--config", str(config), "--log-level", "debug"),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_for(log: Path, pattern: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not re.search(pattern, log.read_text(encoding="utf-8")):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in output:\n{log.read_text(encoding='utf-8')}")
        time.sleep(0.05)


def test_kill_mid_cycle_loses_nothing(tmp_path: Path) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    config = write_config(tmp_path, due)
    checked = subprocess.run(medbot("check", "--config", str(config)), capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_run(config, first_log)
    wait_for(first_log, r"sent \S+/ask-1 ")
    first.send_signal(signal.SIGKILL)
    first.wait(TIMEOUT)

    second = start_run(config, second_log)
    wait_for(second_log, r"sent \S+/give-up ")
    second.send_signal(signal.SIGTERM)
    assert second.wait(TIMEOUT) == 0

    transcript = first_log.read_text(encoding="utf-8") + second_log.read_text(encoding="utf-8")
    for suffix in ("ask-1", "reask-2", "reask-3", "give-up"):
        assert len(re.findall(rf"sent \S+/{suffix} ", transcript)) == 1, transcript
    assert transcript.count("medbot -> Bob:") == 4, transcript
