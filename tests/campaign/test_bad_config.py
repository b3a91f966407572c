from __future__ import annotations

from pathlib import Path

from campaign.bad_config import FIXED_CASES, Case, Outcome, judge
from campaign.bot import CommandResult
from tests.campaign.conftest import failed_checks, run_campaign

CASE = Case("asks is text", "asks", lambda document, root: None)
CLEAN = "medbot: medbot.toml: invalid configuration (1 problem):\n  asks = 'x': expected an integer"


def _outcome(code: int = 2, stderr: str = CLEAN, created: bool = False) -> Outcome:
    return Outcome(CASE, "run", CommandResult(code, "", stderr), created)


def test_judge_accepts_clean_rejection() -> None:
    assert judge(_outcome()) == []


def test_judge_flags_exit_zero() -> None:
    assert "exited 0" in judge(_outcome(code=0))


def test_judge_flags_traceback() -> None:
    assert "printed a traceback" in judge(_outcome(stderr=CLEAN + "\nTraceback (most recent"))


def test_judge_flags_unnamed_key() -> None:
    assert "error does not name 'asks'" in judge(_outcome(stderr="medbot: invalid"))


def test_judge_flags_long_error() -> None:
    assert "error is longer than one paragraph" in judge(_outcome(stderr=CLEAN + "\n\nmore"))


def test_judge_flags_created_database() -> None:
    assert "created the database file" in judge(_outcome(created=True))


def test_fixed_cases_have_distinct_names() -> None:
    names = [case.name for case in FIXED_CASES]
    assert len(names) == len(set(names))


def test_short_run_rejects_every_case(tmp_path: Path) -> None:
    section = run_campaign(tmp_path, "bad_config")["bad_config"]
    assert failed_checks(section) == {}
    assert section["figures"]["configs"] >= len(FIXED_CASES)
