"""Domain types shared by the pure core, the stores, the transports and the runtime.

Every datetime in these types is timezone-aware and in UTC. Local wall times exist only
inside schedule math and in the text shown to people.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_REASK_INTERVAL = timedelta(minutes=20)
DEFAULT_ASKS = 3


class Phase(enum.Enum):
    """Where the conversation about one dose stands."""

    SCHEDULED = "scheduled"  # due in the future, nothing sent yet ("no msg sent")
    ASKING = "asking"  # at least one ask sent, no answer that ends the cycle yet
    TAKEN = "taken"
    SKIPPED = "skipped"
    MISSED = "missed"

    @property
    def is_open(self) -> bool:
        return self in (Phase.SCHEDULED, Phase.ASKING)


class MessageKind(enum.Enum):
    """Purpose of an outgoing message; part of its stable id."""

    ASK = "ask"
    REASK = "reask"
    PRAISE = "praise"
    GIVE_UP = "give-up"
    SKIP_ACK = "skip-ack"
    SNOOZE_ACK = "snooze-ack"
    NEGATION_ACK = "negation-ack"
    HINT = "hint"
    CAREGIVER_ALERT = "caregiver-alert"
    MISSED_SUMMARY = "missed-summary"


# --- Configuration, as the core sees it -------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailySchedule:
    """Wall-clock schedule: the given local times on matching days.

    ``weekdays`` uses ``date.weekday()`` numbering (Monday is 0); empty means every day.
    ``every_days`` > 1 counts days from ``start``, which must then be set.
    """

    times: tuple[time, ...]
    weekdays: frozenset[int] = frozenset()
    every_days: int = 1
    start: date | None = None


@dataclass(frozen=True, slots=True)
class Wording:
    """Custom phrasings for one medication; an empty tuple keeps the built-in catalog."""

    ask: tuple[str, ...] = ()
    reask: tuple[str, ...] = ()
    praise: tuple[str, ...] = ()
    give_up: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Medication:
    id: str
    name: str
    schedule: DailySchedule
    reask_interval: timedelta = DEFAULT_REASK_INTERVAL
    asks: int = DEFAULT_ASKS
    late_window: timedelta | None = None
    wording: Wording = field(default_factory=Wording)

    @property
    def cycle_length(self) -> timedelta:
        """Time from the first ask to the give-up message."""
        return self.reask_interval * self.asks

    @property
    def effective_late_window(self) -> timedelta:
        """How long after its due time a dose may still be asked; defaults to the cycle length."""
        return self.late_window if self.late_window is not None else self.cycle_length


@dataclass(frozen=True, slots=True)
class Patient:
    id: str
    name: str
    address: str
    language: str
    zone: ZoneInfo
    medications: tuple[Medication, ...]
    caregiver: str | None = None

    def medication(self, medication_id: str) -> Medication | None:
        for medication in self.medications:
            if medication.id == medication_id:
                return medication
        return None


# --- Dose cycles ------------------------------------------------------------------------


def _require_utc(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be an aware UTC datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class DoseKey:
    """Identity of one dose: one medication of one patient at one due instant."""

    patient_id: str
    medication_id: str
    due_at: datetime
    # The id, formatted once: the runtime reads it many times per dose.
    _id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require_utc(self.due_at, "due_at")
        text = f"{self.patient_id}/{self.medication_id}/{self.due_at:%Y%m%dT%H%M%SZ}"
        object.__setattr__(self, "_id", text)

    @property
    def id(self) -> str:
        """Stable text id, used as the primary key and inside message ids."""
        return self._id


@dataclass(frozen=True, slots=True)
class Cycle:
    """State of the conversation about one dose; also its history row once closed.

    ``next_at`` is when the next timer event is due (first ask, re-ask or give-up) and is
    None once the cycle is closed. ``last_phrase`` is the catalog index of the phrasing
    sent last, so the next message can avoid repeating it.
    """

    key: DoseKey
    phase: Phase = Phase.SCHEDULED
    asks_sent: int = 0
    next_at: datetime | None = None
    first_asked_at: datetime | None = None
    last_asked_at: datetime | None = None
    hinted: bool = False
    last_phrase: int | None = None
    snoozes: int = 0  # snoozes granted in this cycle; numbers the snooze acks
    snoozed: bool = False  # the pending timer was set by a snooze, so it asks once more
    answered_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.key.id


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message the core wants sent; committed to the outbox before any send.

    ``message_id`` is stable across restarts: it is derived from the dose id, the kind and
    the ask number, so a resend after a crash carries the same id.
    """

    message_id: str
    patient_id: str
    recipient: str
    kind: MessageKind
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Transition:
    """Result of feeding one event to the core: the new cycle state and what to send."""

    cycle: Cycle
    messages: tuple[OutgoingMessage, ...] = ()


# --- Transport-facing records -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message that a transport accepted from a configured patient address.

    ``sent_at`` is the original send time (an XMPP delay stamp for offline delivery), or
    the receive time when the network gives none. ``message_id`` lets the runtime process
    a redelivered message once; None when the network gives no id.
    """

    sender: str
    body: str
    sent_at: datetime
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outbox row: a committed message and its delivery state."""

    message: OutgoingMessage
    attempts: int = 0
    first_attempt_at: datetime | None = None
    delivered_at: datetime | None = None  # when it left the outbox, sent or superseded
    superseded: bool = False  # left unsent: the patient answered, or a newer ask replaced it


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """Build an aware UTC datetime; a shorthand for tests and examples."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
