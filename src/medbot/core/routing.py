"""Which open dose a patient's reply answers.

A patient with several doses open answers the question that was in front of them when
they wrote, so a reply is matched by its original send time (``sent_at``, which for an
offline message is the server's delay stamp), not by when it arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from medbot.core.conversation import REPLY_CLOCK_SKEW
from medbot.core.models import Cycle, Medication


@dataclass(frozen=True, slots=True)
class OpenDose:
    """An ASKING cycle with what routing needs to know about it.

    ``asked_at`` contains the send time of every ask and re-ask of the dose. ``rank`` is the
    medication's position in the patient's configuration and breaks ties.
    """

    cycle: Cycle
    medication: Medication
    asked_at: tuple[datetime, ...]
    rank: int

    @property
    def closes_at(self) -> datetime:
        """Latest send time of a reply that can still belong to this dose.

        Past the late window and past its pending timer, the dose would have been given
        up had the bot been running, so a reply written after that, and delivered only
        after a stop, belongs to a later dose.
        """
        late_end = self.cycle.key.due_at + self.medication.effective_late_window
        pending = self.cycle.next_at
        return late_end if pending is None else max(late_end, pending)


def answered_dose(open_doses: Sequence[OpenDose], sent_at: datetime) -> Cycle | None:
    """Return the cycle a reply sent at ``sent_at`` answers, or None.

    The reply answers the dose whose latest ask at or before ``sent_at`` is the most
    recent. Doses asked at the same instant go by configuration order, so each "yes"
    confirms one of them, the first listed first. A reply sent before every open ask, or
    after a dose closes, answers none of them.
    """
    best: tuple[datetime, int] | None = None
    chosen: Cycle | None = None
    for dose in open_doses:
        if sent_at > dose.closes_at:
            continue
        earlier = [at for at in dose.asked_at if at <= sent_at + REPLY_CLOCK_SKEW]
        if not earlier:
            continue
        key = (max(earlier), -dose.rank)
        if best is None or key > best:
            best, chosen = key, dose.cycle
    return chosen
