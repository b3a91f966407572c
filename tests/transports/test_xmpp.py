"""Tests of the XMPP transport: pure filter and back-off units, then a real Prosody."""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medbot.config import TlsMode, XmppSettings
from medbot.core.models import InboundMessage, MessageKind, OutgoingMessage
from medbot.errors import TransportFatal, TransportUnavailable
from medbot.transports.xmpp import Backoff, SubscriptionState, XmppTransport, check_account
from medbot.transports.xmpp.connection import check_tls_rules, read_password
from medbot.transports.xmpp.inbound import DropLog, DropReason, MessageFilter, RawMessage
from tests.servers.patient import ChatClient
from tests.servers.prosody import (
    MISMATCH_DOMAIN,
    ProsodyServer,
    create_server,
    make_certificate,
)

BOT = "bot@medbot.test"
PATIENT = "patient1@medbot.test"
NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


# --- Inbound filter ---------------------------------------------------------------------


def raw(
    sender: str = f"{PATIENT}/phone", body: str = "yes", type_: str = "chat", inner: str = ""
) -> RawMessage:
    xml = ET.fromstring(f"<message xmlns='jabber:client' id='m1'>{inner}</message>")
    return RawMessage(sender=sender, type=type_, body=body, xml=xml)


def make_filter() -> MessageFilter:
    return MessageFilter(BOT, [PATIENT], clock=lambda: NOW)


def test_filter_accepts_patient() -> None:
    accepted = make_filter().accept(raw())
    assert accepted == InboundMessage(PATIENT, "yes", NOW, f"xmpp:{PATIENT}/m1")


def test_filter_compares_case_insensitively() -> None:
    accepted = make_filter().accept(raw(sender="Patient1@Medbot.TEST/Phone"))
    assert accepted is not None
    assert accepted.sender == PATIENT


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (raw(type_="groupchat"), DropReason.TYPE),
        (raw(type_="headline"), DropReason.TYPE),
        (raw(type_="error"), DropReason.TYPE),
        (raw(sender="stranger@medbot.test/phone"), DropReason.STRANGER),
        (raw(sender=f"stranger@medbot.test/{PATIENT}"), DropReason.STRANGER),
        (raw(sender="patient1@medbot.test.evil/phone"), DropReason.STRANGER),
        (raw(sender=f"{BOT}/other-resource"), DropReason.OWN_ACCOUNT),
        (raw(body="   "), DropReason.EMPTY),
        (raw(body="x" * 4097), DropReason.TOO_LONG),
        (raw(inner="<received xmlns='urn:xmpp:carbons:2'/>"), DropReason.WRAPPED),
        (raw(inner="<sent xmlns='urn:xmpp:carbons:2'/>"), DropReason.WRAPPED),
        (raw(inner="<result xmlns='urn:xmpp:mam:2'/>"), DropReason.WRAPPED),
    ],
)
def test_filter_drops(message: RawMessage, reason: DropReason) -> None:
    message_filter = make_filter()
    assert message_filter.accept(message) is None
    assert message_filter.drops.totals == {reason: 1}


def test_filter_uses_server_delay_stamp() -> None:
    inner = "<delay xmlns='urn:xmpp:delay' from='medbot.test' stamp='2026-12-04T19:55:00Z'/>"
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.sent_at == NOW - timedelta(minutes=5)


def test_filter_ignores_client_delay_stamp() -> None:
    inner = "<delay xmlns='urn:xmpp:delay' from='elsewhere.test' stamp='2026-12-01T00:00:00Z'/>"
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.sent_at == NOW


def test_filter_clamps_future_stamp() -> None:
    inner = "<delay xmlns='urn:xmpp:delay' from='medbot.test' stamp='2027-01-01T00:00:00Z'/>"
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.sent_at == NOW


def test_filter_prefers_server_stanza_id() -> None:
    inner = (
        "<stanza-id xmlns='urn:xmpp:sid:0' by='someone@else.test' id='forged'/>"
        f"<stanza-id xmlns='urn:xmpp:sid:0' by='{BOT}' id='abc'/>"
    )
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.message_id == "xmpp:abc"


def test_drop_log_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    drops = DropLog(interval=60.0, monotonic=lambda: clock[0])
    caplog.set_level(logging.DEBUG, logger="medbot.transports.xmpp.inbound")
    for _ in range(5):
        drops.record(DropReason.STRANGER, "stranger@medbot.test")
    clock[0] = 61.0
    drops.record(DropReason.STRANGER, "stranger@medbot.test")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "Dropped 5 inbound" in lines[1]
    assert drops.totals[DropReason.STRANGER] == 6


