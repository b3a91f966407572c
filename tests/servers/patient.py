"""A scripted XMPP client that plays a patient, a caregiver or a stranger in tests.

It records every message it receives and can send replies. A client cannot forge the
server's delay stamp, so tests of offline delivery send while the bot is offline and
let Prosody store the message.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import slixmpp

from tests.servers.prosody import PASSWORD, ProsodyServer


@dataclass(frozen=True)
class Received:
    at: datetime
    monotonic: float
    sender: str
    message_id: str
    origin_id: str
    type: str
    body: str


class ChatClient:
    """One logged-in account on a test server; use it with ``async with``."""

    _counter = itertools.count(1)

    def __init__(
        self,
        server: ProsodyServer,
        user: str,
        *,
        resource: str = "phone",
        password: str = PASSWORD,
        accept_subscriptions: bool = True,
    ) -> None:
        self.server = server
        self.jid = server.jid(user)
        self.received: list[Received] = []
        self._arrived = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client: Any = slixmpp.ClientXMPP(f"{self.jid}/{resource}", password)
        self._client.ca_certs = server.ca_file
        self._client.enable_direct_tls = False
        self._client.auto_authorize = accept_subscriptions
        self._client.auto_subscribe = accept_subscriptions
        self._client.register_plugin("xep_0030")
        self._client.register_plugin("xep_0199")
        self._client.add_event_handler("session_start", self._on_session_start)
        self._client.add_event_handler("message", self._on_message)
        self._client.add_event_handler("failed_all_auth", self._on_failure)

    async def __aenter__(self) -> ChatClient:
        self._client.connect("127.0.0.1", self.server.port)
        await asyncio.wait_for(self._ready, 15)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._client.cancel_connection_attempt()
        if self._client.transport is not None:
            try:
                await asyncio.wait_for(self._client.disconnect(wait=1.0), 3)
            except TimeoutError:
                self._client.abort()

    def _on_session_start(self, _: Any) -> None:
        self._client.send_presence()
        self._client.get_roster()
        if not self._ready.done():
            self._ready.set_result(None)

    def _on_failure(self, _: Any) -> None:
        if not self._ready.done():
            self._ready.set_exception(RuntimeError(f"login of {self.jid} failed"))

    def _on_message(self, stanza: Any) -> None:
        if stanza["type"] not in ("chat", "normal"):
            return
        origin = stanza.xml.find("{urn:xmpp:sid:0}origin-id")
        self.received.append(
            Received(
                at=datetime.now(UTC),
                monotonic=time.monotonic(),
                sender=str(stanza["from"]),
                message_id=stanza["id"],
                origin_id=origin.get("id", "") if origin is not None else "",
                type=stanza["type"],
                body=stanza["body"],
            )
        )
        self._arrived.set()

    def send(self, to: str, body: str, *, mtype: str = "chat") -> str:
        """Send a message and return its id."""
        message = self._client.make_message(mto=to, mbody=body, mtype=mtype)
        message["id"] = f"{self.jid.split('@')[0]}-{next(self._counter)}"
        message.send()
        return str(message["id"])

    def send_raw(self, xml: str) -> None:
        self._client.send_raw(xml)

    async def wait_for_count(self, count: int, timeout: float) -> list[Received]:
        """Wait until at least ``count`` messages arrived; return all received so far."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                bodies = [item.body for item in self.received]
                raise AssertionError(f"{self.jid} got {len(bodies)} of {count} messages: {bodies}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        return list(self.received)

    async def ping_server(self) -> None:
        """Round-trip to the server, so everything sent before has been processed."""
        await self._client.plugin["xep_0199"].ping(slixmpp.JID(self.server.domain), timeout=10)

    @property
    def client(self) -> Any:
        return self._client
