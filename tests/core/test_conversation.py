from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medbot.core.conversation import (
    MAX_SNOOZE_AHEAD,
    MAX_SNOOZES,
    diagram_mermaid,
    missed_summary,
    new_cycle,
    on_reply,
    on_timer,
    snooze_target,
    table_markdown,
)
from medbot.core.models import (
    Cycle,
    DailySchedule,
    DoseKey,
    Medication,
    MessageKind,
    Patient,
    Phase,
    Transition,
    Wording,
    utc,
)
from medbot.core.replies import Reply, ReplyKind

BERLIN = ZoneInfo("Europe/Berlin")
DUE = utc(2026, 12, 4, 19)  # 20:00 in Berlin
INTERVAL = timedelta(minutes=20)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "conversation.md"

CONFIRM = Reply(ReplyKind.CONFIRM)
SKIP = Reply(ReplyKind.SKIP)
LATER = Reply(ReplyKind.SNOOZE)
NEGATION = Reply(ReplyKind.NEGATION)
UNKNOWN = Reply(ReplyKind.UNKNOWN)
ALL_REPLIES = (CONFIRM, SKIP, LATER, NEGATION, UNKNOWN)


def medication(
    asks: int = 3, late_window: timedelta | None = None, wording: Wording | None = None
) -> Medication:
    schedule = DailySchedule(times=(time(20),))
    return Medication(
        "insulin",
        "long-acting insulin",
        schedule,
        asks=asks,
        late_window=late_window,
        wording=wording or Wording(),
    )


def patient(caregiver: str | None = None, language: str = "en", name: str = "Bob") -> Patient:
    return Patient(
        id="bob",
        name=name,
        address="bob@example.org",
        language=language,
        zone=BERLIN,
        medications=(medication(),),
        caregiver=caregiver,
    )


def cycle_for(patient_id: str = "bob") -> Cycle:
    return new_cycle(DoseKey(patient_id, "insulin", DUE))


def fire(cycle: Cycle, med: Medication, person: Patient | None = None) -> Transition:
    """Fire the cycle's timer exactly when it is due."""
    assert cycle.next_at is not None
    return on_timer(cycle, person or patient(), med, cycle.next_at)


def asking(asks: int = 3, sent: int = 1, person: Patient | None = None) -> Cycle:
    """Return a cycle after ``sent`` asks, each fired on time."""
    med = medication(asks)
    cycle = cycle_for()
    for _ in range(sent):
        cycle = fire(cycle, med, person).cycle
    return cycle


def reply(
    cycle: Cycle,
    answer: Reply,
    at: datetime,
    med: Medication | None = None,
    person: Patient | None = None,
) -> Transition:
    """Apply ``answer`` sent and received at ``at``."""
    return on_reply(cycle, person or patient(), med or medication(), answer, at, at)


def kinds(transition: Transition) -> list[MessageKind]:
    return [message.kind for message in transition.messages]


# --- Timers -----------------------------------------------------------------------------


def test_new_cycle_scheduled_at_due() -> None:
    cycle = cycle_for()
    assert cycle.phase is Phase.SCHEDULED
    assert cycle.next_at == DUE


def test_first_timer_sends_ask() -> None:
    result = fire(cycle_for(), medication())
    assert result.cycle.phase is Phase.ASKING
    assert result.cycle.asks_sent == 1
    assert result.cycle.next_at == DUE + INTERVAL
    assert result.cycle.first_asked_at == DUE
    assert result.cycle.last_asked_at == DUE
    assert [m.message_id for m in result.messages] == ["bob/insulin/20261204T190000Z/ask-1"]
    assert result.messages[0].recipient == "bob@example.org"
    assert "Bob" in result.messages[0].body
    assert "long-acting insulin" in result.messages[0].body


def test_second_timer_sends_reask() -> None:
    result = fire(asking(sent=1), medication())
    assert kinds(result) == [MessageKind.REASK]
    assert result.messages[0].message_id.endswith("/reask-2")
    assert result.cycle.asks_sent == 2
    assert result.cycle.first_asked_at == DUE
    assert result.cycle.last_asked_at == DUE + INTERVAL


