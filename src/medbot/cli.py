"""The ``medbot`` command line: check, run, demo, upcoming and history.

This is the only module that configures logging, and the boundary where a MedbotError
becomes one message on stderr and a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from medbot import __version__, reports
from medbot.config import (
    Config,
    TransportKind,
    default_database,
    describe_config,
    load_config,
)
from medbot.core.durations import DurationError, parse_duration
from medbot.core.models import Cycle
from medbot.demo import DemoSettings, run_demo
from medbot.errors import ConfigError, MedbotError
from medbot.runtime.clock import Clock, SystemClock
from medbot.runtime.service import Service
from medbot.store.sqlite import SqliteStore
from medbot.transports.base import Transport
from medbot.transports.console import ConsoleTransport
from medbot.transports.xmpp import AccountReport, XmppTransport, check_account

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

EXIT_CONFIG_ERROR = 2
EXIT_ERROR = 1
LOG_LEVELS = ("debug", "info", "warning", "error")


def _boundary(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn a MedbotError into one line on stderr and an exit status, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            click.echo(f"medbot: {error}", err=True)
            raise SystemExit(EXIT_CONFIG_ERROR) from None
        except MedbotError as error:
            click.echo(f"medbot: {error}", err=True)
            raise SystemExit(EXIT_ERROR) from None

    return wrapper


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Path of the TOML configuration file.",
)


@click.group()
@click.version_option(__version__, prog_name="medbot")
def cli() -> None:
    """medbot: a friendly, self-hosted medication-reminder chat bot."""


@cli.command()
@_config_option
@click.option(
    "--offline", is_flag=True, help="Only validate the file; skip the login to the chat account."
)
@_boundary
def check(config_path: Path, offline: bool) -> None:
    """Validate the configuration and print what it sets up.

    With the xmpp transport it also logs in once and shows whether each patient and
    caregiver has accepted the bot as a contact.
    """
    config = load_config(config_path)
    click.echo(describe_config(config, datetime.now(UTC)))
    if config.xmpp is not None and not offline:
        report = asyncio.run(check_account(config.xmpp, _contact_addresses(config)))
        click.echo(_describe_account(report))


def _contact_addresses(config: Config) -> list[str]:
    caregivers = [p.caregiver for p in config.patients if p.caregiver is not None]
    return [*(p.address for p in config.patients), *caregivers]


def _describe_account(report: AccountReport) -> str:
    lines = [f"XMPP login: ok, as {report.jid}", "Contacts:"]
    lines += [f"  {status.address}: {status.state.value}" for status in report.contacts]
    return "\n".join(lines)


@cli.command()
@_config_option
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Lowest level of the log lines written to stderr.",
)
@_boundary
def run(config_path: Path, log_level: str) -> None:
    """Run the bot until SIGTERM or Ctrl-C.

    With the console transport, each line on stdin is a reply. With several patients,
    start a line with a patient id and a colon (bob: yes); any other line is the first
    patient's reply.
    """
    _configure_logging(log_level)
    config = load_config(config_path)
    raise SystemExit(asyncio.run(_run_service(config)))


async def _run_service(config: Config) -> int:
    clock = SystemClock()
    # Only the default data directory is created. A configured path in a missing
    # directory is more likely a typo, so it fails with a clear error instead.
    store = SqliteStore(config.database, create_parent=config.database == default_database())
    service = Service(config, store, _build_transport(config, clock), clock)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, service.stop)
    return await service.run()


def _build_transport(config: Config, clock: Clock) -> Transport:
    if config.transport is TransportKind.CONSOLE:
        return ConsoleTransport(config.patients, clock)
    if config.xmpp is None:
        raise ConfigError(f"{config.source}: the xmpp transport needs an [xmpp] section")
    caregivers = [p.caregiver for p in config.patients if p.caregiver is not None]
    return XmppTransport(config.xmpp, [p.address for p in config.patients], caregivers)


def _parse_interval(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as error:
        raise click.BadParameter(str(error)) from None


@cli.command()
@click.option(
    "--speed",
    type=click.FloatRange(min=1, max=100_000),
    default=60.0,
    show_default=True,
    help="How many times faster than real time the demo clock runs.",
)
@click.option(
    "--language",
    type=click.Choice(["en", "de"]),
    default="en",
    show_default=True,
    help="Language of the messages and of the replies understood.",
)
@click.option(
    "--asks",
    type=click.IntRange(min=1, max=10),
    default=3,
    show_default=True,
    help="Number of asks before the give-up message.",
)
@click.option(
    "--interval",
    default="20m",
    show_default=True,
    callback=_parse_interval,
    help="Demo time between asks, such as 20m or 1h30m.",
)
@click.option("--loop", is_flag=True, help="Keep going with the next day's dose.")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    help="Lowest level of the log lines written to stderr.",
)
@_boundary
def demo(
    speed: float, language: str, asks: int, interval: timedelta, loop: bool, log_level: str
) -> None:
    """Try one dose conversation in the terminal, with time running faster.

    Needs no configuration and leaves nothing behind: the database lives in a temporary
    directory that is removed at the end. Type your replies as the patient, Bob.
    """
    _configure_logging(log_level)
    settings = DemoSettings(speed=speed, language=language, asks=asks, interval=interval, loop=loop)
    raise SystemExit(asyncio.run(run_demo(settings)))


@cli.command()
@_config_option
@click.option("--patient", "patient_id", help="Show only this patient id.")
@click.option(
    "--from",
    "start_text",
    help="Start time in ISO 8601, such as 2026-12-24T08:00; without an offset it is in"
    " the configuration's default zone. Default: now.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1, max=10_000),
    default=10,
    show_default=True,
    help="Number of doses to list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@_boundary
def upcoming(
    config_path: Path, patient_id: str | None, start_text: str | None, count: int, as_json: bool
) -> None:
    """List the next dose times, in local time and in UTC."""
    config = load_config(config_path)
    _require_patient(config, patient_id)
    start = _parse_start(start_text, config)
    doses = reports.upcoming_doses(config, patient_id, start, count)
    click.echo(reports.upcoming_json(doses) if as_json else reports.format_upcoming(doses))


def _parse_start(text: str | None, config: Config) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"invalid time {text!r}; use ISO 8601, such as 2026-12-24T08:00",
            param_hint="--from",
        ) from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=config.default_zone)
    return start.astimezone(UTC)


def _require_patient(config: Config, patient_id: str | None) -> None:
    if patient_id is None or config.patient(patient_id) is not None:
        return
    known = ", ".join(patient.id for patient in config.patients)
    raise click.BadParameter(
        f"patient {patient_id!r} not found in {config.source}; configured: {known}",
        param_hint="--patient",
    )


@cli.command()
@_config_option
@click.option("--patient", "patient_id", help="Show only this patient id.")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=36_500),
    default=7,
    show_default=True,
    help="Number of days back from now.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@_boundary
def history(config_path: Path, patient_id: str | None, days: int, as_csv: bool) -> None:
    """Show the outcome of each dose: taken, skipped or missed, and how fast."""
    config = load_config(config_path)
    _require_patient(config, patient_id)
    if not config.database.exists():
        click.echo(f"medbot: no history yet: {config.database} does not exist", err=True)
        return
    since = datetime.now(UTC) - timedelta(days=days)
    cycles = asyncio.run(_load_history(config, patient_id, since))
    if as_csv:
        click.echo(reports.history_csv(config, cycles), nl=False)
    else:
        click.echo(reports.format_history(config, cycles))


async def _load_history(config: Config, patient_id: str | None, since: datetime) -> list[Cycle]:
    store = SqliteStore(config.database)
    await store.open()
    try:
        return await store.history(patient_id, since)
    finally:
        await store.close()


def main() -> None:
    """Entry point of the ``medbot`` console script."""
    cli()
