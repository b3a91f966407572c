"""Check what a patient received against what the schedule should have produced.

The checker is pure. It takes the messages a scripted patient recorded, the dose due
times the campaign wrote into the configuration, and the periods when the bot was not
running. It lists every message that was lost, duplicated, stale or out of order. It
relies on medbot's stable message ids (``patient/medication/YYYYMMDDTHHMMSSZ/kind[-n]``),
which the XMPP transport sends as the stanza id.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ASK_KINDS = frozenset({"ask", "reask"})
CLOSING_KINDS = frozenset({"praise", "give-up", "skip-ack"})
SUMMARY_KIND = "missed-summary"

_TAIL = re.compile(r"^(?P<kind>[a-z]+(?:-[a-z]+)*)(?:-(?P<number>\d+))?$")


@dataclass(frozen=True, slots=True)
class MessageRef:
    """The parts of a dose message id."""

    dose_id: str
    patient_id: str
    medication_id: str
    due_at: datetime
    kind: str
    number: int


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the patient's client recorded it."""

    message_id: str | None
    body: str
    received_at: datetime
    patient_id: str


@dataclass(frozen=True, slots=True)
class Dose:
    """One due instant that the campaign scheduled."""

    patient_id: str
    medication_id: str
    due_at: datetime
    late_window: timedelta
    cycle_length: timedelta | None = None  # ask to give-up; None: same as late_window

    @property
    def settled_at(self) -> datetime:
        """When every message of the dose is due, if the bot ran throughout."""
        return self.due_at + (self.cycle_length or self.late_window)

    @property
    def dose_id(self) -> str:
        return f"{self.patient_id}/{self.medication_id}/{self.due_at:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True, slots=True)
class Outage:
    """A period when the bot could not act: from the kill until the restarted bot was ready."""

    start: datetime
    end: datetime


