"""The store interface that the runtime depends on.

A store keeps three things: dose cycles (current state and, once closed, history), the
outbox of messages to send, and the ids of inbound messages already processed. Each
``commit`` is one database transaction: a cycle's new state, the messages it causes and
the inbound id that caused it are written together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from medbot.core.models import Cycle, OutboxEntry, OutgoingMessage


@dataclass(frozen=True, slots=True)
class Change:
    """One atomic unit of work for ``Store.commit``.

    ``cycles`` are inserted or replaced by dose id. ``messages`` are added to the outbox;
    a message id that is already in the outbox is kept as it is. ``inbound_ids`` are
    recorded as processed. ``unscheduled`` names doses to delete, which happens only to
    a dose still SCHEDULED: nothing was sent for it, so it leaves no history behind.
    """

    cycles: Sequence[Cycle] = ()
    messages: Sequence[OutgoingMessage] = ()
    inbound_ids: Sequence[str] = ()
    unscheduled: Sequence[str] = ()


class Store(Protocol):
    async def open(self) -> None:
        """Open the database, creating it with mode 0600 and migrating it when needed.

        Raises StoreError (SchemaTooNewError for a newer schema) on failure.
        """

    async def close(self) -> None: ...

    async def commit(self, changes: Sequence[Change]) -> None:
        """Write all ``changes`` in one transaction; nothing is written if any part fails."""

    async def load_open_cycles(self) -> list[Cycle]:
        """Return every cycle whose phase is SCHEDULED or ASKING."""

    async def load_cycle(self, dose_id: str) -> Cycle | None: ...

    async def last_due(self, patient_id: str, medication_id: str) -> datetime | None:
        """Return the latest due time of any cycle of this medication, or None."""

    async def last_dues(self) -> dict[tuple[str, str], datetime]:
        """Return the latest due time of every medication that has a cycle.

        Keys are ``(patient id, medication id)``; a medication without cycles is absent.
        """

    async def is_inbound_processed(self, inbound_id: str) -> bool: ...

    async def pending_outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """Return undelivered outbox entries, oldest first."""

    async def mark_attempted(self, message_ids: Sequence[str], at: datetime) -> None:
        """Count one send attempt for each message and set its first attempt time once."""

    async def mark_delivered(self, message_ids: Sequence[str], at: datetime) -> None: ...

    async def mark_superseded(self, message_ids: Sequence[str], at: datetime) -> None:
        """Take undelivered messages out of the outbox unsent, marked superseded.

        Used for an ask whose dose the patient answered, or which a newer ask of the same
        dose replaced, while it waited: sending it late could prompt a second dose.
        """

    async def history(
        self, patient_id: str | None, since: datetime, until: datetime | None = None
    ) -> list[Cycle]:
        """Return cycles whose due time lies in [since, until), by due time."""

    async def outbox_for_dose(self, dose_id: str) -> list[OutboxEntry]:
        """Return every outbox entry whose message id starts with the dose id."""
