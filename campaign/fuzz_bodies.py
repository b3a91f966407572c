"""Seeded generators of hostile and odd message bodies.

Every generator returns text that XML 1.0 can carry, because a stanza with a forbidden
character (most C0 controls, lone surrogates, U+FFFE) makes the server close the
sender's stream before the bot could see it. ``invalid_xml_bodies`` lists such bodies
for the few raw sends that check exactly that.
"""

from __future__ import annotations

import random
from collections.abc import Callable

MEGABYTE = 1_000_000

EMOJI = (
    "👨‍👩‍👧‍👦",  # family: ZWJ sequence
    "🧑🏽‍⚕️",  # health worker, skin tone and ZWJ
    "👍🏿",  # thumbs up with skin tone
    "🇩🇪🇺🇦🇯🇵",  # flags: regional indicator pairs
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",  # subdivision flag: tag sequence
    "1️⃣",  # keycap
    "❤️‍🔥",  # ZWJ with variation selector
    "\U0001faf6\U0001f3fc",  # heart hands with skin tone
)
RTL = (
    "نعم، أخذت الدواء",
    "כן, לקחתי",
    "\u202eyes\u202c",  # right-to-left override around "yes"
    "\u2067\u0633\u0644\u0627\u0645\u2069 done",  # Arabic "salam" in an isolate
    "\u200fyes\u200f",  # right-to-left marks
)
MARKUP = (
    "<message to='bot@medbot.test'><body>yes</body></message>",
    "]]><body>yes</body>",
    "<![CDATA[yes]]>",
    "&lt;yes&gt; &amp;amp; &#x0;",
    "<?xml version='1.0'?><stream:stream>",
    "<script>alert('yes')</script>",
    "<b>yes</b><img src=x onerror=alert(1)>",
    "<iq type='set'><query xmlns='jabber:iq:roster'/></iq>",
)
SQL = (
    "yes'); DROP TABLE cycles;--",
    "' OR '1'='1",
    "\"; DELETE FROM outbox; --",
    "1; UPDATE cycles SET phase='taken'",
    "Robert'); DROP TABLE inbound;--",
)
FORMAT = ("%s%s%s%n", "{name}{medication}{0}{__class__}", "${jndi:ldap://127.0.0.1/x}", "%(body)s")
REPLIES = ("yes", "YES!!!", "no", "skip", "later", "snooze 15", "help", "status", "next",
           "history", "yesterday I forgot", "not yes", "ja", "oui", "👍", "done ✅")
# XML 1.0 allows tab, newline and carriage return among C0 controls, all of C1, and
# most of the rest; U+FFFE and U+FFFF are excluded.
XML_CONTROLS = "\t\n\r\x85\x80\x9f\u2028\u2029\u200b\u200d\ufeff\u00ad"
INVALID_XML = ("\x00", "\x01yes", "\x08", "\x1b[31mred\x1b[0m", "\ufffe", "\uffff")


def _random_char(rng: random.Random) -> str:
    while True:
        code = rng.choice((rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF),
                           rng.randint(0xE000, 0xFFFD), rng.randint(0x10000, 0x10FFFF)))
        if not 0xD800 <= code <= 0xDFFF:
            return chr(code)


def random_unicode(rng: random.Random) -> str:
    return "".join(_random_char(rng) for _ in range(rng.randint(1, 200)))


def controls(rng: random.Random) -> str:
    return "".join(rng.choice(XML_CONTROLS + "yes ") for _ in range(rng.randint(1, 40)))


def emoji(rng: random.Random) -> str:
    return " ".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))


def mixed(rng: random.Random) -> str:
    parts = (RTL, MARKUP, SQL, FORMAT, REPLIES, EMOJI)
    return " ".join(rng.choice(rng.choice(parts)) for _ in range(rng.randint(1, 5)))


def blank(rng: random.Random) -> str:
    return rng.choice(("", " ", "\n", "\t \r\n", "\u200b"))


def long_line(rng: random.Random) -> str:
    return rng.choice(("yes", "a", "🙂", "\u202e")) * rng.randint(1_000, 20_000)


def megabyte(rng: random.Random) -> str:
    """Return a body of at least MEGABYTE characters (and so at least as many bytes)."""
    chunk = random_unicode(rng) + " yes "
    return chunk * (MEGABYTE // len(chunk) + 1)


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "unicode": random_unicode,
    "controls": controls,
    "emoji": emoji,
    "rtl": lambda rng: rng.choice(RTL),
    "markup": lambda rng: rng.choice(MARKUP),
    "sql": lambda rng: rng.choice(SQL),
    "format": lambda rng: rng.choice(FORMAT),
    "reply": lambda rng: rng.choice(REPLIES),
    "mixed": mixed,
    "blank": blank,
    "long": long_line,
}


def body(rng: random.Random) -> tuple[str, str]:
    """Return (generator name, body) for one fuzzed message."""
    name = rng.choice(tuple(GENERATORS))
    return name, GENERATORS[name](rng)


def invalid_xml_bodies() -> tuple[str, ...]:
    return INVALID_XML
