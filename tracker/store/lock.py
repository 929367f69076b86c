"""The writer lock: one process writes a store at a time.

Shaped like filelock's ``_unix.py``: ``_acquire``/``_release`` around an
``flock`` on ``<store>.lock``, which holds the writer's pid so a refused second
writer can name the holder. The kernel drops an ``flock`` when its process dies,
so a killed writer never leaves a stale lock behind.

The lock file alone is not enough: removed or replaced while a writer runs, it
would let a second writer in. So the writer also keeps an ``flock`` on its
journal for as long as it runs (see ``journal_file.JournalFile``), and a writer
that takes this lock must then take the journal's too.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from tracker.files import PRIVATE, open_regular
from tracker.store.errors import StoreError, StoreLockedError, file_error, os_reason

#: ``flock(LOCK_NB)`` fails with one of these when another process holds the
#: lock (EWOULDBLOCK on Linux, EAGAIN/EACCES elsewhere); any other errno is a
#: real failure (e.g. ENOLCK on a file system without locks).
LOCKED_ERRNOS = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})


def try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in LOCKED_ERRNOS:
            return False
        raise
    return True


class WriterLock:
    """An exclusive lock on ``<store>.lock`` holding the owner's pid."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = store_path.with_name(store_path.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _acquire(self) -> None:
        try:
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, PRIVATE)
        except OSError as exc:
            raise file_error("create lock file", self.path, exc) from None
        try:
            locked = try_flock(fd)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {os_reason(exc)}") from None
        if not locked:
            holder = read_pid(fd)
            os.close(fd)
            raise self.refused(holder, f"lock {self.path}")
        self._fd = fd

    def write_pid(self) -> None:
        """Record our pid in the lock file (after every lock is taken: a refused writer writes nothing)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def refused(self, holder: int | None, what: str) -> StoreLockedError:
        who = f"process {holder}" if holder else "another process"
        return StoreLockedError(
            f"store {self.store_path} is already open for writing by {who} ({what}); stop it first",
            holder,
        )

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the fd drops the flock
            self._fd = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the holder."""
        self._acquire()

    def release(self) -> None:
        self._release()


def read_pid(fd: int) -> int | None:
    """The pid a lock file holds, or None when it holds none."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None
