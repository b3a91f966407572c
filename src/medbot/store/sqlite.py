"""The embedded default store: one SQLite file in WAL mode, reached through aiosqlite.

aiosqlite runs every SQLite call in one worker thread per connection, and the store
converts domain objects to rows and back in that thread too, so the event loop does not
wait on the disk. The store owns one connection and runs its operations one at a time
under a lock. Without the lock, a read issued while a commit is half done would see that
commit's uncommitted rows, because they share the connection.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from medbot.core.models import Cycle, DoseKey, MessageKind, OutboxEntry, OutgoingMessage, Phase
from medbot.errors import SchemaTooNewError, StoreError
from medbot.store import sqlite_schema as schema
from medbot.store.base import Change

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Row = tuple[Any, ...]
_Batch = tuple[str, Iterable[_Row]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_END_OF_TIME = 2**63 - 1  # the largest INTEGER: the end of a history range without until
_BUSY_TIMEOUT_MS = 5000
_SUFFIXES = ("", "-wal", "-shm")  # the database file and the two files WAL mode adds


class Synchronous(enum.Enum):
    """SQLite's ``synchronous`` setting: how often a commit waits for fsync.

    NORMAL: in WAL mode a committed transaction survives a crash of the process but may
    be lost when the machine loses power. FULL: every commit waits for fsync of the WAL,
    so it also survives a power loss, at the cost of one fsync per commit.
    """

    NORMAL = "NORMAL"
    FULL = "FULL"


class SqliteStore:
    """The ``Store`` protocol on one SQLite database file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = Synchronous.NORMAL,
        create_parent: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Set up the store without touching the file, which ``open()`` does.

        ``create_parent`` lets ``open()`` create a missing parent directory (mode 0700).
        ``clock`` supplies the processed_at time of inbound ids and defaults to the
        system clock.
        """
        self._path = path
        self._synchronous = synchronous
        self._create_parent = create_parent
        self._clock = clock or _system_now
        self._connection: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    # --- Lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the database, creating it with mode 0600 and migrating it when needed."""
        if self._connection is not None:
            raise StoreError(f"store {self._path} is already open")
        await asyncio.to_thread(self._prepare_file)

        try:
            connection = await aiosqlite.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _store_error("open", self._path, exc) from exc

        try:
            await self._configure(connection)
            await self._migrate(connection)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        logger.info("opened store %s (schema version %d)", self._path, schema.SCHEMA_VERSION)

    async def close(self) -> None:
        """Close the connection, or do nothing when the store is not open."""
        connection = self._connection
        if connection is None:
            return
        async with self._lock:
            self._connection = None
            try:
                await connection.close()
            except sqlite3.Error as exc:
                raise _store_error("close", self._path, exc) from exc
        logger.info("closed store %s", self._path)

    def _prepare_file(self) -> None:
        """Create the parent directory if allowed and the file with mode 0600 if missing."""
        parent = self._path.parent
        if not parent.is_dir():
            self._create_parent_directory(parent)
        if self._path.is_dir():
            raise StoreError(f"database path {self._path} is a directory; name a file in it")

        try:
            descriptor = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            _check_writable(self._path)
            _warn_loose_modes(self._path)
            return
        except OSError as exc:
            raise _os_error("create", self._path, exc) from exc
        os.close(descriptor)
        logger.info("created database file %s", self._path)

    def _create_parent_directory(self, parent: Path) -> None:
        if not self._create_parent:
            raise StoreError(
                f"directory {parent} of database {self._path} does not exist;"
                " create it or choose another database path"
            )
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error("create directory for", self._path, exc) from exc

    async def _configure(self, connection: aiosqlite.Connection) -> None:
        try:
            await connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            rows = await self._enable_wal(connection)
            await connection.execute(f"PRAGMA synchronous = {self._synchronous.value}")
        except sqlite3.Error as exc:
            raise _store_error("open", self._path, exc) from exc
        mode = rows[0][0] if rows else None
        if mode != "wal":
            raise StoreError(f"open {self._path} failed: WAL journal mode unavailable ({mode})")

    async def _enable_wal(self, connection: aiosqlite.Connection) -> list[Any]:
        """Switch to WAL, retrying while another process holds the file.

        Switching a new file to WAL needs an exclusive lock, and SQLite can report the
        file as locked at once, without calling the busy handler, while a second process
        opens the same new file.
        """
        deadline = asyncio.get_running_loop().time() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return list(await connection.execute_fetchall("PRAGMA journal_mode = WAL"))
            except sqlite3.OperationalError as exc:
                locked = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not locked or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    # --- Migrations ----------------------------------------------------------------------

    async def _migrate(self, connection: aiosqlite.Connection) -> None:
        """Apply the missing migration steps, each in its own transaction.

        The version is read inside each transaction, so two processes opening the same
        file at once apply every step exactly once.
        """
        while True:
            try:
                await connection.execute("BEGIN IMMEDIATE")
                version = await self._check_version(connection)
                if version == schema.SCHEMA_VERSION:
                    await connection.execute("COMMIT")
                    return
                await self._apply_step(connection, version + 1)
            except BaseException as exc:
                await _rollback(connection, self._path)
                if isinstance(exc, sqlite3.Error):
                    raise _store_error("migrate", self._path, exc) from exc
                raise

    async def _check_version(self, connection: aiosqlite.Connection) -> int:
        version = await _fetch_int(connection, "PRAGMA user_version")
        if version > schema.SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"database {self._path} has schema version {version}, but this medbot"
                f" supports versions up to {schema.SCHEMA_VERSION}; upgrade medbot to open it"
            )
        if version == 0:
            tables = await _fetch_int(connection, "SELECT count(*) FROM sqlite_schema")
            foreign = tables > 0
        else:
            foreign = await _fetch_int(connection, "PRAGMA application_id") != schema.APPLICATION_ID
        if foreign:
            raise StoreError(
                f"{self._path} is an SQLite database of another program;"
                " choose another database path"
            )
        return version

    async def _apply_step(self, connection: aiosqlite.Connection, version: int) -> None:
        for statement in schema.MIGRATIONS[version - 1]:
            await connection.execute(statement)
        await connection.execute(f"PRAGMA user_version = {version}")
        await connection.execute("COMMIT")
        logger.info("migrated store %s to schema version %d", self._path, version)

    # --- Writes --------------------------------------------------------------------------

    async def commit(self, changes: Sequence[Change]) -> None:
        """Write all ``changes`` in one transaction; nothing is written if any part fails."""
        processed_at = _encode_time(self._clock())
        batches: list[_Batch] = []
        if any(change.cycles for change in changes):
            batches.append((schema.UPSERT_CYCLE, _cycle_rows(changes)))
        if any(change.messages for change in changes):
            batches.append((schema.INSERT_MESSAGE, _message_rows(changes)))
        if any(change.inbound_ids for change in changes):
            batches.append((schema.INSERT_INBOUND, _inbound_rows(changes, processed_at)))
        if any(change.unscheduled for change in changes):
            batches.append((schema.DELETE_SCHEDULED, _unscheduled_rows(changes)))
        await self._write("commit to", batches)

    async def mark_attempted(self, message_ids: Sequence[str], at: datetime) -> None:
        """Count one send attempt for each message and set its first attempt time once."""
        encoded = _encode_time(at)
        rows = [(encoded, message_id) for message_id in message_ids]
        await self._write("mark attempted in", [(schema.MARK_ATTEMPTED, rows)])

    async def mark_delivered(self, message_ids: Sequence[str], at: datetime) -> None:
        """Set the delivery time of each message; a message delivered before keeps its time."""
        encoded = _encode_time(at)
        rows = [(encoded, message_id) for message_id in message_ids]
        await self._write("mark delivered in", [(schema.MARK_DELIVERED, rows)])

    async def mark_superseded(self, message_ids: Sequence[str], at: datetime) -> None:
        """Take undelivered messages out of the outbox unsent, marked superseded."""
        encoded = _encode_time(at)
        rows = [(encoded, message_id) for message_id in message_ids]
        await self._write("mark superseded in", [(schema.MARK_SUPERSEDED, rows)])

    async def _write(self, operation: str, batches: Sequence[_Batch]) -> None:
        """Run ``batches`` in one IMMEDIATE transaction; roll back and raise on any error.

        The row iterables are consumed in the worker thread, so a value that fails to
        convert (such as a naive datetime) also rolls the whole transaction back.
        """
        if not batches:
            return
        connection = self._require_open(operation)
        async with self._lock:
            try:
                await connection.execute("BEGIN IMMEDIATE")
                for statement, rows in batches:
                    await connection.executemany(statement, rows)
                await connection.execute("COMMIT")
            except BaseException as exc:
                # Runs on cancellation too: the worker thread finishes the queued call and
                # then this ROLLBACK, so the next transaction starts clean.
                await _rollback(connection, self._path)
                if isinstance(exc, Exception):
                    raise _store_error(operation, self._path, exc) from exc
                raise

    # --- Reads ---------------------------------------------------------------------------

    async def load_open_cycles(self) -> list[Cycle]:
        """Return every cycle whose phase is SCHEDULED or ASKING, by next timer time."""
        return await self._fetch("load open cycles from", schema.SELECT_OPEN_CYCLES, (), _cycle)

    async def load_cycle(self, dose_id: str) -> Cycle | None:
        """Return the cycle with this dose id, or None."""
        rows = await self._fetch("load cycle from", schema.SELECT_CYCLE, (dose_id,), _cycle)
        return rows[0] if rows else None

    async def last_due(self, patient_id: str, medication_id: str) -> datetime | None:
        """Return the latest due time of any cycle of this medication, or None."""
        parameters = (patient_id, medication_id)
        statement = schema.SELECT_LAST_DUE
        rows = await self._fetch("read last due time from", statement, parameters, _first)
        return _decode_optional(rows[0]) if rows else None

    async def last_dues(self) -> dict[tuple[str, str], datetime]:
        """Return the latest due time of every medication that has a cycle, in one query."""
        rows = await self._fetch("read due times from", schema.SELECT_LAST_DUES, (), _last_due)
        return dict(rows)

    async def is_inbound_processed(self, inbound_id: str) -> bool:
        """Return whether a commit has recorded this inbound message id."""
        statement = schema.SELECT_INBOUND
        rows = await self._fetch("read inbound ids from", statement, (inbound_id,), _first)
        return bool(rows)

    async def pending_outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """Return undelivered outbox entries, oldest first (ties in insertion order)."""
        bound = -1 if limit is None else limit
        return await self._fetch("read outbox of", schema.SELECT_PENDING, (bound,), _outbox_entry)

    async def history(
        self, patient_id: str | None, since: datetime, until: datetime | None = None
    ) -> list[Cycle]:
        """Return cycles whose due time lies in [since, until), by due time then dose id.

        ``patient_id`` None returns the cycles of every patient.
        """
        end = _END_OF_TIME if until is None else _encode_time(until)
        bounds = (_encode_time(since), end)
        if patient_id is None:
            return await self._fetch("read history from", schema.SELECT_HISTORY, bounds, _cycle)
        statement = schema.SELECT_PATIENT_HISTORY
        return await self._fetch("read history from", statement, (patient_id, *bounds), _cycle)

    async def outbox_for_dose(self, dose_id: str) -> list[OutboxEntry]:
        """Return every outbox entry whose message id starts with ``dose_id + "/"``."""
        bounds = (dose_id + "/", dose_id + "0")
        return await self._fetch("read outbox of", schema.SELECT_FOR_DOSE, bounds, _outbox_entry)

    async def _fetch(
        self,
        operation: str,
        statement: str,
        parameters: tuple[Any, ...],
        decode: Callable[[sqlite3.Cursor, _Row], _T],
    ) -> list[_T]:
        """Run one query and convert its rows with ``decode`` in the worker thread."""
        connection = self._require_open(operation)
        async with self._lock:
            try:
                cursor = await connection.cursor()
                # aiosqlite annotates this setter as taking a type, but sqlite3 accepts
                # any callable of (cursor, row).
                cursor.row_factory = decode  # type: ignore[assignment]
                await cursor.execute(statement, parameters)
                rows: list[_T] = list(await cursor.fetchall())  # type: ignore[arg-type]
                await cursor.close()
            except sqlite3.Error as exc:
                raise _store_error(operation, self._path, exc) from exc
        return rows

    def _require_open(self, operation: str) -> aiosqlite.Connection:
        if self._connection is None:
            raise StoreError(f"{operation} {self._path} failed: the store is not open")
        return self._connection