@dataclass(slots=True)
class TranscriptReport:
    """Every problem found, by category; empty lists mean the transcript is clean."""

    received: int = 0
    doses_checked: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    duplicate_asks: list[str] = field(default_factory=list)
    lost_committed: list[str] = field(default_factory=list)
    unasked_doses: list[str] = field(default_factory=list)
    stale_asks: list[str] = field(default_factory=list)
    unexpected_asks: list[str] = field(default_factory=list)
    bursts: list[str] = field(default_factory=list)
    extra_summaries: list[str] = field(default_factory=list)
    after_close: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.lost_committed) + len(self.unasked_doses)

    @property
    def duplicated(self) -> int:
        return len(self.duplicate_ids) + len(self.duplicate_asks)

    def problems(self) -> dict[str, list[str]]:
        """Return the non-empty problem lists by name."""
        names = (
            "duplicate_ids", "duplicate_asks", "lost_committed", "unasked_doses",
            "stale_asks", "unexpected_asks", "bursts", "extra_summaries", "after_close",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def parse_message_id(message_id: str) -> MessageRef | None:
    """Split a dose message id into its parts; None for any other id."""
    head, _, tail = message_id.rpartition("/")
    parts = head.split("/")
    match = _TAIL.match(tail)
    if len(parts) != 3 or match is None:
        return None
    try:
        due_at = datetime.strptime(parts[2], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    number = int(match["number"]) if match["number"] else 1
    return MessageRef(head, parts[0], parts[1], due_at, match["kind"], number)


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Timing slack of the checks, in wall-clock time on a loaded two-core machine.

    ``margin`` widens each outage on both sides: a dose due that close to a kill or a
    restart may be asked on time, late or not at all, so only duplicates are checked.
    """

    margin: timedelta = timedelta(seconds=3)
    late_slack: timedelta = timedelta(seconds=5)
    burst_window: timedelta = timedelta(seconds=1)


def check_transcript(
    received: Sequence[Received],
    doses: Iterable[Dose],
    outages: Sequence[Outage],
    committed_ids: Iterable[str],
    run_end: datetime,
    tolerances: Tolerances = Tolerances(),
) -> TranscriptReport:
    """Compare the received messages with the scheduled doses and the committed outbox.

    ``committed_ids`` are the outbox message ids in the bot's database after the run;
    each must have arrived. ``run_end`` is when the last bot stopped; doses that had not
    settled by then are not checked.
    """
    report = TranscriptReport(received=len(received))
    refs = _parse_all(received, report)
    _check_duplicates(received, refs, report)
    _check_committed(received, committed_ids, report)
    _check_doses(refs, list(doses), outages, run_end, tolerances, report)
    _check_bursts(refs, tolerances, report)
    _check_after_close(refs, report)
    return report


def _parse_all(
    received: Sequence[Received], report: TranscriptReport
) -> list[tuple[Received, MessageRef]]:
    refs = []
    for message in received:
        ref = parse_message_id(message.message_id) if message.message_id else None
        if ref is None:
            if not _is_summary_id(message.message_id):
                report.unparsed.append(repr(message.message_id))
            continue
        refs.append((message, ref))
    return refs


def _is_summary_id(message_id: str | None) -> bool:
    return message_id is not None and SUMMARY_KIND in message_id


def _check_duplicates(
    received: Sequence[Received],
    refs: Sequence[tuple[Received, MessageRef]],
    report: TranscriptReport,
) -> None:
    id_counts = Counter(message.message_id for message in received if message.message_id)
    report.duplicate_ids = sorted(
        f"{key} x{count}" for key, count in id_counts.items() if count > 1
    )

    # The same dose, kind and number under two different ids is a second copy that the
    # id count above cannot see.
    ids_by_step: dict[tuple[str, str, int], set[str | None]] = defaultdict(set)
    for message, ref in refs:
        ids_by_step[(ref.dose_id, ref.kind, ref.number)].add(message.message_id)
    report.duplicate_asks = sorted(
        f"{dose}/{kind}-{number} under {len(ids)} ids"
        for (dose, kind, number), ids in ids_by_step.items()
        if len(ids) > 1
    )

    summary_counts = Counter(
        message.message_id for message in received if _is_summary_id(message.message_id)
    )
    report.extra_summaries = sorted(
        f"{message_id} x{count}" for message_id, count in summary_counts.items() if count > 1
    )


def _check_committed(
    received: Sequence[Received], committed_ids: Iterable[str], report: TranscriptReport
) -> None:
    seen = {message.message_id for message in received}
    report.lost_committed = sorted(set(committed_ids) - seen)


def _check_doses(
    refs: Sequence[tuple[Received, MessageRef]],
    doses: Sequence[Dose],
    outages: Sequence[Outage],
    run_end: datetime,
    tolerances: Tolerances,
    report: TranscriptReport,
) -> None:
    first_ask: dict[str, datetime] = {}
    for message, ref in refs:
        if ref.kind in ASK_KINDS and ref.dose_id not in first_ask:
            first_ask[ref.dose_id] = message.received_at
    for dose in doses:
        if dose.settled_at + tolerances.late_slack > run_end:
            continue
        report.doses_checked += 1
        _check_one_dose(dose, first_ask.get(dose.dose_id), outages, tolerances, report)


def _check_one_dose(
    dose: Dose,
    asked_at: datetime | None,
    outages: Sequence[Outage],
    tolerances: Tolerances,
    report: TranscriptReport,
) -> None:
    window_end = dose.due_at + dose.late_window
    if asked_at is not None and asked_at > window_end + tolerances.late_slack:
        report.stale_asks.append(f"{dose.dose_id} first asked at {asked_at:%H:%M:%S}")
    verdict = _expected_ask(dose, outages, tolerances)
    if verdict is True and asked_at is None:
        report.unasked_doses.append(dose.dose_id)
    elif verdict is False and asked_at is not None:
        report.unexpected_asks.append(f"{dose.dose_id} asked at {asked_at:%H:%M:%S}")


def _expected_ask(dose: Dose, outages: Sequence[Outage], tolerances: Tolerances) -> bool | None:
    """Return True when an ask must arrive, False when none may, None when either is fine.

    A dose near two outages, or due just before a kill (it may have been asked before
    it), allows either.
    """
    margin = tolerances.margin
    near = [
        outage for outage in outages
        if outage.start - margin <= dose.due_at <= outage.end + margin
    ]
    if not near:
        return True
    if len(near) > 1:
        return None
    outage = near[0]
    window_end = dose.due_at + dose.late_window
    if dose.due_at <= outage.start + margin:
        return None
    if outage.end + margin < window_end:
        return True
    if outage.end - margin > window_end:
        return False
    return None


def _check_bursts(
    refs: Sequence[tuple[Received, MessageRef]],
    tolerances: Tolerances,
    report: TranscriptReport,
) -> None:
    """Flag two asks of one dose that arrived less than ``burst_window`` apart.

    Re-asks are a whole re-ask interval apart, so two asks close together are what a
    restart that replays missed re-asks would produce.
    """
    times: dict[str, list[datetime]] = defaultdict(list)
    for message, ref in refs:
        if ref.kind in ASK_KINDS:
            times[ref.dose_id].append(message.received_at)
    for dose_id, arrivals in times.items():
        arrivals.sort()
        for earlier, later in itertools.pairwise(arrivals):
            if later - earlier < tolerances.burst_window:
                report.bursts.append(
                    f"{dose_id}: asks at {earlier:%H:%M:%S.%f} and {later:%H:%M:%S.%f}"
                )


def _check_after_close(
    refs: Sequence[tuple[Received, MessageRef]], report: TranscriptReport
) -> None:
    closed: dict[str, str] = {}
    by_dose: dict[str, list[MessageRef]] = defaultdict(list)
    for _, ref in refs:
        by_dose[ref.dose_id].append(ref)
    for dose_id, dose_refs in by_dose.items():
        for ref in dose_refs:
            if ref.kind in ASK_KINDS and dose_id in closed:
                step = f"{dose_id}/{ref.kind}-{ref.number}"
                report.after_close.append(f"{step} after {closed[dose_id]}")
            if ref.kind in CLOSING_KINDS:
                closed.setdefault(dose_id, ref.kind)
