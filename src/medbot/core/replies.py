"""Reply understanding: what a patient's free text means, in English and German.

A reply is case-folded and NFKC-normalised, split into whole-word tokens and parsed
left to right into known phrases (longest phrase first). A token that belongs to no
phrase makes the whole reply UNKNOWN, so "yesterday I forgot" or "jahrelang" never
count as a yes. The rules that combine the phrases are in ``_combine`` and in
docs/conversation.md.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta

from medbot.core.wording import primary_language


class ReplyKind(enum.Enum):
    CONFIRM = "confirm"
    SKIP = "skip"
    SNOOZE = "snooze"
    NEGATION = "negation"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reply:
    """A classified reply. A snooze carries either a delay or a local wall time, or neither
    (a bare "later" means one re-ask interval).

    ``either_half_day`` marks a wall time given without am/pm and without a leading zero
    ("at 9", "um 9 Uhr"): it may mean 09:00 or 21:00, and the conversation picks
    whichever comes first.
    """

    kind: ReplyKind
    snooze_for: timedelta | None = None
    snooze_until: time | None = None
    either_half_day: bool = False


UNKNOWN = Reply(ReplyKind.UNKNOWN)

# Longer input is not a reply to "did you take it?", and the cap also bounds the work.
MAX_REPLY_LENGTH = 200
# Maximum snooze delay the parser accepts. The conversation caps it further.
MAX_SNOOZE_DELAY = timedelta(hours=24)


class _Role(enum.Enum):
    CONFIRM = "confirm"
    SKIP = "skip"
    SNOOZE = "snooze"
    NEGATION = "negation"
    # A negation that also negates a skip right after it: "don't skip", "nicht auslassen".
    NEGATOR = "negator"
    # Words that mean nothing alone: greetings and politeness ("ok", "danke"), pronouns
    # and objects ("it", "my insulin", "es") and auxiliaries ("ive", "ich habe").
    FILLER = "filler"
    # A skip right after a NEGATOR. Only _negate_skips creates it, never a lexicon.
    NEGATED_SKIP = "negated skip"


_CHECK_MARK = "✓"
_CROSS_MARK = "✗"
# Emoji that stand for a confirming or a negating word. The trailing variation selector
# (U+FE0F) and skin-tone modifiers (U+1F3FB..F) are dropped with them.
_EMOJI_TAIL = "[\U0001f3fb-\U0001f3ff\ufe0f]*"
# Thumbs-up, the check-mark emoji, the heavy check mark and the ballot box with check.
_CHECK_EMOJI = re.compile(f"(?:\U0001f44d|\u2705|\u2714|\u2611){_EMOJI_TAIL}")
# Thumbs-down, the cross mark, the negative squared cross mark, the heavy multiplication
# x and the no-entry sign.
_CROSS_EMOJI = re.compile(f"(?:\U0001f44e|\u274c|\u274e|\u2716|\U0001f6ab){_EMOJI_TAIL}")
_APOSTROPHES = re.compile("['\u2019`\u00b4]")
# A clock time ("21:00", "21.00"), a number, a word, or an emoji placeholder.
_TOKEN = re.compile(rf"\d{{1,2}}[:.]\d{{2}}(?!\d)|\d+|[^\W\d_]+|{_CHECK_MARK}|{_CROSS_MARK}")
_ELONGATION = re.compile(r"(\w)\1+$")


def _phrases(role: _Role, *texts: str) -> dict[tuple[str, ...], _Role]:
    return {tuple(text.split()): role for text in texts}


# Generic names for the medicine taken ("took my insulin", "hab meine Tabletten genommen").
# The patient's own medication names are not listed, because classify does not receive
# them, and the closed list keeps "took my car" UNKNOWN.
_ENGLISH_MEDICINES = (
    "meds", "medication", "medications", "medicine", "medicines", "pill", "pills",
    "tablet", "tablets", "insulin", "dose", "injection", "shot",
)
_GERMAN_MEDICINES = (
    "medikament", "medikamente", "medizin", "tablette", "tabletten", "pille", "pillen",
    "insulin", "spritze", "dosis",
)


_ENGLISH: Mapping[tuple[str, ...], _Role] = {
    **_phrases(
        _Role.FILLER,
        "ok", "okay", "k", "kk", "thanks", "thank you", "thx", "ty", "cheers", "please",
        "pls", "plz", "hi", "hey", "hello", "oh", "well", "just", "already", "now", "but",
        "and", "so", "it", "them", "ive",
        *(f"my {medicine}" for medicine in _ENGLISH_MEDICINES),
    ),
    **_phrases(
        _Role.CONFIRM,
        "yes", "y", "yep", "yeah", "yup", "yea", "done", "all done", "taken", "took it",
        "i took it", "took them", "i took them", "taken it", "ive taken it",
        "i have taken it", "i did", "did it", "yes i did", "took", "i took", "i have",
        "yes i have", "injected", "i injected", _CHECK_MARK,
    ),
    **_phrases(
        _Role.SKIP,
        "skip", "skip it", "skip today", "skip this one", "skip this dose", "skipping",
        "skipping it", "skipping today", "not today", "im skipping", "i skip",
    ),
    **_phrases(
        _Role.SNOOZE,
        "later", "snooze", "remind me", "remind me later", "ask me later", "ask later",
        "ask again later", "in a bit", "in a while", "soon",
    ),
    **_phrases(
        _Role.NEGATION,
        "no", "n", "nope", "nah", "not yet", "not now", "havent", "hasnt", "have not",
        "i havent", "i forgot", "forgot", "forgotten", "didnt take it", "i didnt take it",
        "didnt take", "i didnt take", "did not take", "i did not take", "havent taken it",
        "i havent taken it", "havent taken", "i havent taken", "have not taken", _CROSS_MARK,
    ),
    **_phrases(
        _Role.NEGATOR,
        "not", "never", "dont", "do not", "i dont", "i do not", "didnt", "did not",
        "i didnt", "i did not",
    ),
}

_GERMAN: Mapping[tuple[str, ...], _Role] = {
    **_phrases(
        _Role.FILLER,
        "ok", "okay", "okey", "danke", "danke schön", "dankeschön", "danke dir", "vielen dank",
        "bitte", "hallo", "hi", "hey", "gut", "schon", "gerade", "eben", "aber", "und", "so",
        "jetzt", "es", "sie", "hab", "habe", "habs", "ich hab", "ich habe", "ich habs",
        *(f"mein {medicine}" for medicine in _GERMAN_MEDICINES),
        *(f"meine {medicine}" for medicine in _GERMAN_MEDICINES),
    ),
    **_phrases(
        _Role.CONFIRM,
        "ja", "j", "jo", "jap", "japp", "jup", "jep", "jawohl", "erledigt", "genommen",
        "eingenommen", "hab ich", "habe ich", "hab ich genommen", "habe ich genommen",
        "hab es genommen", "habs genommen", "ich habe es genommen", "ist genommen",
        "gemacht", "gespritzt", "ja klar", _CHECK_MARK,
    ),
    **_phrases(
        _Role.SKIP,
        "auslassen", "heute nicht", "überspringen", "ueberspringen", "heute auslassen",
        "lass ich aus", "lasse ich aus", "ich lasse es aus", "aussetzen", "diesmal nicht",
    ),
    **_phrases(
        _Role.SNOOZE,
        "später", "spaeter", "nachher", "gleich", "bald", "erinnere mich",
        "erinner mich", "erinnere mich später", "frag später", "frag mich später",
        "frag später nochmal", "schlummern",
    ),
    **_phrases(
        _Role.NEGATION,
        "nein", "n", "nee", "ne", "nö", "noe", "nicht jetzt", "kein", "keine", "vergessen",
        "hab vergessen", "habe vergessen", "heute nicht auslassen", "heute nicht überspringen",
        "heute nicht ueberspringen", _CROSS_MARK,
    ),
    # German puts the negation before the verb, so "noch nicht auslassen" means "don't
    # skip yet". English "not yet, skip it" reads as an answer and stays a skip.
    **_phrases(_Role.NEGATOR, "nicht", "noch nicht", "nie", "niemals"),
}

_LEXICONS: Mapping[str, Mapping[tuple[str, ...], _Role]] = {"en": _ENGLISH, "de": _GERMAN}

_MINUTE_UNITS = frozenset({"m", "min", "mins", "minute", "minutes", "minuten"})
_HOUR_UNITS = frozenset({"h", "hr", "hrs", "hour", "hours", "stunde", "stunden", "std"})
# Word forms of "in one hour" and "in half an hour", both languages.
_WORD_DELAYS: Mapping[tuple[str, ...], timedelta] = {
    ("an", "hour"): timedelta(hours=1),
    ("one", "hour"): timedelta(hours=1),
    ("half", "an", "hour"): timedelta(minutes=30),
    ("einer", "stunde"): timedelta(hours=1),
    ("ner", "stunde"): timedelta(hours=1),
    ("einer", "halben", "stunde"): timedelta(minutes=30),
    ("ner", "halben", "stunde"): timedelta(minutes=30),
}
_CLOCK_PREFIXES = frozenset({"at", "um", "gegen"})


@dataclass(frozen=True, slots=True)
class _Segment:
    role: _Role
    reply: Reply | None = None  # a snooze with a delay or a wall time


def classify(text: str, language: str) -> Reply:
    """Classify ``text`` from a patient whose configured language is ``language``.

    English and German are both understood whatever the configured language, because
    people mix them. The configured language is tried alone first, so its reading wins
    when a reply parses in both.
    """
    if len(text) > MAX_REPLY_LENGTH:
        return UNKNOWN
    folded = unicodedata.normalize("NFKC", text).casefold()
    if "?" in folded or "¿" in folded:
        return UNKNOWN  # a question is never an answer, not even "yes?"
    tokens = _tokenize(folded)

    primary = primary_language(language)
    other = "de" if primary == "en" else "en"
    first = _parse(tokens, _LEXICONS[primary])
    if first.kind is not ReplyKind.UNKNOWN:
        return first
    merged = {**_LEXICONS[other], **_LEXICONS[primary]}
    return _parse(tokens, merged)


def _tokenize(folded: str) -> list[str]:
    text = _CHECK_EMOJI.sub(f" {_CHECK_MARK} ", folded)
    text = _CROSS_EMOJI.sub(f" {_CROSS_MARK} ", text)
    text = _APOSTROPHES.sub("", text)
    return _TOKEN.findall(text)


def _parse(tokens: list[str], lexicon: Mapping[tuple[str, ...], _Role]) -> Reply:
    words = {word for phrase in lexicon for word in phrase}
    tokens = [_unstretch(token, words) for token in tokens]
    segments: list[_Segment] = []
    position = 0
    while position < len(tokens):
        match = _match_snooze(tokens, position) or _match_phrase(tokens, position, lexicon)
        if match is None:
            return UNKNOWN
        segment, position = match
        segments.append(segment)
    return _combine(_negate_skips(segments))


def _unstretch(token: str, words: set[str]) -> str:
    """Map an elongated word ("yesss", "jaaa", "nooo") to the word it stretches."""
    if token in words:
        return token
    shortened = _ELONGATION.sub(r"\1", token)
    return shortened if shortened in words else token


def _match_phrase(
    tokens: list[str], position: int, lexicon: Mapping[tuple[str, ...], _Role]
) -> tuple[_Segment, int] | None:
    longest = min(5, len(tokens) - position)
    for length in range(longest, 0, -1):
        role = lexicon.get(tuple(tokens[position : position + length]))
        if role is not None:
            return _Segment(role), position + length
    return None


def _match_snooze(tokens: list[str], position: int) -> tuple[_Segment, int] | None:
    """Match a snooze with a value: "snooze 15", "in 10 min", "10 min", "at 9pm", "um 21 Uhr"."""
    head = tokens[position]
    if head == "in":
        match = _match_delay(tokens, position + 1)
    elif head == "snooze" and position + 1 < len(tokens) and tokens[position + 1].isdigit():
        match = _match_delay(tokens, position + 1, default_minutes=True)
    elif head in _CLOCK_PREFIXES:
        match = _match_clock(tokens, position + 1)
    elif head.isdigit():
        match = _match_delay(tokens, position)
    else:
        return None
    if match is None:
        return None
    reply, end = match
    return _Segment(_Role.SNOOZE, reply), end


def _match_delay(
    tokens: list[str], position: int, *, default_minutes: bool = False
) -> tuple[Reply, int] | None:
    for words, delay in _WORD_DELAYS.items():
        if tuple(tokens[position : position + len(words)]) == words:
            return Reply(ReplyKind.SNOOZE, snooze_for=delay), position + len(words)
    if position >= len(tokens) or not _is_small_number(tokens[position]):
        return None

    amount = int(tokens[position])
    unit = tokens[position + 1] if position + 1 < len(tokens) else None
    if unit in _MINUTE_UNITS:
        delay, end = timedelta(minutes=amount), position + 2
    elif unit in _HOUR_UNITS:
        delay, end = timedelta(hours=amount), position + 2
    elif default_minutes:
        delay, end = timedelta(minutes=amount), position + 1
    else:
        return None
    if not timedelta(0) < delay <= MAX_SNOOZE_DELAY:
        return None
    return Reply(ReplyKind.SNOOZE, snooze_for=delay), end


def _match_clock(tokens: list[str], position: int) -> tuple[Reply, int] | None:
    """Match a wall time after "at"/"um": "21:00", "9pm", "9 p.m.", "21 Uhr", "9"."""
    if position >= len(tokens):
        return None
    token = tokens[position]
    if token[:1].isdigit() and len(token) > 2 and token[-3] in ":.":
        hour_text, minute = token[:-3], int(token[-2:])
    elif _is_small_number(token):
        hour_text, minute = token, 0
    else:
        return None
    hour = int(hour_text)
    end = position + 1

    meridiem, end = _match_meridiem(tokens, end)
    if meridiem is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if end < len(tokens) and tokens[end] == "uhr":
        end += 1
    if hour > 23 or minute > 59:
        return None
    ambiguous = meridiem is None and 1 <= hour <= 12 and not hour_text.startswith("0")
    return Reply(ReplyKind.SNOOZE, snooze_until=time(hour, minute), either_half_day=ambiguous), end


def _match_meridiem(tokens: list[str], position: int) -> tuple[str | None, int]:
    pair = tuple(tokens[position : position + 2])
    if pair in (("a", "m"), ("p", "m")):
        return pair[0] + "m", position + 2
    if position < len(tokens) and tokens[position] in ("am", "pm"):
        return tokens[position], position + 1
    return None, position


def _is_small_number(token: str) -> bool:
    return token.isdigit() and len(token) <= 4


def _negate_skips(segments: list[_Segment]) -> list[_Segment]:
    """Mark each skip right after a NEGATOR, fillers aside, as a NEGATED_SKIP.

    "don't skip" keeps the dose open, while "no, not today" stays a skip because "no"
    answers the question and negates no verb.
    """
    marked: list[_Segment] = []
    previous: _Role | None = None
    for segment in segments:
        if segment.role is _Role.SKIP and previous is _Role.NEGATOR:
            segment = _Segment(_Role.NEGATED_SKIP)
        marked.append(segment)
        if segment.role is not _Role.FILLER:
            previous = segment.role
    return marked


def _combine(segments: list[_Segment]) -> Reply:
    """Turn parsed phrases into one reply.

    A negation anywhere beats a confirmation ("no yes", "not done"). A confirmation mixed
    with a skip or snooze is unclear. A skip or snooze beats a negation ("no, later"). A
    negated skip counts as a negation ("don't skip it, later" is a snooze), but it is
    unclear next to a skip that is not negated.
    """
    roles = {segment.role for segment in segments} - {_Role.FILLER}
    if {_Role.SKIP, _Role.NEGATED_SKIP} <= roles:
        return UNKNOWN
    if roles & {_Role.NEGATOR, _Role.NEGATED_SKIP}:
        roles = (roles - {_Role.NEGATOR, _Role.NEGATED_SKIP}) | {_Role.NEGATION}
    if _Role.CONFIRM in roles:
        if roles == {_Role.CONFIRM}:
            return Reply(ReplyKind.CONFIRM)
        return Reply(ReplyKind.NEGATION) if _Role.NEGATION in roles else UNKNOWN
    if {_Role.SKIP, _Role.SNOOZE} <= roles:
        return UNKNOWN
    if _Role.SKIP in roles:
        return Reply(ReplyKind.SKIP)
    if _Role.SNOOZE in roles:
        return _combine_snoozes(segments)
    if _Role.NEGATION in roles:
        return Reply(ReplyKind.NEGATION)
    return UNKNOWN


def _combine_snoozes(segments: list[_Segment]) -> Reply:
    """Keep the one snooze value given; two different values are unclear."""
    values = {segment.reply for segment in segments if segment.reply is not None}
    if len(values) > 1:
        return UNKNOWN
    return values.pop() if values else Reply(ReplyKind.SNOOZE)
