from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers.prosody import require_prosody

ROOT = Path(__file__).resolve().parents[2]
# A fixed seed keeps CI repeatable; set MEDBOT_CAMPAIGN_SEED to explore others.
SEED = int(os.environ.get("MEDBOT_CAMPAIGN_SEED", "20261204"))


def run_campaign(tmp_path: Path, *sections: str) -> dict[str, dict[str, Any]]:
    """Run the short campaign for ``sections`` in a child process; return them by name."""
    output = tmp_path / "results.json"
    command = [sys.executable, "-m", "campaign", "--short", "--seed", str(SEED),
               "--json", str(output)]
    for section in sections:
        command += ["--only", section]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110,
                               check=False)
    if not output.exists():
        pytest.fail(f"campaign wrote no results:\n{completed.stdout}\n{completed.stderr}")
    document = json.loads(output.read_text(encoding="utf-8"))
    return {section["section"]: section for section in document["sections"]}


def failed_checks(section: dict[str, Any], *, include_known: bool = False) -> dict[str, str]:
    """Return the failed checks by name; known, reported defects only on request."""
    return {
        check["name"]: check["detail"]
        for check in section["checks"]
        if not check["passed"] and (include_known or not check["known"])
    }


@pytest.fixture
def prosody_installed() -> None:
    require_prosody()
