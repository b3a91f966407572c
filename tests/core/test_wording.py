from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from medbot.core.models import Wording
from medbot.core.wording import (
    CATALOG,
    LANGUAGES,
    Text,
    choose_index,
    fill,
    render,
    translations,
)

LOCALE = Path(resources.files("medbot").joinpath("locale"))  # type: ignore[arg-type]
VALUES = {"name": "Bob", "medication": "insulin", "time": "20:00"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def read_catalog(language: str) -> Catalog:
    with (LOCALE / language / "LC_MESSAGES" / "medbot.po").open("rb") as po_file:
        return read_po(po_file, locale=language)


def entries(catalog: Catalog) -> dict[str, str]:
    return {str(message.id): str(message.string) for message in catalog if message.id}


@pytest.mark.parametrize("language", LANGUAGES)
def test_mo_matches_po(language: str, tmp_path: Path) -> None:
    compiled = tmp_path / "medbot.mo"
    with compiled.open("wb") as mo_file:
        write_mo(mo_file, read_catalog(language))
    committed = LOCALE / language / "LC_MESSAGES" / "medbot.mo"
    with compiled.open("rb") as fresh, committed.open("rb") as stored:
        assert entries(read_mo(fresh)) == entries(read_mo(stored))


@pytest.mark.parametrize("language", LANGUAGES)
def test_po_covers_source(language: str) -> None:
    translated = entries(read_catalog(language))
    for message in (message for messages in CATALOG.values() for message in messages):
        assert translated.get(message), f"{language}: no translation for {message!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_po_has_no_stale_entries(language: str) -> None:
    source = {message for messages in CATALOG.values() for message in messages}
    assert set(entries(read_catalog(language))) == source


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_keeps_placeholders(language: str) -> None:
    for message_id, message in entries(read_catalog(language)).items():
        assert set(PLACEHOLDER.findall(message)) == set(PLACEHOLDER.findall(message_id))


@pytest.mark.parametrize("text", [Text.ASK, Text.REASK, Text.PRAISE, Text.GIVE_UP])
def test_variant_kinds_have_four(text: Text) -> None:
    assert len(CATALOG[text]) >= 4


def test_german_translation_loaded() -> None:
    phrase = render(Text.SNOOZE_ACK, "de", VALUES)
    assert phrase.text == "Klar, Bob. Ich frage um 20:00 noch einmal."


@pytest.mark.parametrize("language", ["fr", "", "xx-YY", "../../etc"])
def test_unknown_language_falls_back(language: str) -> None:
    assert render(Text.SNOOZE_ACK, language, VALUES).text == "Sure, Bob. I'll ask again at 20:00."


@pytest.mark.parametrize("language", ["de-AT", "de_DE", "DE"])
def test_language_tag_variants(language: str) -> None:
    assert translations(language) is translations("de")


def test_render_is_deterministic() -> None:
    first = render(Text.ASK, "en", VALUES, seed="bob/insulin/x/ask-1")
    assert render(Text.ASK, "en", VALUES, seed="bob/insulin/x/ask-1") == first


@given(st.text(), st.integers(min_value=0, max_value=3))
def test_choice_avoids_last(seed: str, avoid: int) -> None:
    assert choose_index(4, seed, avoid) != avoid


@given(st.text())
def test_choice_single_phrasing(seed: str) -> None:
    assert choose_index(1, seed, 0) == 0


def test_custom_wording_not_translated() -> None:
    custom = Wording(praise=("Well done, {name}!",))
    assert render(Text.PRAISE, "de", VALUES, custom=custom).text == "Well done, Bob!"


def test_custom_wording_other_kinds_use_catalog() -> None:
    custom = Wording(praise=("Well done, {name}!",))
    text = render(Text.ASK, "en", VALUES, custom=custom, seed="s").text
    assert text in [fill(message, VALUES) for message in CATALOG[Text.ASK]]


def test_fill_keeps_stray_braces() -> None:
    assert fill("{name} {unknown} {", VALUES) == "Bob {unknown} {"


def test_mo_has_every_entry() -> None:
    data = (LOCALE / "de" / "LC_MESSAGES" / "medbot.mo").read_bytes()
    catalog = read_mo(io.BytesIO(data))
    assert len(entries(catalog)) == sum(len(messages) for messages in CATALOG.values())
