"""Server faults: Prosody restarts, stops of a few seconds, crashes, and a long freeze.

The bot runs its compressed schedule throughout. After each fault the scripted patients
log in again, and messages the bot sent while they were away arrive from Prosody's
offline storage. The bot must reconnect on its own, lose and duplicate nothing, and
deliver every message it committed during an outage once the server is back, late only
by its reconnect back-off.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign import database
from campaign.context import Campaign
from campaign.dose_run import (
    KNOWN_DEFECTS,
    DoseRun,
    check_run,
    close_run,
    collect_evidence,
    open_run,
)
from campaign.results import SectionResult
from campaign.transcript import Outage

log = logging.getLogger(__name__)

FAULTS = ("restart", "stop", "crash")
PATIENTS = 3
# The transport pings every 30 s and gives up after 10 s without a reply, so a freeze
# must outlast both to be noticed for sure; FREEZE_SHORT only stalls the link.
FREEZE_LONG = 45.0
FREEZE_SHORT = 12.0
# The transport's reconnect back-off is capped at 30 s with +-20 % jitter (Backoff in
# transports/xmpp/transport.py). So a message committed during an outage must arrive
# within this long after the server is back.
RECOVERY_BOUND = timedelta(seconds=40)


async def _fault(run: DoseRun, kind: str, rng: random.Random) -> tuple[datetime, datetime]:
    """Inject one fault; return when the server went away and when it was back."""
    server = run.world.server
    began = datetime.now(UTC)
    if kind == "restart":
        await asyncio.to_thread(server.restart)
    elif kind == "stop":
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(rng.uniform(2.0, 5.0))
        await asyncio.to_thread(server.start)
    else:
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        await asyncio.to_thread(server.start)
    back = datetime.now(UTC)
    for agent in run.agents:
        await agent.reconnect()
    return began, back


async def _freeze(run: DoseRun, seconds: float) -> tuple[datetime, datetime]:
    began = datetime.now(UTC)
    run.world.server.pause()
    try:
        await asyncio.sleep(seconds)
    finally:
        run.world.server.cont()
    return began, datetime.now(UTC)


async def server_campaign(result: SectionResult, campaign: Campaign, root: Path) -> None:
    profile = campaign.profile
    rng = random.Random(result.seed + 1)
    freeze = FREEZE_LONG if profile.name == "long" else FREEZE_SHORT
    seconds = profile.server_faults * 7.0 + profile.freezes * (freeze + 8.0) + 10.0
    run = await open_run(root, seconds, PATIENTS, result.seed + 1)
    pid = run.bot.pid
    kinds = [rng.choice(FAULTS) for _ in range(profile.server_faults)]
    for _ in range(profile.freezes):
        kinds.insert(rng.randrange(len(kinds) + 1), "freeze")
    outages: list[tuple[datetime, datetime]] = []
    try:
        for kind in kinds:
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            if kind == "freeze":
                outages.append(await _freeze(run, freeze))
            else:
                outages.append(await _fault(run, kind, rng))
            run.reply_blackouts.append(Outage(outages[-1][0], datetime.now(UTC)))
            run.bot.sample_rss()
        same_process = run.bot.running and run.bot.pid == pid
    finally:
        code = await close_run(run)

    result.figures["server_faults"] = sum(kind != "freeze" for kind in kinds)
    for kind in (*FAULTS, "freeze"):
        result.figures[f"faults_{kind}"] = kinds.count(kind)
    result.figures["freeze_seconds"] = freeze
    result.check("bot process survived every fault", same_process, "the bot exited or restarted")
    result.check("bot stops cleanly with SIGTERM", code == 0, f"exit code {code}")
    # The bot itself never stopped, so every dose must be asked; a message committed
    # while the server was away may arrive after its late window.
    known = KNOWN_DEFECTS | {
        "bursts": "an ask held back by an outage can arrive just before the dose's next"
        " re-ask, because the dose's timers keep running while the server is away",
    }
    check_run(result, run, ignored=frozenset({"stale_asks"}), known_defects=known)
    _check_recovery(result, run, outages)
    collect_evidence(campaign, run)


def _check_recovery(
    result: SectionResult, run: DoseRun, outages: list[tuple[datetime, datetime]]
) -> None:
    """Each message must arrive on time, or within RECOVERY_BOUND of the server's return."""
    created = {row.message_id: row.created_at for row in database.read_outbox(run.database)}
    worst = timedelta(0)
    late = []
    for message in run.all_received():
        created_at = created.get(message.message_id or "")
        if created_at is None:
            continue
        ends = [end for start, end in outages if start <= message.received_at]
        back = max(ends, default=created_at)
        waited = message.received_at - max(created_at, back)
        worst = max(worst, waited)
        if waited > RECOVERY_BOUND:
            late.append(f"{message.message_id} after {waited.total_seconds():.1f} s")
    result.figures["max_delay_after_recovery_s"] = round(worst.total_seconds(), 1)
    result.check("messages arrive within the back-off after recovery", not late,
                 f"{len(late)}: {late[:5]}")


def run(result: SectionResult, campaign: Campaign) -> None:
    asyncio.run(server_campaign(result, campaign, campaign.directory("server_faults")))
