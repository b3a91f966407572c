"""Decide which inbound XMPP messages reach the runtime, and log the rest sparingly.

Only a ``chat`` or ``normal`` message whose sender's bare JID equals a configured
patient's address passes. The checks work on the stanza's XML, so they do not depend on
which slixmpp plugins happen to be loaded.
"""

from __future__ import annotations

import enum
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from medbot.core.models import InboundMessage

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 4096
DROP_LOG_INTERVAL = 60.0  # seconds between two log lines for one drop reason

CLIENT_NS = "jabber:client"
DELAY_TAG = "{urn:xmpp:delay}delay"
STANZA_ID_TAG = "{urn:xmpp:sid:0}stanza-id"
ORIGIN_ID_TAG = "{urn:xmpp:sid:0}origin-id"
# Wrappers whose content was sent by someone else: carbons (XEP-0280), archive
# results (XEP-0313) and forwards (XEP-0297). None of them is a reply by the sender.
WRAPPER_NAMESPACES = ("urn:xmpp:carbons:2", "urn:xmpp:mam:2", "urn:xmpp:forward:0")


class DropReason(enum.Enum):
    """Reason an inbound message did not reach the handler."""

    TYPE = "type is not chat or normal"
    WRAPPED = "carbon, archive result or forward"
    OWN_ACCOUNT = "sent by the bot's own account"
    STRANGER = "sender is not a configured patient"
    EMPTY = "empty body"
    TOO_LONG = "body too long"


def bare_jid(jid: str) -> str:
    """Return the bare JID (``local@domain``) of ``jid``, case-folded for comparison.

    NOTE: case-folding approximates the RFC 7622 nodeprep and nameprep profiles. It
    equals them for ASCII addresses, which covers the addresses a config file holds.
    """
    return jid.split("/", 1)[0].casefold()


@dataclass(frozen=True, slots=True)
class RawMessage:
    """The parts of a message stanza that the filter reads."""

    sender: str  # full JID as sent by the server
    type: str
    body: str
    xml: ET.Element


class MessageFilter:
    """Accept messages from configured patients and count everything else."""

    def __init__(
        self,
        own_jid: str,
        patients: Collection[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._own = bare_jid(own_jid)
        self._domain = self._own.split("@", 1)[-1]
        self._patients = {bare_jid(address) for address in patients}
        self._clock = clock
        self.drops = DropLog()

    def accept(self, raw: RawMessage) -> InboundMessage | None:
        """Return the inbound message for the handler, or None when it is dropped."""
        reason = self._reject_reason(raw)
        if reason is not None:
            self.drops.record(reason, raw.sender)
            return None

        now = self._clock()
        return InboundMessage(
            sender=bare_jid(raw.sender),
            body=raw.body,
            sent_at=self._sent_at(raw.xml, now),
            message_id=self._message_id(raw),
        )

    def _reject_reason(self, raw: RawMessage) -> DropReason | None:
        if raw.type not in ("chat", "normal", ""):
            return DropReason.TYPE
        if _is_wrapper(raw.xml):
            return DropReason.WRAPPED
        sender = bare_jid(raw.sender)
        if sender == self._own:
            return DropReason.OWN_ACCOUNT
        if sender not in self._patients:
            return DropReason.STRANGER
        if not raw.body.strip():
            return DropReason.EMPTY
        if len(raw.body) > MAX_BODY_CHARS:
            return DropReason.TOO_LONG
        return None

    def _sent_at(self, xml: ET.Element, now: datetime) -> datetime:
        """Return the delay stamp our server added (XEP-0203), else ``now``.

        A stamp in the future is clamped to ``now``. Stamps from other entities are
        ignored, because a client may put any time there.
        """
        for delay in xml.iter(DELAY_TAG):
            if delay.get("from", "").casefold() != self._domain:
                continue
            stamp = _parse_stamp(delay.get("stamp", ""))
            if stamp is not None:
                return min(stamp, now)
        return now

    def _message_id(self, raw: RawMessage) -> str | None:
        """Return the dedupe key: origin-id, else our server's stanza-id, else the id.

        A client that resends a message keeps its origin-id (XEP-0359), while the server
        stamps each copy with a new stanza-id, so the origin-id comes first. A
        sender-chosen id is prefixed with the sender's bare JID, so two patients'
        clients that count ids the same way do not collide.
        """
        origin = raw.xml.find(ORIGIN_ID_TAG)
        if origin is not None and origin.get("id"):
            return f"xmpp:{bare_jid(raw.sender)}/{origin.get('id')}"
        for element in raw.xml.findall(STANZA_ID_TAG):
            if element.get("by", "").casefold() == self._own and element.get("id"):
                return f"xmpp:{element.get('id')}"
        sender_id = raw.xml.get("id")
        if not sender_id:
            return None
        return f"xmpp:{bare_jid(raw.sender)}/{sender_id}"


def _is_wrapper(xml: ET.Element) -> bool:
    return any(child.tag.startswith(f"{{{ns}}}") for child in xml for ns in WRAPPER_NAMESPACES)


def _parse_stamp(text: str) -> datetime | None:
    """Parse an XEP-0082 date-time; None when it is invalid or has no zone."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.astimezone(UTC)


class DropLog:
    """Debug-log dropped messages, at most one line per reason per interval.

    The sender is logged, the body never is. Each line reports how many messages of
    that reason were dropped since the previous line.
    """

    def __init__(
        self,
        interval: float = DROP_LOG_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._last_logged: dict[DropReason, float] = {}
        self._unlogged: dict[DropReason, int] = {}
        self.totals: dict[DropReason, int] = {}

    def record(self, reason: DropReason, sender: str) -> None:
        self.totals[reason] = self.totals.get(reason, 0) + 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1

        now = self._monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self._interval:
            return
        count = self._unlogged.pop(reason)
        self._last_logged[reason] = now
        log.debug(
            "Dropped %d inbound message(s): %s (latest from %s)", count, reason.value, sender
        )
