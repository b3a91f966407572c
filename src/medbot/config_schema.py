"""The first pass over a configuration file: its shape, key by key.

The pydantic models below mirror the TOML tables. They are strict (a string is not an
integer, and the other way round) and reject unknown keys. Each value that has a format
(ids, times, zones, durations, custom wording) is checked here, so the first pass reports
all such problems at once. ``problem_from`` turns one pydantic error into a ``Problem``
that names the key path, the value and the fix.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from medbot.core.durations import DurationError, parse_duration
from medbot.core.models import DEFAULT_ASKS, DailySchedule
from medbot.core.schedule import WEEKDAY_NAMES
from medbot.core.wording import LANGUAGES

DEFAULT_REASK_TEXT = "20m"
MAX_ASKS = 10
MAX_EVERY_DAYS = 366
MAX_VALUE_SHOWN = 80
PLACEHOLDERS = ("name", "medication", "time")
EXAMPLE_FILE = "examples/medbot.toml"

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)
_WALL_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?", re.ASCII)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# A bare JID: local@domain, with no resource and no spaces.
BARE_JID = re.compile(r"[^@/\s]+@[^@/\s]+")
_BRACED = re.compile(r"\{([^{}]*)\}")
SECRET_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_zone(name: str) -> str:
    """Raise ValueError unless ``name`` is an IANA time zone name that this system has."""
    if name in _zone_names():
        return name
    hint = _closest_zone(name)
    suffix = f"; did you mean {hint!r}?" if hint else ", such as 'Europe/Berlin' or 'UTC'"
    raise ValueError(f"unknown time zone; use an IANA name{suffix}")


def _closest_zone(name: str) -> str | None:
    by_folded = {zone.casefold(): zone for zone in _zone_names()}
    folded = name.strip().replace(" ", "_").casefold()
    if folded in by_folded:
        return by_folded[folded]
    cities = [zone for key, zone in by_folded.items() if key.endswith("/" + folded)]
    if cities:
        return sorted(cities)[0]
    close = difflib.get_close_matches(folded, by_folded, n=1, cutoff=0.75)
    return by_folded[close[0]] if close else None


def check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            "invalid id; use 1 to 64 characters a-z, 0-9, '_' and '-', "
            "starting with a letter or digit, such as 'bob' or 'insulin-night'"
        )
    return value


def check_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def check_address(value: str) -> str:
    if not value.strip() or any(character.isspace() for character in value):
        raise ValueError("invalid chat address; give one without spaces, such as 'bob@example.org'")
    return value


def check_wall_time(value: str) -> str:
    if not _WALL_TIME.fullmatch(value):
        raise ValueError("invalid time; use 24-hour HH:MM or HH:MM:SS, such as '08:00' or '20:30'")
    return value


def parse_wall_time(value: str) -> time:
    return time.fromisoformat(check_wall_time(value))


def check_language(value: str) -> str:
    if value not in LANGUAGES:
        raise ValueError(f"unknown language; use one of {', '.join(LANGUAGES)}")
    return value


def check_weekday(value: str) -> str:
    if value.lower() not in WEEKDAY_NAMES:
        raise ValueError(f"invalid weekday; use one of {', '.join(WEEKDAY_NAMES)}")
    return value


def check_positive_duration(value: str) -> str:
    try:
        parse_duration(value)
    except DurationError as error:
        raise ValueError(str(error)) from None
    return value


def check_window(value: str) -> str:
    try:
        parse_duration(value, allow_zero=True)
    except DurationError as error:
        raise ValueError(str(error)) from None
    return value


def check_placeholders(phrase: str) -> str:
    """Raise ValueError if ``phrase`` is empty or has a {...} other than the placeholders.

    The wording renderer replaces exactly {name}, {medication} and {time} and leaves every
    other brace as written, so a lone brace is fine but {nmae} is almost surely a typo.
    """
    if not phrase.strip():
        raise ValueError("must not be empty")
    for match in _BRACED.finditer(phrase):
        if match[1] not in PLACEHOLDERS:
            allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {match[0]}; use {allowed}")
    return phrase


def _in_range(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"out of range; use an integer from {low} to {high}")
        return value

    return check


def _date_or_text(value: object) -> object:
    """Accept a TOML date or a "YYYY-MM-DD" string; a TOML date-time is rejected."""
    if isinstance(value, datetime):
        raise ValueError("expected a date without a time, such as 2026-12-01")
    if isinstance(value, str):
        if not _ISO_DATE.fullmatch(value):
            raise ValueError("invalid date; use YYYY-MM-DD, such as 2026-12-01")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("invalid date; use an existing date, such as 2026-12-01") from None
    return value


def _times_from_toml(value: object) -> object:
    """Accept TOML local times (``08:00:00`` without quotes) as well as strings."""
    if isinstance(value, list):
        return [item.isoformat() if isinstance(item, time) else item for item in value]
    return value


# --- First pass: the shape of the file ----------------------------------------------------

Id = Annotated[str, AfterValidator(check_id)]
Text = Annotated[str, AfterValidator(check_text)]
Address = Annotated[str, AfterValidator(check_address)]
ZoneName = Annotated[str, AfterValidator(check_zone)]
WallTime = Annotated[str, AfterValidator(check_wall_time)]
Weekday = Annotated[str, AfterValidator(check_weekday)]
PositiveDuration = Annotated[str, AfterValidator(check_positive_duration)]
Window = Annotated[str, AfterValidator(check_window)]
Phrase = Annotated[str, AfterValidator(check_placeholders)]


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BotSection(_Section):
    time_zone: ZoneName = "UTC"
    database: Text | None = None
    transport: Literal["console", "xmpp"] = "console"


class XmppSection(_Section):
    jid: Address
    password_file: Text | None = None
    password_env: Text | None = None
    host: Text | None = None
    port: Annotated[int, AfterValidator(_in_range(1, 65535))] | None = None
    tls: Literal["starttls", "direct", "none"] = "starttls"
    ca_file: Text | None = None
    allow_plaintext: bool = False
    resource: Text | None = None


class WordingSection(_Section):
    ask: list[Phrase] = []
    reask: list[Phrase] = []
    praise: list[Phrase] = []
    give_up: list[Phrase] = []


class MedicationSection(_Section):
    id: Id
    name: Text
    times: Annotated[list[WallTime], BeforeValidator(_times_from_toml)]
    weekdays: list[Weekday] = []
    every_days: Annotated[int, AfterValidator(_in_range(1, MAX_EVERY_DAYS))] = 1
    start: Annotated[date | None, BeforeValidator(_date_or_text)] = None
    reask_interval: PositiveDuration = DEFAULT_REASK_TEXT
    asks: Annotated[int, AfterValidator(_in_range(1, MAX_ASKS))] = DEFAULT_ASKS
    late_window: Window | None = None
    wording: WordingSection = WordingSection()


class PatientSection(_Section):
    id: Id
    name: Text
    address: Address
    language: Annotated[str, AfterValidator(check_language)] = "en"
    time_zone: ZoneName | None = None
    caregiver: Address | None = None
    medications: list[MedicationSection] = []


class FileSection(_Section):
    bot: BotSection = BotSection()
    xmpp: XmppSection | None = None
    patients: list[PatientSection] = []


_SECTIONS: dict[str, type[BaseModel]] = {
    "": FileSection,
    "bot": BotSection,
    "xmpp": XmppSection,
    "patients": PatientSection,
    "medications": MedicationSection,
    "wording": WordingSection,
}

# Keys that people write in the wrong place or under another name.
_KEY_HINTS = {
    ("", "time_zone"): "move it into the [bot] table",
    ("", "database"): "move it into the [bot] table",
    ("", "transport"): "move it into the [bot] table",
    ("", "default_zone"): "write time_zone in the [bot] table",
    ("", "zone"): "write time_zone in the [bot] table",
    ("", "medications"): "write it as [[patients.medications]] under a patient",
    ("patients", "zone"): "write time_zone",
    ("patients", "timezone"): "write time_zone",
    ("bot", "zone"): "write time_zone",
    ("bot", "timezone"): "write time_zone",
    ("medications", "time"): "write times = [...]",
    ("xmpp", "password"): "put the password in a file and set password_file, or set password_env",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the file: where, the value found (if any) and the fix."""

    path: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        where = self.path or "(top level)"
        shown = f" = {self.value}" if self.value is not None else ""
        return f"{where}{shown}: {self.message}"


