"""Patient-facing text: several phrasings per message kind, translated with gettext.

The msgids below are the English text. Catalogs live in ``medbot/locale/<lang>/
LC_MESSAGES/medbot.mo`` inside the package and are read with importlib.resources, so
they work from a wheel too. An unknown language falls back to English.
"""

from __future__ import annotations

import enum
import functools
import gettext
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from medbot.core.models import Wording

DOMAIN = "medbot"
LANGUAGES = ("en", "de")


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is used."""
    return message


class Text(enum.Enum):
    """A piece of patient- or caregiver-facing text."""

    ASK = "ask"
    REASK = "reask"
    LATE_ASK = "late-ask"
    PRAISE = "praise"
    GIVE_UP = "give-up"
    SKIP_ACK = "skip-ack"
    SNOOZE_ACK = "snooze-ack"
    NEGATION_ACK = "negation-ack"
    FINAL_NEGATION_ACK = "final-negation-ack"  # no ask left: the next timer gives up
    HINT = "hint"
    CAREGIVER_GIVE_UP = "caregiver-give-up"
    CAREGIVER_SKIP = "caregiver-skip"
    MISSED_SUMMARY = "missed-summary"
    MISSED_LINE = "missed-line"


# Placeholders: {name} is the patient, {medication} the medication's name and {time} a
# local wall time (HH:MM) whose meaning depends on the text.
CATALOG: Mapping[Text, tuple[str, ...]] = {
    Text.ASK: (
        N_("Hey {name}, did you take your {medication}?"),
        N_("Hi {name}, it's time for your {medication}. Have you taken it?"),
        N_("Hello {name}! Quick check: have you had your {medication} yet?"),
        N_("{name}, your {medication} is due now. Did you take it?"),
    ),
    Text.REASK: (
        N_("{name}, just checking again: did you take your {medication}?"),
        N_("Me again, {name}. Have you had your {medication}?"),
        N_("Still thinking of you, {name}: is your {medication} taken?"),
        N_("{name}, a gentle nudge about your {medication}. Taken it yet?"),
    ),
    Text.LATE_ASK: (
        N_("Sorry {name}, this comes late: did you take your {medication}, due at {time}?"),
    ),
    Text.PRAISE: (
        N_("Great job, {name}! Your {medication} is noted as taken."),
        N_("Thanks, {name}! Well done."),
        N_("Perfect, {name}, that's your {medication} done for now."),
        N_("Nice work, {name}! I've written it down."),
    ),
    Text.GIVE_UP: (
        N_("I haven't heard back, {name}, so I've noted your {medication} as missed. Take care!"),
        N_("No answer this time, {name}. I've noted this {medication} dose as missed."),
        N_("{name}, I'll stop asking about this {medication} dose and note it as missed."),
        N_("Okay {name}, this {medication} dose is noted as missed. See you at the next one."),
    ),
    Text.SKIP_ACK: (N_("Okay {name}, I've noted that you're skipping this {medication} dose."),),
    Text.SNOOZE_ACK: (N_("Sure, {name}. I'll ask again at {time}."),),
    Text.NEGATION_ACK: (N_("All right, I'll ask again at {time}."),),
    Text.FINAL_NEGATION_ACK: (
        N_("All right. If I don't hear back by {time}, I'll note this dose as missed."),
    ),
    Text.HINT: (
        N_(
            "Sorry, I didn't get that. Reply \"yes\" once you've taken it, \"later\" or "
            "\"in 15 min\" to be asked again, or \"skip\" to leave this dose out."
        ),
    ),
    Text.CAREGIVER_GIVE_UP: (N_("{name} did not confirm the {medication} dose due at {time}."),),
    Text.CAREGIVER_SKIP: (N_("{name} skipped the {medication} dose due at {time}."),),
    Text.MISSED_SUMMARY: (
        N_(
            "Hi {name}, I was offline for a while and these doses passed without a "
            "reminder, so I've noted them as missed:"
        ),
    ),
    Text.MISSED_LINE: (N_("- {medication}, due at {time}"),),
}

_CUSTOM_FIELDS: Mapping[Text, str] = {
    Text.ASK: "ask",
    Text.REASK: "reask",
    Text.PRAISE: "praise",
    Text.GIVE_UP: "give_up",
}
_PLACEHOLDER = re.compile(r"\{(name|medication|time)\}")


@dataclass(frozen=True, slots=True)
class Phrase:
    """Rendered text and the index of the phrasing it came from."""

    text: str
    index: int


def render(
    text: Text,
    language: str,
    values: Mapping[str, str],
    *,
    custom: Wording | None = None,
    seed: str = "",
    avoid: int | None = None,
) -> Phrase:
    """Pick a phrasing of ``text``, translate it and fill in the placeholders.

    The pick is a hash of ``seed`` (the message id), so the same message always gets the
    same phrasing, and it is never ``avoid`` when there is another to choose. Custom
    phrasings from ``custom`` replace the catalog for their kind and are not translated.
    """
    phrasings = _custom_phrasings(text, custom)
    if not phrasings:
        translate = translations(language).gettext
        phrasings = tuple(translate(message) for message in CATALOG[text])
    index = choose_index(len(phrasings), seed, avoid)
    return Phrase(fill(phrasings[index], values), index)


def choose_index(count: int, seed: str, avoid: int | None) -> int:
    """Return a phrasing index in ``range(count)`` derived from ``seed``, other than ``avoid``."""
    candidates = [index for index in range(count) if index != avoid] or list(range(count))
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()
    return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace {name}, {medication} and {time}; other braces stay as written.

    Unlike ``str.format`` this never raises on custom phrasings with stray braces.
    """
    return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), template)


def primary_language(language: str) -> str:
    """Return the supported language of a tag ("de-AT", "de_DE", "DE"); English if none."""
    primary = language.replace("_", "-").split("-")[0].casefold()
    return primary if primary in LANGUAGES else "en"


def translations(language: str) -> gettext.NullTranslations:
    """Return the catalog for ``language``, falling back to English."""
    return _load_catalog(primary_language(language))


@functools.lru_cache(maxsize=len(LANGUAGES))
def _load_catalog(language: str) -> gettext.NullTranslations:
    resource = resources.files("medbot").joinpath("locale", language, "LC_MESSAGES", "medbot.mo")
    with resource.open("rb") as catalog_file:
        return gettext.GNUTranslations(catalog_file)


def _custom_phrasings(text: Text, custom: Wording | None) -> tuple[str, ...]:
    field = _CUSTOM_FIELDS.get(text)
    if custom is None or field is None:
        return ()
    phrasings: tuple[str, ...] = getattr(custom, field)
    return phrasings
