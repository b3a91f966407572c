"""The dose conversation: every transition of one dose cycle, as a pure function.

PLACEHOLDER: signatures only; the implementation replaces this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from medbot.core.models import Cycle, DoseKey, Medication, OutgoingMessage, Patient, Transition
from medbot.core.replies import Reply


def new_cycle(key: DoseKey) -> Cycle:
    """Return the SCHEDULED cycle of a dose, its first timer at the due time."""
    raise NotImplementedError


def on_timer(cycle: Cycle, patient: Patient, medication: Medication, now: datetime) -> Transition:
    """Advance a cycle whose ``next_at`` has come: first ask, re-ask, or give-up.

    Also handles a timer that fires late after a stop: past the late window the dose
    closes as MISSED without a message (the runtime sends one summary instead), and at
    most one ask goes out however many re-asks fell due while the bot was stopped.
    """
    raise NotImplementedError


def on_reply(
    cycle: Cycle, patient: Patient, medication: Medication, reply: Reply, sent_at: datetime, now: datetime
) -> Transition:
    """Apply a patient's reply, sent at ``sent_at``, to the open cycle it answers."""
    raise NotImplementedError


def missed_summary(
    patient: Patient, missed: Sequence[Cycle], now: datetime
) -> OutgoingMessage | None:
    """Build the one message that tells a patient which doses were missed while the bot was stopped."""
    raise NotImplementedError
