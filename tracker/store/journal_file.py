"""The writer's journal file: claimed, appended to, compacted, removed.

The writer holds an exclusive ``flock`` on the journal for as long as it runs,
on top of the lock file: removing or replacing the lock file then still cannot
let a second writer in, because a second writer must claim the journal before
it may fold it into the store and start its own. A compacted journal is
locked before it replaces the old one, so some journal at the path is always
locked by the live writer; a claimer that locked a file that was replaced
meanwhile sees it is no longer the one at the path and tries again.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from pathlib import Path

from tracker.files import PRIVATE, fsync_folder, open_regular, unlink_quietly
from tracker.store.errors import StoreError, file_error, os_reason
from tracker.store.journal import Generation, encode
from tracker.store.lock import try_flock

_CLAIM_ATTEMPTS = 20


class JournalClaimedError(StoreError):
    """Another live writer holds the journal."""


class JournalFile:
    """The journal of the one writer of a store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp_path = path.with_name(path.name + ".tmp")
        self.size = 0  # bytes written and fsynced
        self.changes_since: float | None = None  # monotonic time of the oldest change in it
        self.tail_crc = 0  # CRC-32 of the bytes after its last commit line (see journal.encode_batch)
        self._fd: int | None = None
        self._created = False

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def claim(self) -> None:
        """Open (creating it if needed) and lock the journal.

        :class:`JournalClaimedError` when a live writer holds it.
        """
        for _ in range(_CLAIM_ATTEMPTS):
            existed = self.path.exists()
            try:
                fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE)
            except OSError as exc:
                raise file_error("open journal", self.path, exc) from None
            try:
                locked = try_flock(fd)
                same = locked and _same_file(fd, self.path)
            except OSError as exc:
                os.close(fd)
                raise StoreError(f"cannot lock journal {self.path}: {os_reason(exc)}") from None
            if not locked:
                os.close(fd)
                raise JournalClaimedError(f"journal {self.path} is locked")
            if same:
                self._fd, self._created = fd, not existed
                return
            os.close(fd)  # replaced by a compaction between open and lock: again
        raise StoreError(f"journal {self.path} kept being replaced; is another writer running?")

    def release_unused(self) -> None:
        """Give up a claimed journal after a failed open; remove it if the claim created it."""
        if self._fd is None:
            return
        if self._created:
            unlink_quietly(self.path)
        os.close(self._fd)
        self._fd = None

    def start(self, gen: int, store_id: str | None) -> None:
        """Empty the journal (its changes are in the store file now) and mark generation ``gen``."""
        fd = self._require_fd()
        marker = encode(Generation(gen, store_id)) + b"\n"
        try:
            os.ftruncate(fd, 0)
            _write_all(fd, marker)
            os.fsync(fd)
            fsync_folder(self.path.parent)
        except OSError as exc:
            raise StoreError(f"cannot write journal {self.path}: {os_reason(exc)}") from None
        self.size = len(marker)
        self.changes_since = None
        self.tail_crc = zlib.crc32(marker)

    def append(self, batch: bytes, *, has_changes: bool, tail_crc: int) -> None:
        """Append and fsync ``batch``; on failure cut the journal back to its last good end."""
        fd = self._require_fd()
        try:
            _write_all(fd, batch)
            os.fsync(fd)
        except OSError as exc:
            # If this fails too, readers ignore the torn tail and the next append retries.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise StoreError(f"cannot write journal {self.path}: {os_reason(exc)}") from None
        self.size += len(batch)
        self.tail_crc = tail_crc
        if has_changes and self.changes_since is None:
            self.changes_since = time.monotonic()

    def compact(self, keep_from: int) -> None:
        """Drop the bytes before ``keep_from`` (a snapshot covers them now)."""
        old = self._require_fd()
        tail = os.pread(old, max(self.size - keep_from, 0), keep_from)
        unlink_quietly(self.tmp_path)  # only a killed writer of ours leaves one
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND
        try:
            fd = open_regular(self.tmp_path, flags, PRIVATE)
        except OSError as exc:
            raise file_error("write journal", self.tmp_path, exc) from None
        try:
            # Locked before it takes the journal's place: the path never shows an unlocked journal.
            if not try_flock(fd):
                raise StoreError(f"journal {self.tmp_path} is locked by another process")
            _write_all(fd, tail)
            os.fsync(fd)
            os.replace(self.tmp_path, self.path)
        except BaseException:
            os.close(fd)
            unlink_quietly(self.tmp_path)
            raise
        # Switch to the new file before anything else can fail: appends to
        # the old, now unlinked, file would be lost.
        os.close(old)
        self._fd = fd
        self.size = len(tail)
        self.changes_since = time.monotonic() if tail.count(b"\n") > 1 else None
        fsync_folder(self.path.parent)

    def remove(self) -> None:
        """Delete the journal (the store file holds everything) and unlock it."""
        if self._fd is None:
            return
        try:
            unlink_quietly(self.path)  # while still locked: no second writer sees it half-gone
            fsync_folder(self.path.parent)
        finally:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Unlock and close without removing (the journal is still needed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StoreError(f"journal {self.path} is not open")
        return self._fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
