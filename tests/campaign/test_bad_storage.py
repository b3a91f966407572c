from __future__ import annotations

from typing import Any

import pytest

from tests.campaign.conftest import failed_checks, run_campaign

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_campaign(tmp_path_factory.mktemp("storage"), "bad_storage")["bad_storage"]


def _failures(section: dict[str, Any], case: str) -> dict[str, str]:
    return {name: detail for name, detail in failed_checks(section).items()
            if name.startswith(f"{case}:")}


@pytest.mark.parametrize("case", ["read-only", "corrupted", "not-a-database", "newer-schema"])
def test_unusable_database_refused(section: dict[str, Any], case: str) -> None:
    assert _failures(section, case) == {}
    assert f"{case}_error" in section["figures"]


def test_full_disk_sends_nothing_twice(section: dict[str, Any]) -> None:
    failures = _failures(section, "full-disk")
    assert "full-disk: no message sent twice" not in failures
    assert "full-disk: undelivered after recovery" not in failures
    assert "full-disk: error names the full disk" not in failures


def test_full_disk_error_without_traceback(section: dict[str, Any]) -> None:
    assert "full-disk: no traceback" not in failed_checks(section, include_known=True)
