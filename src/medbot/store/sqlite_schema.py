"""Schema of the SQLite store: the migration steps and the SQL statements that use them.

``PRAGMA user_version`` is the number of migration steps applied. Step n (1-based) moves a
database from version n - 1 to version n. New steps are appended, and a released step is
never edited, because databases in use have already run it.

Every datetime column holds integer microseconds since 1970-01-01T00:00:00Z, so values
compare and sort as numbers and round-trip exactly.
"""

from __future__ import annotations

from medbot.core.models import Phase

# Written to the database header by the first step ("medb" in ASCII), so that open()
# can tell a medbot database from another program's SQLite file.
APPLICATION_ID = 0x6D656462

_PHASES = ", ".join(f"'{phase.value}'" for phase in Phase)
_OPEN_PHASES = ", ".join(f"'{phase.value}'" for phase in Phase if phase.is_open)

_STEP_1 = (
    f"""
    CREATE TABLE cycles (
        dose_id        TEXT PRIMARY KEY,
        patient_id     TEXT NOT NULL,
        medication_id  TEXT NOT NULL,
        due_at         INTEGER NOT NULL,
        phase          TEXT NOT NULL CHECK (phase IN ({_PHASES})),
        asks_sent      INTEGER NOT NULL CHECK (asks_sent >= 0),
        next_at        INTEGER,
        first_asked_at INTEGER,
        last_asked_at  INTEGER,
        hinted         INTEGER NOT NULL CHECK (hinted IN (0, 1)),
        last_phrase    INTEGER,
        answered_at    INTEGER,
        closed_at      INTEGER
    ) WITHOUT ROWID
    """,
    "CREATE UNIQUE INDEX cycles_by_medication ON cycles (patient_id, medication_id, due_at)",
    "CREATE INDEX cycles_by_due ON cycles (due_at)",
    f"CREATE INDEX cycles_open ON cycles (next_at) WHERE phase IN ({_OPEN_PHASES})",
    """
    CREATE TABLE outbox (
        message_id       TEXT PRIMARY KEY,
        patient_id       TEXT NOT NULL,
        recipient        TEXT NOT NULL,
        kind             TEXT NOT NULL,
        body             TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        first_attempt_at INTEGER,
        delivered_at     INTEGER
    )
    """,
    # Entries leave this partial index when delivered, so it stays as small as the
    # backlog. Its implicit rowid column breaks ties in insertion order.
    "CREATE INDEX outbox_undelivered ON outbox (created_at) WHERE delivered_at IS NULL",
    """
    CREATE TABLE inbound (
        inbound_id   TEXT PRIMARY KEY,
        processed_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    f"PRAGMA application_id = {APPLICATION_ID}",
)

# Snooze bookkeeping: how many snoozes a cycle used, and whether its timer was set by one.
_STEP_2 = (
    "ALTER TABLE cycles ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0 CHECK (snoozes >= 0)",
    "ALTER TABLE cycles ADD COLUMN snoozed INTEGER NOT NULL DEFAULT 0 CHECK (snoozed IN (0, 1))",
)

# An ask that left the outbox unsent, because the patient answered the dose or a newer
# ask of the same dose replaced it, is marked superseded. delivered_at then records when
# it left the outbox.
_STEP_3 = (
    "ALTER TABLE outbox ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0"
    " CHECK (superseded IN (0, 1))",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_STEP_1, _STEP_2, _STEP_3)
SCHEMA_VERSION = len(MIGRATIONS)

# --- Statements --------------------------------------------------------------------------

CYCLE_COLUMNS = (
    "dose_id, patient_id, medication_id, due_at, phase, asks_sent, next_at,"
    " first_asked_at, last_asked_at, hinted, last_phrase, answered_at, closed_at,"
    " snoozes, snoozed"
)
UPSERT_CYCLE = f"""
    INSERT INTO cycles ({CYCLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (dose_id) DO UPDATE SET
        phase = excluded.phase,
        asks_sent = excluded.asks_sent,
        next_at = excluded.next_at,
        first_asked_at = excluded.first_asked_at,
        last_asked_at = excluded.last_asked_at,
        hinted = excluded.hinted,
        last_phrase = excluded.last_phrase,
        answered_at = excluded.answered_at,
        closed_at = excluded.closed_at,
        snoozes = excluded.snoozes,
        snoozed = excluded.snoozed
"""
SELECT_CYCLES = f"SELECT {CYCLE_COLUMNS} FROM cycles"
SELECT_OPEN_CYCLES = f"{SELECT_CYCLES} WHERE phase IN ({_OPEN_PHASES}) ORDER BY next_at, dose_id"
SELECT_CYCLE = f"{SELECT_CYCLES} WHERE dose_id = ?"
SELECT_LAST_DUE = "SELECT max(due_at) FROM cycles WHERE patient_id = ? AND medication_id = ?"
# The cycles_by_medication index lets this run as one scan without a sort.
SELECT_LAST_DUES = "SELECT patient_id, medication_id, max(due_at) FROM cycles GROUP BY 1, 2"
SELECT_HISTORY = f"{SELECT_CYCLES} WHERE due_at >= ? AND due_at < ? ORDER BY due_at, dose_id"
SELECT_PATIENT_HISTORY = (
    f"{SELECT_CYCLES} WHERE patient_id = ? AND due_at >= ? AND due_at < ?"
    " ORDER BY due_at, dose_id"
)

# ON CONFLICT DO NOTHING targets only the key, unlike INSERT OR IGNORE, which would
# also drop rows that break a NOT NULL or CHECK constraint without an error.
INSERT_MESSAGE = """
    INSERT INTO outbox (message_id, patient_id, recipient, kind, body, created_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (message_id) DO NOTHING
"""
INSERT_INBOUND = """
    INSERT INTO inbound (inbound_id, processed_at) VALUES (?, ?)
    ON CONFLICT (inbound_id) DO NOTHING
"""
SELECT_INBOUND = "SELECT 1 FROM inbound WHERE inbound_id = ?"
# Only a dose that never got a message may be deleted; any later phase is history.
DELETE_SCHEDULED = f"DELETE FROM cycles WHERE dose_id = ? AND phase = '{Phase.SCHEDULED.value}'"

OUTBOX_COLUMNS = (
    "message_id, patient_id, recipient, kind, body, created_at,"
    " attempts, first_attempt_at, delivered_at, superseded"
)
# LIMIT -1 means no limit in SQLite.
SELECT_PENDING = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE delivered_at IS NULL"
    " ORDER BY created_at, rowid LIMIT ?"
)
# A half-open key range instead of LIKE, because ids may contain % and _. Every id that
# starts with "<dose id>/" sorts at or after that prefix and before "<dose id>0", since
# "0" is the character after "/" and the BINARY collation compares UTF-8 bytes.
SELECT_FOR_DOSE = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE message_id >= ? AND message_id < ?"
    " ORDER BY created_at, rowid"
)
MARK_ATTEMPTED = """
    UPDATE outbox
    SET attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?)
    WHERE message_id = ?
"""
MARK_SUPERSEDED = """
    UPDATE outbox SET delivered_at = coalesce(delivered_at, ?), superseded = 1
    WHERE message_id = ? AND delivered_at IS NULL
"""
MARK_DELIVERED = """
    UPDATE outbox SET delivered_at = coalesce(delivered_at, ?) WHERE message_id = ?
"""
