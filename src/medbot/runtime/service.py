"""The asyncio service: timers, inbound replies, group commit and delivery, wired together.

All dose state changes run under one lock: a timer batch and an inbound reply never
interleave, so a reply that arrives before a re-ask is due is committed first, and the
re-ask then finds the cycle closed. Every change is committed before its messages reach
the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from medbot.config import Config
from medbot.core import conversation, replies, routing
from medbot.core.models import (
    Cycle,
    DoseKey,
    InboundMessage,
    Medication,
    MessageKind,
    OutgoingMessage,
    Patient,
    Phase,
    Transition,
)
from medbot.errors import MedbotError, StoreError, TransportFatal
from medbot.runtime.clock import Clock
from medbot.runtime.dispatcher import Dispatcher, RetryPolicy, message_ref
from medbot.runtime.recovery import (
    CatchUpLimits,
    MedicationKey,
    materialise,
    next_occurrence,
    outdated_doses,
)
from medbot.runtime.timers import TimerHeap
from medbot.store.base import Change, Store
from medbot.transports.base import Transport

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1

# Unknown senders are logged at most once per this many seconds.
_UNKNOWN_SENDER_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """Tuning of the service; the defaults suit a real deployment."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    catch_up: CatchUpLimits = field(default_factory=CatchUpLimits)
    # Timers due together are committed in one transaction of at most this many cycles.
    batch_limit: int = 5000
    # Real seconds that a stop waits for queued messages before it gives up on them.
    drain_timeout: float = 2.0
    max_in_flight: int = 64


@dataclass(slots=True)
class _Batch:
    """Changes computed for one commit, applied to memory only after the commit returned."""

    cycles: list[Cycle] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    missed_silently: list[Cycle] = field(default_factory=list)
    latest_due: dict[MedicationKey, datetime] = field(default_factory=dict)

    def add(self, transition: Transition) -> None:
        self.cycles.append(transition.cycle)
        self.messages.extend(transition.messages)


