"""A small herd through the benchmark's command line; checks counts only, never speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.herd import SCENARIOS
from bench.measure import percentile

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SIZE = 200


@pytest.mark.slow
def test_herd_small_run_loses_nothing(tmp_path: Path) -> None:
    figures_file = tmp_path / "herd.json"
    command = [
        sys.executable, "-m", "bench.herd", "--sizes", str(SIZE),
        "--lead", "2", "--deadline", "10", "--json", str(figures_file),
    ]

    completed = subprocess.run(
        command, cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=100, check=False
    )

    assert completed.returncode == 0, completed.stderr
    figures = {row["scenario"]: row for row in json.loads(figures_file.read_text())}
    assert sorted(figures) == sorted(SCENARIOS)
    for scenario, row in figures.items():
        assert row["size"] == SIZE, scenario
        assert row["lost"] == 0, scenario
        assert row["handed_over"] == SIZE, scenario
        assert row["duplicates"] == 0, scenario
        assert row["lag_max_s"] is not None, scenario
    assert "apscheduler-no-grace" in completed.stdout


def test_percentile_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]

    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) is None
