"""Shared state of one campaign run: sizes, seed, scratch space and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Profile:
    """How much of each fault a run injects; ``SHORT`` fits in CI, ``LONG`` is run by hand."""

    name: str
    bad_configs: int  # random configurations on top of the fixed cases
    bad_config_both: bool  # give every case to both check and run, not one of them
    crash_kills: int
    long_stops: int  # kills after which the bot stays down past the late window
    crash_minutes: float
    server_faults: int
    freezes: int
    fuzz_messages: int
    megabyte_bodies: int


SHORT = Profile(
    "short",
    bad_configs=4,
    bad_config_both=False,
    crash_kills=8,
    long_stops=1,
    crash_minutes=0.75,
    server_faults=3,
    freezes=1,
    fuzz_messages=1000,
    megabyte_bodies=2,
)
LONG = Profile(
    "long",
    bad_configs=150,
    bad_config_both=True,
    crash_kills=120,
    long_stops=8,
    crash_minutes=10.0,
    server_faults=24,
    freezes=2,
    fuzz_messages=10_000,
    megabyte_bodies=10,
)


@dataclass(slots=True)
class Evidence:
    """Logs, databases, secrets and bodies that the privacy checks read at the end."""

    bot_logs: list[Path] = field(default_factory=list)
    databases: list[Path] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    bodies: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Campaign:
    profile: Profile
    seed: int
    workdir: Path
    evidence: Evidence = field(default_factory=Evidence)

    def directory(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
