"""Bad configuration: generated invalid files given to ``medbot check`` and ``medbot run``.

Each case takes a valid configuration, breaks one thing, and expects both commands to
exit non-zero with one short paragraph that names the broken key, with no traceback,
and without creating the database file.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from campaign import configs, toml_text
from campaign.bot import CommandResult, run_medbot
from campaign.results import SectionResult

log = logging.getLogger(__name__)

Document = dict[str, Any]
Mutation = Callable[[Document, Path], None]

# The loader rejects every case before any connection; this port has no listener, so
# even a wrongly accepted case reaches nothing.
CLOSED_PORT = 9


@dataclass(frozen=True, slots=True)
class Case:
    """One broken configuration and the word its error message must contain."""

    name: str
    key: str
    mutate: Mutation
    raw: bytes | None = None  # file content that replaces the generated TOML


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    command: str
    result: CommandResult
    database_created: bool


def _medication(document: Document) -> Document:
    medication: Document = document["patients"][0]["medications"][0]
    return medication


def _patient(document: Document) -> Document:
    patient: Document = document["patients"][0]
    return patient


def _set(path: str, value: object) -> Mutation:
    """Return a mutation that sets the dotted ``path`` to ``value``.

    The scope before the dot is p (first patient), m (its first medication), x (the
    xmpp table), b (the bot table) or empty (the top level).
    """
    scope, _, key = path.partition(".")

    def mutate(document: Document, _root: Path) -> None:
        _table(document, scope)[key] = value

    return mutate


def _drop(path: str) -> Mutation:
    scope, _, key = path.partition(".")

    def mutate(document: Document, _root: Path) -> None:
        del _table(document, scope)[key]

    return mutate


def _table(document: Document, scope: str) -> Document:
    if scope == "p":
        return _patient(document)
    if scope == "m":
        return _medication(document)
    if scope in ("x", "b"):
        table: Document = document["xmpp" if scope == "x" else "bot"]
        return table
    return document


def _duplicate_patient(document: Document, _root: Path) -> None:
    twin = copy.deepcopy(_patient(document))
    twin["address"] = "other@medbot.test"
    document["patients"].append(twin)


def _duplicate_medication(document: Document, _root: Path) -> None:
    _patient(document)["medications"].append(copy.deepcopy(_medication(document)))


def _duplicate_address(document: Document, _root: Path) -> None:
    twin = copy.deepcopy(_patient(document))
    twin["id"] = "twin"
    document["patients"].append(twin)


def _missing_password_file(document: Document, root: Path) -> None:
    document["xmpp"]["password_file"] = str(root / "no-such-password-file")


def _directory_password_file(document: Document, root: Path) -> None:
    document["xmpp"]["password_file"] = str(root)


def _no_patients(document: Document, _root: Path) -> None:
    document["patients"] = []


def _keep(document: Document, _root: Path) -> None:
    return None


FIXED_CASES: tuple[Case, ...] = (
    Case("asks is text", "asks", _set("m.asks", "three")),
    Case("asks is zero", "asks", _set("m.asks", 0)),
    Case("asks is negative", "asks", _set("m.asks", -2)),
    Case("interval is a number", "reask_interval", _set("m.reask_interval", 20)),
    Case("interval has no unit", "reask_interval", _set("m.reask_interval", "20")),
    Case("interval is fractional", "reask_interval", _set("m.reask_interval", "1.5h")),
    Case("interval is negative", "reask_interval", _set("m.reask_interval", "-5m")),
    Case("interval is zero", "reask_interval", _set("m.reask_interval", "0s")),
    Case("interval is prose", "reask_interval", _set("m.reask_interval", "a little while")),
    Case("time out of range", "times", _set("m.times", ["25:00"])),
    Case("time is a number", "times", _set("m.times", [2000])),
    Case("time is prose", "times", _set("m.times", ["after dinner"])),
    Case("unknown top-level key", "databse", _set(".databse", "x.sqlite3")),
    Case("unknown bot key", "databse", _set("b.databse", "x.sqlite3")),
    Case("unknown patient key", "phone", _set("p.phone", "+1 555 0100")),
    Case("unknown medication key", "dosage", _set("m.dosage", "10 units")),
    Case("unknown xmpp key", "passwort", _set("x.passwort", "hunter2")),
    Case("zone does not exist", "time_zone", _set("p.time_zone", "Mars/Olympus_Mons")),
    Case("zone is a number", "time_zone", _set("p.time_zone", 2)),
    Case("bot zone is bad", "time_zone", _set("b.time_zone", "Europe/Atlantis")),
    Case("duplicate patient id", "id", _duplicate_patient),
    Case("duplicate medication id", "id", _duplicate_medication),
    Case("duplicate patient address", "address", _duplicate_address),
    Case("password file missing", "password_file", _missing_password_file),
    Case("password file is a directory", "password_file", _directory_password_file),
    Case("address missing", "address", _drop("p.address")),
    Case("patient id missing", "id", _drop("p.id")),
    Case("transport unknown", "transport", _set("b.transport", "carrier-pigeon")),
    Case("database is a number", "database", _set("b.database", 42)),
    Case("xmpp table missing", "xmpp", _drop(".xmpp")),
    Case("port out of range", "port", _set("x.port", 70000)),
    Case("port is text", "port", _set("x.port", "five")),
    Case("tls mode unknown", "tls", _set("x.tls", "maybe")),
    Case("language unknown", "language", _set("p.language", "tlh")),
    Case("patients empty", "patients", _no_patients),
    Case("address is not a JID", "address", _set("p.address", "not a chat address")),
    Case("TOML syntax error", "line", _keep, raw=b'database = "x.sqlite3"\n[patients\n'),
    Case("not UTF-8", "UTF-8", _keep, raw=b'database = "\xff\xfe"\n'),
)

# Values the random generator puts at random keys: each is the wrong type or out of
# range for every key it may land on.
_RANDOM_VALUES: tuple[object, ...] = (
    -1, 0, 3.5, True, "", " ", "\u202e", "🙂", [], [1, "a"], {"a": 1}, "x" * 5000,
)
_RANDOM_KEYS = (
    "m.asks", "m.reask_interval", "m.times", "m.id", "m.late_window", "p.time_zone",
    "p.id", "p.address", "p.language", "x.port", "x.tls", "x.jid", "b.time_zone",
    "b.transport",
)


def generated_cases(rng: random.Random, count: int) -> list[Case]:
    """Return ``count`` cases that each put a random bad value at a random key."""
    cases = []
    for index in range(count):
        path = rng.choice(_RANDOM_KEYS)
        value = rng.choice(_RANDOM_VALUES)
        key = path.partition(".")[2]
        cases.append(Case(f"random {index}: {key} = {value!r:.30}", key, _set(path, value)))
    return cases


def _base_document(root: Path, database: Path) -> Document:
    password = root / "password"
    password.write_text("campaign-password\n", encoding="utf-8")
    password.chmod(0o600)
    target = configs.XmppTarget("bot@medbot.test", password, CLOSED_PORT, None)
    due = datetime.now(UTC) + timedelta(hours=1)
    medication = configs.MedicationPlan("insulin", "Insulin", (due,), timedelta(minutes=20), 3)
    patient = configs.PatientPlan("bob", "Bob", "bob@medbot.test", (medication,))
    return configs.bot_config(database, target, (patient,))


def _write_case(case: Case, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True)
    database = directory / "medbot.sqlite3"
    document = _base_document(directory, database)
    case.mutate(document, directory)
    path = directory / "medbot.toml"
    if case.raw is not None:
        path.write_bytes(case.raw)
    else:
        path.write_text(toml_text.dumps(document), encoding="utf-8")
    return path, database


def _run_case(case: Case, directory: Path, command: str) -> Outcome:
    path, database = _write_case(case, directory)
    result = run_medbot([command, "--config", str(path)], cwd=directory, timeout=30)
    created = any(database.with_name(database.name + s).exists() for s in ("", "-wal"))
    return Outcome(case, command, result, created)


def judge(outcome: Outcome) -> list[str]:
    """Return what is wrong with one command's reaction to one bad configuration."""
    problems = []
    result = outcome.result
    text = (result.stderr + result.stdout).strip()
    if result.returncode == 0:
        problems.append("exited 0")
    if "Traceback" in text:
        problems.append("printed a traceback")
    if outcome.case.key.casefold() not in text.casefold():
        problems.append(f"error does not name {outcome.case.key!r}")
    if "\n\n" in text or len(text.splitlines()) > 8:
        problems.append("error is longer than one paragraph")
    if outcome.database_created:
        problems.append("created the database file")
    return problems


