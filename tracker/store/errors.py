"""The store's errors: each message is one line naming the file and the problem."""

from __future__ import annotations


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


def os_reason(exc: OSError) -> str:
    """The part of an ``OSError`` worth showing a user (its strerror, not the repr)."""
    return exc.strerror or str(exc)
