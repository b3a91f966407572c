"""The outbox dispatcher: hands committed messages to the transport until each is delivered.

A message reaches the dispatcher only after the store transaction that added it to the
outbox has returned. Each send attempt is counted in the store before the send, and the
message is marked delivered after the transport accepted it, so a restart can tell which
messages might already be out (see ``resume_pending``).

Message ids contain the medication id, so log lines at INFO and above name a message by
its kind, its patient and ``message_ref``, and only DEBUG lines carry the full id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from medbot.core.models import OutgoingMessage
from medbot.errors import TransportError, TransportFatal
from medbot.runtime.clock import Clock
from medbot.store.base import Store
from medbot.transports.base import Transport

log = logging.getLogger(__name__)


def message_ref(message_id: str) -> str:
    """Return a short opaque reference to ``message_id`` for log lines above DEBUG.

    The reference is the first 10 hex digits of the SHA-256 of the id. It does not reveal
    the medication, and an operator can match it against the full id in DEBUG lines.
    """
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:10]


def describe(message: OutgoingMessage) -> str:
    """Return ``kind ref for patient``, a log-safe description of ``message``."""
    return f"{message.kind.value} {message_ref(message.message_id)} for {message.patient_id}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped, jittered exponential back-off between delivery rounds, in real seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, round_number: int) -> float:
        """Return the pause before retry round ``round_number`` (1 for the first retry).

        The result is drawn from [half, all] of the capped exponential value, so many
        bots that lost the same server do not come back in step.
        """
        # The exponent stops growing after 64 rounds: by then any useful policy has hit
        # its maximum, and a larger power overflows a float once a send has failed
        # for long enough (1025 rounds with factor 2).
        exponent = min(round_number - 1, 64)
        capped = min(self.maximum, self.initial * self.factor**exponent)
        return random.uniform(capped / 2, capped)


class Dispatcher:
    """Sends outbox messages with bounded concurrency, in order per recipient."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        max_in_flight: int = 64,
        batch_size: int = 5000,
        on_fatal: Callable[[TransportFatal], None] | None = None,
        is_superseded: Callable[[OutgoingMessage], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._max_in_flight = max_in_flight
        self._batch_size = batch_size
        self._on_fatal = on_fatal
        self._is_superseded = is_superseded
        self._queue: deque[OutgoingMessage] = deque()
        self._queued_ids: set[str] = set()
        self._failed_unexpectedly: set[str] = set()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.delivered_count = 0

    def enqueue(self, messages: Sequence[OutgoingMessage]) -> None:
        """Queue committed messages; an id that is already queued is skipped."""
        for message in messages:
            if message.message_id in self._queued_ids:
                continue
            self._queued_ids.add(message.message_id)
            self._queue.append(message)
        if self._queue:
            self._idle.clear()
            self._ready.set()

    async def resume_pending(self) -> None:
        """Queue the undelivered outbox left by an earlier run.

        A message whose send was attempted but never confirmed is first checked with
        ``Transport.was_delivered``, so it is not sent twice when the network has it.
        """
        entries = await self._store.pending_outbox()
        confirmed: list[str] = []
        resend: list[OutgoingMessage] = []
        for entry in entries:
            if entry.attempts > 0 and await self._transport.was_delivered(entry.message):
                confirmed.append(entry.message.message_id)
            else:
                resend.append(entry.message)
        if confirmed:
            await self._store.mark_delivered(confirmed, self._clock.now())
        log.info(
            "outbox: %d pending message(s) queued, %d found already delivered",
            len(resend),
            len(confirmed),
        )
        self.enqueue(resend)

    @property
    def idle(self) -> bool:
        """Tell whether every queued message has been delivered."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Wait until every queued message has been delivered."""
        await self._idle.wait()

    async def run(self) -> None:
        """Deliver queued messages until cancelled or a TransportFatal error stops it."""
        failures = 0
        while True:
            if not self._queue:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
            batch = await self._drop_superseded(self._take_batch())
            failed = await self._deliver(batch) if batch else []
            if not failed:
                failures = 0
                continue
            failures += 1
            self._requeue_front(failed)
            await self._pause_before_retry(failures, failed)

    def _take_batch(self) -> list[OutgoingMessage]:
        count = min(self._batch_size, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    async def _drop_superseded(self, batch: list[OutgoingMessage]) -> list[OutgoingMessage]:
        """Take obsolete asks out of ``batch`` and mark them superseded in the store.

        An ask that waited through an outage or a restart while a newer ask of the same
        dose was committed, or while the patient answered, is not sent: a burst of stale
        asks could prompt a second dose.
        """
        if self._is_superseded is None:
            return batch
        dropped = [message for message in batch if await self._is_superseded(message)]
        if not dropped:
            return batch
        await self._store.mark_superseded([m.message_id for m in dropped], self._clock.now())
        for message in dropped:
            self._queued_ids.discard(message.message_id)
        log.info("dropped %d superseded ask(s), first %s", len(dropped), describe(dropped[0]))
        dropped_ids = {m.message_id for m in dropped}
        return [m for m in batch if m.message_id not in dropped_ids]

    def _requeue_front(self, failed: list[OutgoingMessage]) -> None:
        self._queue.extendleft(reversed(failed))

    async def _pause_before_retry(self, round_number: int, failed: list[OutgoingMessage]) -> None:
        delay = self._retry.delay(round_number)
        log.warning(
            "delivery failed for %d message(s), first %s; retry round %d in %.1f s",
            len(failed),
            describe(failed[0]),
            round_number,
            delay,
        )
        await asyncio.sleep(delay)

    async def _deliver(self, batch: list[OutgoingMessage]) -> list[OutgoingMessage]:
        """Send one batch and return the messages that failed, in their original order.

        The whole batch is marked attempted in one transaction and delivered in another,
        so a large batch costs two store writes, not two per message. Sent messages are
        marked delivered in a ``finally`` block. A message that went out is thus recorded
        even when the batch is cancelled half-way, so a restart does not send it again.
        """
        await self._store.mark_attempted([m.message_id for m in batch], self._clock.now())
        by_recipient: dict[str, list[OutgoingMessage]] = defaultdict(list)
        for message in batch:
            by_recipient[message.recipient].append(message)
        delivered: list[OutgoingMessage] = []
        # A fixed number of workers share one iterator over the recipients, which bounds
        # the sends in flight without creating a task per recipient.
        queues = iter(by_recipient.values())
        workers = min(self._max_in_flight, len(by_recipient))
        try:
            await asyncio.gather(*(self._send_queues(queues, delivered) for _ in range(workers)))
        finally:
            await self._record_delivered(delivered)
        delivered_ids = {m.message_id for m in delivered}
        return [m for m in batch if m.message_id not in delivered_ids]

    async def _record_delivered(self, delivered: list[OutgoingMessage]) -> None:
        if not delivered:
            return
        await self._store.mark_delivered([m.message_id for m in delivered], self._clock.now())
        for message in delivered:
            self._queued_ids.discard(message.message_id)
        self.delivered_count += len(delivered)

    async def _send_queues(
        self, queues: Iterator[list[OutgoingMessage]], delivered: list[OutgoingMessage]
    ) -> None:
        """Send the recipients' messages taken from ``queues`` until none is left.

        Each recipient's messages go out in order, and sending them stops at the first
        failure, so a later message never overtakes an earlier one that failed. Each sent
        message is appended to ``delivered``.
        """
        for messages in queues:
            for message in messages:
                if not await self._send_one(message):
                    break
                delivered.append(message)

    async def _send_one(self, message: OutgoingMessage) -> bool:
        """Send ``message`` and return whether the transport accepted it.

        Any exception except cancellation counts as a failed send of this message only,
        so an unexpected error in one send does not stop the other recipients' messages.
        """
        try:
            await self._transport.send(message)
        except TransportFatal as error:
            log.error("sending %s failed and cannot be retried: %s", describe(message), error)
            log.debug("message %s is %s", message_ref(message.message_id), message.message_id)
            if self._on_fatal is not None:
                self._on_fatal(error)
            return False
        except TransportError as error:
            log.debug("sending %s failed: %s", message.message_id, error)
            return False
        except Exception:
            self._log_unexpected(message)
            return False
        self._failed_unexpectedly.discard(message.message_id)
        # Checked first because describe() hashes the id, which a herd of sends would
        # pay for even with INFO disabled.
        if log.isEnabledFor(logging.INFO):
            log.info("sent %s", describe(message))
            log.debug("sent %s (%s)", message.message_id, message_ref(message.message_id))
        return True

    def _log_unexpected(self, message: OutgoingMessage) -> None:
        """Log an unexpected send error with its traceback once per message.

        Later failures of the same message go to DEBUG, because the retry warning of each
        round already reports them.
        """
        ref = message_ref(message.message_id)
        if message.message_id in self._failed_unexpectedly:
            log.debug("sending %s (%s) failed again", message.message_id, ref, exc_info=True)
            return
        self._failed_unexpectedly.add(message.message_id)
        log.exception("sending %s failed with an unexpected error; retrying", describe(message))
        log.debug("message %s is %s", ref, message.message_id)
