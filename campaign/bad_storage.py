"""Bad storage: a read-only file system, a full disk, a corrupted file, a newer schema.

Each case runs ``medbot run`` on the console transport the way a supervisor such as
systemd would: start it, and when it exits, start it again, a few times. The patient
must never get a message twice, and a database the bot cannot use must be left as it
was, never replaced or emptied. A case passes when every start either exits non-zero
with a clear message or keeps running without duplicate sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign import configs, database, mounts
from campaign.console_bot import ConsoleBot
from campaign.context import Campaign
from campaign.results import SectionResult
from medbot.store.sqlite import SqliteStore
from medbot.store.sqlite_schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

SUPERVISOR_STARTS = 3  # starts per broken database, as a restarting supervisor would
START_WAIT = 10.0  # seconds a start may run before it counts as "keeps running"
SPACING = timedelta(seconds=3)
REASK = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class StartOutcome:
    returncode: int | None  # None: still running after START_WAIT, then stopped
    messages: int
    output: str


def _patients(start: datetime, count: int) -> tuple[configs.PatientPlan, ...]:
    times = configs.compressed_plan(start, count, SPACING)
    medication = configs.MedicationPlan("insulin", "Insulin", times, REASK, 2)
    return (configs.PatientPlan("bob", "Bob", "bob@medbot.test", (medication,)),)


def _write_config(directory: Path, db_path: Path, doses: int) -> Path:
    start = datetime.now(UTC) + timedelta(seconds=3)
    document = configs.console_config(db_path, _patients(start, doses))
    return configs.write_config(directory / "medbot.toml", document)


def create_database(path: Path) -> None:
    """Create an empty, fully migrated medbot database at ``path``."""

    async def create() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.close()

    asyncio.run(create())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _supervise(config: Path, log_file: Path, starts: int) -> list[StartOutcome]:
    """Start the bot ``starts`` times, each until it exits or START_WAIT passes."""
    outcomes = []
    for _ in range(starts):
        offset = log_file.stat().st_size if log_file.exists() else 0
        bot = ConsoleBot(config, log_file)
        bot.start()
        code = bot.wait(START_WAIT)
        bot.stop()
        with log_file.open("rb") as handle:
            handle.seek(offset)
            output = handle.read().decode("utf-8", errors="replace")
        outcomes.append(StartOutcome(code, len(bot.messages), output))
    return outcomes


def _judge_refusal(
    result: SectionResult, case: str, outcomes: list[StartOutcome], words: tuple[str, ...]
) -> None:
    """Record that every start exited non-zero, clearly, and sent nothing."""
    codes = [outcome.returncode for outcome in outcomes]
    result.check(f"{case}: exits non-zero", all(code not in (0, None) for code in codes),
                 f"exit codes {codes}")
    output = outcomes[0].output
    result.check(f"{case}: no traceback", "Traceback" not in output, _tail(output))
    named = any(word.casefold() in output.casefold() for word in words)
    result.check(f"{case}: message names the problem", named, _tail(output))
    sent = sum(outcome.messages for outcome in outcomes)
    result.expect_equal(f"{case}: messages sent", sent, 0)
    result.figures[f"{case}_error"] = _error_line(output)


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:])[:400]


def _error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if not line.startswith("===")]
    return lines[-1][:300] if lines else "(no output)"


def _refusal_case(
    result: SectionResult,
    directory: Path,
    name: str,
    damage: Callable[[Path], None],
    words: tuple[str, ...],
) -> None:
    db_path = directory / "medbot.sqlite3"
    create_database(db_path)
    damage(db_path)
    before = _digest(db_path)
    config = _write_config(directory, db_path, doses=2)
    outcomes = _supervise(config, directory / "bot.log", SUPERVISOR_STARTS)
    _judge_refusal(result, name, outcomes, words)
    result.check(f"{name}: file left unchanged", _digest(db_path) == before, "file changed")


def _corrupt_page(path: Path, seed: int) -> None:
    """Overwrite everything after the first page with random bytes.

    The header and schema page stay intact, so the file still opens as SQLite and the
    damage shows only when the tables are read.
    """
    rng = random.Random(seed)
    size = max(path.stat().st_size, 8192)
    with path.open("r+b") as handle:
        handle.seek(4096)
        handle.write(rng.randbytes(size - 4096))


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is a shopping list, not a database\n" * 200)


def _newer_schema(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    connection.close()


def run_read_only(result: SectionResult, directory: Path) -> None:
    mount_point = directory / "mount"
    try:
        with mounts.tmpfs(mount_point, 4 * 1024 * 1024):
            db_path = mount_point / "medbot.sqlite3"
            create_database(db_path)
            config = _write_config(directory, db_path, doses=2)
            mounts.remount_read_only(mount_point)
            outcomes = _supervise(config, directory / "bot.log", SUPERVISOR_STARTS)
            _judge_refusal(result, "read-only", outcomes, ("read-only", "readonly", str(db_path)))
    except mounts.MountUnavailable as error:
        result.figures["read-only"] = f"not run: {error}"


def run_full_disk(result: SectionResult, directory: Path) -> None:
    """Fill the disk while the bot runs, then free it and let the bot carry on."""
    mount_point = directory / "mount"
    try:
        with mounts.tmpfs(mount_point, 2 * 1024 * 1024):
            _full_disk_in(result, directory, mount_point)
    except mounts.MountUnavailable as error:
        result.figures["full-disk"] = f"not run: {error}"


def _full_disk_in(result: SectionResult, directory: Path, mount_point: Path) -> None:
    db_path = mount_point / "medbot.sqlite3"
    create_database(db_path)
    config = _write_config(directory, db_path, doses=12)
    log_file = directory / "bot.log"
    filler = mount_point / "filler"

    first = ConsoleBot(config, log_file)
    first.start()
    first.wait_for_messages(1, 15)
    mounts.fill(filler)
    full_code = first.wait(4 * SPACING.total_seconds())
    filler.unlink()
    if full_code is None:
        # Still running: give it time to recover on its own once space is back.
        time.sleep(3 * SPACING.total_seconds())
    printed = [*first.messages]
    first_code = first.stop()

    second = ConsoleBot(config, log_file)
    second.start()
    time.sleep(4 * SPACING.total_seconds())
    second.stop()
    printed.extend(second.messages)

    behaviour = "kept running" if full_code is None else f"exited with {full_code}"
    result.figures["full-disk_behaviour"] = behaviour
    result.figures["full-disk_exit_after_stop"] = str(first_code)
    result.figures["full-disk_messages"] = len(printed)
    output = log_file.read_text(encoding="utf-8", errors="replace")
    result.check("full-disk: no traceback", "Traceback" not in output, _tail(output))
    full_named = any(word in output.casefold() for word in ("full", "no space", "disk"))
    result.check("full-disk: error names the full disk", full_named, _tail(output))
    rows = database.read_outbox(db_path)
    result.check("full-disk: no message sent twice", len(printed) <= len(rows),
                 f"{len(printed)} printed, {len(rows)} outbox rows")
    undelivered = [row.message_id for row in rows if not row.delivered]
    result.expect_equal("full-disk: undelivered after recovery", undelivered, [])


def run(result: SectionResult, campaign: Campaign) -> None:
    """Run every storage case in its own directory."""
    base = campaign.directory("bad_storage")
    run_read_only(result, _fresh(base, "read-only"))
    run_full_disk(result, _fresh(base, "full-disk"))
    _refusal_case(result, _fresh(base, "corrupt"), "corrupted",
                  lambda path: _corrupt_page(path, result.seed), ("malformed", "corrupt"))
    _refusal_case(result, _fresh(base, "not-a-db"), "not-a-database", _not_a_database,
                  ("not a database", "not a medbot database"))
    _refusal_case(result, _fresh(base, "newer"), "newer-schema", _newer_schema,
                  ("newer", "version"))
    for case in ("read-only", "full-disk", "corrupt", "not-a-db", "newer"):
        campaign.evidence.bot_logs.append(base / case / "bot.log")


def _fresh(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=False)
    return path
