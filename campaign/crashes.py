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
LONG_STOP_SHARE = 0.08
PATIENTS = 4


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


async def _kill_once(run: DoseRun, rng: random.Random, gap: float, counts: dict[str, int]) -> None:
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

    if rng.random() < LONG_STOP_SHARE:
        counts["long-stop"] = counts.get("long-stop", 0) + 1
        await asyncio.sleep((REASK * ASKS).total_seconds() + rng.uniform(4.0, 8.0))
    ready_at = await run.start_bot()
    run.outages.append(Outage(killed_at, ready_at))
    run.bot.sample_rss()


async def crash_campaign(result: SectionResult, campaign: Campaign, root: Path) -> None:
    kills = campaign.profile.crash_kills
    minutes = campaign.profile.crash_minutes
    rng = random.Random(result.seed)
    run = await open_run(root, minutes * 60, PATIENTS, result.seed)
    gap = minutes * 60 / kills
    counts: dict[str, int] = {}
    try:
        for _ in range(kills):
            if datetime.now(UTC) > run.end_of_schedule:
                break
            await _kill_once(run, rng, gap, counts)
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
    check_private_file(result, run.database)
    collect_evidence(campaign, run)


def run(result: SectionResult, campaign: Campaign) -> None:
    root = campaign.directory("crashes")
    asyncio.run(crash_campaign(result, campaign, root))
