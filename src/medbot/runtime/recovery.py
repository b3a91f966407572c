"""Catching up after a stop: create the cycles of doses that fell due while medbot was down.

Doses that fell due while the bot was stopped are inserted as SCHEDULED cycles whose
timer lies in the past; the service then feeds them to ``conversation.on_timer``, which
asks late inside the late window and records the rest as missed.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from medbot.config import Config
from medbot.core import conversation
from medbot.core.models import Cycle, DoseKey, Medication, Patient, Phase
from medbot.core.schedule import next_occurrence as _uncached_next_occurrence
from medbot.core.schedule import occurrences
from medbot.store.base import Store

log = logging.getLogger(__name__)

# Many medications share a schedule, a zone and the instant after which the next dose is
# wanted (``now`` at start, the due time of a herd's doses later), so the same next dose
# would be computed again and again. Schedules and zones are immutable and hashable.
next_occurrence = functools.lru_cache(maxsize=4096)(_uncached_next_occurrence)

MedicationKey = tuple[str, str]  # (patient id, medication id)

# Occurrences of an edited schedule that may be skipped as repeats of a dose already asked.
# This is only a bound, because two suffice for any schedule with a gap between its doses.
_MAX_SKIPPED_AFTER_CHANGE = 100

# Schedules have one-second resolution, so the first occurrence after this much before
# an instant is that instant exactly when it is an occurrence.
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class CatchUpLimits:
    """Bounds on the doses created for the time the bot was stopped.

    Only doses due within ``max_age`` before the restart are created, and at most the
    latest ``max_per_medication`` of them per medication. Older doses get no record at
    all, and a WARNING names the patient and the oldest due time that was kept.
    """

    max_age: timedelta = timedelta(days=7)
    max_per_medication: int = 50


@dataclass(frozen=True, slots=True)
class Materialised:
    """Result of ``materialise``: cycles to insert and the latest due time per medication."""

    cycles: tuple[Cycle, ...]
    latest_due: dict[MedicationKey, datetime]


def outdated_doses(config: Config, open_cycles: Sequence[Cycle]) -> list[Cycle]:
    """Return the SCHEDULED cycles that the configuration no longer produces.

    A dose is outdated when its patient or medication was removed, or when its due
    instant is not an occurrence of the medication's current schedule in the patient's
    current zone, as after a change of time or zone. Nothing was sent for such a dose.
    """
    outdated = []
    for cycle in open_cycles:
        if cycle.phase is not Phase.SCHEDULED:
            continue
        patient = config.patient(cycle.key.patient_id)
        medication = patient.medication(cycle.key.medication_id) if patient else None
        if patient is None or medication is None or not _is_occurrence(patient, medication, cycle):
            outdated.append(cycle)
    return outdated


def _is_occurrence(patient: Patient, medication: Medication, cycle: Cycle) -> bool:
    due = cycle.key.due_at
    return next_occurrence(medication.schedule, patient.zone, due - _JUST_BEFORE) == due


async def materialise(
    config: Config,
    store: Store,
    now: datetime,
    limits: CatchUpLimits,
    changed: Mapping[MedicationKey, datetime] | None = None,
) -> Materialised:
    """Build the cycles every configured medication needs at ``now``.

    A medication with no stored dose gets its next occurrence after ``now``. A medication
    in ``changed`` had its schedule or zone edited, and its value is the due time of the
    dose the old schedule had planned next. It gets the first occurrence of the new
    schedule that ``_first_after_change`` accepts. Any other medication gets every occurrence
    after its last stored due time up to ``now`` (within ``limits``), plus the next
    occurrence after ``now``.
    """
    changed = changed or {}
    cycles: list[Cycle] = []
    latest_due: dict[MedicationKey, datetime] = {}
    # One query for every medication: a query per medication costs a round trip to the
    # store's worker thread each, which dominates a start with many patients.
    stored_last_due = await store.last_dues()
    for patient in config.patients:
        for medication in patient.medications:
            key = (patient.id, medication.id)
            last = stored_last_due.get(key)
            if key in changed:
                dues = _first_after_change(patient, medication, last, changed[key], now)
            else:
                dues = _missing_dues(patient, medication, last, now, limits)
            cycles.extend(
                conversation.new_cycle(DoseKey(patient.id, medication.id, due)) for due in dues
            )
            known = [due for due in (last, *dues) if due is not None]
            latest_due[key] = max(known)
    return Materialised(tuple(cycles), latest_due)


def _first_after_change(
    patient: Patient,
    medication: Medication,
    last: datetime | None,
    replaced: datetime,
    now: datetime,
) -> list[datetime]:
    """Return the first dose of an edited schedule, as a one-element list.

    ``last`` is the latest dose already asked or closed, and ``replaced`` the dose the old
    schedule had planned next. An occurrence after ``now`` that lies nearer to ``last``
    than to ``replaced`` stands for the dose already asked, so it is skipped. Moving
    today's 19:00 dose to 20:00 after the 19:00 ask thus does not ask again today.
    """
    due = next_occurrence(medication.schedule, patient.zone, now)
    for _ in range(_MAX_SKIPPED_AFTER_CHANGE):
        if last is None or (due > last and abs(due - replaced) <= abs(due - last)):
            break
        due = next_occurrence(medication.schedule, patient.zone, due)
    return [due]


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
            "doses of patient %s before %s are older than the catch-up limit and get no record",
            patient.id,
            (recent[0] if recent else start).isoformat(),
        )
    dues = [*recent, upcoming]
    return [due for due in dues if due > last]


def _fell_due_between(
    patient: Patient, medication: Medication, after: datetime, until: datetime
) -> bool:
    return next_occurrence(medication.schedule, patient.zone, after) <= until
