"""Small tmpfs mounts for the storage faults: a full disk and a read-only file system.

Mounting needs root (CI runs as root here). Each mount lives under the campaign's
scratch directory and is unmounted when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class MountUnavailable(Exception):
    """Raised when a tmpfs cannot be mounted here (not root, or mounting is forbidden)."""


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(path)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise MountUnavailable(f"mount tmpfs at {path} failed: {completed.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def remount_read_only(path: Path) -> None:
    """Make the tmpfs at ``path`` read-only, which also binds root, unlike chmod."""
    command = ["mount", "-o", "remount,ro", str(path)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise MountUnavailable(f"remount {path} read-only failed: {completed.stderr.strip()}")


def fill(path: Path, chunk: int = 4096) -> int:
    """Write zeros to the file ``path`` until the file system is full; return bytes written."""
    written = 0
    block = b"\0" * chunk
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(block) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    log.debug("filled %s with %d bytes", path, written)
    return written
