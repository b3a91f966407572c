"""Run the campaign: ``python -m campaign --short`` (CI) or ``--long`` (by hand).

Prints a summary table, writes every figure and check to a JSON file, and exits 1 when
any check failed.
"""

from __future__ import annotations

import argparse
import logging
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from campaign import bad_config, bad_storage, crashes, fuzz, privacy, server_faults, world
from campaign.context import LONG, SHORT, Campaign
from campaign.results import Figure, SectionResult, format_table, write_json

log = logging.getLogger("campaign")

Section = Callable[[SectionResult, Campaign], None]

SECTIONS: dict[str, Section] = {
    "bad_config": lambda result, campaign: bad_config.run(
        result,
        campaign.directory("bad_config"),
        campaign.profile.bad_configs,
        campaign.profile.bad_config_both,
    ),
    "bad_storage": bad_storage.run,
    "crashes": crashes.run,
    "server_faults": server_faults.run,
    "fuzz": fuzz.run,
    "privacy": privacy.run,
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m campaign", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="the bounded CI run (default)")
    size.add_argument("--long", action="store_true", help="the full run, about 25 minutes")
    parser.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS),
                        help="run only this section (repeatable); sections run in their "
                             "usual order, and privacy checks only what the others left")
    parser.add_argument("--json", type=Path, default=Path("campaign-results.json"),
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch directory with logs and databases")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG")
    return parser.parse_args(argv)


def machine() -> dict[str, Figure]:
    """Describe the machine, for the record next to the figures."""
    memory = psutil.virtual_memory().total
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or _cpu_model(),
        "cores": psutil.cpu_count() or 0,
        "ram_gib": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "prosody": world.prosody_version() or "not installed",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def run_sections(campaign: Campaign, names: list[str]) -> list[SectionResult]:
    """Run the named sections in order; a section that raises fails with its error."""
    results = []
    for name in names:
        result = SectionResult(name, campaign.seed)
        started = time.monotonic()
        print(f"--- {name} ...", flush=True)
        try:
            SECTIONS[name](result, campaign)
        except Exception as error:
            log.exception("section %s raised", name)
            result.check("section completed", False, f"{type(error).__name__}: {error}")
        result.seconds = time.monotonic() - started
        results.append(result)
        print(format_table([result]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    options = _arguments(argv)
    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile = LONG if options.long else SHORT
    seed = options.seed if options.seed is not None else secrets.randbelow(2**32)
    names = [name for name in SECTIONS if not options.only or name in options.only]
    workdir = Path(tempfile.mkdtemp(prefix="medbot-campaign-"))
    print(f"campaign {profile.name}, seed {seed}, scratch {workdir}", flush=True)

    campaign = Campaign(profile, seed, workdir)
    started = time.monotonic()
    results = run_sections(campaign, names)
    meta = machine() | {"profile": profile.name, "seed": seed,
                        "seconds": round(time.monotonic() - started, 1),
                        "command": " ".join(["python -m campaign", *(argv or sys.argv[1:])])}
    write_json(results, options.json, meta)
    print("\n" + format_table(results))
    print(f"seed {seed}; results in {options.json}")
    if not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
