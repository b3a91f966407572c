"""A throw-away Prosody server on loopback, for driver and end-to-end tests.

Each server gets its own temp directory with a config file, a data directory, a log,
a pidfile and a self-signed certificate. It listens for clients on 127.0.0.1 and a
free port, never federates (s2s is disabled) and loads no HTTP modules. The system
Prosody service and /etc/prosody are never touched.

Facts this relies on (Prosody 0.12.3, Debian 12):

- ``prosody --version`` starts a full server with the system config, so the version is
  read with ``dpkg-query`` instead.
- ``prosody -F --config FILE`` runs in the foreground with the given config, and
  ``prosodyctl --config FILE register USER HOST PASS`` writes an account offline.
- ``run_as_root = true`` keeps Prosody from switching to the prosody user when the tests
  run as root, which would leave it unable to write a root-owned data directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOMAIN = "medbot.test"
# A second virtual host served with DOMAIN's certificate, for host name check tests.
MISMATCH_DOMAIN = "mismatch.test"
PASSWORD = "correct-horse-battery"
ACCOUNTS = ("bot", "patient1", "patient2", "caregiver", "stranger")
START_TIMEOUT = 10.0  # seconds until the c2s port must accept connections
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL

MODULES = (
    "roster",
    "saslauth",
    "tls",
    "disco",
    "carbons",
    "smacks",
    "mam",
    "offline",
    "ping",
    "posix",
)


def installed_version() -> str | None:
    """Return the installed Prosody package version, or None when it is not installed."""
    if shutil.which("prosody") is None or shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "prosody"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def require_prosody() -> None:
    """Skip the calling test when Prosody is missing; fail instead when CI=true."""
    if installed_version() is not None:
        return
    reason = "prosody is not installed (apt-get install prosody)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _lua_string(value: str | Path) -> str:
    text = str(value)
    if '"' in text or "\\" in text or "\n" in text:
        raise ValueError(f"unsupported character in Prosody config value {text!r}")
    return f'"{text}"'


def make_certificate(directory: Path, domain: str) -> tuple[Path, Path]:
    """Create a self-signed EC certificate for ``domain``; return (certificate, key)."""
    certificate = directory / f"{domain}.crt"
    key = directory / f"{domain}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2",
            "-subj", f"/CN={domain}",
            "-addext", f"subjectAltName=DNS:{domain}",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


@dataclass
class ProsodyServer:
    """One Prosody process and its files; restartable on the same port and data."""

    root: Path
    port: int
    direct_tls_port: int
    domain: str = DOMAIN
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "prosody.cfg.lua"

    @property
    def ca_file(self) -> Path:
        """The server certificate, which is its own CA since it is self-signed."""
        return self.root / f"{self.domain}.crt"

    @property
    def log_file(self) -> Path:
        return self.root / "prosody.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("prosody is not running")
        return self.process.pid

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def write_config(self) -> None:
        certificate, key = make_certificate(self.root, self.domain)
        (self.root / "data").mkdir(mode=0o700, exist_ok=True)
        modules = ", ".join(_lua_string(name) for name in MODULES)
        lines = [
            "run_as_root = true",
            f"pidfile = {_lua_string(self.root / 'prosody.pid')}",
            f"data_path = {_lua_string(self.root / 'data')}",
            f"log = {{ debug = {_lua_string(self.log_file)} }}",
            'interfaces = { "127.0.0.1" }',
            'local_interfaces = { "127.0.0.1" }',
            f"c2s_ports = {{ {self.port} }}",
            f"c2s_direct_tls_ports = {{ {self.direct_tls_port} }}",
            "s2s_ports = {}",
            "http_ports = {}",
            "https_ports = {}",
            "component_ports = {}",
            'modules_disabled = { "s2s" }',
            f"modules_enabled = {{ {modules} }}",
            "c2s_require_encryption = true",
            # Prosody 0.12 leaves Nagle's algorithm on by default, which together with
            # delayed ACKs added about 40 ms to each hop on loopback in these tests.
            "network_settings = { nagle = false }",
            'authentication = "internal_hashed"',
            'storage = "internal"',
            "archive_expires_after = \"1d\"",
            "default_archive_policy = true",
            # A dropped client keeps its session for resumption this long (seconds).
            "smacks_hibernation_time = 30",
            f"ssl = {{ certificate = {_lua_string(certificate)}, key = {_lua_string(key)} }}",
            f"VirtualHost {_lua_string(self.domain)}",
            f"VirtualHost {_lua_string(MISMATCH_DOMAIN)}",
        ]
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def register(self, user: str, password: str = PASSWORD, domain: str | None = None) -> str:
        """Create an account with prosodyctl; return its JID."""
        domain = domain or self.domain
        subprocess.run(
            ["prosodyctl", "--config", str(self.config_file), "register", user, domain, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return f"{user}@{domain}"

    def start(self) -> None:
        """Start Prosody in the foreground in its own process group; wait for the port."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("prosody is already running")
        self.process = subprocess.Popen(
            ["prosody", "-F", "--config", str(self.config_file)],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_for_port()

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"prosody exited with {code}; see {self.log_file}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"prosody did not open port {self.port} in {START_TIMEOUT} s")

    def stop(self) -> None:
        """Stop Prosody with SIGTERM, then SIGKILL if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.cont()
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill Prosody with SIGKILL, as a crash or power loss would."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server with SIGSTOP, as a hung host would look to clients."""
        os.killpg(self.pid, signal.SIGSTOP)

    def cont(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)


@dataclass(frozen=True)
class Account:
    jid: str
    password: str
    password_file: Path


def create_server(root: Path) -> ProsodyServer:
    """Configure a server in ``root``, register the standard accounts, and start it."""
    require_prosody()
    root.mkdir(parents=True, exist_ok=True)
    server = ProsodyServer(root=root, port=free_port(), direct_tls_port=free_port())
    server.write_config()
    for user in ACCOUNTS:
        server.register(user)
    server.register("bot", domain=MISMATCH_DOMAIN)
    (root / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    os.chmod(root / "password", 0o600)
    server.start()
    return server


@pytest.fixture
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyServer]:
    """A fresh Prosody for one test, with the accounts in ACCOUNTS."""
    server = create_server(tmp_path_factory.mktemp("prosody"))
    try:
        yield server
    finally:
        server.stop()
