"""The store's errors: each message is one line naming the file and the problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tracker.files import NotRegularFileError, kind_of


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line naming the file."""


class StoreLockedError(StoreError):
    """Another process holds the writer lock."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class StoreCorruptError(StoreError):
    """The file is not a store this version can read; it is left untouched."""


class StoreNotFoundError(StoreError):
    """A read-only open found no store file."""


class StoreFileKindError(StoreError):
    """A FIFO, device, folder or symlink where one of the store's files should be."""


def file_error(action: str, path: object, exc: OSError) -> StoreError:
    """``"cannot <action> <path>: <reason>"`` as the right error class."""
    kind = StoreFileKindError if isinstance(exc, NotRegularFileError) else StoreError
    return kind(f"cannot {action} {path}: {os_reason(exc)}")


def check_file_kinds(paths: dict[str, Path], *, links_ok: frozenset[str] = frozenset()) -> None:
    """Refuse (naming it) any of ``paths`` that exists but is not a regular file.

    Checked before a writer creates anything, so a store path of ``/dev/zero``
    leaves no lock file in ``/dev``; a symlink is refused where a write could
    follow it (every name not in ``links_ok``).
    """
    for what, path in paths.items():
        try:
            info = os.stat(path) if what in links_ok else os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot use {what} {path}: {os_reason(exc)}") from None
        if stat.S_ISLNK(info.st_mode):
            raise StoreFileKindError(f"{what} {path} is a symbolic link; refusing to write through it")
        if not stat.S_ISREG(info.st_mode):
            raise StoreFileKindError(f"{what} {path} {kind_of(info.st_mode)}; remove it or use another store")


def os_reason(exc: OSError) -> str:
    """The part of an ``OSError`` worth showing a user (its strerror, not the repr)."""
    return exc.strerror or str(exc)
