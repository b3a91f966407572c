from __future__ import annotations

from pathlib import Path

from campaign.privacy import check_private_file, find_leaks
from campaign.results import SectionResult


def test_leak_found() -> None:
    assert find_leaks("login with hunter2-secret ok", ["hunter2-secret"]) == ["hunter2-secret"]


def test_short_needle_ignored() -> None:
    assert find_leaks("said yes", ["yes"]) == []


def test_no_leak() -> None:
    assert find_leaks("sent ask-1 for dose p1/m/20261204T190000Z", ["Take your insulin"]) == []


def test_private_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.touch(mode=0o600)
    path.chmod(0o600)
    result = SectionResult("privacy", 0)
    check_private_file(result, path)
    assert result.passed


def test_readable_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.touch()
    path.chmod(0o644)
    result = SectionResult("privacy", 0)
    check_private_file(result, path)
    assert not result.passed
