from __future__ import annotations

from datetime import time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medbot.core.replies import MAX_REPLY_LENGTH, Reply, ReplyKind, classify

CONFIRM = Reply(ReplyKind.CONFIRM)
SKIP = Reply(ReplyKind.SKIP)
LATER = Reply(ReplyKind.SNOOZE)
NEGATION = Reply(ReplyKind.NEGATION)
UNKNOWN = Reply(ReplyKind.UNKNOWN)


def snooze_for(minutes: int) -> Reply:
    return Reply(ReplyKind.SNOOZE, snooze_for=timedelta(minutes=minutes))


def snooze_until(hour: int, minute: int = 0, *, either_half_day: bool = False) -> Reply:
    return Reply(ReplyKind.SNOOZE, snooze_until=time(hour, minute), either_half_day=either_half_day)


CASES: list[tuple[str, str, Reply]] = [
    # Confirmations, English.
    ("yes", "en", CONFIRM),
    ("Yes", "en", CONFIRM),
    ("YES!", "en", CONFIRM),
    ("y", "en", CONFIRM),
    ("yep", "en", CONFIRM),
    ("yeah", "en", CONFIRM),
    ("yup.", "en", CONFIRM),
    ("done", "en", CONFIRM),
    ("taken", "en", CONFIRM),
    ("took it", "en", CONFIRM),
    ("I took it", "en", CONFIRM),
    ("i took it, thanks", "en", CONFIRM),
    ("ok done", "en", CONFIRM),
    ("Okay, done!", "en", CONFIRM),
    ("I've taken it", "en", CONFIRM),
    ("I\u2019ve taken it", "en", CONFIRM),
    ("yes thank you", "en", CONFIRM),
    ("yes, just took it", "en", CONFIRM),
    ("yesss", "en", CONFIRM),
    ("yeahhh", "en", CONFIRM),
    ("\U0001f44d", "en", CONFIRM),
    ("\U0001f44d\U0001f3fd", "en", CONFIRM),
    ("\U0001f44d\U0001f3ff", "de", CONFIRM),
    ("\u2705", "en", CONFIRM),
    ("\u2714\ufe0f", "en", CONFIRM),
    ("done \U0001f48a\U0001f44d", "en", CONFIRM),
    ("\uff59\uff45\uff53", "en", CONFIRM),  # full-width letters, folded by NFKC
    ("I did it", "en", CONFIRM),
    ("yes I have", "en", CONFIRM),
    ("i have", "en", CONFIRM),
    ("Yes I have, thanks", "en", CONFIRM),
    ("ive taken them", "en", CONFIRM),
    ("I\u2019ve taken them", "en", CONFIRM),
    ("took my insulin", "en", CONFIRM),
    ("took my meds", "en", CONFIRM),
    ("took my pills", "en", CONFIRM),
    ("I took my tablets", "en", CONFIRM),
    ("taken my medication", "en", CONFIRM),
    ("all done", "en", CONFIRM),
    ("yes done", "en", CONFIRM),
    ("done it", "en", CONFIRM),
    ("injected", "en", CONFIRM),
    # Confirmations, German, and mixed languages.
    ("ja", "de", CONFIRM),
    ("Ja!", "de", CONFIRM),
    ("jo", "de", CONFIRM),
    ("jap", "de", CONFIRM),
    ("erledigt", "de", CONFIRM),
    ("genommen", "de", CONFIRM),
    ("Hab ich genommen", "de", CONFIRM),
    ("hab ich genommen, danke", "de", CONFIRM),
    ("ja danke schön", "de", CONFIRM),
    ("schon genommen", "de", CONFIRM),
    ("gespritzt", "de", CONFIRM),
    ("hab gespritzt", "de", CONFIRM),
    ("ich habe gespritzt", "de", CONFIRM),
    ("ich hab es gespritzt", "de", CONFIRM),
    ("hab's gespritzt", "de", CONFIRM),
    ("hab sie genommen", "de", CONFIRM),
    ("hab meine Tabletten genommen", "de", CONFIRM),
    ("ja klar", "de", CONFIRM),
    ("ja, hab ich", "de", CONFIRM),
    ("gespritzt", "en", CONFIRM),
    ("jaaa", "de", CONFIRM),
    ("ja", "en", CONFIRM),
    ("yes", "de", CONFIRM),
    ("ok erledigt", "en", CONFIRM),
    # Skips.
    ("skip", "en", SKIP),
    ("Skip today", "en", SKIP),
    ("not today", "en", SKIP),
    ("no, not today", "en", SKIP),
    ("skipping", "en", SKIP),
    ("skip this one", "en", SKIP),
    ("auslassen", "de", SKIP),
    ("heute nicht", "de", SKIP),
    ("Heute nicht, danke", "de", SKIP),
    ("überspringen", "de", SKIP),
    ("nein, heute nicht", "de", SKIP),
    ("heute nicht", "en", SKIP),
    ("no, skip it", "en", SKIP),
    ("not yet, skip it", "en", SKIP),
    # A negated skip keeps the dose open.
    ("don't skip", "en", NEGATION),
    ("dont skip it", "en", NEGATION),
    ("didn't skip", "en", NEGATION),
    ("I didn't skip", "en", NEGATION),
    ("never skip", "en", NEGATION),
    ("do not skip", "en", NEGATION),
    ("please don't skip it", "en", NEGATION),
    ("don't skip today", "en", NEGATION),
    ("nicht auslassen", "de", NEGATION),
    ("nicht überspringen", "de", NEGATION),
    ("bitte nicht auslassen", "de", NEGATION),
    ("noch nicht auslassen", "de", NEGATION),
    ("heute nicht auslassen", "de", NEGATION),
    ("nicht auslassen", "en", NEGATION),
    ("don't skip", "de", NEGATION),
    ("don't skip it, later", "en", LATER),
    ("don't skip, in 10 min", "en", snooze_for(10)),
    ("nicht auslassen, später", "de", LATER),
    ("don't skip, not today", "en", UNKNOWN),
    ("don't skip, done", "en", NEGATION),
    # Snoozes.
    ("later", "en", LATER),
    ("Later please", "en", LATER),
    ("snooze", "en", LATER),
    ("remind me later", "en", LATER),
    ("not yet, later", "en", LATER),
    ("snooze 15", "en", snooze_for(15)),
    ("snooze 15 min", "en", snooze_for(15)),
    ("in 10 min", "en", snooze_for(10)),
    ("in 10min", "en", snooze_for(10)),
    ("in 1 hour", "en", snooze_for(60)),
    ("in 2 hours", "en", snooze_for(120)),
    ("in an hour", "en", snooze_for(60)),
    ("in half an hour", "en", snooze_for(30)),
    ("20 minutes", "en", snooze_for(20)),
    ("remind me at 21:00", "en", snooze_until(21)),
    ("at 9pm", "en", snooze_until(21)),
    ("at 9 p.m.", "en", snooze_until(21)),
    ("at 9:30pm", "en", snooze_until(21, 30)),
    ("at 12am", "en", snooze_until(0)),
    ("at 9", "en", snooze_until(9, either_half_day=True)),
    ("at 09:00", "en", snooze_until(9)),
    ("später", "de", LATER),
    ("spaeter", "de", LATER),
    ("in 10 minuten", "de", snooze_for(10)),
    ("in einer halben Stunde", "de", snooze_for(30)),
    ("in 2 Stunden", "de", snooze_for(120)),
    ("um 21 uhr", "de", snooze_until(21)),
    ("um 21:00", "de", snooze_until(21)),
    ("um 21.30 Uhr", "de", snooze_until(21, 30)),
    ("erinnere mich um 21 Uhr", "de", snooze_until(21)),
    ("noch nicht, später", "de", LATER),
    ("später", "en", LATER),
    # Snoozes that do not parse.
    ("at 25:00", "en", UNKNOWN),
    ("at 13pm", "en", UNKNOWN),
    ("in 0 min", "en", UNKNOWN),
    ("in 5000 hours", "en", UNKNOWN),
    ("in 10", "en", UNKNOWN),
    ("in 10 min at 9pm", "en", UNKNOWN),
    # Negations.
    ("no", "en", NEGATION),
    ("No.", "en", NEGATION),
    ("nope", "en", NEGATION),
    ("nooo", "en", NEGATION),
    ("not yet", "en", NEGATION),
    ("Not yet, thanks", "en", NEGATION),
    ("I forgot", "en", NEGATION),
    ("nein", "de", NEGATION),
    ("noch nicht", "de", NEGATION),
    ("nee", "de", NEGATION),
    ("nein danke", "de", NEGATION),
    ("\U0001f44e", "en", NEGATION),
    ("\U0001f44e\U0001f3fe", "en", NEGATION),
    ("\u274c", "de", NEGATION),
    # Things that must not count as a yes.
    ("no yes", "en", NEGATION),
    ("yes no", "en", NEGATION),
    ("not done", "en", NEGATION),
    ("yes but not now", "en", NEGATION),
    ("didn't take it", "en", NEGATION),
    ("nicht genommen", "de", NEGATION),
    ("noch nicht genommen", "de", NEGATION),
    ("ja, aber noch nicht", "de", NEGATION),
    ("yes \u274c", "en", NEGATION),
    ("\u2705\u274c", "en", NEGATION),
    ("\U0001f44d\U0001f44e", "en", NEGATION),
    ("\U0001f44d\U0001f3fd\U0001f44e\U0001f3ff", "en", NEGATION),
    ("yes \U0001f6ab", "en", NEGATION),
    ("done \u2716\ufe0f", "en", NEGATION),
    ("done \u2716", "en", NEGATION),
    ("ja \u274e", "de", NEGATION),
    ("I have not", "en", NEGATION),
    ("haven't taken it", "en", NEGATION),
    ("I have not taken them", "en", NEGATION),
    ("didn't take my insulin", "en", NEGATION),
    ("I did not take my pills", "en", NEGATION),
    ("hab nicht gespritzt", "de", NEGATION),
    ("noch nicht gespritzt", "de", NEGATION),
    ("nicht gespritzt", "de", NEGATION),
    ("ich habe es nicht genommen", "de", NEGATION),
    ("yesterday I forgot", "en", UNKNOWN),
    ("yes? what do you mean", "en", UNKNOWN),
    ("yes?", "en", UNKNOWN),
    ("ja? was meinst du", "de", UNKNOWN),
    ("ja\uff1f", "de", UNKNOWN),  # full-width question mark
    ("jahrelang", "de", UNKNOWN),
    ("yes later", "en", UNKNOWN),
    ("done, skip", "en", UNKNOWN),
    ("skip later", "en", UNKNOWN),
    ("eyes", "en", UNKNOWN),
    ("yesno", "en", UNKNOWN),
    ("take my insulin", "en", UNKNOWN),
    ("my insulin", "en", UNKNOWN),
    ("it", "en", UNKNOWN),
    ("ive", "en", UNKNOWN),
    ("hab", "de", UNKNOWN),
    ("ich habe es", "de", UNKNOWN),
    ("I have a question", "en", UNKNOWN),
    ("took my insulin?", "en", UNKNOWN),
    ("took my car", "en", UNKNOWN),
    # Greetings and politeness alone are no answer.
    ("ok", "en", UNKNOWN),
    ("thanks", "en", UNKNOWN),
    ("danke", "de", UNKNOWN),
    ("", "en", UNKNOWN),
    ("   ", "de", UNKNOWN),
    ("!!!", "en", UNKNOWN),
    ("what is this", "en", UNKNOWN),
    ("Was soll das", "de", UNKNOWN),
    # Language tags and unknown languages.
    ("ja", "de-AT", CONFIRM),
    ("nein", "de_DE", NEGATION),
    ("yes", "fr", CONFIRM),
    ("ja", "fr", CONFIRM),
]


