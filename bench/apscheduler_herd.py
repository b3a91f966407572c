"""The herd on APScheduler 3.x: one DateTrigger job per dose on an AsyncIOScheduler.

It is the baseline. Each job is a coroutine that records its run time, so the
AsyncIOExecutor runs it on the event loop rather than in a thread pool.
"""

from __future__ import annotations

import asyncio
import enum
import time
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from bench.measure import HerdPlan, ScenarioResult, SendLog, summarise
from bench.waiting import deadline_after, wait_until


class Grace(enum.Enum):
    """The misfire grace time of every job.

    APScheduler 3.x skips a run that starts more than ``misfire_grace_time`` seconds
    after its due instant. The default is 1 s (``BaseScheduler._configure`` in 3.11.3).
    """

    DEFAULT = "default"
    UNLIMITED = "unlimited"


async def run_herd(
    scenario: str, plan: HerdPlan, grace: Grace, lead: float, deadline_grace: float
) -> ScenarioResult:
    """Schedule one job per dose, wait for the window and the deadline, and summarise."""
    log = SendLog(plan)
    missed: list[str] = []
    setup_started = time.monotonic()

    scheduler = _build_scheduler(grace)
    scheduler.add_listener(lambda event: _count_missed(event, missed), EVENT_JOB_MISSED)
    for index in range(plan.size):
        scheduler.add_job(
            _record_run, DateTrigger(run_date=plan.due_at(index)), args=(log, index)
        )
    scheduler.start()

    setup_s = time.monotonic() - setup_started
    setup_done = datetime.now(UTC)

    def settled() -> bool:
        return len(log.handed_over) + len(missed) >= plan.size

    deadline = deadline_after(plan.window_end, deadline_grace)
    await wait_until(settled, deadline)
    scheduler.shutdown(wait=False)
    # shutdown() is queued on the loop; one pass lets it run before the loop closes.
    await asyncio.sleep(0)
    return summarise(scenario, log, setup_s, lead, setup_done, deadline)


def _build_scheduler(grace: Grace) -> AsyncIOScheduler:
    if grace is Grace.UNLIMITED:
        return AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None})
    return AsyncIOScheduler(timezone=UTC)


async def _record_run(log: SendLog, index: int) -> None:
    log.record(index)


def _count_missed(event: JobExecutionEvent, missed: list[str]) -> None:
    missed.append(event.job_id)
