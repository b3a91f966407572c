"""The TOML configuration: typed, frozen, validated once at start-up.

``load_config`` reads one TOML file, checks it in two passes and returns a frozen
``Config``. The first pass (pydantic, strict, unknown keys rejected) checks each key on
its own: its type and its format. The second pass checks what spans keys: unique ids and
addresses, the [xmpp] table against the transport, password and CA files. Every problem
found in a pass is reported in one ConfigError, one line each, as
``key.path = value: what is wrong and how to fix it``. The first pass lives in
``medbot.config_schema``.

Loading creates no directories, writes nothing and configures no logging. Relative paths
in the file are resolved against the folder that contains the file.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import tomllib
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import ValidationError

from medbot.config_schema import (
    BARE_JID,
    ENV_NAME,
    EXAMPLE_FILE,
    FileSection,
    MedicationSection,
    PatientSection,
    Problem,
    XmppSection,
    parse_wall_time,
    problem_from,
    schedule_of,
    show_value,
)
from medbot.core.durations import format_duration, parse_duration
from medbot.core.models import Medication, Patient, Wording
from medbot.core.schedule import describe_schedule, next_occurrence
from medbot.core.schedule import validate_schedule as check_schedule
from medbot.errors import ConfigError


class TransportKind(enum.Enum):
    CONSOLE = "console"
    XMPP = "xmpp"


class TlsMode(enum.Enum):
    STARTTLS = "starttls"  # plain TCP upgraded with STARTTLS (RFC 6120), port 5222 by default
    DIRECT = "direct"  # TLS from the first byte (XEP-0368), port 5223 by default
    NONE = "none"  # no TLS; allowed only with allow_plaintext and a loopback host


@dataclass(frozen=True, slots=True)
class XmppSettings:
    jid: str
    password_file: Path | None  # exactly one of password_file and password_env is set
    password_env: str | None
    host: str | None = None  # None: DNS SRV look-up of the JID's domain
    port: int | None = None
    tls: TlsMode = TlsMode.STARTTLS
    ca_file: Path | None = None  # None: the system trust store
    allow_plaintext: bool = False
    resource: str | None = None  # None: a fresh resource per process


@dataclass(frozen=True, slots=True)
class Config:
    source: Path  # the file this was loaded from, for messages
    default_zone: zoneinfo.ZoneInfo
    database: Path
    transport: TransportKind
    patients: tuple[Patient, ...]
    xmpp: XmppSettings | None = None  # set exactly when transport is XMPP
    # Look-up tables built from ``patients``. The runtime looks a patient up for every
    # due timer, and a scan of the tuple made a herd of N doses cost N squared.
    _by_id: dict[str, Patient] = field(init=False, repr=False, compare=False)
    _by_address: dict[str, Patient] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Patient] = {}
        by_address: dict[str, Patient] = {}
        for patient in self.patients:
            by_id.setdefault(patient.id, patient)
            by_address.setdefault(patient.address.casefold(), patient)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_address", by_address)

    def patient(self, patient_id: str) -> Patient | None:
        return self._by_id.get(patient_id)

    def patient_by_address(self, address: str) -> Patient | None:
        """Return the patient whose chat address equals ``address`` (case-insensitive)."""
        return self._by_address.get(address.casefold())


# --- Loading ------------------------------------------------------------------------------


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raises ConfigError naming file, key path, value and fix."""
    document = _read_toml(path)
    try:
        section = FileSection.model_validate(document)
    except ValidationError as error:
        raise _config_error(path, [problem_from(item) for item in error.errors()]) from None
    problems = list(_cross_checks(section, path.absolute().parent))
    if problems:
        raise _config_error(path, problems)
    return _build(section, path)


def _config_error(path: Path, problems: Sequence[Problem]) -> ConfigError:
    count = len(problems)
    heading = f"{path}: invalid configuration ({count} problem{'s' if count > 1 else ''}):"
    return ConfigError("\n".join([heading, *(f"  {problem}" for problem in problems)]))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found; create it, for example from {EXAMPLE_FILE}"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the path of a TOML file") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{path}: cannot read configuration file: {reason}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: invalid UTF-8 at byte {error.start}; save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message names the line and column, such as "Expected '=' (at line 3, column 7)".
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


# --- Second pass: checks across keys ------------------------------------------------------


def _cross_checks(section: FileSection, base: Path) -> Iterator[Problem]:
    transport = section.bot.transport
    if transport == "xmpp" and section.xmpp is None:
        yield Problem("xmpp", 'missing [xmpp] table; transport = "xmpp" needs its jid and password')
    if transport != "xmpp" and section.xmpp is not None:
        yield Problem(
            "xmpp",
            f'[xmpp] is only used with transport = "xmpp", but bot.transport is {transport!r}; '
            "remove the table or set the transport",
        )
    if section.xmpp is not None:
        yield from _check_xmpp(section.xmpp, base)
    yield from _check_patients(section.patients, transport)


