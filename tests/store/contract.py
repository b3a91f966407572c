"""Behaviour that every ``Store`` implementation must show.

A test module for one store subclasses ``StoreContract`` and provides a ``store_factory``
fixture: a callable that returns a new, unopened store on the same backing database on
every call, so that tests can close a store and open the data again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medbot.core.models import (
    Cycle,
    DoseKey,
    MessageKind,
    OutgoingMessage,
    Phase,
    utc,
)
from medbot.errors import StoreError
from medbot.store.base import Change, Store

StoreFactory = Callable[[], Store]

DUE = utc(2026, 12, 4, 19)
MICRO = timedelta(microseconds=1)

# Text that SQL engines, drivers and terminals tend to mangle.
HARD_TEXTS = (
    "",
    "Hey Bob 🙂💉👍🏽, did you take it? 👨‍👩‍👧",
    "هل تناولت الدواء؟ ‏שלום‎",
    "nul\x00inside, bell\x07, escape\x1b[31m, del\x7f, c1\x85",
    "line\r\nbreaks\nand\ttabs",
    "quotes ' \" ; -- DROP TABLE cycles; /* */",
    "e\u0301 combining, \ufeff byte order mark, \U0010ffff last code point",
    "x" * (1 << 20),  # 1 MiB
)


def make_cycle(
    patient: str = "bob", medication: str = "insulin", due: datetime = DUE, **fields: object
) -> Cycle:
    return Cycle(DoseKey(patient, medication, due), **fields)  # type: ignore[arg-type]


def make_message(
    dose_id: str,
    suffix: str = "ask",
    body: str = "Did you take it?",
    created_at: datetime = DUE,
    patient: str = "bob",
) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"{dose_id}/{suffix}",
        patient_id=patient,
        recipient=f"{patient}@example.org",
        kind=MessageKind.ASK,
        body=body,
        created_at=created_at,
    )


def full_cycle() -> Cycle:
    """A closed cycle with every optional field set, to sub-microsecond detail."""
    due = DUE + 123456 * MICRO
    return make_cycle(
        due=due,
        phase=Phase.TAKEN,
        asks_sent=2,
        next_at=due + timedelta(minutes=40, microseconds=1),
        first_asked_at=due + 7 * MICRO,
        last_asked_at=due + timedelta(minutes=20, microseconds=999999),
        hinted=True,
        last_phrase=0,
        answered_at=due + timedelta(minutes=31, microseconds=5),
        closed_at=due + timedelta(minutes=31, microseconds=6),
        snoozes=2,
        snoozed=True,
    )


class StoreContract:
    """The store contract; collected through subclasses named ``Test...``."""

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        store = store_factory()
        await store.open()
        yield store
        await store.close()

    # --- Opening -------------------------------------------------------------------------

    async def test_open_new_store_empty(self, store: Store) -> None:
        assert await store.load_open_cycles() == []
        assert await store.pending_outbox() == []
        assert await store.history(None, utc(1970, 1, 1)) == []

    async def test_reopen_keeps_data(self, store_factory: StoreFactory) -> None:
        first = store_factory()
        await first.open()
        cycle = full_cycle()
        message = make_message(cycle.id)
        await first.commit([Change(cycles=[cycle], messages=[message], inbound_ids=["in-1"])])
        await first.close()

        second = store_factory()
        await second.open()
        try:
            assert await second.load_cycle(cycle.id) == cycle
            assert [entry.message for entry in await second.pending_outbox()] == [message]
            assert await second.is_inbound_processed("in-1")
        finally:
            await second.close()

    async def test_closed_store_raises(self, store_factory: StoreFactory) -> None:
        store = store_factory()
        with pytest.raises(StoreError):
            await store.load_open_cycles()
        await store.open()
        await store.close()
        with pytest.raises(StoreError):
            await store.commit([Change(cycles=[make_cycle()])])

    # --- Cycles --------------------------------------------------------------------------

    async def test_cycle_round_trip_exact(self, store: Store) -> None:
        cycle = full_cycle()
        await store.commit([Change(cycles=[cycle])])

        loaded = await store.load_cycle(cycle.id)
        assert loaded == cycle
        assert loaded is not None
        for value in (loaded.key.due_at, loaded.next_at, loaded.closed_at):
            assert value is not None
            assert value.utcoffset() == timedelta(0)
        assert await store.history("bob", DUE) == [cycle]

    async def test_cycle_defaults_round_trip(self, store: Store) -> None:
        cycle = make_cycle()
        await store.commit([Change(cycles=[cycle])])
        assert await store.load_cycle(cycle.id) == cycle

    async def test_cycle_upsert_by_dose_id(self, store: Store) -> None:
        scheduled = make_cycle(next_at=DUE)
        asking = replace(scheduled, phase=Phase.ASKING, asks_sent=1, first_asked_at=DUE)
        await store.commit([Change(cycles=[scheduled])])
        await store.commit([Change(cycles=[asking])])
        assert await store.load_cycle(scheduled.id) == asking
        assert await store.history(None, DUE) == [asking]

    async def test_cycle_twice_in_batch_last_wins(self, store: Store) -> None:
        first = make_cycle(phase=Phase.ASKING, asks_sent=1)
        second = replace(first, phase=Phase.TAKEN, closed_at=DUE)
        await store.commit([Change(cycles=[first]), Change(cycles=[second])])
        assert await store.load_cycle(first.id) == second

    async def test_load_cycle_unknown_none(self, store: Store) -> None:
        assert await store.load_cycle("nobody/nothing/20260101T000000Z") is None

    async def test_open_cycles_only_open_phases(self, store: Store) -> None:
        cycles = [
            make_cycle(medication=phase.value, phase=phase, next_at=DUE + index * MICRO)
            for index, phase in enumerate(Phase)
        ]
        await store.commit([Change(cycles=cycles)])
        loaded = await store.load_open_cycles()
        assert sorted(cycle.phase.value for cycle in loaded) == ["asking", "scheduled"]
        assert all(cycle in cycles for cycle in loaded)

    async def test_unschedule_deletes_scheduled_only(self, store: Store) -> None:
        scheduled = make_cycle(due=DUE, next_at=DUE)
        asking = make_cycle(due=DUE + timedelta(days=1), phase=Phase.ASKING, asks_sent=1)
        await store.commit([Change(cycles=[scheduled, asking])])
        await store.commit([Change(unscheduled=[scheduled.id, asking.id])])
        assert await store.load_cycle(scheduled.id) is None
        assert await store.load_cycle(asking.id) == asking

    async def test_last_due_per_medication(self, store: Store) -> None:
        cycles = [
            make_cycle(due=DUE),
            make_cycle(due=DUE + timedelta(days=2)),
            make_cycle(due=DUE + timedelta(days=1)),
            make_cycle(medication="aspirin", due=DUE + timedelta(days=9)),
            make_cycle(patient="alice", due=DUE + timedelta(days=9)),
        ]
        await store.commit([Change(cycles=cycles)])
        assert await store.last_due("bob", "insulin") == DUE + timedelta(days=2)
        assert await store.last_due("bob", "unknown") is None

    async def test_last_dues_all_medications(self, store: Store) -> None:
        cycles = [
            make_cycle(due=DUE),
            make_cycle(due=DUE + timedelta(days=2)),
            make_cycle(medication="aspirin", due=DUE + timedelta(days=9)),
            make_cycle(patient="alice", due=DUE - timedelta(days=1)),
        ]
        await store.commit([Change(cycles=cycles)])
        expected = {
            ("bob", "insulin"): DUE + timedelta(days=2),
            ("bob", "aspirin"): DUE + timedelta(days=9),
            ("alice", "insulin"): DUE - timedelta(days=1),
        }
        assert await store.last_dues() == expected

    async def test_last_dues_empty_store(self, store: Store) -> None:
        assert await store.last_dues() == {}

    # --- History -------------------------------------------------------------------------

    async def test_history_order_and_range(self, store: Store) -> None:
        hours = [5, 1, 3, 0, 4, 2]
        cycles = [make_cycle(due=DUE + timedelta(hours=hour)) for hour in hours]
        await store.commit([Change(cycles=cycles)])

        since, until = DUE + timedelta(hours=1), DUE + timedelta(hours=4)
        history = await store.history("bob", since, until)
        assert [cycle.key.due_at for cycle in history] == [
            DUE + timedelta(hours=hour) for hour in (1, 2, 3)
        ]
        everything = await store.history("bob", DUE)
        assert len(everything) == len(hours)

    async def test_history_filters_patient(self, store: Store) -> None:
        bob = make_cycle(patient="bob", due=DUE + timedelta(hours=1))
        alice = make_cycle(patient="alice", due=DUE)
        await store.commit([Change(cycles=[bob, alice])])
        assert await store.history("bob", DUE) == [bob]
        assert await store.history(None, DUE) == [alice, bob]
        assert await store.history("carol", DUE) == []

    async def test_history_ties_by_dose_id(self, store: Store) -> None:
        cycles = [make_cycle(medication=name) for name in ("c", "a", "b")]
        await store.commit([Change(cycles=cycles)])
        history = await store.history("bob", DUE, DUE + MICRO)
        assert [cycle.key.medication_id for cycle in history] == ["a", "b", "c"]

    # --- Outbox --------------------------------------------------------------------------

    async def test_outbox_keeps_first_message(self, store: Store) -> None:
        dose_id = make_cycle().id
        original = make_message(dose_id, body="first")
        duplicate = replace(original, body="second", created_at=DUE + MICRO)
        await store.commit([Change(messages=[original])])
        await store.commit([Change(messages=[duplicate]), Change(messages=[duplicate])])
        pending = await store.pending_outbox()
        assert [entry.message for entry in pending] == [original]

    async def test_outbox_duplicate_keeps_attempts(self, store: Store) -> None:
        message = make_message(make_cycle().id)
        await store.commit([Change(messages=[message])])
        await store.mark_attempted([message.message_id], DUE)
        await store.commit([Change(messages=[message])])
        [entry] = await store.pending_outbox()
        assert entry.attempts == 1

    async def test_pending_outbox_oldest_first(self, store: Store) -> None:
        dose_id = make_cycle().id
        late = make_message(dose_id, "reask", created_at=DUE + timedelta(minutes=20))
        early = make_message(dose_id, "ask", created_at=DUE)
        tie_first = make_message(dose_id, "z-tie", created_at=DUE + timedelta(minutes=5))
        tie_second = make_message(dose_id, "a-tie", created_at=DUE + timedelta(minutes=5))
        await store.commit([Change(messages=[late, early, tie_first, tie_second])])

        pending = [entry.message for entry in await store.pending_outbox()]
        assert pending == [early, tie_first, tie_second, late]
        limited = [entry.message for entry in await store.pending_outbox(limit=2)]
        assert limited == [early, tie_first]

    async def test_mark_attempted_counts(self, store: Store) -> None:
        message = make_message(make_cycle().id)
        await store.commit([Change(messages=[message])])
        await store.mark_attempted([message.message_id], DUE + MICRO)
        await store.mark_attempted([message.message_id, "unknown/id"], DUE + timedelta(hours=1))

        [entry] = await store.pending_outbox()
        assert entry.attempts == 2
        assert entry.first_attempt_at == DUE + MICRO
        assert entry.delivered_at is None

    async def test_mark_delivered_leaves_pending(self, store: Store) -> None:
        dose_id = make_cycle().id
        sent, waiting = make_message(dose_id, "ask"), make_message(dose_id, "reask")
        await store.commit([Change(messages=[sent, waiting])])
        await store.mark_delivered([sent.message_id], DUE + MICRO)
        await store.mark_delivered([sent.message_id], DUE + timedelta(hours=1))

        assert [entry.message for entry in await store.pending_outbox()] == [waiting]
        found = await store.outbox_for_dose(dose_id)
        entries = {entry.message.message_id: entry for entry in found}
        assert entries[sent.message_id].delivered_at == DUE + MICRO
        assert entries[waiting.message_id].delivered_at is None

    async def test_outbox_for_dose_prefix_only(self, store: Store) -> None:
        # "_" and "%" are LIKE wildcards, so a LIKE query would also match "bxb".
        dose = make_cycle(patient="b_b%").id
        lookalike = make_cycle(patient="bxbx").id
        longer = dose.replace("Z", "Z0")
        messages = [
            make_message(dose, "ask"),
            make_message(dose, "reask-2", created_at=DUE + MICRO),
            make_message(lookalike, "ask"),
            make_message(longer, "ask"),
            make_message(make_cycle(medication="other").id, "ask"),
        ]
        await store.commit([Change(messages=messages)])
        found = [entry.message for entry in await store.outbox_for_dose(dose)]
        assert found == messages[:2]

    # --- Inbound ids ---------------------------------------------------------------------

    async def test_mark_superseded_leaves_pending(self, store: Store) -> None:
        cycle = make_cycle()
        old, sent = make_message(cycle.id, "ask-1"), make_message(cycle.id, "praise")
        await store.commit([Change(messages=[old, sent])])
        await store.mark_delivered([sent.message_id], DUE)
        await store.mark_superseded([old.message_id, sent.message_id], DUE + MICRO)
        assert await store.pending_outbox() == []
        found = await store.outbox_for_dose(cycle.id)
        entries = {entry.message.message_id: entry for entry in found}
        assert entries[old.message_id].superseded is True
        assert entries[old.message_id].delivered_at == DUE + MICRO
        assert entries[sent.message_id].superseded is False
        assert entries[sent.message_id].delivered_at == DUE

    async def test_inbound_recorded_once(self, store: Store) -> None:
        assert not await store.is_inbound_processed("msg-1")
        await store.commit([Change(inbound_ids=["msg-1"])])
        await store.commit([Change(inbound_ids=["msg-1", "msg-1"])])
        assert await store.is_inbound_processed("msg-1")
        assert not await store.is_inbound_processed("msg-2")

    async def test_concurrent_commits_all_applied(self, store: Store) -> None:
        cycles = [make_cycle(medication=f"m{index}") for index in range(20)]
        await asyncio.gather(*(store.commit([Change(cycles=[cycle])]) for cycle in cycles))
        assert len(await store.history("bob", DUE)) == len(cycles)

    # --- Atomicity -----------------------------------------------------------------------

    async def test_constraint_violation_writes_nothing(self, store: Store) -> None:
        before = make_cycle(next_at=DUE)
        await store.commit([Change(cycles=[before])])

        updated = replace(before, phase=Phase.ASKING, asks_sent=1)
        invalid = make_cycle(medication="aspirin", asks_sent=-1)
        message = make_message(before.id)
        with pytest.raises(StoreError):
            await store.commit(
                [
                    Change(cycles=[updated], messages=[message], inbound_ids=["in-1"]),
                    Change(cycles=[invalid]),
                ]
            )
        await self.assert_only(store, before)

    async def test_unconvertible_value_writes_nothing(self, store: Store) -> None:
        cycle = make_cycle()
        naive = replace(make_message(cycle.id, "reask"), created_at=datetime(2026, 12, 4, 19))
        with pytest.raises(StoreError):
            await store.commit(
                [Change(cycles=[cycle], messages=[make_message(cycle.id), naive])]
            )
        await self.assert_only(store)

    async def test_invalid_text_writes_nothing(self, store: Store) -> None:
        cycle = make_cycle()
        secret = "private body \ud800"  # a lone surrogate has no UTF-8 encoding
        with pytest.raises(StoreError) as caught:
            await store.commit(
                [
                    Change(cycles=[cycle], inbound_ids=["in-1"]),
                    Change(messages=[make_message(cycle.id, body=secret)]),
                ]
            )
        assert "private body" not in str(caught.value)
        await self.assert_only(store)

    async def test_store_usable_after_failure(self, store: Store) -> None:
        with pytest.raises(StoreError):
            await store.commit([Change(cycles=[make_cycle(asks_sent=-1)])])
        cycle = make_cycle()
        await store.commit([Change(cycles=[cycle])])
        assert await store.load_cycle(cycle.id) == cycle

    @staticmethod
    async def assert_only(store: Store, *cycles: Cycle) -> None:
        """Assert that the store contains exactly ``cycles``, no messages and no inbound id."""
        assert await store.history(None, utc(1970, 1, 1)) == list(cycles)
        assert await store.pending_outbox() == []
        assert not await store.is_inbound_processed("in-1")

    # --- Text ----------------------------------------------------------------------------

    @pytest.mark.parametrize("text", HARD_TEXTS, ids=range(len(HARD_TEXTS)))
    async def test_text_round_trip(self, store: Store, text: str) -> None:
        cycle = make_cycle(patient=text[:64] or "p", medication=text[-64:] or "m")
        message = make_message(cycle.id, body=text, patient=cycle.key.patient_id)
        await store.commit([Change(cycles=[cycle], messages=[message], inbound_ids=[text])])

        assert await store.load_cycle(cycle.id) == cycle
        [entry] = await store.outbox_for_dose(cycle.id)
        assert entry.message == message
        assert await store.is_inbound_processed(text)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(body=st.text(st.characters(exclude_categories=["Cs"])))
    async def test_any_text_round_trip(self, store: Store, body: str) -> None:
        # The store is shared by all examples, so every example gets its own ids.
        number = next(_EXAMPLE_NUMBERS)
        message = make_message(f"p/m/{number}", body=body)
        await store.commit([Change(messages=[message])])
        [entry] = await store.outbox_for_dose(f"p/m/{number}")
        assert entry.message.body == body


_EXAMPLE_NUMBERS = itertools.count()
