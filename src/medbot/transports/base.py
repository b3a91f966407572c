"""The transport interface that the runtime depends on.

A transport only translates: wire events become ``InboundMessage`` objects passed to the
runtime's handler, and ``OutgoingMessage`` objects become wire sends. It holds no dose
state and never talks to the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from medbot.core.models import InboundMessage, OutgoingMessage

InboundHandler = Callable[[InboundMessage], Awaitable[None]]


class Transport(Protocol):
    async def start(self, handler: InboundHandler) -> None:
        """Connect and begin passing accepted inbound messages to ``handler``.

        Returns once the transport is ready: connected, authenticated, and any messages
        the network stored while the bot was away have been handed to ``handler``.
        Keeps reconnecting in the background after that. Raises TransportFatal when
        retrying cannot help.
        """

    async def send(self, message: OutgoingMessage) -> None:
        """Send one message and return once the network has accepted it.

        For XMPP with stream management, "accepted" means the server acked the stanza.
        Raises TransportUnavailable when not connected (the runtime retries with
        back-off) and TransportFatal when retrying cannot help.
        """

    async def was_delivered(self, message: OutgoingMessage) -> bool:
        """Tell whether an earlier attempt of this message reached the network.

        The runtime asks this after a restart for messages whose send was attempted but
        never confirmed, so it does not send a second copy. Returns False when the
        transport cannot tell.
        """

    async def stop(self) -> None:
        """Disconnect; safe to call more than once."""
