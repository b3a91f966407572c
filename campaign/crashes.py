"""Crashes: SIGKILL the bot at random and at chosen moments, restart it, check the transcript.

Kill moments, drawn with a seeded RNG:

- random: any time while the bot runs;
- at-due: a few milliseconds after a dose falls due, while the bot commits the ask or
  hands it to the transport (between commit and send);
- after-ask: as soon as a patient receives an ask, before the bot has processed the
  server's ack and marked the message delivered (between send and ack);
- long stop: any of the above, but the bot stays down longer than the late window, so
  the doses that fell due meanwhile must end as missed, with one summary and no late ask.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign.context import Campaign
from campaign.dose_run import (
    ASKS,
    REASK,
    DoseRun,
    check_run,
    close_run,
    collect_evidence,
    open_run,
)
from campaign.privacy import check_private_file
from campaign.results import SectionResult
from campaign.transcript import Outage

log = logging.getLogger(__name__)

MODES = ("random", "at-due", "after-ask")
PATIENTS = 4
LATE_WINDOW = REASK * ASKS  # medbot's default: the length of the ask cycle
SUMMARY_WAIT = timedelta(seconds=10)  # time after a restart for the missed summary


async def _wait_random(rng: random.Random, gap: float) -> None:
    await asyncio.sleep(rng.uniform(0.0, 2 * gap))


async def _wait_at_due(run: DoseRun, rng: random.Random) -> None:
    now = datetime.now(UTC)
    soonest = now + timedelta(seconds=0.2)
    upcoming = sorted(dose.due_at for dose in run.doses if dose.due_at > soonest)
    if not upcoming:
        return
    delay = (upcoming[0] - now).total_seconds() + rng.uniform(0.0, 0.06)
    await asyncio.sleep(delay)


async def _wait_after_ask(run: DoseRun, timeout: float) -> None:
    for agent in run.agents:
        agent.asks_seen.clear()
    waiters = [asyncio.create_task(agent.asks_seen.wait()) for agent in run.agents]
    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def _kill_once(
    run: DoseRun, rng: random.Random, gap: float, counts: dict[str, int], long_stop: bool
) -> None:
    mode = rng.choice(MODES)
    if mode == "random":
        await _wait_random(rng, gap)
    elif mode == "at-due":
        await _wait_at_due(run, rng)
    else:
        await _wait_after_ask(run, 3 * gap)
    killed_at = datetime.now(UTC)
    await asyncio.to_thread(run.bot.kill)
    counts[mode] = counts.get(mode, 0) + 1

    if long_stop:
        counts["long-stop"] = counts.get("long-stop", 0) + 1
        await asyncio.sleep(LATE_WINDOW.total_seconds() + rng.uniform(4.0, 8.0))
    ready_at = await run.start_bot()
    run.outages.append(Outage(killed_at, ready_at))
    if long_stop:
        run.long_stops.append(run.outages[-1])
    run.bot.sample_rss()


async def crash_campaign(result: SectionResult, campaign: Campaign, root: Path) -> None:
    kills = campaign.profile.crash_kills
    minutes = campaign.profile.crash_minutes
    rng = random.Random(result.seed)
    stops = campaign.profile.long_stops
    seconds = minutes * 60 + stops * (LATE_WINDOW.total_seconds() + 8.0)
    run = await open_run(root, seconds, PATIENTS, result.seed)
    gap = minutes * 60 / kills
    long_at = set(rng.sample(range(1, kills), stops)) if stops else set()
    counts: dict[str, int] = {}
    try:
        for index in range(kills):
            if datetime.now(UTC) > run.end_of_schedule:
                break
            await _kill_once(run, rng, gap, counts, index in long_at)
    finally:
        code = await close_run(run)
    result.figures["kills"] = sum(counts[mode] for mode in MODES if mode in counts)
    result.figures.update({f"kills_{mode}": count for mode, count in counts.items()})
    result.figures["restarts"] = run.bot.starts - 1
    result.figures["exit_code_after_sigterm"] = str(code)
    result.check("bot stops cleanly with SIGTERM", code == 0, f"exit code {code}")
    result.check("all planned kills ran", result.figures["kills"] == kills,
                 f"{result.figures['kills']} of {kills}: the schedule ended first")
    check_run(result, run)
    _check_summaries(result, run)
    check_private_file(result, run.database)
    collect_evidence(campaign, run)


def _check_summaries(result: SectionResult, run: DoseRun) -> None:
    """After each long stop, a patient with doses missed during it gets exactly one summary."""
    margin = timedelta(seconds=3)
    problems = []
    for stop in run.long_stops:
        for plan in run.plans:
            missed = [dose for dose in run.doses if dose.patient_id == plan.id
                      and dose.due_at > stop.start + margin
                      and dose.due_at + dose.late_window < stop.end - margin]
            if not missed:
                continue
            summaries = [message for message in run.all_received()
                         if message.patient_id == plan.id
                         and (message.message_id or "").endswith("/missed-summary")
                         and stop.end - margin <= message.received_at <= stop.end + SUMMARY_WAIT]
            if len(summaries) != 1:
                problems.append(f"{plan.id} after {stop.end:%H:%M:%S}: {len(summaries)} summaries")
    result.figures["long_stops"] = len(run.long_stops)
    result.check("one missed summary per patient after each long stop", not problems,
                 f"{problems[:5]}")


def run(result: SectionResult, campaign: Campaign) -> None:
    root = campaign.directory("crashes")
    asyncio.run(crash_campaign(result, campaign, root))
