"""Build a configured slixmpp client from XmppSettings.

This module reads the password, applies the TLS rules and registers the plugins; it
opens no connection itself.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import ssl
from typing import Any

import slixmpp

from medbot.config import TlsMode, XmppSettings
from medbot.errors import TransportFatal

PLUGINS = (
    "xep_0030",  # service discovery, needed by the others
    "xep_0198",  # stream management: acks for every sent stanza
    "xep_0199",  # ping: the offline-delivery barrier and the keepalive
    "xep_0203",  # delayed delivery stamps
    "xep_0313",  # message archive: was_delivered
    "xep_0359",  # stanza-id and origin-id
)


def read_password(settings: XmppSettings) -> str:
    """Read the account password from the configured file or environment variable.

    Error messages name the file or variable but never contain the password.
    """
    if settings.password_file is not None:
        try:
            text = settings.password_file.read_text(encoding="utf-8")
        except OSError as error:
            raise TransportFatal(
                f"cannot read the XMPP password file {settings.password_file}: "
                f"{error.strerror}; check xmpp.password_file"
            ) from None
        password = text.rstrip("\r\n")
        source = f"the file {settings.password_file}"
    elif settings.password_env is not None:
        password = os.environ.get(settings.password_env, "")
        source = f"the environment variable {settings.password_env}"
    else:
        raise TransportFatal("no XMPP password source: set xmpp.password_file or xmpp.password_env")
    if not password:
        raise TransportFatal(f"the XMPP password in {source} is empty")
    return password


def is_loopback(host: str) -> bool:
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls_rules(settings: XmppSettings) -> None:
    """Reject plaintext unless it is explicitly allowed and stays on this machine."""
    if settings.tls is not TlsMode.NONE:
        return
    if not settings.allow_plaintext:
        raise TransportFatal("xmpp.tls = \"none\" needs xmpp.allow_plaintext = true")
    if settings.host is None or not is_loopback(settings.host):
        raise TransportFatal(
            f"xmpp.tls = \"none\" is allowed only with a loopback xmpp.host, got {settings.host!r}"
        )


def make_ssl_context(settings: XmppSettings) -> ssl.SSLContext:
    """Return a context that verifies the certificate chain and the host name."""
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as error:
        raise TransportFatal(f"cannot load the CA file {settings.ca_file}: {error}") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def full_jid(settings: XmppSettings) -> str:
    """Return the JID with a resource: the configured one or a fresh random one.

    Two connections with one resource make the server close the older one, so every
    process gets its own resource unless the config fixes it.
    """
    bare = settings.jid.split("/", 1)[0]
    resource = settings.resource or f"medbot-{secrets.token_hex(4)}"
    return f"{bare}/{resource}"


def make_client(settings: XmppSettings, password: str, *, ack_window: int = 1) -> Any:
    """Return a slixmpp client configured for ``settings``; it is not connected yet."""
    check_tls_rules(settings)
    client = slixmpp.ClientXMPP(full_jid(settings), password)
    for plugin in PLUGINS:
        client.register_plugin(plugin)
    # Ack every stanza, so send() can confirm each message on its own.
    client.plugin["xep_0198"].window = ack_window
    client.plugin["xep_0198"].window_counter = ack_window

    client.ssl_context = make_ssl_context(settings)
    client.enable_direct_tls = settings.tls is TlsMode.DIRECT
    client.enable_starttls = settings.tls is TlsMode.STARTTLS
    client.enable_plaintext = settings.tls is TlsMode.NONE
    # None: slixmpp neither accepts nor rejects requests; the transport decides.
    client.auto_authorize = None
    client.auto_subscribe = False
    # The transport runs its own ping keepalive.
    client.whitespace_keepalive = False
    return client


def address(settings: XmppSettings) -> tuple[str | None, int | None]:
    """Return (host, port) for connect(); (None, None) makes slixmpp look up DNS SRV."""
    if settings.host is None:
        return None, None
    default_port = 5223 if settings.tls is TlsMode.DIRECT else 5222
    return settings.host, settings.port or default_port
