"""Reply understanding: what a patient's free text means, in English and German.

PLACEHOLDER: signatures only; the implementation replaces this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import time, timedelta


class ReplyKind(enum.Enum):
    CONFIRM = "confirm"
    SKIP = "skip"
    SNOOZE = "snooze"
    NEGATION = "negation"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reply:
    """A classified reply. A snooze carries either a delay or a local wall time, or neither
    (a bare "later" means one re-ask interval)."""

    kind: ReplyKind
    snooze_for: timedelta | None = None
    snooze_until: time | None = None


def classify(text: str, language: str) -> Reply:
    """Classify ``text`` from a patient whose configured language is ``language``."""
    raise NotImplementedError
