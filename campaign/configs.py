"""Configuration documents for the campaign's bots, as dicts ready for TOML.

Every generated configuration points the bot at 127.0.0.1 explicitly: a missing
``xmpp.host`` would make slixmpp look up the domain in DNS, and the campaign sends
nothing beyond loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from campaign import toml_text

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class MedicationPlan:
    """One medication of a campaign patient, on a compressed second-scale schedule."""

    id: str
    name: str
    times: tuple[datetime, ...]  # UTC due instants, written as HH:MM:SS in zone UTC
    reask_interval: timedelta
    asks: int
    explicit_late_window: timedelta | None = None

    @property
    def late_window(self) -> timedelta:
        if self.explicit_late_window is not None:
            return self.explicit_late_window
        return self.reask_interval * self.asks


@dataclass(frozen=True, slots=True)
class PatientPlan:
    id: str
    name: str
    address: str
    medications: tuple[MedicationPlan, ...]


@dataclass(frozen=True, slots=True)
class XmppTarget:
    """Login target of the bot: a server that the campaign started on loopback."""

    jid: str
    password_file: Path
    port: int
    ca_file: Path | None


def seconds_text(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


def medication_table(plan: MedicationPlan) -> dict[str, Any]:
    table: dict[str, Any] = {
        "id": plan.id,
        "name": plan.name,
        "times": [f"{due:%H:%M:%S}" for due in plan.times],
        "reask_interval": seconds_text(plan.reask_interval),
        "asks": plan.asks,
    }
    if plan.explicit_late_window is not None:
        table["late_window"] = seconds_text(plan.explicit_late_window)
    return table


def patient_table(plan: PatientPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "address": plan.address,
        "language": "en",
        "time_zone": "UTC",
        "medications": [medication_table(medication) for medication in plan.medications],
    }


def xmpp_table(target: XmppTarget) -> dict[str, Any]:
    table: dict[str, Any] = {
        "jid": target.jid,
        "password_file": str(target.password_file),
        "host": LOOPBACK,
        "port": target.port,
        "tls": "starttls",
    }
    if target.ca_file is not None:
        table["ca_file"] = str(target.ca_file)
    return table


def bot_config(
    database: Path, target: XmppTarget, patients: tuple[PatientPlan, ...]
) -> dict[str, Any]:
    """Return a complete XMPP configuration for the given patients."""
    return {
        "bot": {"database": str(database), "time_zone": "UTC", "transport": "xmpp"},
        "xmpp": xmpp_table(target),
        "patients": [patient_table(patient) for patient in patients],
    }


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(toml_text.dumps(document), encoding="utf-8")
    return path


def console_config(database: Path, patients: tuple[PatientPlan, ...]) -> dict[str, Any]:
    """Return a console-transport configuration: messages on stdout, replies on stdin."""
    return {
        "bot": {"database": str(database), "time_zone": "UTC", "transport": "console"},
        "patients": [patient_table(patient) for patient in patients],
    }


def compressed_plan(start: datetime, count: int, spacing: timedelta) -> tuple[datetime, ...]:
    """Return ``count`` due instants from ``start``, ``spacing`` apart, whole seconds."""
    first = start.replace(microsecond=0)
    return tuple(first + spacing * index for index in range(count))