# --- Time encoding -----------------------------------------------------------------------


def _system_now() -> datetime:
    return datetime.now(UTC)


def _encode_time(value: datetime) -> int:
    """Return microseconds since the epoch. A naive datetime raises TypeError."""
    return (value - _EPOCH) // _MICROSECOND


def _encode_optional(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def _decode_time(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _decode_optional(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


# --- Rows --------------------------------------------------------------------------------


def _cycle_rows(changes: Sequence[Change]) -> Iterator[_Row]:
    for change in changes:
        for cycle in change.cycles:
            key = cycle.key
            yield (
                key.id,
                key.patient_id,
                key.medication_id,
                _encode_time(key.due_at),
                cycle.phase.value,
                cycle.asks_sent,
                _encode_optional(cycle.next_at),
                _encode_optional(cycle.first_asked_at),
                _encode_optional(cycle.last_asked_at),
                1 if cycle.hinted else 0,
                cycle.last_phrase,
                _encode_optional(cycle.answered_at),
                _encode_optional(cycle.closed_at),
                cycle.snoozes,
                1 if cycle.snoozed else 0,
            )


def _message_rows(changes: Sequence[Change]) -> Iterator[_Row]:
    for change in changes:
        for message in change.messages:
            yield (
                message.message_id,
                message.patient_id,
                message.recipient,
                message.kind.value,
                message.body,
                _encode_time(message.created_at),
            )


def _unscheduled_rows(changes: Sequence[Change]) -> Iterator[_Row]:
    for change in changes:
        for dose_id in change.unscheduled:
            yield (dose_id,)


def _inbound_rows(changes: Sequence[Change], processed_at: int) -> Iterator[_Row]:
    for change in changes:
        for inbound_id in change.inbound_ids:
            yield (inbound_id, processed_at)


def _cycle(_cursor: sqlite3.Cursor, row: _Row) -> Cycle:
    return Cycle(
        key=DoseKey(row[1], row[2], _decode_time(row[3])),
        phase=Phase(row[4]),
        asks_sent=row[5],
        next_at=_decode_optional(row[6]),
        first_asked_at=_decode_optional(row[7]),
        last_asked_at=_decode_optional(row[8]),
        hinted=bool(row[9]),
        last_phrase=row[10],
        answered_at=_decode_optional(row[11]),
        closed_at=_decode_optional(row[12]),
        snoozes=row[13],
        snoozed=bool(row[14]),
    )


def _outbox_entry(_cursor: sqlite3.Cursor, row: _Row) -> OutboxEntry:
    message = OutgoingMessage(
        message_id=row[0],
        patient_id=row[1],
        recipient=row[2],
        kind=MessageKind(row[3]),
        body=row[4],
        created_at=_decode_time(row[5]),
    )
    return OutboxEntry(
        message=message,
        attempts=row[6],
        first_attempt_at=_decode_optional(row[7]),
        delivered_at=_decode_optional(row[8]),
        superseded=bool(row[9]),
    )


def _last_due(_cursor: sqlite3.Cursor, row: _Row) -> tuple[tuple[str, str], datetime]:
    return (row[0], row[1]), _decode_time(row[2])


def _first(_cursor: sqlite3.Cursor, row: _Row) -> Any:
    return row[0]


async def _fetch_int(connection: aiosqlite.Connection, statement: str) -> int:
    rows = list(await connection.execute_fetchall(statement))
    return int(rows[0][0])


async def _rollback(connection: aiosqlite.Connection, path: Path) -> None:
    try:
        await connection.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        # SQLite ends the transaction itself after some errors (a full disk among them),
        # and a cancelled call may have stopped before BEGIN. Then nothing is left to
        # roll back.
        logger.debug("rollback on %s skipped: %s", path, exc)


# --- Files and errors --------------------------------------------------------------------


def _check_writable(path: Path) -> None:
    """Raise StoreError unless this process may write the file and its directory.

    SQLite would open a read-only file read-only and fail only at the first write, and
    WAL mode must be able to create two files next to the database.
    """
    if _on_read_only_file_system(path):
        raise StoreError(
            f"database file {path} is on a read-only file system; remount it read-write"
            " or set bot.database to a path on a writable file system"
        )
    if not os.access(path, os.W_OK):
        raise StoreError(
            f"database file {path} is read-only for this user; make it writable"
            f" (chmod u+w) or run medbot as its owner"
        )
    if not os.access(path.parent, os.W_OK):
        raise StoreError(
            f"directory {path.parent} of database {path} is read-only for this user;"
            " make it writable, because SQLite creates the -wal and -shm files there"
        )


def _on_read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _warn_loose_modes(path: Path) -> None:
    """Log a warning for each database file that users other than the owner can access."""
    for suffix in _SUFFIXES:
        file = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            logger.warning(
                "database file %s has mode %04o, so other users can read it;"
                " run chmod 600 on it",
                file,
                mode,
            )


# Primary result codes (https://www.sqlite.org/rescode.html). Extended codes carry the
# primary code in their low byte.
_SQLITE_BUSY = 5
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_REASONS = {
    _SQLITE_FULL: "disk full; free space on its file system, then retry",
    _SQLITE_READONLY: "the database is read-only; make the file and its directory"
    " writable by this user",
    _SQLITE_CORRUPT: "the file is corrupted; restore it from a backup, or move it away"
    " to start with an empty database",
    _SQLITE_NOTADB: "the file is not a database or is corrupted; restore it from a"
    " backup, or move it away to start with an empty database",
    _SQLITE_CANTOPEN: "unable to open the file; check that it and its directory exist"
    " and that this user may read and write both",
    _SQLITE_BUSY: "the database is locked by another process; stop the other medbot"
    " process that uses this file",
}


def _store_error(operation: str, path: Path, exc: BaseException) -> StoreError:
    """Build a StoreError naming the operation, the path and the fix.

    Only SQLite's own message is included, because it never contains bound values,
    whereas the text of other exceptions might quote a message body.
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.Error):
        # An error raised by Python code rather than by SQLite has no error code.
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        reason = _REASONS.get(code, f"SQLite error {name}: {exc}")
    else:
        reason = f"a value could not be stored ({type(exc).__name__})"
    return StoreError(f"{operation} {path} failed: {reason}")


def _os_error(operation: str, path: Path, exc: OSError) -> StoreError:
    if isinstance(exc, PermissionError):
        reason = "permission denied, the directory is read-only for this user; make it writable"
    elif exc.errno == errno.EROFS:
        reason = "read-only file system"
    else:
        reason = exc.strerror or type(exc).__name__
    return StoreError(f"{operation} {path} failed: {reason}")
