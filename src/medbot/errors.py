"""Exceptions raised by medbot.

MedbotError
├── ConfigError       the configuration file is missing, unreadable or invalid
├── StoreError        the database cannot be opened, migrated or written
│   └── SchemaTooNewError
└── TransportError    a chat network operation failed
    ├── TransportUnavailable  not connected right now; the send may be retried
    └── TransportFatal        retrying cannot help (bad credentials, TLS failure)
"""

from __future__ import annotations


class MedbotError(Exception):
    """Base class of every error medbot raises on purpose."""


class ConfigError(MedbotError):
    """Raised when the configuration is missing, unreadable or invalid.

    The message names the file, the key path, the bad value and what is allowed.
    """


class StoreError(MedbotError):
    """Raised when the database cannot be opened, migrated or written."""


class SchemaTooNewError(StoreError):
    """Raised when the database was written by a newer medbot with a newer schema."""


class TransportError(MedbotError):
    """Raised when a chat network operation fails."""


class TransportUnavailable(TransportError):
    """Raised when the transport is not connected; the runtime retries later."""


class TransportFatal(TransportError):
    """Raised when retrying cannot help, such as rejected credentials or a TLS failure."""
