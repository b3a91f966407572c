"""The TOML configuration: typed, frozen, validated once at start-up.

PLACEHOLDER: the types are fixed; ``load_config`` is to be implemented.
Loading creates no directories and configures no logging.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from medbot.core.models import Patient


class TransportKind(enum.Enum):
    CONSOLE = "console"
    XMPP = "xmpp"


class TlsMode(enum.Enum):
    STARTTLS = "starttls"  # plain TCP upgraded with STARTTLS (RFC 6120), port 5222 by default
    DIRECT = "direct"  # TLS from the first byte (XEP-0368), port 5223 by default
    NONE = "none"  # no TLS; allowed only with allow_plaintext and a loopback host


@dataclass(frozen=True, slots=True)
class XmppSettings:
    jid: str
    password_file: Path | None  # exactly one of password_file and password_env is set
    password_env: str | None
    host: str | None = None  # None: DNS SRV look-up of the JID's domain
    port: int | None = None
    tls: TlsMode = TlsMode.STARTTLS
    ca_file: Path | None = None  # None: the system trust store
    allow_plaintext: bool = False
    resource: str | None = None  # None: a fresh resource per process


@dataclass(frozen=True, slots=True)
class Config:
    source: Path  # the file this was loaded from, for messages
    default_zone: ZoneInfo
    database: Path
    transport: TransportKind
    patients: tuple[Patient, ...]
    xmpp: XmppSettings | None = None  # set exactly when transport is XMPP

    def patient(self, patient_id: str) -> Patient | None:
        for patient in self.patients:
            if patient.id == patient_id:
                return patient
        return None

    def patient_by_address(self, address: str) -> Patient | None:
        """Return the patient whose chat address equals ``address`` (case-insensitive)."""
        wanted = address.casefold()
        for patient in self.patients:
            if patient.address.casefold() == wanted:
                return patient
        return None


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raises ConfigError naming file, key path, value and fix."""
    raise NotImplementedError