def run(result: SectionResult, workdir: Path, generated: int, both: bool) -> None:
    """Run every fixed case and ``generated`` random ones.

    With ``both`` each case goes through ``medbot check`` and ``medbot run``; without it
    the cases alternate between the two commands, which halves the time.
    """
    rng = random.Random(result.seed)
    cases = [*FIXED_CASES, *generated_cases(rng, generated)]
    jobs = [
        (case, workdir / f"case-{index:03d}-{command}", command)
        for index, case in enumerate(cases)
        for command in ("check", "run")
        if both or command == ("check", "run")[index % 2]
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: _run_case(*job), jobs))
    log.info("ran %d bad-config commands in %.1f s", len(jobs), time.monotonic() - started)

    failures = [(outcome, judge(outcome)) for outcome in outcomes]
    failures = [(outcome, problems) for outcome, problems in failures if problems]
    result.figures["configs"] = len(cases)
    result.figures["commands"] = len(outcomes)
    result.figures["bad_reactions"] = len(failures)
    for outcome, problems in failures:
        result.check(
            f"{outcome.command}: {outcome.case.name}",
            False,
            "; ".join(problems) + f" | output: {_output(outcome)}",
        )
    result.check("every bad configuration rejected cleanly", not failures, f"{len(failures)} bad")
    for outcome in outcomes[:: max(1, len(outcomes) // 5)]:
        result.figures[f"example: {outcome.command}, {outcome.case.name}"] = _output(outcome)


def _output(outcome: Outcome) -> str:
    text = (outcome.result.stderr + outcome.result.stdout).strip()
    return text[:400] if text else "(no output)"
