from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medbot.config import TlsMode, TransportKind, describe_config, load_config
from medbot.core.models import DailySchedule
from medbot.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "medbot.toml"
SECRET = "hunter2-secret"

Document = dict[str, Any]


def toml_value(value: object) -> str:
    """Render ``value`` as an inline TOML value; tables become inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dumps(document: Document) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in document.items())


def base_document() -> Document:
    return {
        "bot": {"time_zone": "Europe/Berlin", "transport": "console"},
        "patients": [
            {
                "id": "bob",
                "name": "Bob",
                "address": "bob@example.org",
                "medications": [{"id": "insulin", "name": "insulin", "times": ["20:00"]}],
            }
        ],
    }


def xmpp_document(password_file: Path) -> Document:
    document = base_document()
    document["bot"]["transport"] = "xmpp"
    document["xmpp"] = {"jid": "medbot@example.org", "password_file": str(password_file)}
    return document


def write(directory: Path, document: Document | str, name: str = "medbot.toml") -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else dumps(document), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "xmpp-password"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


# --- Valid files ------------------------------------------------------------------------------


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.transport is TransportKind.CONSOLE
    assert [patient.id for patient in config.patients] == ["bob"]
    assert [medication.id for medication in config.patients[0].medications] == [
        "insulin",
        "vitamin-d",
    ]


def test_example_values() -> None:
    patient = load_config(EXAMPLE).patients[0]
    insulin, vitamin = patient.medications
    assert patient.zone == ZoneInfo("Europe/Berlin")
    assert patient.caregiver == "carol@example.org"
    assert insulin.late_window == timedelta(hours=1)
    assert insulin.wording.ask[0] == "Hey {name}, time for your {medication}!"
    assert vitamin.schedule == DailySchedule(times=(time(8, 30),), weekdays=frozenset({0, 3}))


def test_example_database_default() -> None:
    expected = platformdirs.user_data_path("medbot") / "medbot.sqlite3"
    assert load_config(EXAMPLE).database == expected


def test_defaults_applied(tmp_path: Path) -> None:
    document = base_document()
    del document["bot"]
    config = load_config(write(tmp_path, document))
    patient = config.patients[0]
    medication = patient.medications[0]
    assert config.default_zone == ZoneInfo("UTC")
    assert config.transport is TransportKind.CONSOLE
    assert config.xmpp is None
    assert config.database == platformdirs.user_data_path("medbot") / "medbot.sqlite3"
    assert patient.zone == ZoneInfo("UTC")
    assert patient.language == "en"
    assert patient.caregiver is None
    assert medication.reask_interval == timedelta(minutes=20)
    assert medication.asks == 3
    assert medication.late_window is None
    assert medication.schedule == DailySchedule(times=(time(20),))


def test_patient_zone_falls_back(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base_document()))
    assert config.patients[0].zone == ZoneInfo("Europe/Berlin")


def test_source_kept(tmp_path: Path) -> None:
    path = write(tmp_path, base_document())
    assert load_config(path).source == path


def test_schedule_keys(tmp_path: Path) -> None:
    document = base_document()
    medication = document["patients"][0]["medications"][0]
    medication.update(
        times=["08:00", "20:00:30"], weekdays=["Mon", "fri"], every_days=2, start="2026-12-01"
    )
    schedule = load_config(write(tmp_path, document)).patients[0].medications[0].schedule
    assert schedule.times == (time(8), time(20, 0, 30))
    assert schedule.weekdays == frozenset({0, 4})
    assert schedule.every_days == 2
    assert schedule.start == date(2026, 12, 1)


def test_toml_date_and_time_values(tmp_path: Path) -> None:
    document = base_document()
    medication = document["patients"][0]["medications"][0]
    medication.update(times=[time(7, 15)], start=date(2026, 12, 1))
    schedule = load_config(write(tmp_path, document)).patients[0].medications[0].schedule
    assert schedule.times == (time(7, 15),)
    assert schedule.start == date(2026, 12, 1)


def test_xmpp_settings(tmp_path: Path, password_file: Path) -> None:
    config = load_config(write(tmp_path, xmpp_document(password_file)))
    assert config.xmpp is not None
    assert config.xmpp.jid == "medbot@example.org"
    assert config.xmpp.password_file == password_file
    assert config.xmpp.password_env is None
    assert config.xmpp.tls is TlsMode.STARTTLS
    assert config.xmpp.host is None
    assert config.xmpp.port is None


def test_xmpp_relative_password_file(tmp_path: Path, password_file: Path) -> None:
    document = xmpp_document(password_file)
    document["xmpp"]["password_file"] = password_file.name
    config = load_config(write(tmp_path, document))
    assert config.xmpp is not None
    assert config.xmpp.password_file == password_file


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_xmpp_plaintext_loopback(tmp_path: Path, password_file: Path, host: str) -> None:
    document = xmpp_document(password_file)
    document["xmpp"].update(tls="none", allow_plaintext=True, host=host, port=5222)
    config = load_config(write(tmp_path, document))
    assert config.xmpp is not None
    assert config.xmpp.tls is TlsMode.NONE


def test_xmpp_password_env(tmp_path: Path, password_file: Path) -> None:
    document = xmpp_document(password_file)
    del document["xmpp"]["password_file"]
    document["xmpp"]["password_env"] = "MEDBOT_XMPP_PASSWORD"
    config = load_config(write(tmp_path, document))
    assert config.xmpp is not None
    assert config.xmpp.password_env == "MEDBOT_XMPP_PASSWORD"


def test_load_writes_nothing(tmp_path: Path) -> None:
    document = base_document()
    document["bot"]["database"] = "data/sub/medbot.sqlite3"
    path = write(tmp_path, document)
    before = sorted(tmp_path.rglob("*"))
    config = load_config(path)
    assert sorted(tmp_path.rglob("*")) == before
    assert config.database == tmp_path / "data" / "sub" / "medbot.sqlite3"


# --- Invalid files: table of cases ------------------------------------------------------------

Mutation = Callable[[Document, Path], None]


def set_key(*path: str | int, value: object) -> Mutation:
    """Return a mutation that sets the key at ``path``; "p" and "m" are the first patient
    and its first medication."""

    def mutate(document: Document, _directory: Path) -> None:
        table: Any = document
        for part in _expand(path[:-1]):
            table = table[part]
        table[path[-1]] = value

    return mutate


def drop_key(*path: str | int) -> Mutation:
    def mutate(document: Document, _directory: Path) -> None:
        table: Any = document
        for part in _expand(path[:-1]):
            table = table[part]
        del table[path[-1]]

    return mutate


def _expand(path: tuple[str | int, ...]) -> list[str | int]:
    aliases: dict[str | int, list[str | int]] = {
        "p": ["patients", 0],
        "m": ["patients", 0, "medications", 0],
    }
    return [part for item in path for part in aliases.get(item, [item])]


def twin_patient(**changes: str) -> Mutation:
    def mutate(document: Document, _directory: Path) -> None:
        twin = copy.deepcopy(document["patients"][0])
        twin.update(changes)
        document["patients"].append(twin)

    return mutate


def twin_medication(document: Document, _directory: Path) -> None:
    medications = document["patients"][0]["medications"]
    medications.append(copy.deepcopy(medications[0]))


def use_xmpp(**changes: object) -> Mutation:
    def mutate(document: Document, directory: Path) -> None:
        secret = directory / "xmpp-password"
        secret.write_text(SECRET, encoding="utf-8")
        document["bot"]["transport"] = "xmpp"
        document["xmpp"] = {"jid": "medbot@example.org", "password_file": str(secret)}
        for key, value in changes.items():
            if value is None:
                del document["xmpp"][key]
            else:
                document["xmpp"][key] = value

    return mutate


def xmpp_without_table(document: Document, _directory: Path) -> None:
    document["bot"]["transport"] = "xmpp"


def xmpp_with_console(document: Document, directory: Path) -> None:
    use_xmpp()(document, directory)
    document["bot"]["transport"] = "console"


def password_directory(document: Document, directory: Path) -> None:
    use_xmpp(password_file=str(directory))(document, directory)


def no_patients(document: Document, _directory: Path) -> None:
    document["patients"] = []


# (case id, mutation, key path, value shown, fix hint)
INVALID = [
    ("unknown top key", set_key("databse", value="x"), "databse", "'x'",
     "did you mean 'database' in the [bot] table"),
    ("unknown key known list", set_key("p", "qqq", value=1), "patients[0].qqq", "1",
     "known keys: id, name, address"),
    ("top-level database", set_key("database", value="x"), "database", "'x'", "[bot] table"),
    ("unknown bot key", set_key("bot", "transprot", value="xmpp"), "bot.transprot", "'xmpp'",
     "did you mean 'transport'"),
    ("unknown patient key", set_key("p", "phone", value="+1 555"), "patients[0].phone",
     "'+1 555'", "known keys"),
    ("patient zone key", set_key("p", "zone", value="UTC"), "patients[0].zone", "'UTC'",
     "time_zone"),
    ("unknown medication key", set_key("m", "dosage", value="10 units"),
     "patients[0].medications[0].dosage", "'10 units'", "known keys"),
    ("unknown wording key", set_key("m", "wording", value={"greet": ["hi"]}),
     "patients[0].medications[0].wording.greet", "['hi']", "known keys"),
    ("bot not a table", set_key("bot", value="x"), "bot", "'x'", "expected a table"),
    ("patients not array", set_key("patients", value={"id": "bob"}), "patients", "a table",
     "[[patients]]"),
    ("name wrong type", set_key("p", "name", value=5), "patients[0].name", "5",
     "expected a string"),
    ("name empty", set_key("p", "name", value="  "), "patients[0].name", "'  '",
     "must not be empty"),
    ("id missing", drop_key("p", "id"), "patients[0].id", "", "add id"),
    ("address missing", drop_key("p", "address"), "patients[0].address", "",
     "address = \"bob@example.org\""),
    ("times missing", drop_key("m", "times"), "patients[0].medications[0].times", "",
     "times = [\"08:00\"]"),
    ("bad patient id", set_key("p", "id", value="Bob Smith"), "patients[0].id", "'Bob Smith'",
     "a-z, 0-9"),
    ("bad medication id", set_key("m", "id", value="in/sulin"),
     "patients[0].medications[0].id", "'in/sulin'", "a-z, 0-9"),
    ("bad address", set_key("p", "address", value="not an address"), "patients[0].address",
     "'not an address'", "without spaces"),
    ("bad bot zone", set_key("bot", "time_zone", value="Europe/Berln"), "bot.time_zone",
     "'Europe/Berln'", "did you mean 'Europe/Berlin'"),
    ("city as zone", set_key("p", "time_zone", value="Berlin"), "patients[0].time_zone",
     "'Berlin'", "did you mean 'Europe/Berlin'"),
    ("lower-case zone", set_key("p", "time_zone", value="america/new_york"),
     "patients[0].time_zone", "'america/new_york'", "did you mean 'America/New_York'"),
    ("nonsense zone", set_key("p", "time_zone", value="Mars/Olympus_Mons"),
     "patients[0].time_zone", "'Mars/Olympus_Mons'", "IANA name"),
    ("path as zone", set_key("p", "time_zone", value="../../etc/passwd"),
     "patients[0].time_zone", "'../../etc/passwd'", "IANA name"),
    ("zone wrong type", set_key("p", "time_zone", value=2), "patients[0].time_zone", "2",
     "expected a string"),
    ("unknown language", set_key("p", "language", value="tlh"), "patients[0].language",
     "'tlh'", "en, de"),
    ("bad transport", set_key("bot", "transport", value="pigeon"), "bot.transport",
     "'pigeon'", "'console' or 'xmpp'"),
    ("duration no unit", set_key("m", "reask_interval", value="20"),
     "patients[0].medications[0].reask_interval", "'20'", "add a unit"),
    ("duration number", set_key("m", "reask_interval", value=20),
     "patients[0].medications[0].reask_interval", "20", "expected a string"),
    ("duration unknown unit", set_key("m", "reask_interval", value="5w"),
     "patients[0].medications[0].reask_interval", "'5w'", "use d, h, m or s"),
    ("duration zero", set_key("m", "reask_interval", value="0s"),
     "patients[0].medications[0].reask_interval", "'0s'", "not allowed"),
    ("duration negative", set_key("m", "late_window", value="-5m"),
     "patients[0].medications[0].late_window", "'-5m'", "negative"),
    ("duration fraction", set_key("m", "late_window", value="1.5h"),
     "patients[0].medications[0].late_window", "'1.5h'", "1h30m"),
    ("time out of range", set_key("m", "times", value=["25:00"]),
     "patients[0].medications[0].times[0]", "'25:00'", "HH:MM"),
    ("time twelve-hour", set_key("m", "times", value=["08:00", "8pm"]),
     "patients[0].medications[0].times[1]", "'8pm'", "24-hour"),
    ("time number", set_key("m", "times", value=[2000]),
     "patients[0].medications[0].times[0]", "2000", "expected a string"),
    ("times empty", set_key("m", "times", value=[]), "patients[0].medications[0].times", "[]",
     "at least one"),
    ("times duplicate", set_key("m", "times", value=["08:00", "08:00:00"]),
     "patients[0].medications[0].times", "'08:00'", "list each time once"),
    ("bad weekday", set_key("m", "weekdays", value=["monday"]),
     "patients[0].medications[0].weekdays[0]", "'monday'", "mon, tue"),
    ("every_days zero", set_key("m", "every_days", value=0),
     "patients[0].medications[0].every_days", "0", "from 1 to 366"),
    ("every_days without start", set_key("m", "every_days", value=2),
     "patients[0].medications[0].start", "", "add start"),
    ("bad start", set_key("m", "start", value="01.12.2026"),
     "patients[0].medications[0].start", "'01.12.2026'", "YYYY-MM-DD"),
    ("start with time", set_key("m", "start", value=datetime(2026, 12, 1, 8, 0)),
     "patients[0].medications[0].start", "datetime", "without a time"),
    ("asks zero", set_key("m", "asks", value=0), "patients[0].medications[0].asks", "0",
     "from 1 to 10"),
    ("asks eleven", set_key("m", "asks", value=11), "patients[0].medications[0].asks", "11",
     "from 1 to 10"),
    ("asks text", set_key("m", "asks", value="three"), "patients[0].medications[0].asks",
     "'three'", "expected an integer"),
    ("asks boolean", set_key("m", "asks", value=True), "patients[0].medications[0].asks",
     "True", "expected an integer"),
    ("unknown placeholder", set_key("m", "wording", value={"ask": ["Hi {nmae}"]}),
     "patients[0].medications[0].wording.ask[0]", "'Hi {nmae}'", "use {name}, {medication}"),
    ("positional placeholder", set_key("m", "wording", value={"praise": ["Hi {}"]}),
     "patients[0].medications[0].wording.praise[0]", "'Hi {}'", "{name}"),
    ("empty phrase", set_key("m", "wording", value={"reask": [" "]}),
     "patients[0].medications[0].wording.reask[0]", "' '", "must not be empty"),
    ("format spec", set_key("m", "wording", value={"give_up": ["{time:%H}"]}),
     "patients[0].medications[0].wording.give_up[0]", "'{time:%H}'", "use {name}"),
    ("duplicate patient id", twin_patient(address="other@example.org"), "patients[1].id",
     "'bob'", "patients[0] has the same value"),
    ("duplicate address", twin_patient(id="twin", address="BOB@example.org"),
     "patients[1].address", "'BOB@example.org'", "patients[0] has the same value"),
    ("duplicate medication id", twin_medication, "patients[0].medications[1].id",
     "'insulin'", "patients[0].medications[0] has the same value"),
    ("no patients", no_patients, "patients", "", "add at least one [[patients]]"),
    ("no medications", set_key("p", "medications", value=[]), "patients[0].medications", "",
     "[[patients.medications]]"),
    ("xmpp missing", xmpp_without_table, "xmpp", "", "missing [xmpp] table"),
    ("xmpp with console", xmpp_with_console, "xmpp", "", "remove the table"),
    ("jid missing", use_xmpp(jid=None), "xmpp.jid", "", "jid = \"medbot@example.org\""),
    ("jid with resource", use_xmpp(jid="medbot@example.org/home"), "xmpp.jid",
     "'medbot@example.org/home'", "resource key"),
    ("both passwords", use_xmpp(password_env="MEDBOT_PASSWORD"), "xmpp", "", "keep exactly one"),
    ("no password", use_xmpp(password_file=None), "xmpp", "", "password_env"),
    ("password file missing", use_xmpp(password_file="nowhere/password"), "xmpp.password_file",
     "'nowhere/password'", "file not found"),
    ("password file directory", password_directory, "xmpp.password_file", "'/",
     "not a regular file"),
    ("bad env name", use_xmpp(password_file=None, password_env="MY PASSWORD"),
     "xmpp.password_env", "'MY PASSWORD'", "MEDBOT_XMPP_PASSWORD"),
    ("ca file missing", use_xmpp(ca_file="missing-ca.pem"), "xmpp.ca_file", "'missing-ca.pem'",
     "file not found"),
    ("port zero", use_xmpp(port=0), "xmpp.port", "0", "from 1 to 65535"),
    ("port too large", use_xmpp(port=70000), "xmpp.port", "70000", "from 1 to 65535"),
    ("port text", use_xmpp(port="5222"), "xmpp.port", "'5222'", "expected an integer"),
    ("bad tls", use_xmpp(tls="maybe"), "xmpp.tls", "'maybe'", "'starttls', 'direct' or 'none'"),
    ("plaintext not allowed", use_xmpp(tls="none", host="127.0.0.1"), "xmpp.tls", "'none'",
     "allow_plaintext = true"),
    ("plaintext remote host", use_xmpp(tls="none", allow_plaintext=True, host="xmpp.example.org"),
     "xmpp.host", "'xmpp.example.org'", "loopback host"),
    ("plaintext no host", use_xmpp(tls="none", allow_plaintext=True), "xmpp.host", "None",
     "loopback host"),
    ("plaintext private address", use_xmpp(tls="none", allow_plaintext=True, host="10.0.0.1"),
     "xmpp.host", "'10.0.0.1'", "loopback host"),
]


@pytest.mark.parametrize(
    ("mutation", "key_path", "shown", "hint"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid(tmp_path: Path, mutation: Mutation, key_path: str, shown: str,
                 hint: str) -> None:
    document = base_document()
    mutation(document, tmp_path)
    path = write(tmp_path, document)
    message = load_error(path)
    line = next((line for line in message.splitlines() if line.strip().startswith(key_path)), "")
    assert str(path) in message.splitlines()[0]
    assert line, f"no line for {key_path} in:\n{message}"
    assert shown in line
    assert hint in line


def test_wording_lone_braces_allowed(tmp_path: Path) -> None:
    document = base_document()
    document["patients"][0]["medications"][0]["wording"] = {"ask": ["{name} :-{ {medication}"]}
    wording = load_config(write(tmp_path, document)).patients[0].medications[0].wording
    assert wording.ask == ("{name} :-{ {medication}",)


def test_never_fires(tmp_path: Path) -> None:
    document = base_document()
    document["patients"][0]["medications"][0].update(
        every_days=7, start="2026-12-01", weekdays=["mon"]
    )
    message = load_error(write(tmp_path, document))
    assert "patients[0].medications[0].weekdays" in message
    assert "never fires" in message
    assert "change weekdays, every_days or start" in message


def test_patient_address_with_resource(tmp_path: Path) -> None:
    document = base_document()
    use_xmpp()(document, tmp_path)
    document["patients"][0]["address"] = "bob@example.org/phone"
    message = load_error(write(tmp_path, document))
    assert "patients[0].address = 'bob@example.org/phone'" in message
    assert "without a resource" in message


def test_console_address_may_have_resource(tmp_path: Path) -> None:
    document = base_document()
    document["patients"][0]["address"] = "bob@example.org/phone"
    assert load_config(write(tmp_path, document)).patients[0].address == "bob@example.org/phone"


def test_several_problems_listed(tmp_path: Path) -> None:
    document = base_document()
    document["patients"][0]["language"] = "xx"
    document["patients"][0]["medications"][0]["asks"] = 0
    message = load_error(write(tmp_path, document))
    assert "(2 problems)" in message
    assert "patients[0].language" in message
    assert "patients[0].medications[0].asks" in message


def test_long_value_truncated(tmp_path: Path) -> None:
    document = base_document()
    document["patients"][0]["time_zone"] = "x" * 5000
    message = load_error(write(tmp_path, document))
    assert "x" * 70 + "..." in message
    assert "x" * 200 not in message


# --- Files that cannot be read or parsed ------------------------------------------------------


def test_file_missing(tmp_path: Path) -> None:
    message = load_error(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in message
    assert "not found" in message
    assert "examples/medbot.toml" in message


def test_file_is_directory(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert "is a directory" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_file_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, base_document())
    path.chmod(0)
    assert "cannot read" in load_error(path)


def test_invalid_toml_line_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[bot]\ntime_zone = "UTC"\n[patients\n')
    message = load_error(path)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 3" in message
    assert "column" in message


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "medbot.toml"
    path.write_bytes(b'[bot]\ntime_zone = "\xff\xfe"\n')
    message = load_error(path)
    assert "invalid UTF-8 at byte 19" in message
    assert "save the file as UTF-8" in message


# --- Secrets ----------------------------------------------------------------------------------

SECRET_PLACES = [
    set_key("password", value=SECRET),
    use_xmpp(password=SECRET),
    use_xmpp(token=SECRET),
    set_key("p", "secret", value=SECRET),
    set_key("bot", value={"password": SECRET}),
    set_key("p", "medications", value={"password": SECRET}),
]


@pytest.mark.parametrize("mutation", SECRET_PLACES)
def test_password_never_shown(tmp_path: Path, mutation: Mutation) -> None:
    document = base_document()
    mutation(document, tmp_path)
    message = load_error(write(tmp_path, document))
    assert SECRET not in message


def test_password_file_not_read(tmp_path: Path, password_file: Path) -> None:
    config = load_config(write(tmp_path, xmpp_document(password_file)))
    assert SECRET not in repr(config)


# --- describe_config --------------------------------------------------------------------------


def test_describe_example() -> None:
    text = describe_config(load_config(EXAMPLE), datetime(2026, 12, 4, 21, 0, tzinfo=UTC))
    assert "Patient bob (Bob)" in text
    assert "address: bob@example.org" in text
    assert "time zone: Europe/Berlin" in text
    assert "language: en" in text
    assert "caregiver: carol@example.org" in text
    assert "schedule: at 20:00 every day" in text
    assert "asks: 3, every 20m" in text
    assert "late window: 1h" in text
    assert "next due: 2026-12-05 20:00:00 CET (2026-12-05 19:00:00 UTC)" in text
    assert "schedule: at 08:30 on mon, thu" in text
    assert "next due: 2026-12-07 08:30:00 CET (2026-12-07 07:30:00 UTC)" in text


def test_describe_default_window(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base_document()))
    text = describe_config(config, datetime(2026, 12, 4, tzinfo=UTC))
    assert "late window: 1h (default: asks x interval)" in text
    assert "caregiver: none" in text


def test_describe_xmpp_hides_password(tmp_path: Path, password_file: Path) -> None:
    config = load_config(write(tmp_path, xmpp_document(password_file)))
    text = describe_config(config, datetime(2026, 12, 4, tzinfo=UTC))
    assert f"password from file {password_file}" in text
    assert SECRET not in text


# --- Junk never escapes as anything but ConfigError ------------------------------------------

KEYS = ["bot", "xmpp", "patients", "medications", "wording", "id", "name", "address",
        "language", "time_zone", "caregiver", "times", "weekdays", "every_days", "start",
        "reask_interval", "asks", "late_window", "ask", "transport", "database", "jid",
        "password_file", "password_env", "host", "port", "tls", "ca_file", "allow_plaintext",
        "resource", "x"]

scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["20m", "08:00", "UTC", "xmpp", "none", "en", "mon", "{name}", "/",
                     "127.0.0.1", "2026-12-01", "Europe/Berlin", "bob@example.org"]),
    st.dates(),
    st.times(),
)
junk_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=12,
)
junk_documents = st.dictionaries(st.sampled_from(KEYS), junk_values, max_size=5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(junk_documents)
def test_junk_documents(tmp_path: Path, document: Document) -> None:
    path = write(tmp_path, document)
    with contextlib.suppress(ConfigError):
        load_config(path)


toml_pieces = st.one_of(
    st.sampled_from([*'[]{}="\'.,#\n ', "[[patients]]", "[[patients.medications]]"]),
    st.sampled_from(KEYS),
    st.characters(exclude_categories=["Cs"]),
)
toml_text = st.lists(toml_pieces, max_size=40).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(toml_text)
def test_junk_text(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with contextlib.suppress(ConfigError):
        load_config(path)
