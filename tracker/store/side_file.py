"""What the store's side caches share: a file beside the store, tied to its identity.

The column cache (``<store>.columns``) and the history side file
(``<store>.history``) are both caches the writer leaves beside the store after
each snapshot: not fsynced, tied to the exact store file they were made from,
and never trusted blindly. :class:`SideFile` holds what they do alike: where
the file lives, opening it for reading (a file that is not a regular file is
an error; a missing one only makes it stale), turning any parse failure into
:class:`StaleSideFileError`, and giving up quietly on a failed write. What
each file holds, and how it is checked, stays in its own module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, ClassVar

from tracker.files import NotRegularFileError, open_regular, unlink_quietly
from tracker.store.errors import file_error

#: The logger of a failed write (``logging`` itself is imported then: readers never need it).
LOGGER = "tracker.store"

#: What a parser of a side file raises for bytes it cannot trust.
PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


class StaleSideFileError(ValueError):
    """A side file cannot be trusted for this store (missing, torn, stale, malformed)."""


def side_path(store_path: Path, suffix: str) -> Path:
    """The side file ``<store><suffix>`` of the store at ``store_path``."""
    return store_path.with_name(store_path.name + suffix)


class SideFile:
    """One side file of one store; subclasses name it (``suffix``, ``what``) and say what it holds."""

    #: The file name's ending after the store's name, e.g. ``".columns"``.
    suffix: ClassVar[str]
    #: What error messages call the file, e.g. ``"column file"``.
    what: ClassVar[str]
    #: What :meth:`open_for_reading` and :meth:`trusted` raise (a :class:`StaleSideFileError`).
    stale_error: ClassVar[type[StaleSideFileError]] = StaleSideFileError

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = side_path(store_path, self.suffix)

    def stale(self, reason: object) -> StaleSideFileError:
        """The error saying this file cannot be trusted, and why."""
        return self.stale_error(f"{self.what} {self.path}: {reason}")

    def open_for_reading(self) -> IO[bytes]:
        """The file, open for reading; missing or unreadable: stale; not a regular file: StoreError."""
        try:
            fd = open_regular(self.path, os.O_RDONLY, follow=True)
        except NotRegularFileError as exc:
            raise file_error(f"read {self.what}", self.path, exc) from None
        except OSError as exc:
            raise self.stale(exc) from None
        return os.fdopen(fd, "rb")

    @contextlib.contextmanager
    def trusted(self) -> Iterator[None]:
        """Turn a parse failure inside the block into this file's stale error."""
        try:
            yield
        except StaleSideFileError:
            raise
        except PARSE_ERRORS as exc:
            raise self.stale(exc) from None

    def write_failed(self, exc: Exception, *, quiet: bool = False) -> None:
        """After a failed write: remove the file (better none than a stale one); say so unless ``quiet``."""
        unlink_quietly(self.path)
        if not quiet:
            import logging

            logging.getLogger(LOGGER).warning("cannot write %s %s: %s", self.what, self.path, exc)
