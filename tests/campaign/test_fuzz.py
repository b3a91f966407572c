from __future__ import annotations

import random
import re
from typing import Any

import pytest

from campaign import fuzz_bodies
from tests.campaign.conftest import failed_checks, run_campaign

# Characters XML 1.0 forbids: most C0 controls, surrogates, U+FFFE and U+FFFF.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@pytest.mark.parametrize("name", sorted(fuzz_bodies.GENERATORS))
def test_generator_output_is_valid_xml_text(name: str) -> None:
    rng = random.Random(name)
    for _ in range(200):
        assert FORBIDDEN.search(fuzz_bodies.GENERATORS[name](rng)) is None


def test_generator_is_repeatable() -> None:
    first = [fuzz_bodies.body(random.Random(5)) for _ in range(3)]
    second = [fuzz_bodies.body(random.Random(5)) for _ in range(3)]
    assert first == second


def test_megabyte_body_size() -> None:
    assert len(fuzz_bodies.megabyte(random.Random(1)).encode()) >= fuzz_bodies.MEGABYTE


def test_invalid_bodies_are_invalid() -> None:
    for text in fuzz_bodies.invalid_xml_bodies():
        assert FORBIDDEN.search(text) is not None


@pytest.fixture(scope="module")
def sections(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from tests.servers.prosody import require_prosody

    require_prosody()
    return run_campaign(tmp_path_factory.mktemp("fuzz"), "fuzz", "privacy")


@pytest.mark.prosody
@pytest.mark.slow
def test_fuzz_all_checks_pass(sections: dict[str, dict[str, Any]]) -> None:
    assert failed_checks(sections["fuzz"]) == {}
    assert sections["fuzz"]["figures"]["inputs"] >= 1000


@pytest.mark.prosody
@pytest.mark.slow
def test_fuzz_logs_stay_private(sections: dict[str, dict[str, Any]]) -> None:
    assert failed_checks(sections["privacy"]) == {}
    assert sections["privacy"]["figures"]["bodies_searched_in_log"] >= 200