def format_path(location: Iterable[int | str]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            text += f".{key}" if text else key
    return text


def show_value(key: str, value: object) -> str:
    """Return ``value`` as shown in a message: a repr cut to MAX_VALUE_SHOWN characters.

    Values under keys that look like secrets are never shown, nor are whole tables,
    which could contain one.
    """
    name = key.rpartition(".")[2]
    if SECRET_KEY.search(name) and name not in ("password_file", "password_env"):
        return "(hidden)"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    if len(text) > MAX_VALUE_SHOWN:
        text = text[: MAX_VALUE_SHOWN - 3] + "..."
    return text


_TYPE_MESSAGES = {
    "string_type": "expected a string in quotes",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "list_type": "expected an array [...]",
    "date_type": "expected a date such as 2026-12-01",
    "model_type": "expected a table",
    "dict_type": "expected a table",
    "missing": "missing required key",
}


def problem_from(error: Any) -> Problem:
    location = tuple(error["loc"])
    key = next((part for part in reversed(location) if isinstance(part, str)), "")
    kind = error["type"]
    if kind == "extra_forbidden":
        message = _unknown_key_message(location)
        return Problem(format_path(location), message, show_value(key, error["input"]))
    if kind == "missing":
        return Problem(format_path(location), _missing_message(location))
    value = show_value(key, error["input"])
    if kind == "value_error":
        return Problem(format_path(location), str(error["ctx"]["error"]), value)
    if kind == "literal_error":
        return Problem(format_path(location), f"expected {error['ctx']['expected']}", value)
    message = _TYPE_MESSAGES.get(kind, str(error["msg"]))
    if kind == "list_type" and key in ("patients", "medications"):
        message = f"expected an array of tables; write each entry under [[{_table_name(location)}]]"
    return Problem(format_path(location), message, value)


def _table_name(location: tuple[int | str, ...]) -> str:
    return ".".join(part for part in location if isinstance(part, str))


def _parent_section(location: tuple[int | str, ...]) -> str:
    names = [part for part in location[:-1] if isinstance(part, str)]
    return names[-1] if names else ""


def _unknown_key_message(location: tuple[int | str, ...]) -> str:
    key = str(location[-1])
    parent = _parent_section(location)
    hint = _KEY_HINTS.get((parent, key))
    if hint is None:
        hint = _closest_key(key, parent)
    return f"unknown key; {hint}"


def _closest_key(key: str, parent: str) -> str:
    known = list(_SECTIONS.get(parent, FileSection).model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if parent == "":
        # A misspelt [bot] key written at the top level, such as "databse".
        close = difflib.get_close_matches(key, list(BotSection.model_fields), n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]!r} in the [bot] table?"
    return f"known keys: {', '.join(known)}"


def _missing_message(location: tuple[int | str, ...]) -> str:
    key = str(location[-1])
    examples = {
        "id": "add id = \"...\" (a-z, 0-9, '_' and '-')",
        "name": 'add name = "..."',
        "address": 'add the chat address, such as address = "bob@example.org"',
        "times": 'add times = ["08:00"]',
        "jid": 'add the bot\'s own address, such as jid = "medbot@example.org"',
    }
    return f"missing required key; {examples.get(key, 'add it')}"


def schedule_of(medication: MedicationSection) -> DailySchedule:
    return DailySchedule(
        times=tuple(parse_wall_time(text) for text in medication.times),
        weekdays=frozenset(WEEKDAY_NAMES.index(day.lower()) for day in medication.weekdays),
        every_days=medication.every_days,
        start=medication.start,
    )
