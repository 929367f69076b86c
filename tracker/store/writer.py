"""The writer's side of a store: opening, journaling, snapshots, closing, rescue.

:class:`StoreFiles` holds the state a :class:`~tracker.store.UserStore` shares
with its background threads and does everything that touches the disk; the
``UserStore`` subclass adds the record API on top. Kept apart so each stays
readable: the API is about users, this is about files and their order of writes.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tracker.files import unlink_quietly
from tracker.store.columns import ColumnCache, ColumnCollector
from tracker.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
    check_file_kinds,
    os_reason,
)
from tracker.store.format import (
    JOURNAL_GEN,
    SCHEMA,
    STORE_ID,
    store_id_of,
    write_store,
)
from tracker.store.history import TABLES as HISTORY_TABLES
from tracker.store.history import HistoryKeeper
from tracker.store.history_cache import HistoryCache
from tracker.store.journal import Generation, apply_to_tables, encode
from tracker.store.journal_file import JournalClaimedError, JournalFile
from tracker.store.lock import WriterLock
from tracker.store.memory import map_large_buffers, return_freed_memory
from tracker.store.persister import Persister, Tuning
from tracker.store.reader import journal_path_of, load_state, load_table, merge_meta, read_journal
from tracker.store.records import Copied, PendingChanges
from tracker.store.side_file import StaleSideFileError
from tracker.store.table import UserTable

log = logging.getLogger("tracker.store")

#: From this many users a writer moves what it loaded out of the cyclic GC's reach (``gc.freeze``).
FREEZE_FROM_ROWS = 100_000


class StoreFiles:
    """A store's files and the order they are written in (the base of ``UserStore``)."""

    def __init__(self, path: Path, readonly: bool, tuning: Tuning, tz: ZoneInfo) -> None:
        self.path = path
        self.readonly = readonly
        self.journal_path = journal_path_of(path)
        self.tuning = tuning
        self._table = UserTable()
        self._meta: dict[str, Any] = {"schema": SCHEMA}
        self._other_tables: dict[str, Any] = {}
        #: The audience history (its tables are kept out of _other_tables: the keeper owns them).
        self._keeper = HistoryKeeper(tz)
        self._closed = False
        #: The store file read at open holds exactly what was loaded, in this code's layout.
        self._current_on_disk = False
        # _lock guards records/meta/pending changes; _journal_lock the journal
        # file (appends and compaction); _snapshot_lock one snapshot at a time.
        self._lock = threading.Lock()
        self._journal_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._pending = PendingChanges()
        self._gen = 0
        self._snapshot_bytes = 0
        self._snapshot_quiet_until = 0.0
        self._writer_lock = WriterLock(path)
        self._journal = JournalFile(self.journal_path)
        self._columns = ColumnCache(path)
        self._history_file = HistoryCache(path)
        self._persister = Persister(self, str(path))

    def write_snapshot_now(self) -> None:
        """:meth:`snapshot` without the open check (the snapshot thread may race ``close()``)."""
        with self._snapshot_lock:
            started = time.monotonic()
            marker_at = self._append_pending(new_generation=True)
            self._write_snapshot()
            with self._journal_lock:
                if self._journal.is_open:
                    self._journal.compact(marker_at)
            finished = time.monotonic()
        duty = self.tuning.snapshot_max_duty
        self._snapshot_quiet_until = finished + (finished - started) * (1 / duty - 1)


    def _save_for_close(self) -> None:
        """Fold everything into the store file; keep trying a while, then rescue what is pending.

        Nothing recorded may be silently dropped: if the journal cannot take the
        last changes (disk full) they go to a rescue file that the error names
        and the next open applies.
        """
        deadline = time.monotonic() + self.tuning.close_retry_seconds
        while True:
            try:
                self._append_pending()
                with self._journal_lock:
                    # No change since the last snapshot (or a clean open): the file is current.
                    current = self._journal.changes_since is None
                if not current:
                    with self._snapshot_lock:
                        self._write_snapshot()
                with self._journal_lock:
                    self._journal.remove()
                return
            except StoreError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    failure = exc
                    break
                log.warning("%s; retrying for %.0f s more", exc, left)
                time.sleep(min(0.5, left))
        with self._lock:
            if not (self._pending.changed or self._pending.touched or self._pending.meta):
                raise StoreError(
                    f"{failure}; nothing is lost: journal {self.journal_path} holds every change "
                    f"and the next open folds it in"
                ) from None
            store_id = store_id_of(self._meta)
            marker = encode(Generation(self._gen, store_id)) + b"\n"
            taken = self._pending.take(self._keeper.take_changes())
            meta = dict(self._meta) if taken.meta else None
        batch = Copied.of(taken, self._table, meta).encode(zlib.crc32(marker))
        from tracker.store.rescue import write_rescue  # lazy: readers (the CLI) import this module too

        rescue = write_rescue(self._rescue_dirs(), self.path, store_id, marker + batch)
        log.error("%s; the changes since the last save are in %s", failure, rescue)
        raise StoreError(
            f"{failure}; the changes since the last save are in {rescue} (the next open applies them)"
        ) from None


    def _rescue_dirs(self) -> tuple[Path, ...]:
        from tracker.store.rescue import default_rescue_dirs

        return tuple(map(Path, self.tuning.rescue_dirs)) or default_rescue_dirs()


    def _apply_rescues(self) -> list[Path]:
        """Apply the rescue files a failed close left for this store; return them (removed once saved)."""
        from tracker.store.rescue import find_rescues, read_rescue

        applied = []
        store_id = store_id_of(self._meta)
        for path in find_rescues(self._rescue_dirs(), self.path, store_id):
            effect = read_rescue(path, store_id, self._gen)
            if effect is not None:
                self._table.apply(effect)
                apply_to_tables(effect, self._other_tables)
                self._meta = merge_meta(self._meta, effect.meta)
                log.warning("applied rescue file %s", path)
                applied.append(path)
        return applied


    def _load_for_reading(self) -> None:
        if not self.path.exists():
            raise StoreNotFoundError(f"no store at {self.path} yet")
        check_file_kinds({"store": self.path, "journal": self.journal_path}, links_ok=frozenset({"store"}))
        state = load_state(self.path)
        self._table.put(state.records.values())
        self._meta, self._other_tables = state.meta, state.other_tables
        self._load_history()


    def _open_for_writing(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create folder {folder}: {os_reason(exc)}") from None
        check_file_kinds(
            {
                "store": self.path,
                "journal": self.journal_path,
                "lock file": self._writer_lock.path,
                "column file": self._columns.path,
                "history file": self._history_file.path,
            },
            links_ok=frozenset({"store", "column file"}),  # read through, replaced by rename
        )
        self._writer_lock.acquire()
        map_large_buffers()  # a long-lived writer: its snapshots' buffers must not stay resident
        try:
            try:
                self._journal.claim()
            except JournalClaimedError:
                raise self._writer_lock.refused(None, f"its journal {self.journal_path} is locked") from None
            self._writer_lock.write_pid()
            self._load_for_writing()
            rescues = self._apply_rescues()
            self._load_history()
            self._remove_stale_temp_files()
            # Fold any journal into a fresh snapshot so the new journal starts clean. A store
            # file that is current already (closed cleanly) is not rewritten: at a million
            # users that would be seconds of every start.
            if self._current_on_disk and not rescues:
                self._refresh_side_files()
            else:
                self._write_snapshot()
            self._journal.start(self._gen, store_id_of(self._meta))
            for path in rescues:  # in the store file now
                unlink_quietly(path)
            self._settle_memory_after_load()
        except BaseException:
            self._journal.release_unused()
            self._writer_lock.release()
            raise
        self._persister.start(self.tuning.flush_interval)


    def _settle_memory_after_load(self) -> None:
        """Leave the process's memory as a long-lived writer wants it, once the load is done."""
        # The load made every profile tuple in one go with the cyclic GC off: one
        # collection now (they are all untracked by it: they hold only text) is
        # paid by the open instead of by the first seen() after it.
        gc.collect()
        if self._table.row_count >= FREEZE_FROM_ROWS:
            # What is left tracked is long-lived (the table's lists of millions of
            # rows, the bot's modules): out of every later collection, or each full
            # one walks them all (~100 ms at 10M users, a pause for seen() callers).
            gc.freeze()
        return_freed_memory()  # after the parse and the first snapshot

    def _load_for_writing(self) -> None:
        if os.path.lexists(self.path):
            state = load_table(self.path)
            self._table, self._meta, self._other_tables = state.table, state.meta, state.other_tables
            self._gen, self._snapshot_bytes = state.gen, state.size
            self._current_on_disk = state.clean and store_id_of(state.meta) is not None
        elif read_journal(self.journal_path):
            raise StoreCorruptError(
                f"journal {self.journal_path} exists but store {self.path} is missing; "
                f"restore the store file or remove the journal"
            )
        # A store gets its id the first time a writer opens it; every journal carries it.
        import secrets  # lazy: ~2 ms to import (hashlib), and only a writer's first open needs it

        self._meta.setdefault(STORE_ID, secrets.token_hex(8))


    def _load_history(self) -> None:
        """Take the history tables out of the other tables into a keeper; a bad shape is corrupt."""
        stored = {name: self._other_tables.pop(name) for name in HISTORY_TABLES if name in self._other_tables}
        try:
            self._keeper = HistoryKeeper.from_tables(stored, self._keeper.timezone)
        except ValueError as exc:
            raise StoreCorruptError(f"store {self.path}: its history is malformed: {exc}") from None

    def _remove_stale_temp_files(self) -> None:
        """Delete snapshot temp files a killed writer left (we hold the lock: none is live)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            unlink_quietly(stale)
        unlink_quietly(self._journal.tmp_path)


    def flush_journal(self) -> None:
        """Append the pending changes to the journal (what the journal thread runs)."""
        self._append_pending()


    def snapshot_due(self) -> bool:
        """Whether the journal has grown (or aged) enough for a snapshot."""
        tuning = self.tuning
        with self._journal_lock:
            since = self._journal.changes_since
            if since is None or time.monotonic() < self._snapshot_quiet_until:
                return False
            ratio = tuning.snapshot_journal_ratio
            wanted = max(tuning.snapshot_min_journal_bytes, self._snapshot_bytes * ratio)
            if self._journal.size >= wanted:
                return True
            return time.monotonic() - since >= tuning.snapshot_max_age


    def _append_pending(self, *, new_generation: bool = False) -> int:
        """Append pending changes to the journal; return the journal's new size.

        With ``new_generation`` a generation marker follows the changes, and
        the returned offset is where that marker starts: everything before it
        is covered by a snapshot that starts now.
        """
        with self._journal_lock:
            with self._lock:  # short: seen() callers wait on it (the values are read after it)
                taken = self._pending.take(self._keeper.take_changes())
                meta = dict(self._meta) if taken.meta else None
                if new_generation:
                    self._gen += 1
                    marker = encode(Generation(self._gen, store_id_of(self._meta))) + b"\n"
            try:
                crc_start = self._journal.tail_crc
                batch = Copied.of(taken, self._table, meta).encode(crc_start)
                tail_crc = 0 if batch else crc_start
                marker_at = self._journal.size + len(batch)
                if new_generation:
                    batch += marker
                    tail_crc = zlib.crc32(marker, tail_crc)
                if not batch or not self._journal.is_open:
                    return self._journal.size
                self._journal.append(batch, has_changes=taken.any, tail_crc=tail_crc)
            except BaseException:
                # Whatever failed (the disk, or building the batch), keep the changes
                # pending: the next round writes them again. Taken is not written.
                with self._lock:
                    self._pending.put_back(taken)
                    if new_generation:
                        self._gen -= 1
                raise
            return marker_at if new_generation else self._journal.size


    def _write_snapshot(self) -> None:
        """Write the whole store to a temp file and atomically replace the store file."""
        with self._lock:
            rows = self._table.row_count  # users added from now on are journaled, not written here
            meta = {**self._meta, JOURNAL_GEN: self._gen}
            history = self._history_tables()
            other_tables = {**self._other_tables, **history}
        collector = ColumnCollector()
        try:
            size = write_store(self.path, self._user_chunks(rows, collector), meta, other_tables)
        except OSError as exc:
            raise StoreError(f"cannot write store {self.path}: {os_reason(exc)}") from None
        self._snapshot_bytes = size
        self._columns.write(collector.columns, meta[JOURNAL_GEN], store_id_of(meta))
        collector.release()
        self._history_file.write(history, meta[JOURNAL_GEN], store_id_of(meta))


    def _history_tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {name: docs for name, docs in self._keeper.tables().items() if docs}

    def _refresh_side_files(self) -> None:
        """Rewrite the column and history files if they do not belong to the store file (under the lock)."""
        store_id = store_id_of(self._meta)
        try:
            (_, columns_id), columns_gen = self._columns.read(())
        except StaleSideFileError:
            columns_gen, columns_id = -1, None
        if (columns_gen, columns_id) != (self._gen, store_id):
            collector = ColumnCollector()
            rows, chunk_size = self._table.row_count, self.tuning.snapshot_chunk
            for start in range(0, rows, chunk_size):
                chunk = self._table.chunk(start, min(start + chunk_size, rows))
                collector.add_chunk(chunk, chunk.columns())
            self._columns.write(collector, self._gen, store_id)
        try:
            (_, history_id), history_gen = self._history_file.read()
        except StaleSideFileError:
            history_gen, history_id = -1, None
        if (history_gen, history_id) != (self._gen, store_id):
            self._history_file.write(self._history_tables(), self._gen, store_id)

    def _user_chunks(self, rows: int, collector: ColumnCollector) -> Iterator[bytes]:
        """The users table serialised chunk by chunk, each read under the lock for a short while."""
        chunk_size = self.tuning.snapshot_chunk
        for start in range(0, rows, chunk_size):
            # One chunk per lock hold bounds the pause seen() callers feel; the
            # records are fresh dicts, so serialising them needs no lock.
            with self._lock:
                chunk = self._table.chunk(start, min(start + chunk_size, rows))
            columns = chunk.columns()
            collector.add_chunk(chunk, columns)
            yield chunk.encoded(columns)


    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"store {self.path} is open read-only")
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
