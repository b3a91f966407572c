from __future__ import annotations

import tomllib

from campaign.toml_text import dumps


def test_round_trip_nested() -> None:
    document = {"bot": {"time_zone": "UTC"}, "patients": [{"id": "a", "medications": [{"x": 1}]}]}
    assert tomllib.loads(dumps(document)) == document


def test_round_trip_odd_strings() -> None:
    document = {"name": "Zoë \u202e\"quoted\"\n👩🏽‍⚕️", "flag": True, "times": ["08:00"]}
    assert tomllib.loads(dumps(document)) == document


def test_odd_key_quoted() -> None:
    assert tomllib.loads(dumps({"a b": 1})) == {"a b": 1}
