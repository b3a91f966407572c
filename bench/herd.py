"""The evening herd: N doses fall due within the same 2 seconds.

Each scenario runs in its own subprocess, so no scenario inherits another's memory,
and prints one JSON line of figures that the parent gathers into one table:

- ``medbot``: the medbot runtime with a SqliteStore in a temporary directory and a
  transport that only records when each message is handed to it.
- ``apscheduler``: one DateTrigger job per dose on APScheduler 3.x's AsyncIOScheduler,
  with its default misfire grace time of 1 s.
- ``apscheduler-no-grace``: the same with ``misfire_grace_time=None``, so no job is
  skipped for starting late.

Run it from the repository root::

    .venv/bin/python -m bench.herd --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.measure import HerdPlan, ScenarioResult

SCENARIOS = ("medbot", "apscheduler", "apscheduler-no-grace")
DEFAULT_SIZES = (10_000, 100_000)
# Seconds after the window's end that a dose's first ask may still arrive and count.
DEFAULT_DEADLINE = 60.0
# A worker gets this many seconds beyond its lead, window and deadline before it is
# killed. It is large because setup may overrun the lead by minutes at large N, and the
# run still has to measure what happens then.
WORKER_TIMEOUT_MARGIN = 900.0
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested scenarios, print the table, and return the exit status."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.worker is not None:
        return _run_worker(args.worker, args.size, args.lead, args.deadline)

    results: list[ScenarioResult] = []
    failures: list[str] = []
    print(format_header(), file=sys.stderr, flush=True)
    for size in args.sizes:
        for scenario in args.scenarios:
            try:
                result = run_scenario(scenario, size, args.lead, args.deadline)
            except WorkerFailed as error:
                logger.error("%s", error)
                failures.append(str(error))
                continue
            results.append(result)
            print(format_row(result), file=sys.stderr, flush=True)

    print(format_table(results))
    for failure in failures:
        print(f"not measured: {failure}")
    if args.json is not None:
        write_json(args.json, results)
    return 1 if failures else 0


class WorkerFailed(Exception):
    """Raised when a scenario's subprocess timed out or exited with an error."""


def default_lead(size: int) -> float:
    """Estimate the seconds from worker start to the window, enough for setup to finish.

    NOTE: a rough estimate. When setup overruns it, the scenario runs once more with a
    lead sized from the measured setup time.
    """
    return 3.0 + size * 100e-6


def run_scenario(
    scenario: str, size: int, lead: float | None, deadline: float
) -> ScenarioResult:
    """Run one scenario in a fresh subprocess; raise WorkerFailed when it failed."""
    result = _spawn_worker(scenario, size, lead if lead is not None else default_lead(size),
                           deadline)
    if result.setup_overran and lead is None:
        retry_lead = 1.5 * result.setup_s + 3.0
        logger.warning(
            "%s with N=%d: setup took %.1f s and overran the window; retrying with a "
            "lead of %.1f s", scenario, size, result.setup_s, retry_lead,
        )
        result = _spawn_worker(scenario, size, retry_lead, deadline)
    return result


def _spawn_worker(scenario: str, size: int, lead: float, deadline: float) -> ScenarioResult:
    command = [
        sys.executable, "-m", "bench.herd", "--worker", scenario,
        "--size", str(size), "--lead", repr(lead), "--deadline", repr(deadline),
    ]
    timeout = lead + 2 + deadline + WORKER_TIMEOUT_MARGIN
    try:
        completed = subprocess.run(
            command, cwd=REPOSITORY_ROOT, stdout=subprocess.PIPE, text=True,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        raise WorkerFailed(f"{scenario} with N={size} timed out after {timeout:.0f} s") from None

    if completed.returncode != 0:
        raise WorkerFailed(
            f"{scenario} with N={size} failed with exit status {completed.returncode}; "
            "its errors are above"
        )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise WorkerFailed(f"{scenario} with N={size} printed no figures")
    return ScenarioResult(**json.loads(lines[-1]))


def _run_worker(scenario: str, size: int | None, lead: float | None, deadline: float) -> int:
    if size is None or lead is None:
        raise SystemExit("missing --size or --lead: --worker requires both")
    # Up to N warnings about late or skipped runs would otherwise time the terminal, not
    # the scheduler. Skipped runs are counted from events instead.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)

    plan = HerdPlan.starting_after(size, lead)
    result = asyncio.run(_run_in_loop(scenario, plan, lead, deadline))
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


async def _run_in_loop(
    scenario: str, plan: HerdPlan, lead: float, deadline: float
) -> ScenarioResult:
    # Imported here so a worker loads only the scheduler it measures.
    if scenario == "medbot":
        from bench import medbot_herd

        return await medbot_herd.run_herd(scenario, plan, lead, deadline)

    from bench import apscheduler_herd

    if scenario == "apscheduler-no-grace":
        grace = apscheduler_herd.Grace.UNLIMITED
    else:
        grace = apscheduler_herd.Grace.DEFAULT
    return await apscheduler_herd.run_herd(scenario, plan, grace, lead, deadline)


# --- Output -----------------------------------------------------------------------------

_COLUMNS = (
    ("scenario", 22), ("N", 8), ("lost", 7), ("p50 s", 8), ("p99 s", 8), ("max s", 8),
    ("peak RSS MiB", 13), ("setup s", 8),
)


def format_row(result: ScenarioResult) -> str:
    cells = (
        result.scenario, str(result.size), str(result.lost),
        _seconds(result.lag_p50_s), _seconds(result.lag_p99_s), _seconds(result.lag_max_s),
        f"{result.peak_rss_mib:.0f}", f"{result.setup_s:.2f}",
    )
    row = "".join(cell.ljust(width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True))
    notes = []
    if result.late:
        notes.append(f"{result.late} handed over after the deadline")
    if result.duplicates:
        notes.append(f"{result.duplicates} duplicate sends")
    if result.setup_overran:
        notes.append("setup overran the window")
    if result.error is not None:
        notes.append(result.error)
    return row.rstrip() + (f"  ({'; '.join(notes)})" if notes else "")


def format_header() -> str:
    return "".join(name.ljust(width) for name, width in _COLUMNS).rstrip()


def format_table(results: Sequence[ScenarioResult]) -> str:
    return "\n".join([format_header(), *(format_row(result) for result in results)])


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_json(path: Path, results: Sequence[ScenarioResult]) -> None:
    path.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2) + "\n")


# --- Arguments --------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.herd",
        description="Measure lost asks, lag and memory when N doses fall due in 2 seconds.",
    )
    parser.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES,
                        help="comma-separated herd sizes (default: 10000,100000)")
    parser.add_argument("--scenarios", type=_scenarios, default=SCENARIOS,
                        help=f"comma-separated scenarios (default: {','.join(SCENARIOS)})")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--lead", type=float,
                        help="seconds from worker start to the window (default: by size)")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help="seconds after the window that a first ask still counts "
                             f"(default: {DEFAULT_DEADLINE:.0f})")
    parser.add_argument("--worker", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        message = f"invalid sizes {text!r}: expected e.g. 10000,100000"
        raise argparse.ArgumentTypeError(message) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"invalid sizes {text!r}: each must be at least 1")
    return sizes


def _scenarios(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}"
        )
    return names


if __name__ == "__main__":
    sys.exit(main())