class Service:
    """Runs the dose conversations of every configured patient until stopped."""

    def __init__(
        self,
        config: Config,
        store: Store,
        transport: Transport,
        clock: Clock,
        options: ServiceOptions | None = None,
        on_closed: Callable[[Cycle], None] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._transport = transport
        self._clock = clock
        self._options = options or ServiceOptions()
        self._on_closed = on_closed
        self._heap = TimerHeap()
        self._lock = asyncio.Lock()
        self._cycles: dict[str, Cycle] = {}
        # A list per patient, because an empty set alone takes 216 bytes in CPython 3.11,
        # and a patient usually has one or two open doses.
        self._by_patient: dict[str, list[str]] = {}
        self._latest_due: dict[MedicationKey, datetime] = {}
        self._stop_requested = asyncio.Event()
        self._started = asyncio.Event()
        self._exit_code = EXIT_OK
        self._store_open = False
        self._transport_started = False
        self._tasks: tuple[asyncio.Task[None], asyncio.Task[None]] | None = None
        self._unknown_senders = 0
        self._unknown_logged_at = float("-inf")
        self._dispatcher = Dispatcher(
            store,
            transport,
            clock,
            retry=self._options.retry,
            max_in_flight=self._options.max_in_flight,
            on_fatal=self._fail_fatally,
            is_superseded=self._is_superseded,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until ``stop`` or a fatal error, shut down; return the exit code.

        Errors during start-up (StoreError, TransportFatal) propagate after the parts
        that were started have been stopped.
        """
        try:
            await self._start()
            await self._serve()
        finally:
            await self._shutdown()
        return self._exit_code

    def stop(self) -> None:
        """Ask the service to stop after the commit in progress; safe from signal handlers."""
        self._stop_requested.set()

    async def wait_started(self) -> None:
        """Wait until start-up and recovery are done and the timers run."""
        await self._started.wait()

    async def wait_idle(self) -> None:
        """Wait until every committed message has been handed to the transport."""
        await self._dispatcher.wait_idle()

    @property
    def busy(self) -> bool:
        """Tell whether a commit runs, a timer is due or a message waits to be sent."""
        earliest = self._heap.earliest()
        due = earliest is not None and earliest <= self._clock.now()
        return self._lock.locked() or due or not self._dispatcher.idle

    @property
    def open_cycles(self) -> dict[str, Cycle]:
        """Open cycles by dose id, as kept in memory; read-only for callers."""
        return dict(self._cycles)

    async def _start(self) -> None:
        await self._store.open()
        self._store_open = True
        log.info("starting with %d patient(s)", len(self._config.patients))
        stored = await self._store.load_open_cycles()
        outdated = await self._drop_outdated(stored)
        planned = await self._materialise(_replaced_dues(outdated))
        self._track_loaded(stored, outdated)
        # The planned cycles are tracked as built rather than read back from the store,
        # which saves decoding every row again and shares the ids with the config.
        for cycle in planned:
            self._track(cycle)
        del stored, planned
        self._transport_started = True
        await self._transport.start(self.on_inbound)
        async with self._lock:
            await self._recover()
        await self._dispatcher.resume_pending()
        log.info("started: %d open dose(s)", len(self._cycles))
        self._started.set()

    async def _drop_outdated(self, stored: list[Cycle]) -> list[Cycle]:
        """Delete the planned doses that the edited configuration no longer produces."""
        outdated = outdated_doses(self._config, stored)
        if outdated:
            await self._store.commit([Change(unscheduled=[cycle.id for cycle in outdated])])
            log.info("removed %d dose(s) that the configuration no longer schedules", len(outdated))
        return outdated

    async def _materialise(self, changed: dict[MedicationKey, datetime]) -> tuple[Cycle, ...]:
        """Store the cycles every medication needs now and return them."""
        result = await materialise(
            self._config, self._store, self._clock.now(), self._options.catch_up, changed
        )
        if result.cycles:
            await self._store.commit([Change(cycles=result.cycles)])
        self._latest_due = dict(result.latest_due)
        return result.cycles

    def _track_loaded(self, stored: list[Cycle], outdated: list[Cycle]) -> None:
        """Track the open cycles read at start, except those just deleted as outdated."""
        deleted = {cycle.id for cycle in outdated}
        for cycle in stored:
            if cycle.id in deleted:
                continue
            if self._lookup(cycle) is None:
                log.warning(
                    "an open dose of patient %s is no longer configured; left as it is (%s)",
                    cycle.key.patient_id,
                    message_ref(cycle.id),
                )
                continue
            self._track(cycle)

    async def _recover(self) -> None:
        """Feed every timer that came due while the bot was stopped to the core.

        The messages are not queued here: ``Dispatcher.resume_pending`` reads them from
        the outbox together with those left undelivered by the last run, oldest first.
        """
        now = self._clock.now()
        batch = self._advance_due(now, limit=None)
        self._add_missed_summaries(batch, now)
        await self._commit(batch, queue_messages=False)
        if batch.missed_silently:
            log.info("recorded %d dose(s) as missed while stopped", len(batch.missed_silently))

    async def _serve(self) -> None:
        timers = asyncio.create_task(self._timer_loop(), name="medbot-timers")
        sender = asyncio.create_task(self._dispatcher.run(), name="medbot-dispatcher")
        stop = asyncio.create_task(self._stop_requested.wait())
        self._tasks = (timers, sender)
        done, _ = await asyncio.wait({timers, sender, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for task in done & {timers, sender}:
            error = None if task.cancelled() else task.exception()
            if isinstance(error, MedbotError):
                # An expected failure such as a full disk: its message names the fix.
                log.error("task %s failed: %s; stopping", task.get_name(), error)
                self._exit_code = EXIT_FAILURE
            elif error is not None:
                log.error("task %s failed; stopping", task.get_name(), exc_info=error)
                self._exit_code = EXIT_FAILURE

    async def _shutdown(self) -> None:
        if self._tasks is not None:
            timers, sender = self._tasks
            async with self._lock:
                await _cancel(timers)
            if self._exit_code == EXIT_OK:
                await self._drain()
            await _cancel(sender)
        if self._transport_started:
            await self._transport.stop()
        if self._store_open:
            await self._store.close()
        log.info("stopped")

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._dispatcher.wait_idle(), self._options.drain_timeout)
        except TimeoutError:
            log.warning("stopping with undelivered messages; they are sent after the next start")

    async def _is_superseded(self, message: OutgoingMessage) -> bool:
        """Tell whether an ask became obsolete while it waited to be sent.

        It is obsolete when a newer ask of the same dose was committed, or when the
        patient answered the dose. The latest ask of a dose that was given up meanwhile
        still goes out, before the give-up, so the patient was asked at least once.
        Praise, give-up and other messages report something that happened, so they are
        always sent.
        """
        if message.kind not in (MessageKind.ASK, MessageKind.REASK):
            return False
        dose_id, _, suffix = message.message_id.rpartition("/")
        cycle = self._cycles.get(dose_id) or await self._store.load_cycle(dose_id)
        if cycle is None:
            return False
        if cycle.phase in (Phase.TAKEN, Phase.SKIPPED):
            return True
        number = suffix.rpartition("-")[2]
        return number.isdigit() and int(number) < cycle.asks_sent

    def _fail_fatally(self, error: TransportFatal) -> None:
        log.error("the transport cannot continue (%s); stopping", error)
        self._exit_code = EXIT_FAILURE
        self.stop()

    # --- timers ------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            # Clear before reading the earliest entry, so an earlier timer armed while
            # this task sleeps always wakes it.
            self._heap.clear_wake()
            earliest = self._heap.earliest()
            if earliest is not None and earliest <= self._clock.now():
                async with self._lock:
                    await self._run_due_batch()
                # Let the dispatcher take this batch's messages before the next batch is
                # computed, so a large herd's first asks go out batch by batch rather
                # than after the last batch is committed.
                await asyncio.sleep(0)
                continue
            sleeper = None
            if earliest is not None:
                sleeper = asyncio.ensure_future(self._clock.sleep_until(earliest))
            await self._heap.wait(sleeper)

    async def _run_due_batch(self) -> None:
        now = self._clock.now()
        batch = self._advance_due(now, limit=self._options.batch_limit)
        self._add_missed_summaries(batch, now)
        await self._commit(batch, queue_messages=True)

    def _advance_due(self, now: datetime, limit: int | None) -> _Batch:
        batch = _Batch()
        for dose_id in self._heap.pop_due(now, limit):
            cycle = self._cycles.get(dose_id)
            if cycle is None or cycle.next_at is None or cycle.next_at > now:
                continue
            self._advance_one(batch, cycle, now)
        return batch

    def _advance_one(self, batch: _Batch, cycle: Cycle, now: datetime) -> None:
        found = self._lookup(cycle)
        if found is None:
            return
        patient, medication = found
        try:
            transition = conversation.on_timer(cycle, patient, medication, now)
        except Exception:
            log.exception("timer of dose %s failed; the dose waits until the next start", cycle.id)
            return
        batch.add(transition)
        if transition.cycle.phase is Phase.MISSED and not transition.messages:
            batch.missed_silently.append(transition.cycle)
        if cycle.phase is Phase.SCHEDULED and transition.cycle.phase is not Phase.SCHEDULED:
            self._add_next_dose(batch, patient, medication, cycle.key.due_at)

    def _add_next_dose(
        self, batch: _Batch, patient: Patient, medication: Medication, after: datetime
    ) -> None:
        """Add the SCHEDULED cycle of the dose after ``after`` unless it already exists."""
        key = (patient.id, medication.id)
        due = next_occurrence(medication.schedule, patient.zone, after)
        latest = batch.latest_due.get(key) or self._latest_due.get(key)
        if latest is not None and due <= latest:
            return
        batch.latest_due[key] = due
        batch.cycles.append(conversation.new_cycle(DoseKey(patient.id, medication.id, due)))

    def _add_missed_summaries(self, batch: _Batch, now: datetime) -> None:
        """Add one message per patient listing the doses that closed as missed silently."""
        by_patient: dict[str, list[Cycle]] = defaultdict(list)
        for cycle in batch.missed_silently:
            by_patient[cycle.key.patient_id].append(cycle)
        for patient_id, missed in by_patient.items():
            patient = self._config.patient(patient_id)
            if patient is None:
                continue
            summary = conversation.missed_summary(patient, missed, now)
            if summary is not None:
                batch.messages.append(summary)

    # --- inbound -----------------------------------------------------------------------

    async def on_inbound(self, message: InboundMessage) -> None:
        """Apply one inbound message; never raises, so a strange message cannot stop the bot."""
        try:
            async with self._lock:
                await self._handle_inbound(message)
        except StoreError as error:
            # Without a working store no reply or ask can be recorded, so running on
            # would only lose more. The next start resumes from what was committed.
            log.error(
                "inbound message %s from %s could not be stored: %s; stopping",
                message.message_id,
                message.sender,
                error,
            )
            self._exit_code = EXIT_FAILURE
            self.stop()
        except Exception:
            log.exception(
                "inbound message %s from %s failed; it is ignored and the service continues",
                message.message_id,
                message.sender,
            )

    async def _handle_inbound(self, message: InboundMessage) -> None:
        patient = self._config.patient_by_address(_bare_address(message.sender))
        if patient is None:
            self._log_unknown_sender(message.sender)
            return
        inbound_id = _inbound_id(patient, message)
        if inbound_id is not None and await self._store.is_inbound_processed(inbound_id):
            log.debug("inbound message %s was processed before; ignored", inbound_id)
            return
        batch = _Batch()
        cycle = await self._answered_cycle(patient, message.sent_at)
        if cycle is not None:
            batch.add(self._apply_reply(patient, cycle, message))
        await self._commit(batch, queue_messages=True, inbound_id=inbound_id)
        if cycle is None:
            log.info("a message from patient %s answers no open dose", patient.id)
        else:
            log.info("applied a message from patient %s (%s)", patient.id, message_ref(cycle.id))

    def _apply_reply(self, patient: Patient, cycle: Cycle, message: InboundMessage) -> Transition:
        medication = patient.medication(cycle.key.medication_id)
        assert medication is not None  # _track keeps only cycles of configured medications
        reply = replies.classify(message.body, patient.language)
        now = self._clock.now()
        return conversation.on_reply(cycle, patient, medication, reply, message.sent_at, now)

    async def _answered_cycle(self, patient: Patient, sent_at: datetime) -> Cycle | None:
        """Pick the open dose a reply sent at ``sent_at`` answers; see ``routing``."""
        ranks = {medication.id: rank for rank, medication in enumerate(patient.medications)}
        candidates = []
        for dose_id in tuple(self._by_patient.get(patient.id, ())):
            cycle = self._cycles[dose_id]
            medication = patient.medication(cycle.key.medication_id)
            if cycle.phase is not Phase.ASKING or medication is None:
                continue
            asked_at = await self._ask_times(cycle)
            rank = ranks[medication.id]
            candidates.append(routing.OpenDose(cycle, medication, asked_at, rank))
        return routing.answered_dose(candidates, sent_at)

    async def _ask_times(self, cycle: Cycle) -> tuple[datetime, ...]:
        """Return when each ask and re-ask of ``cycle`` was committed, from the outbox."""
        asks = (MessageKind.ASK, MessageKind.REASK)
        entries = await self._store.outbox_for_dose(cycle.id)
        return tuple(entry.message.created_at for entry in entries if entry.message.kind in asks)

    def _log_unknown_sender(self, sender: str) -> None:
        self._unknown_senders += 1
        if time.monotonic() - self._unknown_logged_at < _UNKNOWN_SENDER_LOG_INTERVAL:
            return
        self._unknown_logged_at = time.monotonic()
        log.debug(
            "ignored a message from unknown sender %s (%d ignored so far)",
            sender,
            self._unknown_senders,
        )

    # --- commit and memory ---------------------------------------------------------------

    async def _commit(
        self, batch: _Batch, *, queue_messages: bool, inbound_id: str | None = None
    ) -> None:
        """Write ``batch`` in one transaction, then update memory, then queue its messages."""
        inbound_ids = [inbound_id] if inbound_id is not None else []
        if not (batch.cycles or batch.messages or inbound_ids):
            return
        change = Change(cycles=batch.cycles, messages=batch.messages, inbound_ids=inbound_ids)
        await self._store.commit([change])
        self._latest_due.update(batch.latest_due)
        for cycle in batch.cycles:
            self._track(cycle)
        if queue_messages:
            self._dispatcher.enqueue(batch.messages)

    def _track(self, cycle: Cycle) -> None:
        """Keep an open cycle in memory with its timer armed; forget a closed one."""
        dose_id = cycle.id
        patient_id = cycle.key.patient_id
        if cycle.phase.is_open:
            self._cycles[dose_id] = cycle
            patient_doses = self._by_patient.setdefault(patient_id, [])
            if dose_id not in patient_doses:
                patient_doses.append(dose_id)
            if cycle.next_at is not None:
                self._heap.arm(dose_id, cycle.next_at)
            else:
                self._heap.disarm(dose_id)
            return
        self._cycles.pop(dose_id, None)
        self._forget_patient_dose(patient_id, dose_id)
        self._heap.disarm(dose_id)
        if self._on_closed is not None:
            self._on_closed(cycle)

    def _forget_patient_dose(self, patient_id: str, dose_id: str) -> None:
        patient_doses = self._by_patient.get(patient_id)
        if patient_doses is None or dose_id not in patient_doses:
            return
        patient_doses.remove(dose_id)
        if not patient_doses:
            del self._by_patient[patient_id]

    def _lookup(self, cycle: Cycle) -> tuple[Patient, Medication] | None:
        patient = self._config.patient(cycle.key.patient_id)
        if patient is None:
            return None
        medication = patient.medication(cycle.key.medication_id)
        if medication is None:
            return None
        return patient, medication


def _replaced_dues(outdated: list[Cycle]) -> dict[MedicationKey, datetime]:
    """Return, per medication, the earliest due time among its deleted outdated doses.

    ``materialise`` starts an edited schedule from there instead of catching up on
    occurrences of the new schedule that were never planned.
    """
    replaced: dict[MedicationKey, datetime] = {}
    for cycle in sorted(outdated, key=lambda cycle: cycle.key.due_at, reverse=True):
        replaced[(cycle.key.patient_id, cycle.key.medication_id)] = cycle.key.due_at
    return replaced


def _bare_address(address: str) -> str:
    """Strip an XMPP resource ("bob@example.org/phone" becomes "bob@example.org")."""
    return address.split("/", 1)[0]


def _inbound_id(patient: Patient, message: InboundMessage) -> str | None:
    # Message ids are chosen by the sending client, so two patients may use the same
    # one; prefixing the patient id keeps them apart.
    if message.message_id is None:
        return None
    return f"{patient.id}/{message.message_id}"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except MedbotError as error:
        log.error("task %s failed while stopping: %s", task.get_name(), error)
    except Exception:
        log.exception("task %s failed while stopping", task.get_name())
