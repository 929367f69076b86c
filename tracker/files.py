"""Crash-safe file writing, shared by the store and the exports.

A file that other programs read (the store, an export) is never rewritten in
place: it is written to a temp file in the same folder (so the rename stays on
one file system and is atomic), flushed to disk, renamed over the target, and
the folder is flushed so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


@contextlib.contextmanager
def atomic_write(path: Path, *, durable: bool = True, mode: int = PRIVATE) -> Iterator[BinaryIO]:
    """Yield a buffered binary file that replaces ``path`` when the block succeeds.

    With ``durable`` the data and the rename are fsynced. On any exception the
    temp file is removed and ``path`` is left exactly as it was. Raises
    ``OSError`` from the file system as it is; callers word it for their users.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    # The open is inside the cleanup's try: a signal handler that raises right
    # after the file was created must not leave it behind.
    try:
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            # Left by a killed process that had our pid. O_EXCL|O_NOFOLLOW above means a
            # planted symlink is never followed; unlinking removes the link, not its target.
            os.unlink(tmp)
            fd = os.open(tmp, flags, mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    if durable:
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    """Remove ``path`` if it exists; errors are ignored (used while cleaning up)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
