from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaign.transcript import (
    Dose,
    Outage,
    Received,
    TranscriptReport,
    check_transcript,
    parse_message_id,
)

T0 = datetime(2026, 12, 4, 19, 0, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=6)


def _dose(offset: int) -> Dose:
    return Dose("bob", "insulin", T0 + timedelta(seconds=offset), WINDOW)


def _got(offset: float, tail: str, due_offset: int = 0) -> Received:
    dose = _dose(due_offset)
    return Received(f"{dose.dose_id}/{tail}", "text", T0 + timedelta(seconds=offset), "bob")


def _check(
    received: list[Received], doses: list[Dose], outages: list[Outage] | None = None
) -> TranscriptReport:
    end = T0 + timedelta(seconds=60)
    committed = [message.message_id for message in received if message.message_id]
    return check_transcript(received, doses, outages or [], committed, end)


def test_parse_id_with_number() -> None:
    ref = parse_message_id("bob/insulin/20261204T190000Z/ask-2")
    assert ref is not None
    assert ref.dose_id == "bob/insulin/20261204T190000Z"
    assert ref.kind == "ask"
    assert ref.number == 2
    assert ref.due_at == T0


def test_parse_id_hyphenated_kind() -> None:
    ref = parse_message_id("bob/insulin/20261204T190000Z/give-up")
    assert ref is not None
    assert ref.kind == "give-up"
    assert ref.number == 1


def test_parse_id_rejects_other_text() -> None:
    assert parse_message_id("a1b2c3") is None
    assert parse_message_id("bob/insulin/notadate/ask") is None


def test_clean_transcript() -> None:
    report = _check([_got(0.1, "ask"), _got(2.1, "ask-2"), _got(4.1, "give-up")], [_dose(0)])
    assert report.problems() == {}
    assert report.doses_checked == 1


def test_same_id_twice_is_duplicate() -> None:
    report = _check([_got(0.1, "ask"), _got(0.2, "ask")], [_dose(0)])
    assert report.duplicate_ids == ["bob/insulin/20261204T190000Z/ask x2"]
    assert report.duplicated == 1


def test_same_step_two_ids_is_duplicate() -> None:
    report = _check([_got(0.1, "ask"), _got(0.2, "ask-1")], [_dose(0)])
    assert len(report.duplicate_asks) == 1


def test_committed_but_missing_is_lost() -> None:
    end = T0 + timedelta(seconds=60)
    report = check_transcript([], [], [], ["bob/insulin/20261204T190000Z/ask"], end)
    assert report.lost_committed == ["bob/insulin/20261204T190000Z/ask"]
    assert report.lost == 1


def test_dose_due_while_up_needs_ask() -> None:
    report = _check([], [_dose(0)])
    assert report.unasked_doses == ["bob/insulin/20261204T190000Z"]


def test_dose_near_run_end_is_skipped() -> None:
    end = T0 + timedelta(seconds=2)
    report = check_transcript([], [_dose(0)], [], [], end)
    assert report.doses_checked == 0


def test_ask_after_late_window_is_stale() -> None:
    outage = Outage(T0 - timedelta(seconds=5), T0 + timedelta(seconds=30))
    report = _check([_got(31, "ask")], [_dose(0)], [outage])
    assert len(report.stale_asks) == 1
    assert len(report.unexpected_asks) == 1


def test_long_outage_forbids_ask() -> None:
    outage = Outage(T0 - timedelta(seconds=5), T0 + timedelta(seconds=30))
    report = _check([], [_dose(0)], [outage])
    assert report.problems() == {}


def test_short_outage_requires_late_ask() -> None:
    outage = Outage(T0 - timedelta(seconds=10), T0 + timedelta(seconds=1))
    report = _check([], [_dose(0)], [outage])
    assert report.unasked_doses == ["bob/insulin/20261204T190000Z"]


def test_two_asks_after_restart_is_burst() -> None:
    outage = Outage(T0 + timedelta(seconds=1), T0 + timedelta(seconds=5))
    report = _check([_got(5.1, "ask"), _got(5.2, "ask-2")], [_dose(0)], [outage])
    assert len(report.bursts) == 1


def test_ask_after_praise_is_flagged() -> None:
    report = _check([_got(0.1, "ask"), _got(1, "praise"), _got(2.1, "ask-2")], [_dose(0)])
    assert report.after_close == ["bob/insulin/20261204T190000Z/ask-2 after praise"]


def test_summary_twice_is_flagged() -> None:
    summary = Received("bob/missed-summary/20261204T190100Z", "x", T0, "bob")
    report = _check([summary, summary], [])
    assert len(report.extra_summaries) == 1


def test_dose_due_just_before_kill_may_be_asked() -> None:
    outage = Outage(T0 + timedelta(seconds=1), T0 + timedelta(seconds=30))
    report = _check([_got(0.1, "ask")], [_dose(0)], [outage])
    assert report.unexpected_asks == []


def test_dose_between_two_outages_may_go_either_way() -> None:
    first = Outage(T0 - timedelta(seconds=4), T0 - timedelta(seconds=2))
    second = Outage(T0 + timedelta(seconds=1), T0 + timedelta(seconds=30))
    report = _check([], [_dose(0)], [first, second])
    assert report.unasked_doses == []
