from __future__ import annotations

from typing import Any

import pytest

from tests.campaign.conftest import failed_checks, run_campaign

pytestmark = [pytest.mark.prosody, pytest.mark.slow]


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.servers.prosody import require_prosody

    require_prosody()
    return run_campaign(tmp_path_factory.mktemp("crashes"), "crashes")["crashes"]


def test_crashes_lose_nothing(section: dict[str, Any]) -> None:
    assert section["figures"]["lost"] == 0


def test_crashes_duplicate_nothing(section: dict[str, Any]) -> None:
    assert section["figures"]["duplicated"] == 0


def test_crashes_every_kill_ran(section: dict[str, Any]) -> None:
    assert section["figures"]["kills"] >= 8


def test_crashes_all_checks_pass(section: dict[str, Any]) -> None:
    assert failed_checks(section) == {}
