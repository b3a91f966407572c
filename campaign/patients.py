"""Scripted patients: XMPP clients that record every message and answer some asks.

Each agent wraps the test suite's ChatClient. It survives server restarts by opening a
new connection; messages the bot sent meanwhile wait in Prosody's offline storage and
arrive after the new connection sends its presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from campaign.transcript import ASK_KINDS, Received, parse_message_id
from tests.servers.patient import ChatClient
from tests.servers.prosody import ProsodyServer

log = logging.getLogger(__name__)

POLL = 0.02  # seconds between looks at the client's list of received messages


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply the patient sent, and the dose it meant to answer."""

    dose_id: str
    body: str
    sent_at: datetime


@dataclass
class PatientAgent:
    """One patient: records what arrives and answers "yes" to a share of first asks."""

    server: ProsodyServer
    user: str
    patient_id: str
    bot_jid: str
    rng: random.Random
    answer_share: float = 0.4
    received: list[Received] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    asks_seen: asyncio.Event = field(default_factory=asyncio.Event)
    _client: ChatClient | None = None
    _consumed: int = 0
    _task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return self.server.jid(self.user)

    async def connect(self) -> None:
        """Log in (again); keeps what was received on earlier connections."""
        await self.disconnect()
        client = ChatClient(self.server, self.user)
        await client.__aenter__()
        self._client = client
        self._consumed = 0
        self._task = asyncio.create_task(self._watch(), name=f"watch-{self.user}")

    async def disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            self._drain()
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    async def reconnect(self, attempts: int = 40) -> None:
        """Connect, retrying while the server is still coming back."""
        for attempt in range(attempts):
            try:
                await self.connect()
                return
            except (TimeoutError, OSError, RuntimeError) as error:
                log.debug("patient %s reconnect %d failed: %s", self.user, attempt, error)
                await asyncio.sleep(0.5)
        raise RuntimeError(f"patient {self.user} could not reconnect")

    async def _watch(self) -> None:
        while True:
            self._drain()
            await asyncio.sleep(POLL)

    def _drain(self) -> None:
        assert self._client is not None
        fresh = self._client.received[self._consumed :]
        self._consumed += len(fresh)
        for item in fresh:
            message = Received(item.message_id or None, item.body, item.at, self.patient_id)
            self.received.append(message)
            self._maybe_answer(message)

    def _maybe_answer(self, message: Received) -> None:
        ref = parse_message_id(message.message_id) if message.message_id else None
        if ref is None or ref.kind not in ASK_KINDS:
            return
        self.asks_seen.set()
        if ref.number == 1 and self.rng.random() < self.answer_share:
            delay = self.rng.uniform(0.05, 1.2)
            asyncio.get_running_loop().call_later(delay, self._answer, ref.dose_id)

    def _answer(self, dose_id: str) -> None:
        if self._client is None:
            return
        body = self.rng.choice(("yes", "done", "yes, taken", "took it 👍"))
        try:
            self._client.send(self.bot_jid, body)
        except Exception as error:  # a dropped link loses this reply, which is not recorded
            log.debug("patient %s could not reply: %s", self.user, error)
            return
        self.replies.append(Reply(dose_id, body, datetime.now(UTC)))
