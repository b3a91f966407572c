"""Views of a bot database, for checks after a run.

The campaign reads the SQLite file directly instead of through medbot's store, so a
bug in the store cannot hide itself. It reads only after every bot process has exited.
The connection is an ordinary one (not ``mode=ro``), because a read-only connection
cannot open a WAL database whose shared-memory file is missing after a SIGKILL.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    message_id: str
    patient_id: str
    kind: str
    body: str
    created_at: datetime
    attempts: int
    delivered: bool
    superseded: bool  # taken out unsent: the patient answered, or a newer ask replaced it


@dataclass(frozen=True, slots=True)
class CycleRow:
    dose_id: str
    patient_id: str
    due_at: datetime
    phase: str
    asks_sent: int
    answered_at: datetime | None


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"database {path} not found")
    return sqlite3.connect(path)


def read_outbox(path: Path) -> list[OutboxRow]:
    """Return every outbox row, in insertion order."""
    query = (
        "SELECT message_id, patient_id, kind, body, created_at, attempts,"
        " delivered_at IS NOT NULL, superseded FROM outbox ORDER BY rowid"
    )
    with closing(_connect(path)) as connection:
        rows = connection.execute(query).fetchall()
    return [
        OutboxRow(row[0], row[1], row[2], row[3], _EPOCH + timedelta(microseconds=row[4]),
                  row[5], bool(row[6]), bool(row[7]))
        for row in rows
    ]


def read_cycles(path: Path) -> list[CycleRow]:
    """Return every dose cycle, by due time."""
    query = (
        "SELECT dose_id, patient_id, due_at, phase, asks_sent, answered_at"
        " FROM cycles ORDER BY due_at, dose_id"
    )
    with closing(_connect(path)) as connection:
        rows = connection.execute(query).fetchall()
    cycles = []
    for dose_id, patient_id, due_at, phase, asks_sent, answered_at in rows:
        due = _from_micros(due_at)
        assert due is not None
        answered = _from_micros(answered_at)
        cycles.append(CycleRow(dose_id, patient_id, due, phase, asks_sent, answered))
    return cycles


def read_inbound_ids(path: Path) -> list[str]:
    """Return the ids of every inbound message the bot recorded as processed."""
    with closing(_connect(path)) as connection:
        rows = connection.execute("SELECT inbound_id FROM inbound").fetchall()
    return [row[0] for row in rows]
