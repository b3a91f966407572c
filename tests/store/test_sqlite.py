"""SqliteStore: the store contract plus file handling, migrations and SQLite faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from medbot.errors import SchemaTooNewError, StoreError
from medbot.store import sqlite_schema as schema
from medbot.store.base import Change
from medbot.store.sqlite import SqliteStore, Synchronous
from tests.store.contract import DUE, StoreContract, StoreFactory, make_cycle, make_message

IS_ROOT = os.geteuid() == 0


class TestSqliteContract(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        path = tmp_path / "medbot.db"
        return lambda: SqliteStore(path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "medbot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db_path)
    await store.open()
    yield store
    await store.close()


def connection_of(store: SqliteStore) -> aiosqlite.Connection:
    """Return the store's connection, for tests that inject faults below the store."""
    connection = store._connection
    assert connection is not None
    return connection


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_pragma(path: Path, name: str) -> Any:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


def batch(count: int, body: str = "Did you take it?") -> list[Change]:
    """Build ``count`` changes of one open cycle and one ask each."""
    changes = []
    for index in range(count):
        cycle = make_cycle(medication=f"m{index}", next_at=DUE)
        changes.append(Change(cycles=[cycle], messages=[make_message(cycle.id, body=body)]))
    return changes


async def count_rows(store: SqliteStore) -> tuple[int, int]:
    """Return the number of cycles and of pending outbox entries."""
    cycles = await store.history(None, datetime(1970, 1, 1, tzinfo=UTC))
    return len(cycles), len(await store.pending_outbox())


# --- File modes and paths ------------------------------------------------------------------


