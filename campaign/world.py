"""A Prosody server on loopback with the accounts the campaign's bots and clients use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from campaign import configs
from tests.servers.prosody import PASSWORD, ProsodyServer, free_port, installed_version

# Prosody 0.12 closes a client stream whose stanza exceeds c2s_stanza_size_limit
# (256 KiB by default); the fuzzer sends 1 MB bodies, so the limit is raised to 4 MiB.
STANZA_LIMIT = 4 * 1024 * 1024
BOT_PASSWORD = "campaign-bot-secret-7f3a9c"


class CampaignServer(ProsodyServer):
    """The shared test server with the stanza size limit raised for 1 MB bodies."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_file.read_text(encoding="utf-8")
        head, marker, tail = text.partition("VirtualHost ")
        extra = f"c2s_stanza_size_limit = {STANZA_LIMIT}\n"
        self.config_file.write_text(head + extra + marker + tail, encoding="utf-8")


@dataclass
class World:
    """A running server, its accounts, and the bot's password file."""

    server: CampaignServer
    root: Path
    patients: tuple[str, ...]

    @property
    def bot_jid(self) -> str:
        return self.server.jid("bot")

    @property
    def password_file(self) -> Path:
        return self.root / "bot-password"

    def target(self, *, trust_ca: bool = True) -> configs.XmppTarget:
        ca_file = self.server.ca_file if trust_ca else None
        return configs.XmppTarget(self.bot_jid, self.password_file, self.server.port, ca_file)

    def stop(self) -> None:
        self.server.stop()


def prosody_version() -> str | None:
    return installed_version()


def start_world(root: Path, patient_count: int) -> World:
    """Configure and start Prosody in ``root`` with a bot, patients and a stranger."""
    if installed_version() is None:
        raise RuntimeError("prosody is not installed (apt-get install prosody)")
    root.mkdir(parents=True, exist_ok=True)
    server = CampaignServer(root=root, port=free_port(), direct_tls_port=free_port())
    server.write_config()
    server.register("bot", BOT_PASSWORD)
    patients = tuple(f"patient{index}" for index in range(1, patient_count + 1))
    for user in (*patients, "stranger"):
        server.register(user, PASSWORD)
    world = World(server, root, patients)
    world.password_file.write_text(BOT_PASSWORD + "\n", encoding="utf-8")
    os.chmod(world.password_file, 0o600)
    server.start()
    return world
