"""The click commands, run in-process with CliRunner on real config files and databases."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from medbot.cli import cli
from medbot.core.models import Cycle, DoseKey, Phase
from medbot.store.base import Change
from medbot.store.sqlite import SqliteStore

CONFIG = """
[bot]
time_zone = "Europe/Berlin"
database = "{database}"

[[patients]]
id = "bob"
name = "Bob"
address = "bob@example.org"

[[patients.medications]]
id = "insulin"
name = "long-acting insulin"
times = ["20:00"]
"""


def write_config(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "medbot.toml"
    path.write_text(CONFIG.format(database=database), encoding="utf-8")
    return path


def test_check_prints_summary(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "medbot.sqlite3")
    result = CliRunner().invoke(cli, ["check", "-c", str(config), "--offline"])
    assert result.exit_code == 0, result.output
    assert "long-acting insulin" in result.output
    assert not (tmp_path / "medbot.sqlite3").exists()


def test_check_bad_key_exit_two(tmp_path: Path) -> None:
    config = tmp_path / "medbot.toml"
    config.write_text('[bot]\ntime_zon = "UTC"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "bot.time_zon" in result.output
    assert "time_zone" in result.output
    assert "Traceback" not in result.output


def test_upcoming_json_local_and_utc(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "medbot.sqlite3")
    arguments = ["upcoming", "-c", str(config), "--from", "2026-12-04T12:00", "--count", "2"]
    result = CliRunner().invoke(cli, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    doses = json.loads(result.output)
    assert [dose["local"] for dose in doses] == [
        "2026-12-04T20:00:00+01:00",
        "2026-12-05T20:00:00+01:00",
    ]
    assert doses[0]["utc"] == "2026-12-04T19:00:00Z"


def test_history_csv_iso_times(tmp_path: Path) -> None:
    database = tmp_path / "medbot.sqlite3"
    due = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    asked = due + timedelta(seconds=1)
    taken = Cycle(
        DoseKey("bob", "insulin", due),
        Phase.TAKEN,
        asks_sent=1,
        first_asked_at=asked,
        last_asked_at=asked,
        answered_at=asked + timedelta(seconds=90),
        closed_at=asked + timedelta(seconds=90),
    )

    async def store_cycle() -> None:
        store = SqliteStore(database)
        await store.open()
        await store.commit([Change(cycles=[taken])])
        await store.close()

    asyncio.run(store_cycle())
    config = write_config(tmp_path, database)
    result = CliRunner().invoke(cli, ["history", "-c", str(config), "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 1
    assert rows[0]["due_utc"] == due.isoformat().replace("+00:00", "Z")
    assert rows[0]["outcome"] == "taken"
    assert rows[0]["response_delay_s"] == "90"


def test_run_missing_directory_not_created(tmp_path: Path) -> None:
    database = tmp_path / "typo" / "medbot.sqlite3"
    config = write_config(tmp_path, database)
    # A subprocess, because the console transport reads the real stdin descriptor.
    command = [sys.executable, "-m", "medbot", "run", "-c", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not database.parent.exists()
