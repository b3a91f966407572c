"""One bot, several patients and a compressed schedule: the stage for crashes and server faults.

The schedule gives every patient one dose every SPACING seconds, alternating between
two medications, with asks REASK seconds apart. A cycle (ask, re-ask, give-up) takes
less than SPACING, so a patient's "yes" always answers exactly one open dose.
Patients are staggered so the bot has a dose event every second or two.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign import configs, database
from campaign.bot import BotProcess
from campaign.context import Campaign
from campaign.database import CycleRow
from campaign.patients import PatientAgent
from campaign.results import SectionResult
from campaign.transcript import Dose, Outage, Received, TranscriptReport, check_transcript
from campaign.world import BOT_PASSWORD, World, start_world
from tests.servers.prosody import PASSWORD

log = logging.getLogger(__name__)

SPACING = timedelta(seconds=5)
REASK = timedelta(seconds=2)
ASKS = 2
LEAD = timedelta(seconds=6)  # time from writing the config to the first dose
READY_MARK = "started:"  # the runtime's log line once recovery is done
READY_TIMEOUT = 30.0
SETTLE = 6.0  # seconds after the last cycle for stragglers to arrive


@dataclass
class DoseRun:
    """A running world: Prosody, the bot process, the patient agents and the plan."""

    world: World
    bot: BotProcess
    agents: list[PatientAgent]
    plans: tuple[configs.PatientPlan, ...]
    database: Path
    end_of_schedule: datetime
    outages: list[Outage] = field(default_factory=list)
    # Periods when a patient's reply may be lost on the patient's side (its connection
    # was down), so the reply check skips replies sent then.
    reply_blackouts: list[Outage] = field(default_factory=list)
    long_stops: list[Outage] = field(default_factory=list)
    startup_seconds: list[float] = field(default_factory=list)

    @property
    def doses(self) -> list[Dose]:
        return [
            Dose(plan.id, medication.id, due, medication.late_window, REASK * ASKS)
            for plan in self.plans
            for medication in plan.medications
            for due in medication.times
        ]

    async def start_bot(self) -> datetime:
        """Start the bot and wait for its ready line; return when it was ready."""
        offset = self.bot.log_size()
        began = time.monotonic()
        self.bot.start()
        ready = await asyncio.to_thread(self.bot.wait_for_log, READY_MARK, READY_TIMEOUT, offset)
        if not ready:
            raise RuntimeError(f"medbot did not become ready; see {self.bot.log_file}")
        self.startup_seconds.append(time.monotonic() - began)
        return datetime.now(UTC)

    def all_received(self) -> list[Received]:
        return [message for agent in self.agents for message in agent.received]


def _plans(
    world: World, start: datetime, seconds: float, late_window: timedelta | None
) -> tuple[configs.PatientPlan, ...]:
    plans = []
    count = int(seconds // (2 * SPACING.total_seconds())) + 1
    stagger = SPACING / len(world.patients)
    for index, user in enumerate(world.patients):
        first = start + stagger * index
        even = configs.compressed_plan(first, count, 2 * SPACING)
        odd = configs.compressed_plan(first + SPACING, count, 2 * SPACING)
        medications = (
            configs.MedicationPlan("basal", f"Basal insulin {user}", even, REASK, ASKS,
                                   late_window),
            configs.MedicationPlan("statin", f"Statin {user}", odd, REASK, ASKS, late_window),
        )
        plans.append(configs.PatientPlan(f"p{index + 1}", f"Pat {index + 1}",
                                         world.server.jid(user), medications))
    return tuple(plans)


async def open_run(
    root: Path, seconds: float, patients: int, seed: int, late_window: timedelta | None = None
) -> DoseRun:
    """Start Prosody, write the configuration, connect the patients and start the bot.

    ``late_window`` sets every medication's late window; None keeps medbot's default,
    the length of the ask cycle.
    """
    world = await asyncio.to_thread(start_world, root / "prosody", patients)
    start = datetime.now(UTC).replace(microsecond=0) + LEAD
    plans = _plans(world, start, seconds, late_window)
    db_path = root / "medbot.sqlite3"
    config = configs.write_config(root / "medbot.toml",
                                  configs.bot_config(db_path, world.target(), plans))
    bot = BotProcess(config, root / "bot.log")
    rng = random.Random(seed)
    agents = [
        PatientAgent(world.server, user, plan.id, world.bot_jid, random.Random(rng.random()))
        for user, plan in zip(world.patients, plans, strict=True)
    ]
    for agent in agents:
        await agent.connect()
    end = max(due for plan in plans for med in plan.medications for due in med.times)
    run = DoseRun(world, bot, agents, plans, db_path, end)
    await run.start_bot()
    return run


async def close_run(run: DoseRun) -> int | None:
    """Wait for the schedule to finish, stop the bot and the patients; return the exit code."""
    finish = run.end_of_schedule + REASK * ASKS + timedelta(seconds=SETTLE)
    await asyncio.sleep(max(0.0, (finish - datetime.now(UTC)).total_seconds()))
    code = await asyncio.to_thread(run.bot.stop)
    for agent in run.agents:
        await agent.disconnect()
    await asyncio.to_thread(run.world.stop)
    return code


# Transcript problems that come from reported, still open defects, by category.
KNOWN_DEFECTS: dict[str, str] = {}


def check_run(
    result: SectionResult,
    run: DoseRun,
    ignored: frozenset[str] = frozenset(),
    known_defects: dict[str, str] | None = None,
) -> TranscriptReport:
    """Check the transcript and the database after ``close_run``; record the figures.

    Problem categories in ``ignored`` are counted as figures but do not fail the run;
    those in ``known_defects`` (default KNOWN_DEFECTS) are listed as known.
    """
    known_defects = KNOWN_DEFECTS if known_defects is None else known_defects
    outbox = database.read_outbox(run.database)
    cycles = database.read_cycles(run.database)
    received = run.all_received()
    end = run.end_of_schedule + REASK * ASKS
    # A superseded ask was never meant to arrive, so it is not counted as lost.
    committed = [row.message_id for row in outbox if not row.superseded]
    report = check_transcript(received, run.doses, run.outages, committed, end)
    _save_transcript(run, received)
    for name in ignored:
        result.figures[name] = len(getattr(report, name))
        setattr(report, name, [])
    result.figures["doses"] = len(run.doses)
    result.figures["cycles_checked"] = report.doses_checked
    result.figures["messages_received"] = len(received)
    result.figures["outbox_rows"] = len(outbox)
    result.figures["lost"] = report.lost
    result.figures["duplicated"] = report.duplicated
    result.figures["replies_sent"] = sum(len(agent.replies) for agent in run.agents)
    for name, problems in report.problems().items():
        known = name in known_defects
        detail = f"{len(problems)}: {problems[:5]}"
        if known:
            detail = f"{known_defects[name]}; {detail}"
        result.check(f"transcript: {name}", False, detail, known=known)
    unknown = [name for name in report.problems() if name not in known_defects]
    result.check("transcript: no unknown problems", not unknown, f"{unknown}")
    _check_replies(result, run, cycles)
    if run.startup_seconds:
        result.figures["startup_s_max"] = round(max(run.startup_seconds), 2)
    return report


def _save_transcript(run: DoseRun, received: list[Received]) -> None:
    """Keep what the patients received and when the bot was down, for a later look."""
    document = {
        "outages": [[o.start.isoformat(), o.end.isoformat()] for o in run.outages],
        "received": [
            [m.patient_id, m.message_id, m.received_at.isoformat()] for m in received
        ],
    }
    path = run.database.with_name("transcript.json")
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def collect_evidence(campaign: Campaign, run: DoseRun) -> None:
    """Hand the run's log, database, secrets and message bodies to the privacy checks."""
    evidence = campaign.evidence
    evidence.bot_logs.append(run.bot.log_file)
    evidence.databases.append(run.database)
    evidence.secrets.update({BOT_PASSWORD, PASSWORD})
    evidence.bodies.update(message.body for message in run.all_received())
    evidence.bodies.update(reply.body for agent in run.agents for reply in agent.replies)
    evidence.bodies.update(
        medication.name for plan in run.plans for medication in plan.medications
    )