@pytest.mark.parametrize("asks", [1, 3])
def test_full_cycle_gives_up(asks: int) -> None:
    med = medication(asks)
    cycle = cycle_for()
    sent: list[MessageKind] = []
    for _ in range(asks + 1):
        result = fire(cycle, med)
        cycle = result.cycle
        sent += kinds(result)
    expected = [MessageKind.ASK] + [MessageKind.REASK] * (asks - 1) + [MessageKind.GIVE_UP]
    assert sent == expected
    assert cycle.phase is Phase.MISSED
    assert cycle.next_at is None
    assert cycle.closed_at == DUE + INTERVAL * asks


def test_give_up_alerts_caregiver() -> None:
    person = patient(caregiver="carol@example.org")
    result = fire(asking(asks=1, person=person), medication(1), person)
    assert kinds(result) == [MessageKind.GIVE_UP, MessageKind.CAREGIVER_ALERT]
    assert result.messages[1].recipient == "carol@example.org"
    assert "20:00" in result.messages[1].body
    assert "did not confirm" in result.messages[1].body


def test_give_up_without_caregiver() -> None:
    result = fire(asking(asks=1), medication(1))
    assert kinds(result) == [MessageKind.GIVE_UP]


def test_timer_before_due_changes_nothing() -> None:
    cycle = asking()
    result = on_timer(cycle, patient(), medication(), DUE + timedelta(minutes=5))
    assert result == Transition(cycle)


@pytest.mark.parametrize("phase", [Phase.TAKEN, Phase.SKIPPED, Phase.MISSED])
def test_timer_on_closed_cycle(phase: Phase) -> None:
    cycle = replace(asking(), phase=phase)
    result = on_timer(cycle, patient(), medication(), DUE + timedelta(hours=1))
    assert result == Transition(cycle)


# --- Late and stale timers --------------------------------------------------------------


def test_timer_lag_within_grace_is_on_time() -> None:
    result = on_timer(cycle_for(), patient(), medication(), DUE + timedelta(seconds=59))
    assert "late" not in result.messages[0].body


def test_stale_first_ask_says_late() -> None:
    now = DUE + timedelta(minutes=30)
    result = on_timer(cycle_for(), patient(), medication(), now)
    assert kinds(result) == [MessageKind.ASK]
    assert result.messages[0].message_id.endswith("/ask-1")
    assert "late" in result.messages[0].body
    assert "20:00" in result.messages[0].body
    assert result.cycle.next_at == now + INTERVAL
    assert result.cycle.first_asked_at == now


def test_stale_reask_sends_one() -> None:
    # The bot stopped after the first ask; the re-asks at +20 and +40 fell due while down.
    now = DUE + timedelta(minutes=50)
    result = on_timer(asking(sent=1), patient(), medication(), now)
    assert kinds(result) == [MessageKind.REASK]
    assert result.cycle.asks_sent == 2
    assert result.cycle.next_at == now + INTERVAL


def test_stale_past_window_misses_silently() -> None:
    now = DUE + timedelta(minutes=61)
    result = on_timer(cycle_for(), patient(), medication(), now)
    assert result.messages == ()
    assert result.cycle.phase is Phase.MISSED
    assert result.cycle.closed_at == now
    assert result.cycle.next_at is None


def test_stale_asking_past_window() -> None:
    result = on_timer(asking(sent=2), patient(), medication(), DUE + timedelta(hours=3))
    assert result.messages == ()
    assert result.cycle.phase is Phase.MISSED


def test_stale_give_up_inside_window() -> None:
    med = medication(1, late_window=timedelta(hours=2))
    cycle = fire(cycle_for(), med).cycle
    result = on_timer(cycle, patient(), med, DUE + timedelta(minutes=50))
    assert kinds(result) == [MessageKind.GIVE_UP]
    assert result.cycle.phase is Phase.MISSED


def test_stale_short_interval_past_window() -> None:
    # Second-scale intervals: a 9 s stop spans the whole 4 s late window.
    med = replace(medication(2), reask_interval=timedelta(seconds=2))
    result = on_timer(cycle_for(), patient(), med, DUE + timedelta(seconds=9))
    assert result.messages == ()
    assert result.cycle.phase is Phase.MISSED


def test_lag_below_interval_not_stale() -> None:
    med = replace(medication(2), reask_interval=timedelta(seconds=2))
    cycle = fire(cycle_for(), med).cycle
    assert cycle.next_at is not None
    result = on_timer(cycle, patient(), med, cycle.next_at + timedelta(seconds=1))
    assert kinds(result) == [MessageKind.REASK]


