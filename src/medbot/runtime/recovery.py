"""Catching up after a stop: create the cycles of doses that fell due while medbot was down.

Doses that fell due while the bot was stopped are inserted as SCHEDULED cycles whose
timer lies in the past; the service then feeds them to ``conversation.on_timer``, which
asks late inside the late window and records the rest as missed.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from medbot.config import Config
from medbot.core import conversation
from medbot.core.models import Cycle, DoseKey, Medication, Patient
from medbot.core.schedule import next_occurrence, occurrences
from medbot.store.base import Store

log = logging.getLogger(__name__)

MedicationKey = tuple[str, str]  # (patient id, medication id)


@dataclass(frozen=True, slots=True)
class CatchUpLimits:
    """Bounds on the doses created for the time the bot was stopped.

    Only doses due within ``max_age`` before the restart are created, and at most the
    latest ``max_per_medication`` of them per medication. Older doses get no record at
    all; a WARNING says how many were left out.
    """

    max_age: timedelta = timedelta(days=7)
    max_per_medication: int = 50


@dataclass(frozen=True, slots=True)
class Materialised:
    """Result of ``materialise``: cycles to insert and the latest due time per medication."""

    cycles: tuple[Cycle, ...]
    latest_due: dict[MedicationKey, datetime]


async def materialise(
    config: Config, store: Store, now: datetime, limits: CatchUpLimits
) -> Materialised:
    """Build the cycles every configured medication needs at ``now``.

    A medication with no stored dose gets its next occurrence after ``now``. One with
    stored doses gets every occurrence after its last stored due time up to ``now``
    (within ``limits``), plus the next occurrence after ``now``.
    """
    cycles: list[Cycle] = []
    latest_due: dict[MedicationKey, datetime] = {}
    for patient in config.patients:
        for medication in patient.medications:
            last = await store.last_due(patient.id, medication.id)
            dues = _missing_dues(patient, medication, last, now, limits)
            cycles.extend(
                conversation.new_cycle(DoseKey(patient.id, medication.id, due)) for due in dues
            )
            known = [due for due in (last, *dues) if due is not None]
            latest_due[(patient.id, medication.id)] = max(known)
    return Materialised(tuple(cycles), latest_due)


def _missing_dues(
    patient: Patient,
    medication: Medication,
    last: datetime | None,
    now: datetime,
    limits: CatchUpLimits,
) -> list[datetime]:
    upcoming = next_occurrence(medication.schedule, patient.zone, now)
    if last is None:
        return [upcoming]
    start = max(last, now - limits.max_age)
    recent: deque[datetime] = deque(maxlen=limits.max_per_medication)
    total = 0
    for due in occurrences(medication.schedule, patient.zone, start, now):
        recent.append(due)
        total += 1
    skipped = total - len(recent)
    if skipped or (start > last and _fell_due_between(patient, medication, last, start)):
        log.warning(
            "doses of %s/%s before %s are older than the catch-up limit and get no record",
            patient.id,
            medication.id,
            (recent[0] if recent else start).isoformat(),
        )
    dues = [*recent, upcoming]
    return [due for due in dues if due > last]


def _fell_due_between(
    patient: Patient, medication: Medication, after: datetime, until: datetime
) -> bool:
    return next_occurrence(medication.schedule, patient.zone, after) <= until
