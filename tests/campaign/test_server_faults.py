from __future__ import annotations

from typing import Any

import pytest

from tests.campaign.conftest import failed_checks, run_campaign

pytestmark = [pytest.mark.prosody, pytest.mark.slow]


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.servers.prosody import require_prosody

    require_prosody()
    return run_campaign(tmp_path_factory.mktemp("faults"), "server_faults")["server_faults"]


def test_server_faults_lose_nothing(section: dict[str, Any]) -> None:
    assert section["figures"]["lost"] == 0


def test_server_faults_duplicate_nothing(section: dict[str, Any]) -> None:
    assert section["figures"]["duplicated"] == 0


def test_server_faults_include_freeze(section: dict[str, Any]) -> None:
    assert section["figures"]["faults_freeze"] >= 1


def test_server_faults_all_checks_pass(section: dict[str, Any]) -> None:
    assert failed_checks(section) == {}
