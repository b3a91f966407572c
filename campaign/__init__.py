"""A repeatable fault and hostile-input campaign against a real ``medbot run``.

Each section starts its own servers on loopback (Prosody, the bot, scripted chat
clients), injects one family of faults, and checks what the patient received against
what the schedule and the replies should have produced. ``python -m campaign --short``
is the bounded version that the test suite runs; ``--long`` is the one whose figures
docs/reliability.md records.
"""