async def test_new_file_mode_0600(db_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        store = SqliteStore(db_path)
        await store.open()
        await store.commit(batch(10))

        for suffix in ("", "-wal", "-shm"):
            path = db_path.with_name(db_path.name + suffix)
            assert file_mode(path) == 0o600, path
        await store.close()
    finally:
        os.umask(old_umask)


async def test_loose_mode_warns(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db_path.touch()
    db_path.chmod(0o644)
    store = SqliteStore(db_path)
    await store.open()
    await store.close()

    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert str(db_path) in warnings[0]
    assert "chmod 600" in warnings[0]


async def test_missing_parent_raises(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "medbot.db"
    with pytest.raises(StoreError) as caught:
        await SqliteStore(path).open()
    assert str(path) in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert not path.parent.exists()


async def test_create_parent_mode_0700(tmp_path: Path) -> None:
    path = tmp_path / "data" / "medbot" / "medbot.db"
    store = SqliteStore(path, create_parent=True)
    await store.open()
    await store.close()
    assert file_mode(path.parent) == 0o700
    assert file_mode(path) == 0o600


async def test_directory_path_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        await SqliteStore(tmp_path).open()


# --- Migrations ----------------------------------------------------------------------------


async def test_missing_file_migrated(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.open()
    await store.close()
    assert read_pragma(db_path, "user_version") == schema.SCHEMA_VERSION
    assert read_pragma(db_path, "application_id") == schema.APPLICATION_ID
    assert read_pragma(db_path, "journal_mode") == "wal"


async def test_empty_file_migrated(db_path: Path) -> None:
    db_path.touch(mode=0o600)
    store = SqliteStore(db_path)
    await store.open()
    await store.close()
    assert read_pragma(db_path, "user_version") == schema.SCHEMA_VERSION


async def test_concurrent_opens_migrate_once(db_path: Path) -> None:
    stores = [SqliteStore(db_path) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    for store in stores:
        await store.close()
    assert read_pragma(db_path, "user_version") == schema.SCHEMA_VERSION


async def test_version_one_database_upgraded(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        for statement in schema.MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO cycles (dose_id, patient_id, medication_id, due_at, phase, asks_sent,"
            " hinted) VALUES ('bob/insulin/x', 'bob', 'insulin', 0, 'asking', 1, 0)"
        )
        connection.execute("PRAGMA user_version = 1")
        connection.commit()

    store = SqliteStore(db_path)
    await store.open()
    cycles = await store.load_open_cycles()
    await store.close()

    assert read_pragma(db_path, "user_version") == schema.SCHEMA_VERSION
    assert len(cycles) == 1
    assert cycles[0].snoozes == 0
    assert cycles[0].snoozed is False


async def test_schema_too_new_raises(db_path: Path) -> None:
    newer = schema.SCHEMA_VERSION + 98
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute(f"PRAGMA user_version = {newer}")

    with pytest.raises(SchemaTooNewError) as caught:
        await SqliteStore(db_path).open()
    message = str(caught.value)
    assert f"version {newer}" in message
    assert f"up to {schema.SCHEMA_VERSION}" in message
    assert "upgrade medbot" in message
    assert read_pragma(db_path, "user_version") == newer


@pytest.mark.parametrize(
    "content",
    [b"medication list\n" * 512, b"SQLite format 3\x00" + b"\xff" * 4080],
    ids=["text", "bad-header"],
)
async def test_corrupted_file_raises(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    db_path.chmod(0o600)
    with pytest.raises(StoreError) as caught:
        await SqliteStore(db_path).open()
    assert str(db_path) in str(caught.value)
    assert "not a database" in str(caught.value)
    assert db_path.read_bytes() == content


async def test_foreign_database_raises(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError, match="another program"):
        await SqliteStore(db_path).open()


async def test_failed_step_rolls_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken_step = (*schema.MIGRATIONS[0], "CREATE TABLE broken (")
    monkeypatch.setattr(schema, "MIGRATIONS", (broken_step,))
    with pytest.raises(StoreError, match="migrate"):
        await SqliteStore(db_path).open()

    assert read_pragma(db_path, "user_version") == 0
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        tables = connection.execute("SELECT name FROM sqlite_schema").fetchall()
    assert tables == []


# --- Encoding and settings -----------------------------------------------------------------


async def test_times_stored_as_microseconds(db_path: Path) -> None:
    cycle = make_cycle(due=DUE + timedelta(microseconds=7))
    store = SqliteStore(db_path)
    await store.open()
    await store.commit([Change(cycles=[cycle])])
    await store.close()

    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        row = connection.execute("SELECT due_at, typeof(due_at) FROM cycles").fetchone()
    assert row == (int(DUE.timestamp()) * 1_000_000 + 7, "integer")


@pytest.mark.parametrize(("synchronous", "level"), [(Synchronous.NORMAL, 1), (Synchronous.FULL, 2)])
async def test_synchronous_setting(db_path: Path, synchronous: Synchronous, level: int) -> None:
    store = SqliteStore(db_path, synchronous=synchronous)
    await store.open()
    rows = list(await connection_of(store).execute_fetchall("PRAGMA synchronous"))
    await store.close()
    assert rows[0][0] == level


async def test_inbound_processed_at_from_clock(db_path: Path) -> None:
    store = SqliteStore(db_path, clock=lambda: DUE)
    await store.open()
    await store.commit([Change(inbound_ids=["in-1"])])
    await store.close()

    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        row = connection.execute("SELECT processed_at FROM inbound").fetchone()
    assert row == (int(DUE.timestamp()) * 1_000_000,)


async def test_open_twice_raises(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="already open"):
        await store.open()


# --- Faults inside transactions ------------------------------------------------------------


async def test_disk_full_rolls_back(store: SqliteStore) -> None:
    # At max_page_count SQLite fails with SQLITE_FULL, the code a full file system causes.
    connection = connection_of(store)
    [(pages,)] = await connection.execute_fetchall("PRAGMA page_count")
    await connection.execute(f"PRAGMA max_page_count = {pages + 8}")

    with pytest.raises(StoreError) as caught:
        await store.commit(batch(200, body="x" * 4000))
    assert "disk full" in str(caught.value)
    assert await count_rows(store) == (0, 0)

    await connection.execute("PRAGMA max_page_count = 4294967294")
    await store.commit(batch(200, body="x" * 4000))
    assert await count_rows(store) == (200, 200)


async def test_read_only_commit_rolls_back(store: SqliteStore) -> None:
    await store.commit(batch(1))
    # With query_only set, SQLite rejects writes with SQLITE_READONLY.
    await connection_of(store).execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match="read-only"):
        await store.commit(batch(3))
    assert await count_rows(store) == (1, 1)


async def test_failed_statement_rolls_back(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = connection_of(store)
    original = connection.executemany
    calls = 0

    def fail_second(statement: str, rows: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return original(statement, rows)

    monkeypatch.setattr(connection, "executemany", fail_second)
    with pytest.raises(StoreError, match="disk I/O error"):
        await store.commit(batch(5))
    monkeypatch.undo()

    assert calls == 2
    assert await count_rows(store) == (0, 0)


async def test_cancelled_commit_all_or_nothing(store: SqliteStore) -> None:
    task = asyncio.create_task(store.commit(batch(10_000)))
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert await count_rows(store) in ((0, 0), (10_000, 10_000))
    cycle = make_cycle(patient="alice")
    await store.commit([Change(cycles=[cycle])])
    assert await store.load_cycle(cycle.id) == cycle


async def test_commit_does_not_block_loop(store: SqliteStore) -> None:
    changes = batch(10_000)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    await store.commit(changes)
    await store.load_open_cycles()
    done.set()
    await ticker

    assert len(gaps) > 4
    assert max(gaps) < 0.2


# --- Process crash -------------------------------------------------------------------------

_COMMIT_THEN_KILL = """
import asyncio, os, signal, sys
from pathlib import Path
from medbot.store.sqlite import SqliteStore
from tests.store.test_sqlite import batch

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.open()
    await store.commit(batch(50))
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_commit_survives_sigkill(db_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _COMMIT_THEN_KILL, str(db_path), cwd=Path(__file__).parents[2]
    )
    assert await asyncio.wait_for(process.wait(), timeout=60) == -signal.SIGKILL
    assert db_path.with_name(db_path.name + "-wal").exists()

    store = SqliteStore(db_path)
    await store.open()
    assert await count_rows(store) == (50, 50)
    await store.close()


# --- Read-only files and directories -------------------------------------------------------
# Root may write any file, so as root these tests open the store in a subprocess whose
# capability set lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so file modes bind it.

_OPEN_AND_REPORT = """
import asyncio, sys
from pathlib import Path
from medbot.errors import StoreError
from medbot.store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    try:
        await store.open()
        await store.close()
    except StoreError as error:
        print(error)
    else:
        print("opened")

asyncio.run(main())
"""


def create_database(path: Path) -> bytes:
    async def create() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.commit(batch(3))
        await store.close()

    asyncio.run(create())
    return path.read_bytes()


def open_in_subprocess(path: Path) -> str:
    command = [sys.executable, "-c", _OPEN_AND_REPORT, str(path)]
    if IS_ROOT:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root this needs setpriv (util-linux) to drop file capabilities")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=True, cwd="/"
    )
    return result.stdout


def test_read_only_file_raises(db_path: Path) -> None:
    content = create_database(db_path)
    db_path.chmod(0o444)

    output = open_in_subprocess(db_path)
    assert "read-only" in output
    assert str(db_path) in output
    assert db_path.read_bytes() == content


def test_read_only_directory_raises(db_path: Path) -> None:
    content = create_database(db_path)
    db_path.parent.chmod(0o555)
    try:
        output = open_in_subprocess(db_path)
    finally:
        db_path.parent.chmod(0o700)
    assert "read-only" in output
    assert str(db_path.parent) in output
    assert db_path.read_bytes() == content


def test_read_only_directory_new_file(tmp_path: Path) -> None:
    directory = tmp_path / "locked"
    directory.mkdir(mode=0o555)
    try:
        output = open_in_subprocess(directory / "medbot.db")
    finally:
        directory.chmod(0o700)
    assert "read-only" in output
    assert not (directory / "medbot.db").exists()


async def test_read_only_file_system_named(tmp_path: Path) -> None:
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        database = mount_point / "medbot.sqlite3"
        store = SqliteStore(database)
        await store.open()
        await store.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)

        with pytest.raises(StoreError) as caught:
            await SqliteStore(database).open()
        assert "read-only file system" in str(caught.value)
        assert "chmod" not in str(caught.value)
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
