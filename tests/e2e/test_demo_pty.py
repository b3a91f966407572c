"""``medbot demo`` driven through a pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import sys

import pexpect
import pytest

# At 1200 times real speed a 20-minute re-ask interval takes one real second.
DEMO = [sys.executable, "-m", "medbot", "demo", "--speed", "1200", "--log-level", "debug"]
TIMEOUT = 15

pytestmark = pytest.mark.slow


def spawn_demo() -> pexpect.spawn:
    child = pexpect.spawn(DEMO[0], DEMO[1:], encoding="utf-8", timeout=TIMEOUT)
    child.expect("Answer as Bob")
    return child


def test_demo_praises_yes() -> None:
    child = spawn_demo()
    child.expect(r"sent bob/insulin/\S+/ask-1 ")
    child.expect(r"sent bob/insulin/\S+/reask-2 ")
    child.sendline("yes")
    child.expect(r"sent bob/insulin/\S+/praise ")
    child.expect(r"Recorded in the database: dose due \d\d:\d\d is taken after 2 ask")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_demo_gives_up_unanswered() -> None:
    child = spawn_demo()
    child.expect(r"sent \S+/ask-1 ")
    child.expect(r"sent \S+/reask-2 ")
    child.expect(r"sent \S+/reask-3 ")
    child.expect(r"sent \S+/give-up ")
    child.expect(r"is missed after 3 ask")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_demo_ends_on_eof() -> None:
    child = spawn_demo()
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