def test_drop_log_never_logs_body(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    make_filter().accept(raw(sender="stranger@medbot.test/x", body="secret-dose-text"))
    assert "secret-dose-text" not in caplog.text


# --- Back-off and settings --------------------------------------------------------------


def test_backoff_capped_and_jittered() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, jitter=0.2)
    delays = [backoff.delay(attempt) for attempt in range(12)]
    assert 0.4 <= delays[0] <= 0.6
    assert 0.8 <= delays[1] <= 1.2
    assert all(delay <= 36.0 for delay in delays)
    assert delays[-1] >= 24.0


def settings_for(server: ProsodyServer, **changes: object) -> XmppSettings:
    settings = XmppSettings(
        jid=server.jid("bot"),
        password_file=server.root / "password",
        password_env=None,
        host="127.0.0.1",
        port=server.port,
        ca_file=server.ca_file,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDBOT_TEST_PASSWORD", "s3cret")
    settings = XmppSettings(jid=BOT, password_file=None, password_env="MEDBOT_TEST_PASSWORD")
    assert read_password(settings) == "s3cret"


def test_password_missing_file_message(tmp_path: Path) -> None:
    settings = XmppSettings(jid=BOT, password_file=tmp_path / "nope", password_env=None)
    with pytest.raises(TransportFatal, match="cannot read the XMPP password file"):
        read_password(settings)


@pytest.mark.parametrize(
    ("host", "allow"),
    [("127.0.0.1", False), ("xmpp.example.org", True), (None, True)],
)
def test_plaintext_rejected(host: str | None, allow: bool) -> None:
    settings = XmppSettings(
        jid=BOT, password_file=None, password_env="X", host=host, tls=TlsMode.NONE,
        allow_plaintext=allow,
    )
    with pytest.raises(TransportFatal, match="tls"):
        check_tls_rules(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_plaintext_allowed_on_loopback(host: str) -> None:
    settings = XmppSettings(
        jid=BOT, password_file=None, password_env="X", host=host, tls=TlsMode.NONE,
        allow_plaintext=True,
    )
    check_tls_rules(settings)


# --- Against a real Prosody -------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ProsodyServer]:
    prosody = create_server(tmp_path)
    try:
        yield prosody
    finally:
        prosody.stop()


class Inbox:
    """The handler the tests give the transport; it records what it was passed."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: InboundMessage) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def wait_for_count(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"got {len(self.messages)} of {count} messages"
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                continue


FAST = Backoff(initial=0.1, maximum=1.0)


async def wait_until_down(transport: XmppTransport, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while transport.ready:
        assert time.monotonic() < deadline, "the transport did not notice the lost link"
        await asyncio.sleep(0.02)


@pytest.fixture
async def bot(server: ProsodyServer) -> AsyncIterator[tuple[XmppTransport, Inbox]]:
    transport = XmppTransport(
        settings_for(server), [server.jid("patient1"), server.jid("patient2")],
        [server.jid("caregiver")], backoff=FAST, ack_timeout=1.0,
    )
    inbox = Inbox()
    await transport.start(inbox)
    try:
        yield transport, inbox
    finally:
        await transport.stop()


def outgoing(server: ProsodyServer, kind: str = "ask", user: str = "patient1") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"{user}/insulin/20261204T190000Z/{kind}",
        patient_id=user,
        recipient=server.jid(user),
        kind=MessageKind.ASK,
        body="Did you take your insulin?",
        created_at=datetime.now(UTC),
    )


@pytest.mark.prosody
async def test_send_carries_stable_id(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    message = outgoing(server)
    async with ChatClient(server, "patient1") as patient:
        await transport.send(message)
        received = await patient.wait_for_count(1, 5)
    assert received[0].message_id == message.message_id
    assert received[0].origin_id == message.message_id
    assert received[0].type == "chat"
    assert received[0].body == message.body


@pytest.mark.prosody
async def test_reply_reaches_handler(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    _, inbox = bot
    async with ChatClient(server, "patient1") as patient:
        patient.send(BOT, "yes")
        await inbox.wait_for_count(1)
    message = inbox.messages[0]
    assert message.sender == PATIENT
    assert message.body == "yes"
    assert message.message_id is not None
    assert abs(message.sent_at - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.prosody
async def test_others_never_reach_handler(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, inbox = bot
    async with (
        ChatClient(server, "stranger", resource=PATIENT) as lookalike,
        ChatClient(server, "bot", resource="second") as own_account,
        ChatClient(server, "patient1") as patient,
    ):
        lookalike.send(BOT, "yes")
        own_account.send(str(transport.client.boundjid), "yes")
        patient.send(BOT, "yes", mtype="headline")
        patient.send(BOT, "yes", mtype="groupchat")
        patient.send(BOT, "x" * 5000)
        patient.send(BOT, "last")
        await inbox.wait_for_count(1)
        await asyncio.sleep(0.3)
    assert [message.body for message in inbox.messages] == ["last"]


@pytest.mark.prosody
async def test_offline_reply_keeps_time(server: ProsodyServer) -> None:
    settings = settings_for(server)
    async with ChatClient(server, "patient1") as patient:
        patient.send(BOT, "yes")
        await patient.ping_server()
    sent_before = datetime.now(UTC)
    await asyncio.sleep(1.2)

    transport = XmppTransport(settings, [PATIENT])
    inbox = Inbox()
    await transport.start(inbox)
    try:
        assert [message.body for message in inbox.messages] == ["yes"]
        assert inbox.messages[0].sent_at <= sent_before
        assert inbox.messages[0].sent_at > sent_before - timedelta(seconds=5)
    finally:
        await transport.stop()


@pytest.mark.prosody
async def test_wrong_password_fatal(server: ProsodyServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password", encoding="utf-8")
    transport = XmppTransport(settings_for(server, password_file=wrong), [PATIENT])
    with pytest.raises(TransportFatal, match="rejected the login") as failure:
        await asyncio.wait_for(transport.start(Inbox()), 15)
    assert "not-the-password" not in str(failure.value)


@pytest.mark.prosody
async def test_untrusted_certificate_fatal(server: ProsodyServer, tmp_path: Path) -> None:
    other_ca = tmp_path / "other"
    other_ca.mkdir()
    certificate, _ = make_certificate(other_ca, "medbot.test")
    transport = XmppTransport(settings_for(server, ca_file=certificate), [PATIENT])
    with pytest.raises(TransportFatal, match="certificate verification failed"):
        await asyncio.wait_for(transport.start(Inbox()), 15)


@pytest.mark.prosody
async def test_host_name_mismatch_fatal(server: ProsodyServer) -> None:
    settings = settings_for(server, jid=f"bot@{MISMATCH_DOMAIN}")
    transport = XmppTransport(settings, [PATIENT])
    with pytest.raises(TransportFatal, match="certificate verification failed"):
        await asyncio.wait_for(transport.start(Inbox()), 15)


@pytest.mark.prosody
async def test_direct_tls_connects(server: ProsodyServer) -> None:
    settings = settings_for(server, tls=TlsMode.DIRECT, port=server.direct_tls_port)
    transport = XmppTransport(settings, [PATIENT])
    await asyncio.wait_for(transport.start(Inbox()), 15)
    try:
        assert transport.ready
    finally:
        await transport.stop()


@pytest.mark.prosody
async def test_subscriptions_configured_only(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    async with ChatClient(server, "stranger") as stranger:
        stranger.client.send_presence_subscription(pto=BOT, ptype="subscribe")
        await stranger.ping_server()
        await asyncio.sleep(0.5)
        stranger_item = stranger.client.client_roster[BOT]
        assert stranger_item["subscription"] in ("none", "")
        assert not stranger_item["pending_out"]
    roster = transport.client.client_roster
    assert roster[server.jid("caregiver")]["pending_out"]
    assert roster[server.jid("stranger")]["subscription"] not in ("from", "both")


@pytest.mark.prosody
async def test_patient_accepts_subscription(server: ProsodyServer) -> None:
    async with ChatClient(server, "patient1"):
        transport = XmppTransport(settings_for(server), [PATIENT])
        await transport.start(Inbox())
        try:
            deadline = time.monotonic() + 5
            item = transport.client.client_roster[PATIENT]
            while item["subscription"] not in ("to", "both") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert item["subscription"] in ("to", "both")
        finally:
            await transport.stop()


@pytest.mark.prosody
async def test_check_account_reports_contacts(server: ProsodyServer) -> None:
    async with ChatClient(server, "patient1"):
        transport = XmppTransport(settings_for(server), [PATIENT], [server.jid("caregiver")])
        await transport.start(Inbox())
        await asyncio.sleep(0.3)
        await transport.stop()
    addresses = [PATIENT, server.jid("caregiver"), server.jid("patient2")]
    report = await check_account(settings_for(server), addresses)
    states = {status.address: status.state for status in report.contacts}
    assert states[PATIENT] is SubscriptionState.SUBSCRIBED
    assert states[server.jid("caregiver")] is SubscriptionState.PENDING
    assert states[server.jid("patient2")] is SubscriptionState.NOT_A_CONTACT


@pytest.mark.prosody
async def test_check_account_wrong_password(server: ProsodyServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope", encoding="utf-8")
    with pytest.raises(TransportFatal, match="rejected the login"):
        await check_account(settings_for(server, password_file=wrong), [PATIENT])


@pytest.mark.prosody
async def test_check_account_refused(server: ProsodyServer) -> None:
    server.stop()
    with pytest.raises(TransportFatal, match="cannot connect"):
        await check_account(settings_for(server), [PATIENT])


@pytest.mark.prosody
async def test_was_delivered_uses_archive(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    sent = outgoing(server, "ask")
    await transport.send(sent)
    fresh = XmppTransport(settings_for(server), [PATIENT])
    await fresh.start(Inbox())
    try:
        assert await fresh.was_delivered(sent)
        assert not await fresh.was_delivered(outgoing(server, "reask-2"))
    finally:
        await fresh.stop()


@pytest.mark.prosody
async def test_send_while_down_unavailable(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    server.stop()
    await wait_until_down(transport)
    with pytest.raises(TransportUnavailable):
        await transport.send(outgoing(server))


@pytest.mark.prosody
async def test_reconnects_after_restart(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    server.kill()
    await wait_until_down(transport)
    restarted = time.monotonic()
    server.start()
    await transport.wait_ready(15)
    print(f"\nreconnect after Prosody restart: {time.monotonic() - restarted:.2f} s")
    async with ChatClient(server, "patient1") as patient:
        await transport.send(outgoing(server))
        await patient.wait_for_count(1, 5)


@pytest.mark.prosody
async def test_lost_stanza_resent_once(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox]
) -> None:
    transport, _ = bot
    message = outgoing(server)
    server.pause()
    with pytest.raises(TransportUnavailable):
        await asyncio.wait_for(transport.send(message), 10)
    server.kill()
    await wait_until_down(transport)
    server.start()
    await transport.wait_ready(15)
    async with ChatClient(server, "patient1") as patient:
        await transport.send(message)
        await transport.send(message)
        await patient.wait_for_count(1, 5)
        await asyncio.sleep(0.5)
    assert len(patient.received) == 1


@pytest.mark.prosody
async def test_keepalive_notices_frozen_server(server: ProsodyServer) -> None:
    transport = XmppTransport(
        settings_for(server), [PATIENT], backoff=FAST,
        keepalive_interval=0.5, keepalive_timeout=0.5,
    )
    await transport.start(Inbox())
    try:
        server.pause()
        await wait_until_down(transport)
        server.cont()
        await transport.wait_ready(15)
    finally:
        server.cont()
        await transport.stop()


@pytest.mark.prosody
async def test_round_trip_time(server: ProsodyServer, bot: tuple[XmppTransport, Inbox]) -> None:
    transport, inbox = bot
    async with ChatClient(server, "patient1") as patient:
        timings = []
        for number in range(20):
            message = replace(outgoing(server), message_id=f"patient1/rtt/{number}")
            started = time.perf_counter()
            await transport.send(message)
            await patient.wait_for_count(number + 1, 5)
            patient.send(BOT, "yes")
            await inbox.wait_for_count(number + 1)
            timings.append(time.perf_counter() - started)
    timings.sort()
    print(f"\nround trip bot -> patient -> bot: median {timings[10] * 1000:.1f} ms, "
          f"max {timings[-1] * 1000:.1f} ms")
    assert timings[10] < 1.0


def test_password_empty_file_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("\n", encoding="utf-8")
    settings = XmppSettings(jid=BOT, password_file=secret, password_env=None)
    with pytest.raises(TransportFatal, match="is empty"):
        read_password(settings)


def test_filter_prefers_origin_id() -> None:
    inner = (
        "<origin-id xmlns='urn:xmpp:sid:0' id='c1'/>"
        f"<stanza-id xmlns='urn:xmpp:sid:0' by='{BOT}' id='abc'/>"
    )
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.message_id == f"xmpp:{PATIENT}/c1"


def test_filter_resend_same_key() -> None:
    message_filter = make_filter()
    keys = []
    for stanza_id in ("srv-1", "srv-2"):
        inner = (
            "<origin-id xmlns='urn:xmpp:sid:0' id='c1'/>"
            f"<stanza-id xmlns='urn:xmpp:sid:0' by='{BOT}' id='{stanza_id}'/>"
        )
        accepted = message_filter.accept(raw(inner=inner))
        assert accepted is not None
        keys.append(accepted.message_id)
    assert keys[0] == keys[1]


def test_filter_falls_back_to_id() -> None:
    inner = "<origin-id xmlns='urn:xmpp:sid:0' id=''/>"
    accepted = make_filter().accept(raw(inner=inner))
    assert accepted is not None
    assert accepted.message_id == f"xmpp:{PATIENT}/m1"


@pytest.mark.prosody
async def test_send_logs_hide_medication(
    server: ProsodyServer, bot: tuple[XmppTransport, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    transport, _ = bot
    message = outgoing(server)
    caplog.set_level(logging.DEBUG, logger="medbot")
    async with ChatClient(server, "patient1") as patient:
        await transport.send(message)
        await patient.wait_for_count(1, 5)
    visible = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert not [line for line in visible if "insulin" in line]
    assert any(message.message_id in line for line in debug)
