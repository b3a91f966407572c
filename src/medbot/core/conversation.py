"""The dose conversation: every transition of one dose cycle, as a pure function.

``TRANSITIONS`` is the whole state machine as a table. ``on_timer`` and ``on_reply``
only work out which row applies (the phase, the event and a guard) and run its action.
docs/conversation.md shows the same table and a diagram drawn from it; a test keeps
them equal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from medbot.core.models import (
    Cycle,
    DoseKey,
    Medication,
    MessageKind,
    OutgoingMessage,
    Patient,
    Phase,
    Transition,
)
from medbot.core.replies import Reply, ReplyKind
from medbot.core.wording import Phrase, Text, render

# A timer this much behind its due time, or more than one re-ask interval behind, was
# not merely delayed by a busy event loop: the bot was stopped, and the late/stale rules
# apply. The interval bound matters for second-scale intervals, where 60 s of downtime
# can span a whole cycle and its late window.
STALE_GRACE = timedelta(seconds=60)
# Delay stamps have second resolution and clocks drift a little, so a reply stamped
# slightly before the first ask still counts as a reply to it.
REPLY_CLOCK_SKEW = timedelta(seconds=2)
MAX_SNOOZES = 3
MIN_SNOOZE = timedelta(minutes=1)
MAX_SNOOZE_AHEAD = timedelta(hours=4)


class Event(enum.Enum):
    TIMER = "timer"
    CONFIRM = "confirm"
    SKIP = "skip"
    SNOOZE = "snooze"
    NEGATION = "negation"
    UNKNOWN = "unknown"


class Guard(enum.Enum):
    """The condition that picks one row among those of a phase and event."""

    ANY = "any"
    FRESH = "on time"
    LATE = "stale, inside late window"
    PAST_WINDOW = "stale, past late window"
    ASKS_LEFT = "asks left"
    SNOOZED = "set by a snooze"
    ASKS_USED = "asks used up"
    BEFORE_ASK = "sent before first ask"
    SNOOZES_LEFT = "snoozes left"
    SNOOZES_USED = "snoozes used up"
    NOT_HINTED = "no ack or hint sent yet"
    HINTED = "ack or hint already sent"


@dataclass(frozen=True, slots=True)
class _Context:
    cycle: Cycle
    patient: Patient
    medication: Medication
    now: datetime
    reply: Reply | None = None
    sent_at: datetime | None = None


_Action = Callable[[_Context], Transition]


@dataclass(frozen=True, slots=True)
class Row:
    """One transition: in ``phases``, on ``events`` under ``guard``, go to ``target``."""

    phases: tuple[Phase, ...]
    events: tuple[Event, ...]
    guard: Guard
    target: str  # a phase name, or "same" for "stays where it is"
    sends: str
    action: _Action


# --- Actions ----------------------------------------------------------------------------


def _stay(ctx: _Context) -> Transition:
    return Transition(ctx.cycle)


def _ask(ctx: _Context) -> Transition:
    return _send_ask(ctx, Text.ASK)


def _late_ask(ctx: _Context) -> Transition:
    return _send_ask(ctx, Text.LATE_ASK)


def _reask(ctx: _Context) -> Transition:
    return _send_ask(ctx, Text.REASK)


def _send_ask(ctx: _Context, text: Text) -> Transition:
    cycle = ctx.cycle
    number = cycle.asks_sent + 1
    kind = MessageKind.REASK if text is Text.REASK else MessageKind.ASK
    message_id = f"{cycle.id}/{kind.value}-{number}"
    phrase = _render(ctx, text, message_id, variant=True)

    asked = replace(
        cycle,
        phase=Phase.ASKING,
        asks_sent=number,
        next_at=ctx.now + ctx.medication.reask_interval,
        first_asked_at=cycle.first_asked_at or ctx.now,
        last_asked_at=ctx.now,
        last_phrase=phrase.index,
        snoozed=False,
    )
    return Transition(asked, (_to_patient(ctx, message_id, kind, phrase.text),))


def _miss_silently(ctx: _Context) -> Transition:
    return Transition(_close(ctx, Phase.MISSED))


def _give_up(ctx: _Context) -> Transition:
    message_id = f"{ctx.cycle.id}/{MessageKind.GIVE_UP.value}"
    phrase = _render(ctx, Text.GIVE_UP, message_id, variant=True)
    closed = replace(_close(ctx, Phase.MISSED), last_phrase=phrase.index)
    messages = (_to_patient(ctx, message_id, MessageKind.GIVE_UP, phrase.text),)
    return Transition(closed, messages + _caregiver_alert(ctx, Text.CAREGIVER_GIVE_UP))


def _praise(ctx: _Context) -> Transition:
    message_id = f"{ctx.cycle.id}/{MessageKind.PRAISE.value}"
    phrase = _render(ctx, Text.PRAISE, message_id, variant=True)
    closed = replace(_close(ctx, Phase.TAKEN), answered_at=ctx.sent_at, last_phrase=phrase.index)
    return Transition(closed, (_to_patient(ctx, message_id, MessageKind.PRAISE, phrase.text),))


def _skip(ctx: _Context) -> Transition:
    message_id = f"{ctx.cycle.id}/{MessageKind.SKIP_ACK.value}"
    text = _render(ctx, Text.SKIP_ACK, message_id).text
    closed = replace(_close(ctx, Phase.SKIPPED), answered_at=ctx.sent_at)
    messages = (_to_patient(ctx, message_id, MessageKind.SKIP_ACK, text),)
    return Transition(closed, messages + _caregiver_alert(ctx, Text.CAREGIVER_SKIP))


def _snooze(ctx: _Context) -> Transition:
    assert ctx.reply is not None
    cycle = ctx.cycle
    target = snooze_target(ctx.reply, ctx.patient, ctx.medication, ctx.now)
    number = cycle.snoozes + 1
    message_id = f"{cycle.id}/{MessageKind.SNOOZE_ACK.value}-{number}"
    text = _render(ctx, Text.SNOOZE_ACK, message_id, at=target).text

    snoozed = replace(cycle, next_at=target, snoozes=number, snoozed=True)
    return Transition(snoozed, (_to_patient(ctx, message_id, MessageKind.SNOOZE_ACK, text),))


def _acknowledge_negation(ctx: _Context) -> Transition:
    cycle = ctx.cycle
    assert cycle.next_at is not None
    final = cycle.asks_sent >= ctx.medication.asks and not cycle.snoozed
    text_kind = Text.FINAL_NEGATION_ACK if final else Text.NEGATION_ACK
    message_id = f"{cycle.id}/{MessageKind.NEGATION_ACK.value}"
    text = _render(ctx, text_kind, message_id, at=cycle.next_at).text
    message = _to_patient(ctx, message_id, MessageKind.NEGATION_ACK, text)
    return Transition(replace(cycle, hinted=True), (message,))


def _hint(ctx: _Context) -> Transition:
    message_id = f"{ctx.cycle.id}/{MessageKind.HINT.value}"
    text = _render(ctx, Text.HINT, message_id).text
    message = _to_patient(ctx, message_id, MessageKind.HINT, text)
    return Transition(replace(ctx.cycle, hinted=True), (message,))


# --- The table --------------------------------------------------------------------------

_OPEN_REPLIES = (Event.CONFIRM, Event.SKIP, Event.SNOOZE, Event.NEGATION, Event.UNKNOWN)
_ALL_EVENTS = (Event.TIMER, *_OPEN_REPLIES)
_CLOSED = (Phase.TAKEN, Phase.SKIPPED, Phase.MISSED)
S, A = Phase.SCHEDULED, Phase.ASKING

TRANSITIONS: tuple[Row, ...] = (
    Row((S,), (Event.TIMER,), Guard.FRESH, "ASKING", "ask", _ask),
    Row((S,), (Event.TIMER,), Guard.LATE, "ASKING", "late ask (names the due time)", _late_ask),
    Row((S,), (Event.TIMER,), Guard.PAST_WINDOW, "MISSED", "nothing (summary)", _miss_silently),
    Row((S,), _OPEN_REPLIES, Guard.ANY, "same", "nothing", _stay),
    Row((A,), (Event.TIMER,), Guard.PAST_WINDOW, "MISSED", "nothing (summary)", _miss_silently),
    Row((A,), (Event.TIMER,), Guard.ASKS_LEFT, "ASKING", "re-ask", _reask),
    Row((A,), (Event.TIMER,), Guard.SNOOZED, "ASKING", "re-ask", _reask),
    Row((A,), (Event.TIMER,), Guard.ASKS_USED, "MISSED", "give-up, caregiver alert", _give_up),
    Row((A,), _OPEN_REPLIES, Guard.BEFORE_ASK, "same", "nothing", _stay),
    Row((A,), (Event.CONFIRM,), Guard.ANY, "TAKEN", "praise", _praise),
    Row((A,), (Event.SKIP,), Guard.ANY, "SKIPPED", "skip ack, caregiver alert", _skip),
    Row((A,), (Event.SNOOZE,), Guard.SNOOZES_LEFT, "same", "snooze ack", _snooze),
    Row((A,), (Event.SNOOZE, Event.NEGATION), Guard.NOT_HINTED, "same", "negation ack",
        _acknowledge_negation),
    Row((A,), (Event.SNOOZE, Event.NEGATION), Guard.HINTED, "same", "nothing", _stay),
    Row((A,), (Event.UNKNOWN,), Guard.NOT_HINTED, "same", "hint", _hint),
    Row((A,), (Event.UNKNOWN,), Guard.HINTED, "same", "nothing", _stay),
    Row(_CLOSED, _ALL_EVENTS, Guard.ANY, "same", "nothing", _stay),
)


def find_row(phase: Phase, event: Event, guards: Sequence[Guard]) -> Row:
    """Return the first row for ``phase`` and ``event`` whose guard is ANY or in ``guards``."""
    for row in TRANSITIONS:
        matches_guard = row.guard is Guard.ANY or row.guard in guards
        if phase in row.phases and event in row.events and matches_guard:
            return row
    raise LookupError(f"no transition for {phase.name} on {event.value} with {guards}")


# --- Entry points -----------------------------------------------------------------------


def new_cycle(key: DoseKey) -> Cycle:
    """Return the SCHEDULED cycle of a dose, its first timer at the due time."""
    return Cycle(key=key, phase=Phase.SCHEDULED, next_at=key.due_at)


def on_timer(cycle: Cycle, patient: Patient, medication: Medication, now: datetime) -> Transition:
    """Advance a cycle whose ``next_at`` has come: first ask, re-ask, or give-up.

    Also handles a timer that fires late after a stop. Past the late window the dose
    closes as MISSED without a message, because the runtime sends one summary instead.
    Inside it, at most one ask goes out however many re-asks fell due while the bot was
    stopped. A call before ``next_at``, or for a closed cycle, changes nothing.
    """
    if cycle.next_at is None or now < cycle.next_at:
        return Transition(cycle)
    row = find_row(cycle.phase, Event.TIMER, _timer_guards(cycle, medication, now))
    return row.action(_Context(cycle, patient, medication, now))


def on_reply(
    cycle: Cycle,
    patient: Patient,
    medication: Medication,
    reply: Reply,
    sent_at: datetime,
    now: datetime,
) -> Transition:
    """Apply a patient's reply, sent at ``sent_at``, to the open cycle it answers.

    Only an ASKING cycle changes, and only for a reply sent after its first ask. Anything
    else returns the cycle unchanged, so a reply never rewrites a past dose.
    """
    event = Event(reply.kind.value)
    row = find_row(cycle.phase, event, _reply_guards(cycle, reply, sent_at))
    return row.action(_Context(cycle, patient, medication, now, reply, sent_at))


def missed_summary(
    patient: Patient, missed: Sequence[Cycle], now: datetime
) -> OutgoingMessage | None:
    """Build the one message listing the doses closed as missed while the bot was stopped."""
    if not missed:
        return None
    ordered = sorted(missed, key=lambda cycle: cycle.key.due_at)
    message_id = f"{ordered[-1].id}/{MessageKind.MISSED_SUMMARY.value}"

    lines = [render(Text.MISSED_SUMMARY, patient.language, {"name": patient.name}).text]
    for cycle in ordered:
        values = {
            "medication": _medication_name(patient, cycle),
            "time": _local_stamp(cycle.key.due_at, patient, now),
        }
        lines.append(render(Text.MISSED_LINE, patient.language, values).text)
    return OutgoingMessage(
        message_id, patient.id, patient.address, MessageKind.MISSED_SUMMARY, "\n".join(lines), now
    )


def snooze_target(
    reply: Reply, patient: Patient, medication: Medication, now: datetime
) -> datetime:
    """Return when a snoozed cycle asks next, kept between MIN_SNOOZE and MAX_SNOOZE_AHEAD.

    A delay counts from ``now``. A wall time means the next such local time in the
    patient's zone, and a bare "later" means one re-ask interval.
    """
    if reply.snooze_for is not None:
        target = now + reply.snooze_for
    elif reply.snooze_until is not None:
        target = _next_wall_time(reply.snooze_until, reply.either_half_day, patient, now)
    else:
        target = now + medication.reask_interval
    return min(max(target, now + MIN_SNOOZE), now + MAX_SNOOZE_AHEAD)


# --- Guards -----------------------------------------------------------------------------


def _timer_guards(cycle: Cycle, medication: Medication, now: datetime) -> tuple[Guard, ...]:
    assert cycle.next_at is not None
    stale = now - cycle.next_at > min(STALE_GRACE, medication.reask_interval)
    if stale and now > cycle.key.due_at + medication.effective_late_window:
        return (Guard.PAST_WINDOW,)
    if cycle.phase is Phase.SCHEDULED:
        return (Guard.LATE,) if stale else (Guard.FRESH,)
    if cycle.snoozed:
        return (Guard.SNOOZED,)
    return (Guard.ASKS_LEFT,) if cycle.asks_sent < medication.asks else (Guard.ASKS_USED,)


def _reply_guards(cycle: Cycle, reply: Reply, sent_at: datetime) -> tuple[Guard, ...]:
    asked_at = cycle.first_asked_at
    if asked_at is None or sent_at < asked_at - REPLY_CLOCK_SKEW:
        return (Guard.BEFORE_ASK,)
    guards = [Guard.HINTED if cycle.hinted else Guard.NOT_HINTED]
    if reply.kind is ReplyKind.SNOOZE and cycle.snoozes < MAX_SNOOZES:
        guards.insert(0, Guard.SNOOZES_LEFT)
    return tuple(guards)


# --- Helpers ----------------------------------------------------------------------------


def _close(ctx: _Context, phase: Phase) -> Cycle:
    return replace(ctx.cycle, phase=phase, next_at=None, closed_at=ctx.now, snoozed=False)


def _render(
    ctx: _Context, text: Text, message_id: str, *, variant: bool = False, at: datetime | None = None
) -> Phrase:
    moment = at if at is not None else ctx.cycle.key.due_at
    values = {
        "name": ctx.patient.name,
        "medication": ctx.medication.name,
        "time": _local_time(moment, ctx.patient),
    }
    return render(
        text,
        ctx.patient.language,
        values,
        custom=ctx.medication.wording,
        seed=message_id,
        avoid=ctx.cycle.last_phrase if variant else None,
    )


def _to_patient(ctx: _Context, message_id: str, kind: MessageKind, body: str) -> OutgoingMessage:
    return OutgoingMessage(message_id, ctx.patient.id, ctx.patient.address, kind, body, ctx.now)


def _caregiver_alert(ctx: _Context, text: Text) -> tuple[OutgoingMessage, ...]:
    caregiver = ctx.patient.caregiver
    if caregiver is None:
        return ()
    message_id = f"{ctx.cycle.id}/{MessageKind.CAREGIVER_ALERT.value}"
    body = _render(ctx, text, message_id).text
    kind = MessageKind.CAREGIVER_ALERT
    return (OutgoingMessage(message_id, ctx.patient.id, caregiver, kind, body, ctx.now),)


def _local_time(moment: datetime, patient: Patient) -> str:
    return moment.astimezone(patient.zone).strftime("%H:%M")


def _local_stamp(moment: datetime, patient: Patient, now: datetime) -> str:
    """Format as HH:MM when ``moment`` is on today's local date, else YYYY-MM-DD HH:MM."""
    local = moment.astimezone(patient.zone)
    if local.date() == now.astimezone(patient.zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _medication_name(patient: Patient, cycle: Cycle) -> str:
    medication = patient.medication(cycle.key.medication_id)
    return medication.name if medication is not None else cycle.key.medication_id


def _next_wall_time(wall: time, either_half_day: bool, patient: Patient, now: datetime) -> datetime:
    """Return the first instant after ``now`` showing ``wall`` on the patient's clock.

    A wall time inside a fall-back overlap shows twice, and both instants count. One
    inside a spring-forward gap never shows, so it maps to the instant one gap length
    later, after the clocks went forward (zoneinfo's fold=0 reading).
    """
    walls = [wall]
    if either_half_day:
        walls = [time(wall.hour % 12, wall.minute), time(wall.hour % 12 + 12, wall.minute)]
    today = now.astimezone(patient.zone).date()
    candidates: list[datetime] = []
    for candidate_wall in walls:
        for day_offset in (0, 1, 2):
            day = today + timedelta(days=day_offset)
            instants = _wall_instants(day, candidate_wall, patient)
            candidates.extend(instant for instant in instants if instant > now)
    return min(candidates)


def _wall_instants(day: date, wall: time, patient: Patient) -> set[datetime]:
    """Return the UTC instants at which the patient's clock shows ``wall`` on ``day``."""
    naive = datetime.combine(day, wall)
    readings = [naive.replace(tzinfo=patient.zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    showing = {instant for instant in readings if _shows(instant, naive, patient)}
    # Inside a gap no reading shows the wall time, so take the fold=0 one, after the gap.
    return showing or {readings[0]}


def _shows(instant: datetime, naive: datetime, patient: Patient) -> bool:
    return instant.astimezone(patient.zone).replace(tzinfo=None) == naive


# --- Documentation views of the table ---------------------------------------------------


def table_markdown() -> str:
    """Render ``TRANSITIONS`` as the Markdown table shown in docs/conversation.md."""
    lines = ["| From | Event | Guard | To | Sends |", "|---|---|---|---|---|"]
    for row in TRANSITIONS:
        phases = ", ".join(phase.name for phase in row.phases)
        events = ", ".join(event.value for event in row.events)
        lines.append(f"| {phases} | {events} | {row.guard.value} | {row.target} | {row.sends} |")
    return "\n".join(lines)


def diagram_mermaid() -> str:
    """Render the rows that change the phase or send something as a Mermaid diagram."""
    lines = ["stateDiagram-v2", "    [*] --> SCHEDULED"]
    for row in TRANSITIONS:
        if row.target == "same" and row.sends == "nothing":
            continue
        events = ", ".join(event.value for event in row.events)
        for phase in row.phases:
            target = phase.name if row.target == "same" else row.target
            label = f"{events} [{row.guard.value}] / {row.sends}"
            lines.append(f"    {phase.name} --> {target}: {label}")
    lines.extend(f"    {phase.name} --> [*]" for phase in _CLOSED)
    return "\n".join(lines)
