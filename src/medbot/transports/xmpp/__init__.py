"""The XMPP transport on slixmpp: connection, delivery, contacts and the account check."""

from __future__ import annotations

from medbot.transports.xmpp.account import AccountReport, check_account
from medbot.transports.xmpp.contacts import ContactStatus, SubscriptionState
from medbot.transports.xmpp.transport import Backoff, XmppTransport

__all__ = [
    "AccountReport",
    "Backoff",
    "ContactStatus",
    "SubscriptionState",
    "XmppTransport",
    "check_account",
]