def test_late_window_override() -> None:
    med = medication(late_window=timedelta(minutes=10))
    result = on_timer(cycle_for(), patient(), med, DUE + timedelta(minutes=11))
    assert result.cycle.phase is Phase.MISSED


# --- Replies ----------------------------------------------------------------------------


def test_confirm_praises() -> None:
    sent_at = DUE + timedelta(minutes=3)
    result = on_reply(asking(), patient(), medication(), CONFIRM, sent_at, sent_at + INTERVAL)
    assert result.cycle.phase is Phase.TAKEN
    assert result.cycle.answered_at == sent_at
    assert result.cycle.closed_at == sent_at + INTERVAL
    assert result.cycle.next_at is None
    assert kinds(result) == [MessageKind.PRAISE]
    assert result.messages[0].message_id.endswith("/praise")


@pytest.mark.parametrize("sent", [1, 2, 3])
def test_confirm_after_each_ask(sent: int) -> None:
    cycle = asking(sent=sent)
    assert reply(cycle, CONFIRM, DUE + timedelta(minutes=59)).cycle.phase is Phase.TAKEN


def test_skip_alerts_caregiver() -> None:
    person = patient(caregiver="carol@example.org")
    result = reply(asking(person=person), SKIP, DUE + timedelta(minutes=1), person=person)
    assert result.cycle.phase is Phase.SKIPPED
    assert kinds(result) == [MessageKind.SKIP_ACK, MessageKind.CAREGIVER_ALERT]
    assert result.messages[1].recipient == "carol@example.org"
    assert "skipped" in result.messages[1].body


def test_skip_without_caregiver() -> None:
    result = reply(asking(), SKIP, DUE + timedelta(minutes=1))
    assert kinds(result) == [MessageKind.SKIP_ACK]
    assert result.cycle.next_at is None


def test_negation_acknowledged_once() -> None:
    first = reply(asking(), NEGATION, DUE + timedelta(minutes=1))
    assert kinds(first) == [MessageKind.NEGATION_ACK]
    assert "20:20" in first.messages[0].body
    assert first.cycle.phase is Phase.ASKING
    assert first.cycle.next_at == DUE + INTERVAL
    second = reply(first.cycle, NEGATION, DUE + timedelta(minutes=2))
    assert second.messages == ()


def test_negation_on_last_ask_mentions_missed() -> None:
    cycle = asking(asks=1)
    result = reply(cycle, NEGATION, DUE + timedelta(minutes=1), med=medication(1))
    assert "missed" in result.messages[0].body


def test_unknown_hints_once() -> None:
    first = reply(asking(), UNKNOWN, DUE + timedelta(minutes=1))
    assert kinds(first) == [MessageKind.HINT]
    assert first.cycle.hinted
    assert reply(first.cycle, UNKNOWN, DUE + timedelta(minutes=2)).messages == ()


def test_hint_and_negation_share_limit() -> None:
    first = reply(asking(), UNKNOWN, DUE + timedelta(minutes=1))
    assert reply(first.cycle, NEGATION, DUE + timedelta(minutes=2)).messages == ()


def test_reply_before_first_ask_ignored() -> None:
    cycle = asking()
    result = reply(cycle, CONFIRM, DUE - timedelta(seconds=3))
    assert result == Transition(cycle)


def test_reply_within_clock_skew_counts() -> None:
    result = reply(asking(), CONFIRM, DUE - timedelta(seconds=1))
    assert result.cycle.phase is Phase.TAKEN


@pytest.mark.parametrize("answer", ALL_REPLIES)
def test_reply_while_scheduled_ignored(answer: Reply) -> None:
    cycle = cycle_for()
    assert reply(cycle, answer, DUE + timedelta(minutes=1)) == Transition(cycle)


@pytest.mark.parametrize("answer", ALL_REPLIES)
@pytest.mark.parametrize("phase", [Phase.TAKEN, Phase.SKIPPED, Phase.MISSED])
def test_reply_to_closed_cycle_ignored(answer: Reply, phase: Phase) -> None:
    cycle = replace(asking(), phase=phase, next_at=None)
    assert reply(cycle, answer, DUE + timedelta(minutes=1)) == Transition(cycle)


# --- Snoozes ----------------------------------------------------------------------------


