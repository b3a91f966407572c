"""The herd's plan (who falls due when), the send log, and the figures taken from it."""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Doses fall due on two consecutive whole seconds, so schedules written as HH:MM:SS can
# express every due instant of the herd.
WINDOW = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class HerdPlan:
    """N doses, dose ``i`` due at ``window_start + (i % 2)`` seconds."""

    size: int
    window_start: datetime

    @classmethod
    def starting_after(cls, size: int, lead: float) -> HerdPlan:
        """Plan a herd whose window opens on the first whole second at least ``lead`` s away."""
        earliest = datetime.now(UTC) + timedelta(seconds=lead)
        start = earliest.replace(microsecond=0) + timedelta(seconds=1)
        return cls(size=size, window_start=start)

    def due_at(self, index: int) -> datetime:
        return self.window_start + timedelta(seconds=index % 2)

    @property
    def window_end(self) -> datetime:
        return self.window_start + WINDOW


@dataclass(slots=True)
class SendLog:
    """Monotonic hand-over times of the herd's first asks, keyed by dose index.

    A clock pair taken at creation converts UTC due instants to the monotonic clock, so a
    wall-clock step during the run cannot distort the lag.
    """

    plan: HerdPlan
    handed_over: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    _wall_anchor: float = field(default_factory=time.time)
    _monotonic_anchor: float = field(default_factory=time.monotonic)

    def record(self, index: int) -> None:
        """Store the current monotonic time as the hand-over time of dose ``index``."""
        now = time.monotonic()
        if index in self.handed_over:
            self.duplicates += 1
            return
        self.handed_over[index] = now

    @property
    def complete(self) -> bool:
        return len(self.handed_over) >= self.plan.size

    def lags(self, deadline: datetime) -> tuple[list[float], int]:
        """Return the sorted lags in seconds of doses handed over by the UTC ``deadline``.

        Also returns how many doses were handed over after it. The harness checks the
        deadline only when the event loop is free, so a scheduler that blocks the loop
        can hand over more doses before the check runs. This filter drops those.
        """
        cutoff = self._to_monotonic(deadline)
        lags: list[float] = []
        late = 0
        for index, at in self.handed_over.items():
            if at > cutoff:
                late += 1
                continue
            lags.append(at - self._to_monotonic(self.plan.due_at(index)))
        lags.sort()
        return lags, late

    def _to_monotonic(self, instant: datetime) -> float:
        return self._monotonic_anchor + (instant.timestamp() - self._wall_anchor)


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of ascending values, or None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """The figures of one scenario at one herd size, as one subprocess measured them.

    ``lost`` counts doses whose first ask was not handed over by the deadline, and
    ``late`` those among them that were handed over after it.
    ``setup_s`` is the time to build and schedule the whole herd, and ``lead_s`` the
    planned time from process start to the window. ``setup_overran`` is true when setup
    ended less than ``MIN_IDLE_BEFORE_WINDOW`` before the window opened, which makes the
    lag figures meaningless. ``error`` describes why the scheduler stopped before the deadline.
    """

    scenario: str
    size: int
    handed_over: int
    lost: int
    late: int
    duplicates: int
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_max_s: float | None
    peak_rss_mib: float
    setup_s: float
    lead_s: float
    setup_overran: bool
    error: str | None = None


# Setup must end this long before the window opens, so the window measures a scheduler
# that is idle and waiting rather than one still busy materialising the herd.
MIN_IDLE_BEFORE_WINDOW = timedelta(seconds=1)


def summarise(
    scenario: str,
    log: SendLog,
    setup_s: float,
    lead_s: float,
    setup_done: datetime,
    deadline: datetime,
    error: str | None = None,
) -> ScenarioResult:
    """Turn a finished send log into the scenario's figures."""
    lags, late = log.lags(deadline)
    overran = setup_done > log.plan.window_start - MIN_IDLE_BEFORE_WINDOW
    return ScenarioResult(
        scenario=scenario,
        size=log.plan.size,
        handed_over=len(lags),
        lost=log.plan.size - len(lags),
        late=late,
        duplicates=log.duplicates,
        lag_p50_s=percentile(lags, 0.50),
        lag_p99_s=percentile(lags, 0.99),
        lag_max_s=lags[-1] if lags else None,
        peak_rss_mib=peak_rss_mib(),
        setup_s=setup_s,
        lead_s=lead_s,
        setup_overran=overran,
        error=error,
    )