def _check_xmpp(xmpp: XmppSection, base: Path) -> Iterator[Problem]:
    if not BARE_JID.fullmatch(xmpp.jid):
        yield Problem(
            "xmpp.jid",
            "expected a bare JID such as 'medbot@example.org'; set the resource key for a resource",
            show_value("jid", xmpp.jid),
        )
    yield from _check_password_source(xmpp, base)
    if xmpp.ca_file is not None:
        yield from _check_readable("xmpp.ca_file", xmpp.ca_file, base)
    if xmpp.tls == "none":
        yield from _check_plaintext(xmpp)


def _check_password_source(xmpp: XmppSection, base: Path) -> Iterator[Problem]:
    if xmpp.password_file is not None and xmpp.password_env is not None:
        yield Problem("xmpp", "both password_file and password_env are set; keep exactly one")
    elif xmpp.password_file is None and xmpp.password_env is None:
        yield Problem(
            "xmpp",
            "no password source; set password_file to a file that contains the password, "
            "or password_env to the name of an environment variable",
        )
    if xmpp.password_file is not None:
        yield from _check_readable("xmpp.password_file", xmpp.password_file, base)
    if xmpp.password_env is not None and not ENV_NAME.fullmatch(xmpp.password_env):
        yield Problem(
            "xmpp.password_env",
            "invalid environment variable name; use letters, digits and '_', "
            "such as MEDBOT_XMPP_PASSWORD",
            show_value("password_env", xmpp.password_env),
        )


def _check_readable(key_path: str, value: str, base: Path) -> Iterator[Problem]:
    """Check that the file exists and is readable, without reading it."""
    path = _resolve(value, base)
    shown = show_value(key_path, value)
    if not path.exists():
        yield Problem(key_path, f"file not found: {path}; create it or fix the path", shown)
    elif not path.is_file():
        yield Problem(key_path, f"not a regular file: {path}; give the path of a file", shown)
    elif not os.access(path, os.R_OK):
        yield Problem(
            key_path, f"file not readable: {path}; let the user that runs medbot read it", shown
        )


