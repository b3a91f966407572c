"""``medbot check`` for XMPP: log in once and report each contact's subscription.

The check sends no presence, because the server would then push the bot's stored
offline messages to this short-lived connection and they would be lost to the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from slixmpp.exceptions import IqError, IqTimeout

from medbot.config import XmppSettings
from medbot.errors import TransportFatal
from medbot.transports.xmpp import connection
from medbot.transports.xmpp.contacts import ContactPolicy, ContactStatus

CHECK_TIMEOUT = 20.0  # seconds for connecting, logging in and reading the roster


@dataclass(frozen=True, slots=True)
class AccountReport:
    jid: str  # the full JID the check was bound to
    contacts: tuple[ContactStatus, ...]


async def check_account(settings: XmppSettings, addresses: Collection[str]) -> AccountReport:
    """Log in with ``settings`` and return the subscription state of each address.

    Raises TransportFatal with the cause when the server cannot be reached, its
    certificate fails verification, or it rejects the login.
    """
    password = connection.read_password(settings)
    client = connection.make_client(settings, password)
    outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def finish(error: str | None) -> None:
        if not outcome.done():
            outcome.set_result(error)

    _watch_failures(client, settings, finish)
    client.add_event_handler("session_start", lambda _: finish(None))
    host, port = connection.address(settings)
    client.connect(host, port)
    try:
        error = await asyncio.wait_for(outcome, CHECK_TIMEOUT)
        if error is not None:
            raise TransportFatal(error)
        await client.get_roster(timeout=CHECK_TIMEOUT)
        statuses = ContactPolicy(settings.jid, addresses).statuses(client)
        return AccountReport(jid=str(client.boundjid), contacts=tuple(statuses))
    except (TimeoutError, IqError, IqTimeout):
        raise TransportFatal(
            f"no XMPP session for {settings.jid} within {CHECK_TIMEOUT:.0f} s; "
            "check xmpp.host, xmpp.port and xmpp.tls"
        ) from None
    finally:
        await _close(client)


def _watch_failures(client: Any, settings: XmppSettings, finish: Any) -> None:
    def on_connection_failed(error: Any) -> None:
        client.cancel_connection_attempt()
        if isinstance(error, ssl.SSLCertVerificationError):
            finish(_certificate_message(settings, error))
        else:
            finish(f"cannot connect to the XMPP server of {settings.jid}: {error}")

    client.add_event_handler("connection_failed", on_connection_failed)
    client.add_event_handler(
        "ssl_invalid_chain", lambda error: finish(_certificate_message(settings, error))
    )
    client.add_event_handler(
        "failed_all_auth",
        lambda _: finish(
            f"the XMPP server rejected the login of {settings.jid}; check the JID and the password"
        ),
    )

    def on_disconnected(reason: Any) -> None:
        # A failed STARTTLS handshake closes the connection before ssl_invalid_chain fires.
        if isinstance(reason, ssl.SSLCertVerificationError):
            finish(_certificate_message(settings, reason))
        else:
            finish(f"the XMPP server of {settings.jid} closed the connection: {reason}")

    client.add_event_handler("disconnected", on_disconnected)


def _certificate_message(settings: XmppSettings, error: Any) -> str:
    return (
        f"TLS certificate verification failed for the XMPP server of {settings.jid}: {error}; "
        "set xmpp.ca_file if the server uses a private CA"
    )


async def _close(client: Any) -> None:
    client.cancel_connection_attempt()
    if client.transport is None:
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(client.disconnect(wait=1.0), 3.0)
    client.abort()