def test_snooze_for_delay() -> None:
    now = DUE + timedelta(minutes=2)
    result = reply(asking(), Reply(ReplyKind.SNOOZE, snooze_for=timedelta(minutes=15)), now)
    assert result.cycle.next_at == now + timedelta(minutes=15)
    assert kinds(result) == [MessageKind.SNOOZE_ACK]
    assert result.messages[0].message_id.endswith("/snooze-ack-1")
    assert "20:17" in result.messages[0].body


def test_snooze_until_wall_time() -> None:
    answer = Reply(ReplyKind.SNOOZE, snooze_until=time(21, 30))
    result = reply(asking(), answer, DUE + timedelta(minutes=2))
    assert result.cycle.next_at == utc(2026, 12, 4, 20, 30)
    assert "21:30" in result.messages[0].body


def test_snooze_until_either_half_day() -> None:
    answer = Reply(ReplyKind.SNOOZE, snooze_until=time(9), either_half_day=True)
    result = reply(asking(), answer, DUE + timedelta(minutes=2))
    assert result.cycle.next_at == utc(2026, 12, 4, 20)  # 21:00 in Berlin


def test_snooze_until_past_time_is_tomorrow_capped() -> None:
    # 19:00 local has passed, so the next 19:00 is tomorrow, beyond the cap.
    now = DUE + timedelta(minutes=2)
    result = reply(asking(), Reply(ReplyKind.SNOOZE, snooze_until=time(19)), now)
    assert result.cycle.next_at == now + MAX_SNOOZE_AHEAD


def at_clock(hour: int, minute: int, *, either_half_day: bool = False) -> Reply:
    wall = time(hour, minute)
    return Reply(ReplyKind.SNOOZE, snooze_until=wall, either_half_day=either_half_day)


def test_snooze_until_overlap_first_pass() -> None:
    now = utc(2026, 10, 25, 0, 10)  # 02:10 CEST, before the clocks go back at 03:00
    target = snooze_target(at_clock(2, 30), patient(), medication(), now)
    assert target == utc(2026, 10, 25, 0, 30)  # 02:30 CEST


def test_snooze_until_overlap_second_pass() -> None:
    now = utc(2026, 10, 25, 1, 10)  # 02:10 CET, after the clocks went back
    answer = at_clock(2, 30, either_half_day=True)
    target = snooze_target(answer, patient(), medication(), now)
    assert target == utc(2026, 10, 25, 1, 30)  # 02:30 CET


def test_snooze_until_overlap_shows_again() -> None:
    now = utc(2026, 10, 25, 0, 40)  # 02:40 CEST, so 02:30 comes once more, in CET
    target = snooze_target(at_clock(2, 30), patient(), medication(), now)
    assert target == utc(2026, 10, 25, 1, 30)


def test_snooze_until_gap_after_jump() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin, and 03:30 CEST follows the gap.
    now = utc(2026, 3, 29, 0, 10)  # 01:10 CET
    target = snooze_target(at_clock(2, 30), patient(), medication(), now)
    assert target == utc(2026, 3, 29, 1, 30)


def test_snooze_bare_is_one_interval() -> None:
    now = DUE + timedelta(minutes=2)
    assert reply(asking(), LATER, now).cycle.next_at == now + INTERVAL


def test_snooze_capped_ahead() -> None:
    now = DUE + timedelta(minutes=2)
    result = reply(asking(), Reply(ReplyKind.SNOOZE, snooze_for=timedelta(hours=10)), now)
    assert result.cycle.next_at == now + MAX_SNOOZE_AHEAD


def test_snooze_at_least_a_minute() -> None:
    now = DUE + timedelta(minutes=2)
    result = reply(asking(), Reply(ReplyKind.SNOOZE, snooze_for=timedelta(0)), now)
    assert result.cycle.next_at == now + timedelta(minutes=1)


def test_snooze_limit_per_cycle() -> None:
    cycle = asking()
    now = DUE
    for number in range(1, MAX_SNOOZES + 1):
        now += timedelta(minutes=1)
        result = reply(cycle, LATER, now)
        assert result.messages[0].message_id.endswith(f"/snooze-ack-{number}")
        cycle = result.cycle
    over = reply(cycle, LATER, now + timedelta(minutes=1))
    assert kinds(over) == [MessageKind.NEGATION_ACK]
    assert over.cycle.next_at == cycle.next_at


