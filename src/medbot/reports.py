"""Text reports for the CLI: upcoming doses and dose history, as tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from medbot.config import Config
from medbot.core.models import Cycle, Patient
from medbot.core.schedule import next_occurrence


@dataclass(frozen=True, slots=True)
class UpcomingDose:
    patient_id: str
    medication_id: str
    medication_name: str
    due_at: datetime  # UTC
    zone: ZoneInfo


def upcoming_doses(
    config: Config, patient_id: str | None, start: datetime, count: int
) -> list[UpcomingDose]:
    """Return the next ``count`` doses after ``start`` over all selected patients, by time."""
    doses: list[UpcomingDose] = []
    for patient in _selected(config, patient_id):
        for medication in patient.medications:
            after = start
            for _ in range(count):
                after = next_occurrence(medication.schedule, patient.zone, after)
                doses.append(
                    UpcomingDose(patient.id, medication.id, medication.name, after, patient.zone)
                )
    doses.sort(key=lambda dose: (dose.due_at, dose.patient_id, dose.medication_id))
    return doses[:count]


def format_upcoming(doses: Sequence[UpcomingDose]) -> str:
    """Format doses as a table with the local due time and the UTC one."""
    rows = [
        (
            _local(dose.due_at, dose.zone),
            _utc(dose.due_at),
            dose.patient_id,
            dose.medication_name,
        )
        for dose in doses
    ]
    return _table(("due (local)", "due (UTC)", "patient", "medication"), rows)


def upcoming_json(doses: Sequence[UpcomingDose]) -> str:
    """Format doses as a JSON array with ISO 8601 times in local time and in UTC."""
    items = [
        {
            "patient": dose.patient_id,
            "medication": dose.medication_id,
            "local": dose.due_at.astimezone(dose.zone).isoformat(),
            "utc": dose.due_at.isoformat().replace("+00:00", "Z"),
            "zone": dose.zone.key,
        }
        for dose in doses
    ]
    return json.dumps(items, indent=2)


HISTORY_COLUMNS = (
    "due (local)",
    "patient",
    "medication",
    "outcome",
    "asks sent",
    "answered at",
    "response delay",
)


def history_rows(config: Config, cycles: Sequence[Cycle]) -> list[tuple[str, ...]]:
    """Build one row per dose: due time, names, outcome, asks, answer time and delay."""
    rows: list[tuple[str, ...]] = []
    for cycle in cycles:
        patient = config.patient(cycle.key.patient_id)
        zone = patient.zone if patient is not None else config.default_zone
        rows.append(
            (
                _local(cycle.key.due_at, zone),
                cycle.key.patient_id,
                _medication_name(patient, cycle.key.medication_id),
                cycle.phase.value,
                str(cycle.asks_sent),
                _local(cycle.answered_at, zone) if cycle.answered_at else "",
                _delay(cycle),
            )
        )
    return rows


def format_history(config: Config, cycles: Sequence[Cycle]) -> str:
    return _table(HISTORY_COLUMNS, history_rows(config, cycles))


# CSV is read by programs, so times are ISO 8601 with their offset and the delay is in
# whole seconds, unlike the table for people.
HISTORY_CSV_COLUMNS = (
    "due_local",
    "due_utc",
    "patient_id",
    "medication_id",
    "medication",
    "outcome",
    "asks_sent",
    "answered_at_utc",
    "response_delay_s",
)


def history_csv(config: Config, cycles: Sequence[Cycle]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_CSV_COLUMNS)
    for cycle in cycles:
        patient = config.patient(cycle.key.patient_id)
        zone = patient.zone if patient is not None else config.default_zone
        writer.writerow(
            (
                cycle.key.due_at.astimezone(zone).isoformat(),
                _iso_utc(cycle.key.due_at),
                cycle.key.patient_id,
                cycle.key.medication_id,
                _medication_name(patient, cycle.key.medication_id),
                cycle.phase.value,
                cycle.asks_sent,
                _iso_utc(cycle.answered_at) if cycle.answered_at else "",
                _delay_seconds(cycle),
            )
        )
    return buffer.getvalue()


def _iso_utc(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _delay_seconds(cycle: Cycle) -> str:
    if cycle.answered_at is None or cycle.first_asked_at is None:
        return ""
    return str(max(0, round((cycle.answered_at - cycle.first_asked_at).total_seconds())))


def _selected(config: Config, patient_id: str | None) -> tuple[Patient, ...]:
    if patient_id is None:
        return config.patients
    return tuple(p for p in config.patients if p.id == patient_id)


def _medication_name(patient: Patient | None, medication_id: str) -> str:
    medication = patient.medication(medication_id) if patient is not None else None
    return medication.name if medication is not None else medication_id


def _delay(cycle: Cycle) -> str:
    if cycle.answered_at is None or cycle.first_asked_at is None:
        return ""
    seconds = max(0, int((cycle.answered_at - cycle.first_asked_at).total_seconds()))
    return str(timedelta(seconds=seconds))


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _utc(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Lay out ``rows`` in left-aligned columns under ``header`` and a rule."""
    widths = [len(title) for title in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [_join(header, widths), _join(["-" * width for width in widths], widths)]
    lines.extend(_join(row, widths) for row in rows)
    return "\n".join(lines)


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