@pytest.mark.parametrize(("text", "language", "expected"), CASES)
def test_classify_table(text: str, language: str, expected: Reply) -> None:
    assert classify(text, language) == expected


def test_classify_table_size() -> None:
    assert len(CASES) >= 80


def test_classify_overlong_is_unknown() -> None:
    assert classify("yes " * MAX_REPLY_LENGTH, "en") == UNKNOWN


def test_classify_megabyte_string() -> None:
    assert classify("y" * 1_000_000, "en") == UNKNOWN


def test_classify_expanding_normalisation() -> None:
    # U+FDFA expands to 18 characters under NFKC.
    assert classify("\ufdfa" * MAX_REPLY_LENGTH, "en") == UNKNOWN


@given(st.text(max_size=400), st.sampled_from(["en", "de", "fr", "", "de-CH"]))
@settings(max_examples=400)
def test_classify_never_raises(text: str, language: str) -> None:
    assert isinstance(classify(text, language), Reply)


@given(st.text(min_size=MAX_REPLY_LENGTH + 1, max_size=2_000))
def test_classify_long_input_unknown(text: str) -> None:
    assert classify(text, "en") == UNKNOWN


@given(st.lists(st.sampled_from(["yes", "ja", "done", "genommen", "ok", "thanks"]), min_size=1))
def test_classify_question_never_confirms(words: list[str]) -> None:
    assert classify(" ".join(words) + "?", "en").kind is not ReplyKind.CONFIRM


