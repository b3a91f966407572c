"""Hostile and odd input: fuzzed messages from patients, strangers and the bot itself.

Senders and the message types they use:

- the patient p2: chat and normal, the types a real reply has, with every kind of body;
- the patient p1: only groupchat, headline and error, which must never count as replies;
- a stranger: every type;
- the bot's own account with another resource: every type.

p1 has a dose that stays open the whole time, so any message that should be ignored but
is applied shows up as an early answer. At the end p1 sends a real "yes", which must
close that dose. The bot must keep the same process, bounded memory, and store every
outgoing body exactly as sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign import configs, database, fuzz_bodies
from campaign.bot import BotProcess
from campaign.context import Campaign
from campaign.patients import PatientAgent
from campaign.privacy import check_private_file
from campaign.results import SectionResult
from campaign.world import BOT_PASSWORD, World, start_world
from tests.servers.patient import ChatClient
from tests.servers.prosody import PASSWORD

log = logging.getLogger(__name__)

ALL_TYPES = ("chat", "normal", "groupchat", "headline", "error")
REPLY_TYPES = ("chat", "normal")
IGNORED_TYPES = ("groupchat", "headline", "error")
SENDER_WEIGHTS = {"patient": 4, "patient-other-types": 2, "stranger": 3, "bot-self": 1}
PACE = 100  # messages between round trips to the server, so its queues stay short
LEAD = timedelta(seconds=4)
OPEN_FOR = timedelta(hours=1)  # re-ask interval that keeps the guarded dose open
RSS_LIMIT_GROWTH = 150 * 2**20  # bytes the bot may grow over the whole fuzz run
ODD_NAME = "Zoë \u202eKhalil\u202c 👩🏽‍⚕️"
ODD_MEDICATION = "L-Thyrox\u0301in 50 µg «Henning» 💊"


@dataclass
class Senders:
    patient: ChatClient
    patient_other: ChatClient
    stranger: ChatClient
    bot_self: ChatClient

    def pick(self, name: str) -> tuple[ChatClient, tuple[str, ...]]:
        if name == "patient":
            return self.patient, REPLY_TYPES
        if name == "patient-other-types":
            return self.patient_other, IGNORED_TYPES
        if name == "stranger":
            return self.stranger, ALL_TYPES
        return self.bot_self, ALL_TYPES

    def all(self) -> tuple[ChatClient, ...]:
        return (self.patient, self.patient_other, self.stranger, self.bot_self)


@dataclass
class FuzzLog:
    """What was sent, for the checks and the privacy scan."""

    counts: dict[str, int] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)

    def add(self, key: str, body: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.bodies.append(body)


def _plans(world: World) -> tuple[configs.PatientPlan, ...]:
    due = (datetime.now(UTC) + LEAD).replace(microsecond=0)
    guarded = configs.MedicationPlan("guarded", "Guarded dose", (due,), OPEN_FOR, 3)
    odd = configs.MedicationPlan("odd", ODD_MEDICATION, (due,), OPEN_FOR, 3)
    return (
        configs.PatientPlan("p1", "Pat One", world.server.jid("patient1"), (guarded,)),
        configs.PatientPlan("p2", ODD_NAME, world.server.jid("patient2"), (odd,)),
    )


async def _connect(world: World) -> Senders:
    server = world.server
    senders = Senders(
        ChatClient(server, "patient2", resource="fuzz"),
        ChatClient(server, "patient1", resource="fuzz"),
        ChatClient(server, "stranger", resource="fuzz"),
        ChatClient(server, "bot", resource="fuzz", password=BOT_PASSWORD),
    )
    for client in senders.all():
        await client.__aenter__()
    return senders


def _special_stanzas(bot: str, patient: str, stamp: str) -> list[tuple[str, str]]:
    """Raw stanzas that forge what a client should not control: carbons, forwards, delays."""
    forwarded = (f"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                 f"from='{patient}/phone' to='{bot}' type='chat'><body>yes</body></message>"
                 "</forwarded>")
    return [
        ("stranger", f"<message to='{bot}' type='chat'><received xmlns='urn:xmpp:carbons:2'>"
                     f"{forwarded}</received></message>"),
        ("stranger", f"<message to='{bot}' type='chat'><sent xmlns='urn:xmpp:carbons:2'>"
                     f"{forwarded}</sent></message>"),
        ("stranger", f"<message to='{bot}' type='chat'>{forwarded}</message>"),
        ("patient", f"<message to='{bot}' type='chat'><body>fuzz-delay status</body>"
                    f"<delay xmlns='urn:xmpp:delay' from='medbot.test' stamp='{stamp}'/>"
                    "</message>"),
    ]


async def _send_all(
    senders: Senders, bot_jid: str, rng: random.Random, count: int, megabytes: int,
    bot: BotProcess, sent: FuzzLog,
) -> None:
    names = list(SENDER_WEIGHTS)
    weights = list(SENDER_WEIGHTS.values())
    big_at = {int(count * (index + 1) / (megabytes + 1)) for index in range(megabytes)}
    for index in range(count):
        name = rng.choices(names, weights)[0]
        client, types = senders.pick(name)
        kind, text = fuzz_bodies.body(rng)
        if index in big_at:
            kind, text = "megabyte", fuzz_bodies.megabyte(rng)
        mtype = rng.choice(types)
        client.send(bot_jid, text, mtype=mtype)
        sent.add(f"{name}/{mtype}", text)
        sent.counts[f"body:{kind}"] = sent.counts.get(f"body:{kind}", 0) + 1
        if index % PACE == PACE - 1:
            for each in senders.all():
                await each.ping_server()
            bot.sample_rss()


async def _send_invalid_xml(world: World, bot_jid: str, sent: FuzzLog) -> None:
    """Send stanzas with characters XML forbids, each on a connection of its own."""
    for text in fuzz_bodies.invalid_xml_bodies():
        async with ChatClient(world.server, "patient2", resource="invalid") as client:
            client.send_raw(f"<message to='{bot_jid}' type='chat'><body>{text}</body></message>")
            await asyncio.sleep(0.2)
        sent.add("patient/invalid-xml", text)


async def fuzz_campaign(result: SectionResult, campaign: Campaign, root: Path) -> None:
    rng = random.Random(result.seed + 2)
    world = await asyncio.to_thread(start_world, root / "prosody", 2)
    plans = _plans(world)
    db_path = root / "medbot.sqlite3"
    config = configs.write_config(root / "medbot.toml",
                                  configs.bot_config(db_path, world.target(), plans))
    bot = BotProcess(config, root / "bot.log")
    agents = [PatientAgent(world.server, user, plan.id, world.bot_jid, random.Random(1), 0.0)
              for user, plan in zip(world.patients, plans, strict=True)]
    sent = FuzzLog()
    try:
        for agent in agents:
            await agent.connect()
        bot.start()
        await asyncio.to_thread(bot.wait_for_log, "started:", 30.0)
        await _wait_for(lambda: all(agent.received for agent in agents), 30.0)
        pid = bot.pid
        bot.sample_rss()

        senders = await _connect(world)
        started = time.monotonic()
        await _send_all(senders, world.bot_jid, rng, campaign.profile.fuzz_messages,
                        campaign.profile.megabyte_bodies, bot, sent)
        stamp = "2001-01-01T00:00:00Z"
        for name, xml in _special_stanzas(world.bot_jid, world.server.jid("patient1"), stamp):
            senders.pick(name)[0].send_raw(xml)
            sent.add(f"{name}/raw", xml)
        await _send_invalid_xml(world, world.bot_jid, sent)
        result.figures["send_seconds"] = round(time.monotonic() - started, 1)

        await asyncio.sleep(2.0)
        bot.sample_rss()
        real_yes_at = datetime.now(UTC)
        agents[0].replies.clear()
        senders.patient_other.send(world.bot_jid, "yes")
        praised = await _wait_for(
            lambda: any((m.message_id or "").endswith("/praise") for m in agents[0].received),
            60.0,
        )
        same_process = bot.running and bot.pid == pid
        stranger_got = len(senders.stranger.received)
        for client in senders.all():
            await client.close()
    finally:
        code = await asyncio.to_thread(bot.stop)
        for agent in agents:
            await agent.disconnect()
        await asyncio.to_thread(world.stop)

    _record(result, sent, bot, code, same_process, praised, stranger_got)
    _check_database(result, db_path, agents, real_yes_at)
    check_private_file(result, db_path)
    _hand_over(campaign, bot, db_path, sent, agents)


async def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())


def _record(
    result: SectionResult, sent: FuzzLog, bot: BotProcess, code: int | None,
    same_process: bool, praised: bool, stranger_got: int,
) -> None:
    result.figures["inputs"] = len(sent.bodies)
    result.figures.update(dict(sorted(sent.counts.items())))
    samples = bot.rss_samples
    mib = 2**20
    result.figures["rss_start_mib"] = round(samples[0] / mib, 1)
    result.figures["rss_peak_mib"] = round(max(samples) / mib, 1)
    result.figures["rss_end_mib"] = round(samples[-1] / mib, 1)
    growth = samples[-1] - samples[0]
    result.figures["rss_growth_mib"] = round(growth / mib, 1)
    result.check("bot kept the same process", same_process, "the bot exited during the fuzz")
    result.check("bot stops cleanly with SIGTERM", code == 0, f"exit code {code}")
    result.check("memory growth bounded", growth < RSS_LIMIT_GROWTH,
                 f"grew {growth / mib:.1f} MiB")
    result.check("real reply after the fuzz is praised", praised, "no praise within 60 s")
    result.expect_equal("messages the bot sent to the stranger", stranger_got, 0)


def _check_database(
    result: SectionResult, db_path: Path, agents: list[PatientAgent], real_yes_at: datetime
) -> None:
    cycles = {cycle.dose_id: cycle for cycle in database.read_cycles(db_path)}
    # The medication's next occurrence, a day later, has a SCHEDULED cycle of its own.
    soon = real_yes_at + timedelta(hours=1)
    guarded = [
        cycle for dose_id, cycle in cycles.items() if "/guarded/" in dose_id and cycle.due_at < soon
    ]
    result.expect_equal("guarded doses", len(guarded), 1)
    if guarded:
        cycle = guarded[0]
        result.expect_equal("guarded dose phase", cycle.phase, "taken")
        early = cycle.answered_at is not None and cycle.answered_at < real_yes_at - timedelta(
            seconds=1
        )
        result.check("guarded dose answered only by the real reply", not early,
                     f"answered at {cycle.answered_at}, real reply at {real_yes_at}")
    outbox = {row.message_id: row for row in database.read_outbox(db_path)}
    mismatched = [
        message.message_id
        for agent in agents
        for message in agent.received
        if message.message_id in outbox and outbox[message.message_id].body != message.body
    ]
    result.figures["outbox_bodies_compared"] = sum(
        message.message_id in outbox for agent in agents for message in agent.received
    )
    result.check("outbox bodies read back byte for byte", not mismatched, f"{mismatched[:5]}")


def _hand_over(
    campaign: Campaign, bot: BotProcess, db_path: Path, sent: FuzzLog,
    agents: list[PatientAgent],
) -> None:
    evidence = campaign.evidence
    evidence.bot_logs.append(bot.log_file)
    evidence.databases.append(db_path)
    evidence.secrets.update({BOT_PASSWORD, PASSWORD})
    # A megabyte body is searched for by its first 64 characters, which is enough to
    # show a leak and keeps the search fast.
    evidence.bodies.update(body[:64] for body in sent.bodies)
    evidence.bodies.update(message.body for agent in agents for message in agent.received)
    evidence.bodies.update({ODD_NAME, ODD_MEDICATION})


def run(result: SectionResult, campaign: Campaign) -> None:
    asyncio.run(fuzz_campaign(result, campaign, campaign.directory("fuzz")))