def test_snooze_after_last_ask_asks_again() -> None:
    med = medication(asks=1)
    cycle = asking(asks=1)
    snoozed = reply(cycle, LATER, DUE + timedelta(minutes=5), med=med).cycle
    again = fire(snoozed, med)
    assert kinds(again) == [MessageKind.REASK]
    assert again.messages[0].message_id.endswith("/reask-2")
    assert again.cycle.next_at == DUE + timedelta(minutes=25) + INTERVAL
    assert kinds(fire(again.cycle, med)) == [MessageKind.GIVE_UP]


def test_snooze_then_confirm() -> None:
    snoozed = reply(asking(), LATER, DUE + timedelta(minutes=5)).cycle
    assert reply(snoozed, CONFIRM, DUE + timedelta(minutes=6)).cycle.phase is Phase.TAKEN


# --- Wording, ids and languages ---------------------------------------------------------


def test_same_input_same_transition() -> None:
    cycle = asking(sent=2)
    now = DUE + timedelta(minutes=40)
    assert on_timer(cycle, patient(), medication(), now) == on_timer(
        cycle, patient(), medication(), now
    )


def test_custom_wording_replaces_catalog() -> None:
    med = medication(wording=Wording(ask=("{name}! {medication} o'clock {time}.",)))
    result = fire(cycle_for(), med)
    assert result.messages[0].body == "Bob! long-acting insulin o'clock 20:00."


def test_german_patient_german_text() -> None:
    person = patient(language="de", name="Anna")
    result = fire(cycle_for(), medication(), person)
    assert "Anna" in result.messages[0].body
    assert re.search(r"\b(hast|ist|Zeit|dran)\b", result.messages[0].body)


def test_german_late_ask() -> None:
    person = patient(language="de", name="Anna")
    result = on_timer(cycle_for(), person, medication(), DUE + timedelta(minutes=30))
    assert result.messages[0].body.startswith("Entschuldige, Anna")
    assert "20:00" in result.messages[0].body


@given(st.text(min_size=1, max_size=30).filter(lambda text: "/" not in text))
def test_never_same_phrasing_twice(patient_id: str) -> None:
    med = medication(asks=8)
    cycle = cycle_for(patient_id)
    bodies: list[str] = []
    while cycle.phase.is_open:
        result = fire(cycle, med)
        cycle = result.cycle
        bodies += [message.body for message in result.messages]
    assert len(bodies) == 9
    for previous, current in pairwise(bodies):
        assert previous != current


# --- Missed summary ---------------------------------------------------------------------


def missed(hours_ago: int, now: datetime) -> Cycle:
    key = DoseKey("bob", "insulin", now - timedelta(hours=hours_ago))
    return replace(new_cycle(key), phase=Phase.MISSED, next_at=None, closed_at=now)


def test_missed_summary_empty() -> None:
    assert missed_summary(patient(), [], DUE) is None


def test_missed_summary_lists_doses() -> None:
    now = utc(2026, 12, 5, 19, 30)
    message = missed_summary(patient(), [missed(1, now), missed(25, now)], now)
    assert message is not None
    assert message.kind is MessageKind.MISSED_SUMMARY
    assert message.message_id == "bob/insulin/20261205T183000Z/missed-summary"
    assert "19:30" in message.body
    assert "2026-12-04 19:30" in message.body
    assert message.body.count("long-acting insulin") == 2


def test_missed_summary_german() -> None:
    now = utc(2026, 12, 5, 19, 30)
    message = missed_summary(patient(language="de"), [missed(1, now)], now)
    assert message is not None
    assert "verpasst" in message.body


# --- Docs -------------------------------------------------------------------------------


def test_docs_show_table() -> None:
    assert table_markdown() in DOCS.read_text(encoding="utf-8")


def test_docs_show_diagram() -> None:
    assert diagram_mermaid() in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("answer", ALL_REPLIES)
@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_takes_every_reply(answer: Reply, phase: Phase) -> None:
    cycle = replace(asking(), phase=phase)
    result = reply(cycle, answer, DUE + timedelta(minutes=1))
    changed = phase is Phase.ASKING
    assert (result != Transition(cycle)) is changed


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_takes_timer(phase: Phase) -> None:
    cycle = replace(asking(), phase=phase)
    result = on_timer(cycle, patient(), medication(), DUE + INTERVAL)
    assert (result != Transition(cycle)) is phase.is_open