@given(
    st.lists(st.sampled_from(["yes", "ja", "done", "genommen", "ok"]), min_size=1, max_size=5),
    st.sampled_from(["no", "not", "nein", "nicht", "noch nicht", "not yet"]),
    st.integers(min_value=0, max_value=5),
)
def test_classify_negation_beats_confirm(words: list[str], negation: str, at: int) -> None:
    words.insert(min(at, len(words)), negation)
    assert classify(" ".join(words), "de").kind is ReplyKind.NEGATION


@given(
    st.sampled_from(["not", "don't", "do not", "didn't", "never", "nicht", "noch nicht", "nie"]),
    st.sampled_from(["skip", "skip it", "skip today", "auslassen", "überspringen"]),
    st.sampled_from(["", "please", "bitte", "ok"]),
)
def test_classify_negated_skip_not_skip(negator: str, skip: str, filler: str) -> None:
    text = f"{filler} {negator} {skip}"
    assert classify(text, "en").kind is ReplyKind.NEGATION
    assert classify(text, "de").kind is ReplyKind.NEGATION


CROSS_EMOJI = ["\u274c", "\u274e", "\U0001f44e", "\U0001f44e\U0001f3fb", "\U0001f6ab", "\u2716"]


@given(
    st.lists(st.sampled_from(["yes", "ja", "done", "\u2705", "\U0001f44d"]), min_size=1),
    st.sampled_from(CROSS_EMOJI),
)
def test_classify_cross_emoji_beats_confirm(words: list[str], cross: str) -> None:
    assert classify(" ".join([*words, cross]), "en").kind is ReplyKind.NEGATION
