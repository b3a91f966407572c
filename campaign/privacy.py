"""Privacy checks: secrets and message bodies kept out of logs, a private database file."""

from __future__ import annotations

import stat
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign.context import Campaign
from campaign.results import SectionResult

# Shorter needles match ordinary log words ("yes", "ok") by chance, so only texts at
# least this long are searched for.
MIN_NEEDLE = 8


def find_leaks(log_text: str, needles: Iterable[str]) -> list[str]:
    """Return each needle of at least MIN_NEEDLE characters that occurs in ``log_text``."""
    leaks = []
    for needle in dict.fromkeys(needles):
        stripped = needle.strip()
        if len(stripped) >= MIN_NEEDLE and stripped in log_text:
            leaks.append(stripped)
    return leaks


def check_log_privacy(
    result: SectionResult, log_text: str, secrets: Iterable[str], bodies: Iterable[str]
) -> None:
    """Record that no secret and no message body appears in the bot's log."""
    secret_leaks = find_leaks(log_text, secrets)
    result.check("log has no secret", not secret_leaks, f"{len(secret_leaks)} secrets in the log")
    body_list = list(bodies)
    body_leaks = find_leaks(log_text, body_list)
    result.figures.setdefault("bodies_searched_in_log", 0)
    result.figures["bodies_searched_in_log"] = len(body_list)
    result.check(
        "log has no message body",
        not body_leaks,
        f"{len(body_leaks)} bodies in the log, first: {_preview(body_leaks)}",
    )


def _preview(texts: list[str]) -> str:
    return repr(texts[0][:80]) if texts else ""


def check_private_file(result: SectionResult, path: Path) -> None:
    """Record that ``path`` exists and only its owner may read or write it (mode 0600)."""
    if not path.exists():
        result.check(f"{path.name} exists", False, f"{path} not found")
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    result.check(f"{path.name} is mode 0600", mode == 0o600, f"mode is {mode:04o}")


def _tls_refusal(result: SectionResult, root: Path) -> None:
    """Start the bot against the self-signed test server without trusting its CA."""
    # Imported here so the log checks above stay usable without a chat server.
    from campaign import configs
    from campaign.bot import run_medbot
    from campaign.world import start_world

    world = start_world(root / "prosody", 1)
    try:
        due = datetime.now(UTC) + timedelta(hours=2)
        medication = configs.MedicationPlan("m", "Medication", (due,), timedelta(minutes=20), 3)
        plan = configs.PatientPlan("p1", "Pat", world.server.jid("patient1"), (medication,))
        target = world.target(trust_ca=False)
        document = configs.bot_config(root / "medbot.sqlite3", target, (plan,))
        config = configs.write_config(root / "untrusted.toml", document)
        outcome = run_medbot(["run", "--config", str(config)], cwd=root, timeout=40)
    finally:
        world.stop()
    text = (outcome.stderr + outcome.stdout).strip()
    result.check("untrusted certificate: exits non-zero", outcome.returncode != 0,
                 f"exit code {outcome.returncode}")
    result.check("untrusted certificate: no traceback", "Traceback" not in text, text[-300:])
    named = any(word in text.casefold() for word in ("certificate", "verify", "tls"))
    result.check("untrusted certificate: error names the certificate", named, text[-300:])
    result.figures["untrusted_certificate_error"] = text.splitlines()[-1][:300] if text else ""


def run(result: SectionResult, campaign: Campaign) -> None:
    """Check every bot log and database the campaign produced, then the TLS refusal."""
    evidence = campaign.evidence
    logs = [path for path in evidence.bot_logs if path.exists()]
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in logs)
    result.figures["logs_searched"] = len(logs)
    result.figures["log_bytes"] = len(text.encode())
    check_log_privacy(result, text, evidence.secrets, evidence.bodies)
    for database in evidence.databases:
        if database.exists():
            check_private_file(result, database)
    _tls_refusal(result, campaign.directory("privacy"))