def _check_plaintext(xmpp: XmppSection) -> Iterator[Problem]:
    if not xmpp.allow_plaintext:
        yield Problem(
            "xmpp.tls",
            "tls = \"none\" sends the password unencrypted; it also needs allow_plaintext = true "
            "and a loopback host, or use \"starttls\"",
            repr(xmpp.tls),
        )
    if xmpp.host is None or not _is_loopback(xmpp.host):
        yield Problem(
            "xmpp.host",
            'tls = "none" is allowed only with a loopback host: 127.0.0.1, ::1 or localhost',
            show_value("host", xmpp.host),
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_patients(patients: Sequence[PatientSection], transport: str) -> Iterator[Problem]:
    if not patients:
        yield Problem("patients", "no patients; add at least one [[patients]] table")
    seen_ids: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    for index, patient in enumerate(patients):
        where = f"patients[{index}]"
        yield from _check_unique(f"{where}.id", patient.id, seen_ids, index, "patients")
        # Addresses compare case-insensitively, as Config.patient_by_address matches them.
        yield from _check_unique(
            f"{where}.address", patient.address, seen_addresses, index, "patients"
        )
        yield from _check_patient(patient, where, transport)


def _check_unique(
    key_path: str, value: str, seen: dict[str, int], index: int, table: str
) -> Iterator[Problem]:
    folded = value.casefold()
    if folded in seen:
        yield Problem(
            key_path,
            f"duplicate; {table}[{seen[folded]}] has the same value, so give each a unique one",
            repr(value),
        )
    else:
        seen[folded] = index


def _check_patient(patient: PatientSection, where: str, transport: str) -> Iterator[Problem]:
    if transport == "xmpp":
        for key, address in (("address", patient.address), ("caregiver", patient.caregiver)):
            if address is not None and not BARE_JID.fullmatch(address):
                yield Problem(
                    f"{where}.{key}",
                    "expected a bare JID such as 'bob@example.org', without a resource",
                    show_value(key, address),
                )
    if not patient.medications:
        yield Problem(f"{where}.medications", "no medications; add [[patients.medications]]")
    seen: dict[str, int] = {}
    for index, medication in enumerate(patient.medications):
        path = f"{where}.medications[{index}]"
        yield from _check_unique(f"{path}.id", medication.id, seen, index, f"{where}.medications")
        yield from _check_medication(medication, path)


def _check_medication(medication: MedicationSection, where: str) -> Iterator[Problem]:
    if not medication.times:
        yield Problem(f"{where}.times", 'no times; add at least one, such as ["08:00"]', "[]")
        return
    walls = [parse_wall_time(text) for text in medication.times]
    if len(set(walls)) != len(walls):
        shown = show_value("times", medication.times)
        yield Problem(f"{where}.times", "duplicate time; list each time once", shown)
    if medication.every_days > 1 and medication.start is None:
        yield Problem(
            f"{where}.start",
            f"missing; every_days = {medication.every_days} counts days from a start date, "
            "so add start = 2026-12-01 (the first dose date)",
        )
        return
    try:
        check_schedule(schedule_of(medication))
    except ValueError as error:
        yield Problem(f"{where}.weekdays", f"{error}; change weekdays, every_days or start")


# --- Conversion into the frozen types -----------------------------------------------------


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def default_database() -> Path:
    """Return the database path used when ``bot.database`` is not set."""
    return platformdirs.user_data_path("medbot", ensure_exists=False) / "medbot.sqlite3"


def _build(section: FileSection, path: Path) -> Config:
    base = path.absolute().parent
    bot = section.bot
    default_zone = zoneinfo.ZoneInfo(bot.time_zone)
    database = _resolve(bot.database, base) if bot.database is not None else default_database()
    patients = tuple(_build_patient(patient, default_zone) for patient in section.patients)
    xmpp = _build_xmpp(section.xmpp, base) if section.xmpp is not None else None
    return Config(
        source=path,
        default_zone=default_zone,
        database=database,
        transport=TransportKind(bot.transport),
        patients=patients,
        xmpp=xmpp,
    )


def _build_xmpp(xmpp: XmppSection, base: Path) -> XmppSettings:
    return XmppSettings(
        jid=xmpp.jid,
        password_file=_resolve(xmpp.password_file, base) if xmpp.password_file else None,
        password_env=xmpp.password_env,
        host=xmpp.host,
        port=xmpp.port,
        tls=TlsMode(xmpp.tls),
        ca_file=_resolve(xmpp.ca_file, base) if xmpp.ca_file else None,
        allow_plaintext=xmpp.allow_plaintext,
        resource=xmpp.resource,
    )


def _build_patient(patient: PatientSection, default_zone: zoneinfo.ZoneInfo) -> Patient:
    zone = zoneinfo.ZoneInfo(patient.time_zone) if patient.time_zone else default_zone
    return Patient(
        id=patient.id,
        name=patient.name,
        address=patient.address,
        language=patient.language,
        zone=zone,
        medications=tuple(_build_medication(medication) for medication in patient.medications),
        caregiver=patient.caregiver,
    )


def _build_medication(medication: MedicationSection) -> Medication:
    window = medication.late_window
    return Medication(
        id=medication.id,
        name=medication.name,
        schedule=schedule_of(medication),
        reask_interval=parse_duration(medication.reask_interval),
        asks=medication.asks,
        late_window=parse_duration(window, allow_zero=True) if window is not None else None,
        wording=Wording(
            ask=tuple(medication.wording.ask),
            reask=tuple(medication.wording.reask),
            praise=tuple(medication.wording.praise),
            give_up=tuple(medication.wording.give_up),
        ),
    )


# --- Summary for `medbot check` -----------------------------------------------------------


def describe_config(config: Config, now: datetime) -> str:
    """Return a plain-text summary of ``config``, with each medication's next due time.

    ``now`` is an aware datetime. Nothing here reads the clock, so the summary is
    reproducible in tests.
    """
    lines = [
        f"Configuration: {config.source}",
        f"Transport: {config.transport.value}",
        f"Database: {config.database}",
        f"Default time zone: {config.default_zone.key}",
    ]
    if config.xmpp is not None:
        lines.append(_describe_xmpp(config.xmpp))
    for patient in config.patients:
        lines.append("")
        lines.extend(_describe_patient(patient, now))
    return "\n".join(lines)


def _describe_xmpp(xmpp: XmppSettings) -> str:
    server = f"{xmpp.host or 'DNS SRV look-up'}"
    if xmpp.port is not None:
        server += f", port {xmpp.port}"
    source = f"file {xmpp.password_file}" if xmpp.password_file else f"${xmpp.password_env}"
    return f"XMPP: {xmpp.jid} via {server}, TLS {xmpp.tls.value}, password from {source}"


def _describe_patient(patient: Patient, now: datetime) -> Iterator[str]:
    yield f"Patient {patient.id} ({patient.name})"
    yield f"  address: {patient.address}"
    yield f"  time zone: {patient.zone.key}"
    yield f"  language: {patient.language}"
    yield f"  caregiver: {patient.caregiver or 'none'}"
    for medication in patient.medications:
        yield from _describe_medication(medication, patient.zone, now)


def _describe_medication(
    medication: Medication, zone: zoneinfo.ZoneInfo, now: datetime
) -> Iterator[str]:
    window = format_duration(medication.effective_late_window)
    if medication.late_window is None:
        window += " (default: asks x interval)"
    due = next_occurrence(medication.schedule, zone, now)
    local = due.astimezone(zone)
    yield f"  Medication {medication.id} ({medication.name})"
    yield f"    schedule: {describe_schedule(medication.schedule)}"
    yield f"    asks: {medication.asks}, every {format_duration(medication.reask_interval)}"
    yield f"    late window: {window}"
    yield f"    next due: {local:%Y-%m-%d %H:%M:%S %Z} ({due:%Y-%m-%d %H:%M:%S} UTC)"
