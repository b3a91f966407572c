"""Presence subscriptions: ask configured contacts, accept only them.

slixmpp's defaults accept every subscription request, which would let anyone see the
bot's presence and add it as a contact. The transport turns them off and uses this
policy instead.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from medbot.transports.xmpp.inbound import bare_jid

log = logging.getLogger(__name__)


class SubscriptionState(enum.Enum):
    """Subscription state from the bot's side; SUBSCRIBED is RFC 6121 "to" or "both"."""

    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # request sent, no response yet
    NOT_A_CONTACT = "not a contact"


@dataclass(frozen=True, slots=True)
class ContactStatus:
    address: str
    state: SubscriptionState


class ContactPolicy:
    """Subscription handling for the configured patient and caregiver addresses."""

    def __init__(self, own_jid: str, addresses: Collection[str]) -> None:
        self._own = bare_jid(own_jid)
        # Keep one spelling per address, as configured, for outgoing requests.
        self._addresses: dict[str, str] = {}
        for address in addresses:
            self._addresses.setdefault(bare_jid(address), address.split("/", 1)[0])

    def allows(self, jid: str) -> bool:
        return bare_jid(jid) in self._addresses

    def statuses(self, client: Any) -> list[ContactStatus]:
        addresses = self._addresses.values()
        return [ContactStatus(address, state_of(client, address)) for address in addresses]

    def request_missing(self, client: Any) -> None:
        """Send a subscription request to every configured contact not yet asked."""
        for status in self.statuses(client):
            if status.state is SubscriptionState.NOT_A_CONTACT:
                log.info("Requesting a presence subscription from %s", status.address)
                client.client_roster[status.address].subscribe()

    def on_subscribe_request(self, client: Any, presence: Any) -> None:
        """Approve a configured contact's request, and reject anyone else's."""
        sender = presence["from"].bare
        item = client.client_roster[sender]
        if not self.allows(sender):
            log.info("Rejected a presence subscription request from %s", sender)
            item.unauthorize()
            return
        log.info("Approved the presence subscription request of %s", sender)
        item.authorize()
        if state_of(client, sender) is SubscriptionState.NOT_A_CONTACT:
            item.subscribe()


def state_of(client: Any, address: str) -> SubscriptionState:
    item = client.client_roster[address]
    if item["subscription"] in ("to", "both"):
        return SubscriptionState.SUBSCRIBED
    if item["pending_out"]:
        return SubscriptionState.PENDING
    return SubscriptionState.NOT_A_CONTACT
