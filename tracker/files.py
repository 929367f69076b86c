"""Crash-safe file writing, shared by the store and the exports.

A file that other programs read (the store, an export) is never rewritten in
place: it is written to a temp file in the same folder (so the rename stays on
one file system and is atomic), flushed to disk, renamed over the target, and
the folder is flushed so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
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


class NotRegularFileError(OSError):
    """A FIFO, device, socket or folder where a regular file should be."""


def kind_of(mode: int) -> str:
    """What a non-regular file is, as words after its name: "is a named pipe, not a regular file"."""
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return f"is {kind}, not a regular file"
    return "is not a regular file"


def check_regular(fd: int) -> None:
    """Raise :class:`NotRegularFileError` unless ``fd`` is a regular file."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(errno.EINVAL, kind_of(mode))


def open_regular(path: Path, flags: int, mode: int = PRIVATE, *, follow: bool = False) -> int:
    """``os.open`` that never hangs on a FIFO or device and never follows a planted link.

    ``O_NONBLOCK`` makes opening a FIFO return at once (instead of waiting for a
    writer), then ``fstat`` refuses anything but a regular file. Unless
    ``follow``, ``O_NOFOLLOW`` refuses a symlink in the last path component, so a
    link planted in a shared folder cannot redirect a write. Raises ``OSError``
    (:class:`NotRegularFileError` for the wrong kind of file) with a readable
    ``strerror``.
    """
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise OSError(errno.ELOOP, "is a symbolic link (refused)") from None
        if exc.errno == errno.EISDIR:
            raise NotRegularFileError(errno.EISDIR, kind_of(stat.S_IFDIR)) from None
        raise
    try:
        check_regular(fd)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path) -> bytes | None:
    """The bytes of the regular file at ``path``; None when it does not exist.

    Follows a symlink (a store linked from elsewhere is fine to read) but
    refuses a FIFO, device or folder without blocking.
    """
    try:
        fd = open_regular(path, os.O_RDONLY, follow=True)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


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