def _check_replies(result: SectionResult, run: DoseRun, cycles: list[CycleRow]) -> None:
    """Every "yes" sent while the bot was up, well inside the cycle, must mark a dose taken.

    Usually that is the dose the patient meant. The bot routes a reply to the dose whose
    latest ask came before the reply was written, and a restart can delay an older dose's
    re-ask past a newer dose's ask. So any dose of the patient taken right after the reply
    counts.
    """
    margin = timedelta(seconds=1)
    phases = {cycle.dose_id: cycle.phase for cycle in cycles}
    answered = [(cycle.patient_id, cycle.answered_at) for cycle in cycles if cycle.answered_at]
    unapplied = []
    for agent in run.agents:
        for reply in agent.replies:
            due = _due_of(reply.dose_id)
            in_cycle = reply.sent_at < due + REASK * ASKS - margin
            during_outage = any(o.start - margin <= reply.sent_at <= o.end + margin
                                for o in (*run.outages, *run.reply_blackouts))
            if not in_cycle or during_outage or phases.get(reply.dose_id) == "taken":
                continue
            latest = reply.sent_at + 5 * margin
            elsewhere = any(
                patient == agent.patient_id and reply.sent_at - margin <= at <= latest
                for patient, at in answered
            )
            if not elsewhere:
                unapplied.append(f"{reply.dose_id}: {phases.get(reply.dose_id)}")
    result.figures["replies_not_applied"] = len(unapplied)
    result.check("every timely reply marks its dose taken", not unapplied,
                 f"{len(unapplied)}: {unapplied[:5]}")


def _due_of(dose_id: str) -> datetime:
    stamp = dose_id.rsplit("/", 1)[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
