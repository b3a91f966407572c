"""The XMPP transport: one slixmpp client kept connected, with acked sends.

Delivery rests on stream management (XEP-0198) with an ack request after every stanza:
``send`` returns once the server has acked the message. When the link drops, slixmpp
keeps unacked stanzas and resends them if the server resumes the stream. When the
resume fails, slixmpp discards them, so the transport marks those messages as in doubt
and searches the server's archive (XEP-0313) before it sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID
from slixmpp.xmlstream.xmlstream import NotConnectedError

from medbot.config import XmppSettings
from medbot.core.models import InboundMessage, OutgoingMessage
from medbot.errors import TransportFatal, TransportUnavailable
from medbot.runtime.dispatcher import describe
from medbot.transports.base import InboundHandler
from medbot.transports.xmpp import connection
from medbot.transports.xmpp.contacts import ContactPolicy
from medbot.transports.xmpp.inbound import MessageFilter, RawMessage, bare_jid

log = logging.getLogger(__name__)

ACK_TIMEOUT = 30.0  # seconds send() waits for the server's ack before giving up
SETUP_TIMEOUT = 15.0  # seconds for each step of session set-up (SM, roster, ping)
KEEPALIVE_INTERVAL = 30.0  # seconds between keepalive pings
KEEPALIVE_TIMEOUT = 10.0  # seconds without a ping reply before the link counts as dead
ARCHIVE_LOOKBACK = timedelta(minutes=5)  # clock skew allowed between bot and server
ARCHIVE_MAX_ITEMS = 500  # archive items was_delivered reads before it gives up
ACKED_MEMORY = 10_000  # acked message ids remembered, so a resend returns at once


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential back-off with jitter, in seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - j, 1 + j]

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * 2.0**attempt)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class _Marker:
    """Queue item whose future completes once all earlier inbound messages were handled."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class XmppTransport:
    """Transport over one XMPP account, for the configured patients and caregivers."""

    def __init__(
        self,
        settings: XmppSettings,
        patients: Collection[str],
        caregivers: Collection[str] = (),
        *,
        backoff: Backoff | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._patients = tuple(patients)
        self._contacts = ContactPolicy(settings.jid, (*patients, *caregivers))
        self._filter = MessageFilter(settings.jid, patients)
        self._backoff = backoff or Backoff()
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._ack_timeout = ack_timeout

        self._client: Any = None
        self._handler: InboundHandler | None = None
        self._inbound: asyncio.Queue[InboundMessage | _Marker] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._fatal: TransportFatal | None = None

        self._ready = asyncio.Event()
        self._sm_enabled = asyncio.Event()
        self._attempt: asyncio.Future[bool] | None = None  # True: ready, False: failed
        self._link_down: asyncio.Future[None] | None = None

        self._pending: dict[str, asyncio.Future[bool]] = {}  # id -> acked (True) or lost
        self._acked: OrderedDict[str, None] = OrderedDict()
        self._in_doubt: set[str] = set()

    # --- Transport protocol -----------------------------------------------------------

    async def start(self, handler: InboundHandler) -> None:
        if self._supervisor is not None:
            raise RuntimeError("the XMPP transport was already started")
        self._handler = handler
        password = connection.read_password(self._settings)
        self._client = connection.make_client(self._settings, password)
        self._register_handlers(self._client)

        self._worker = asyncio.create_task(self._deliver_inbound(), name="xmpp-inbound")
        first_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(first_ready), name="xmpp-link")
        try:
            await first_ready
        except TransportFatal:
            await self.stop()
            raise

    async def send(self, message: OutgoingMessage) -> None:
        if self._fatal is not None:
            raise self._fatal
        message_id = message.message_id
        if message_id in self._acked:
            return

        ack = self._pending.get(message_id)
        if ack is None:
            if not self._ready.is_set():
                raise TransportUnavailable(
                    f"not connected to the XMPP server; {message_id} not sent"
                )
            if message_id in self._in_doubt and await self.was_delivered(message):
                self._remember_acked(message_id)
                return
            ack = self._send_stanza(message)
        await self._wait_for_ack(message_id, ack)

    async def was_delivered(self, message: OutgoingMessage) -> bool:
        if message.message_id in self._acked:
            return True
        if not self._ready.is_set():
            return False
        try:
            found = await self._archive_contains(message)
        except (TimeoutError, IqError, IqTimeout, NotConnectedError) as error:
            log.warning("Archive query for %s failed: %s", describe(message), error)
            log.debug("Archive query for %s failed", message.message_id)
            return False
        if found:
            self._in_doubt.discard(message.message_id)
        return found

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._ready.clear()

        if self._client is not None and self._client.transport is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._client.disconnect(wait=2.0, reason="stopping"), 5.0)
        if self._client is not None:
            self._client.cancel_connection_attempt()
            self._client.abort()

        tasks = [task for task in (self._supervisor, self._worker, *self._tasks) if task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("XMPP transport stopped for %s", self._settings.jid)

    # --- Connection supervision -------------------------------------------------------

    async def _supervise(self, first_ready: asyncio.Future[None]) -> None:
        """Run the connection loop; pass its end to start() if start() still waits."""
        try:
            await self._connection_loop(first_ready)
        except Exception as error:
            log.exception("XMPP connection loop for %s failed", self._settings.jid)
            self._fatal = self._fatal or TransportFatal(f"XMPP connection loop failed: {error}")
        if not first_ready.done():
            first_ready.set_exception(self._fatal or TransportFatal("XMPP transport stopped"))
        elif self._fatal is not None:
            log.error("XMPP connection for %s failed: %s", self._settings.jid, self._fatal)

    async def _connection_loop(self, first_ready: asyncio.Future[None]) -> None:
        """Connect, wait for the link to drop, and reconnect with back-off until stopped."""
        failures = 0
        while not self._stopping:
            ready = await self._connect_once()
            if self._fatal is not None:
                return
            if ready:
                failures = 0
                if not first_ready.done():
                    first_ready.set_result(None)
                assert self._link_down is not None
                await self._link_down
            else:
                failures += 1
            if self._stopping or self._fatal is not None:
                return

            delay = self._backoff.delay(failures)
            log.info(
                "Reconnecting %s to the XMPP server in %.1f s (attempt %d)",
                self._settings.jid, delay, failures + 1,
            )
            await asyncio.sleep(delay)

    async def _connect_once(self) -> bool:
        """Open one connection; return True once the session is ready, False on failure."""
        loop = asyncio.get_running_loop()
        self._attempt = loop.create_future()
        self._link_down = loop.create_future()
        host, port = connection.address(self._settings)
        target = f"{host}:{port}" if host else "the servers in its domain's DNS SRV records"
        log.info("Connecting %s to %s", self._client.boundjid, target)
        self._client.connect(host, port)
        return await self._attempt

    def _finish_attempt(self, ready: bool) -> None:
        if self._attempt is not None and not self._attempt.done():
            self._attempt.set_result(ready)

    def _fail_fatally(self, message: str) -> None:
        if self._fatal is None:
            self._fatal = TransportFatal(message)
        self._client.cancel_connection_attempt()
        self._client.abort()
        self._finish_attempt(False)

    # --- slixmpp events ---------------------------------------------------------------

    def _register_handlers(self, client: Any) -> None:
        client.add_event_handler("session_start", self._on_session_start)
        client.add_event_handler("session_resumed", self._on_session_resumed)
        client.add_event_handler("sm_enabled", lambda _: self._sm_enabled.set())
        client.add_event_handler("sm_failed", self._on_stream_lost)
        client.add_event_handler("session_end", self._on_stream_lost)
        client.add_event_handler("stanza_acked", self._on_stanza_acked)
        client.add_event_handler("disconnected", self._on_disconnected)
        client.add_event_handler("connection_failed", self._on_connection_failed)
        client.add_event_handler("ssl_invalid_chain", self._on_invalid_certificate)
        client.add_event_handler("failed_all_auth", self._on_auth_failed)
        client.add_event_handler("message", self._on_message)
        client.add_event_handler("presence_subscribe", self._on_subscribe_request)

    def _on_session_start(self, _: Any) -> None:
        self._spawn(self._prepare_session(), "xmpp-session")

    def _on_session_resumed(self, _: Any) -> None:
        log.info("XMPP session resumed for %s", self._client.boundjid)
        self._spawn(self._request_ack_when_written(), "xmpp-ack-request")
        self._mark_ready()

    def _on_disconnected(self, reason: Any) -> None:
        # slixmpp may fire this twice for one drop; every step here is idempotent.
        if isinstance(reason, ssl.SSLCertVerificationError):
            # A failed STARTTLS handshake closes the connection before ssl_invalid_chain.
            self._on_invalid_certificate(reason)
        was_ready = self._ready.is_set()
        self._ready.clear()
        self._sm_enabled.clear()
        self._finish_attempt(False)
        if self._link_down is not None and not self._link_down.done():
            self._link_down.set_result(None)
        if was_ready and not self._stopping:
            log.info("Disconnected %s from the XMPP server: %s", self._client.boundjid, reason)

    def _on_connection_failed(self, error: Any) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self._on_invalid_certificate(error)
            return
        log.warning("Connecting %s failed: %s", self._settings.jid, error)
        # Stop slixmpp's own retry loop, whose back-off grows to 300 s; _supervise retries.
        self._client.cancel_connection_attempt()
        self._finish_attempt(False)

    def _on_invalid_certificate(self, error: Any) -> None:
        self._fail_fatally(
            f"TLS certificate verification failed for the XMPP server of {self._settings.jid}: "
            f"{error}; set xmpp.ca_file if the server uses a private CA"
        )

    def _on_auth_failed(self, _: Any) -> None:
        self._fail_fatally(
            f"the XMPP server rejected the login of {self._settings.jid}; "
            "check the JID and the password"
        )

    def _on_stream_lost(self, _: Any) -> None:
        """Fail pending sends whose stanzas slixmpp discarded after a failed resume."""
        for message_id, ack in self._pending.items():
            if not ack.done():
                ack.set_result(False)
            self._in_doubt.add(message_id)
        self._pending.clear()

    def _on_stanza_acked(self, stanza: Any) -> None:
        message_id = stanza["id"] if stanza.name == "message" else ""
        ack = self._pending.pop(message_id, None)
        if ack is None:
            return
        self._remember_acked(message_id)
        if not ack.done():
            ack.set_result(True)

    def _on_message(self, stanza: Any) -> None:
        raw = RawMessage(
            sender=str(stanza["from"]), type=stanza["type"], body=stanza["body"], xml=stanza.xml
        )
        accepted = self._filter.accept(raw)
        if accepted is not None:
            self._inbound.put_nowait(accepted)

    def _on_subscribe_request(self, presence: Any) -> None:
        self._contacts.on_subscribe_request(self._client, presence)

    # --- Session set-up ---------------------------------------------------------------

    async def _prepare_session(self) -> None:
        """Finish set-up after resource binding, and abort the connection on any failure."""
        try:
            await asyncio.wait_for(self._sm_enabled.wait(), SETUP_TIMEOUT)
            await self._client.get_roster(timeout=SETUP_TIMEOUT)
            self._client.send_presence()
            # The server pushes stored offline messages after the initial presence. One
            # stream is processed in order, so once this ping returns they are all queued.
            await self._client.plugin["xep_0199"].ping(
                JID(self._client.boundjid.domain), timeout=SETUP_TIMEOUT
            )
            await self._drain_inbound()
        except (TimeoutError, IqError, IqTimeout) as error:
            log.warning("XMPP session set-up for %s failed: %s", self._client.boundjid, error)
            self._client.abort()
            return
        self._contacts.request_missing(self._client)
        self._mark_ready()
        self._spawn(self._keepalive(), "xmpp-keepalive")

    def _mark_ready(self) -> None:
        self._ready.set()
        self._finish_attempt(True)
        log.info("XMPP session ready for %s", self._client.boundjid)

    async def _drain_inbound(self) -> None:
        marker = _Marker()
        self._inbound.put_nowait(marker)
        await asyncio.wait_for(asyncio.shield(marker.done), SETUP_TIMEOUT * 4)

    async def _deliver_inbound(self) -> None:
        """Pass inbound messages to the handler one at a time, in arrival order."""
        assert self._handler is not None
        while True:
            item = await self._inbound.get()
            if isinstance(item, _Marker):
                if not item.done.done():
                    item.done.set_result(None)
                continue
            try:
                await self._handler(item)
            except Exception:
                log.exception("Inbound handler failed for message %s; dropped", item.message_id)

    async def _keepalive(self) -> None:
        """Ping the server; abort the link when a reply is late, so _supervise reconnects."""
        link_down = self._link_down
        while link_down is not None and not link_down.done():
            await asyncio.sleep(self._keepalive_interval)
            if link_down.done():
                return
            try:
                await self._client.plugin["xep_0199"].ping(
                    JID(self._client.boundjid.domain), timeout=self._keepalive_timeout
                )
            except IqTimeout:
                log.warning(
                    "Keepalive ping timed out after %.1f s; reconnecting", self._keepalive_timeout
                )
                self._client.abort()
                return
            except IqError as error:
                log.debug("Keepalive ping returned an error: %s", error)

    def _spawn(self, coroutine: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- Sending ----------------------------------------------------------------------

    def _send_stanza(self, message: OutgoingMessage) -> asyncio.Future[bool]:
        stanza = self._client.make_message(
            mto=JID(message.recipient), mbody=message.body, mtype="chat"
        )
        stanza["id"] = message.message_id
        stanza["origin_id"]["id"] = message.message_id
        ack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[message.message_id] = ack
        self._in_doubt.discard(message.message_id)
        stanza.send()
        self._spawn(self._request_ack_when_written(), "xmpp-ack-request")
        log.debug("Sent %s to %s", message.message_id, message.recipient)
        return ack

    async def _request_ack_when_written(self) -> None:
        """Request an ack once the send queue has written the stanza to the socket.

        slixmpp 1.17 writes its own ack request from an output filter, which runs before
        the stanza itself is written, so the server's ack counts every stanza except
        the new one. Without this second request the ack would wait for the next send.
        After a resume, slixmpp resends unacked stanzas without any request.
        """
        await self._client.waiting_queue.join()
        if self._client.transport is not None:
            self._client.plugin["xep_0198"].request_ack()

    async def _wait_for_ack(self, message_id: str, ack: asyncio.Future[bool]) -> None:
        """Wait for the server's ack. The stanza stays pending when the wait fails.

        A send retried while the stanza is still pending waits for the same ack instead of
        sending a second copy.
        """
        link_down = self._link_down
        waiters: list[asyncio.Future[Any]] = [ack]
        if link_down is not None:
            waiters.append(link_down)
        await asyncio.wait(
            waiters, timeout=self._ack_timeout, return_when=asyncio.FIRST_COMPLETED
        )

        if ack.done():
            if self._pending.get(message_id) is ack:
                del self._pending[message_id]
            if ack.result():
                return
            raise TransportUnavailable(f"the XMPP stream was lost before {message_id} was acked")
        if link_down is not None and link_down.done():
            raise TransportUnavailable(f"disconnected before the server acked {message_id}")
        raise TransportUnavailable(f"no ack for {message_id} within {self._ack_timeout:.1f} s")

    def _remember_acked(self, message_id: str) -> None:
        self._acked[message_id] = None
        self._acked.move_to_end(message_id)
        while len(self._acked) > ACKED_MEMORY:
            self._acked.popitem(last=False)

    async def _archive_contains(self, message: OutgoingMessage) -> bool:
        """Search the bot's own archive for a message with this id sent to the recipient."""
        own = bare_jid(str(self._client.boundjid))
        results = self._client.plugin["xep_0313"].iterate(
            start=message.created_at - ARCHIVE_LOOKBACK,
            with_jid=JID(message.recipient),
            rsm={"max": 50},
            total=ARCHIVE_MAX_ITEMS,
        )
        async for result in results:
            stanza = result["mam_result"]["forwarded"]["stanza"]
            if bare_jid(str(stanza["from"])) != own:
                continue
            if message.message_id in (stanza["id"], stanza["origin_id"]["id"]):
                return True
        return False

    # --- For tests --------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The slixmpp client; tests use it to drop a link or to inspect state."""
        return self._client

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)
