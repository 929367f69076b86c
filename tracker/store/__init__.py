"""UserStore: the TinyDB JSON file of users, kept in memory and made durable.

This package is the only code that knows the files. The store file is a plain
TinyDB JSON database (``TinyDB(path).table("users").get(doc_id=USER_ID)`` works),
but TinyDB's own write path rewrites the whole file in place on every write:
about half a second per update at 100k users, and a crash mid-write leaves a
torn file. So records live in memory and reach the disk two ways:

* **Journal** (``<store>.journal``, :mod:`.journal`, :mod:`.journal_file`):
  every ~0.2 s a background thread appends the records changed since the last
  round as JSON lines closed by a commit line, in one ``write()``. A SIGKILL
  loses at most that round.
* **Snapshot** (the store file itself, :mod:`.format`): when the journal has
  grown, a second thread writes the whole store to a temp file in the same
  folder, fsyncs it, ``os.replace``s it over the store and fsyncs the folder,
  then drops the journal lines the snapshot covers. ``close()`` always ends with
  a snapshot and no journal, so a plain TinyDB sees everything.

The snapshot is *fuzzy*: it is serialised in chunks while ``seen()`` keeps
running, so it may mix states from different moments. That is safe because a
generation marker is written to the journal before the first chunk: every
change after the marker is journaled under the new generation, and replaying
those full-record lines on top of the snapshot yields the latest state.

One process writes (:mod:`.lock`); readers (:class:`StoreReader`) take no lock
and pair the store file with its journal by generation (:mod:`.reader`).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tracker.files import unlink_quietly
from tracker.models import PROFILE_FIELDS, Profile, Record, TimestampCache, encodable_text
from tracker.store.columns import COLUMN_ORDER, ColumnCache, ColumnCollector, columns_path
from tracker.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFileKindError,
    StoreLockedError,
    StoreNotFoundError,
    check_file_kinds,
    os_reason,
)
from tracker.store.format import (
    JOURNAL_GEN,
    OWN_META_KEYS,
    SCHEMA,
    STORE_ID,
    return_freed_memory,
    store_id_of,
    write_store,
)
from tracker.store.journal import Generation, encode
from tracker.store.journal_file import JournalClaimedError, JournalFile
from tracker.store.lock import WriterLock
from tracker.store.persister import Persister, Tuning
from tracker.store.reader import (
    StoreReader,
    find_username,
    journal_path_of,
    load_columns,
    load_state,
    read_journal,
)
from tracker.store.records import PendingChanges, as_profile, encodable_values, new_record, profile_values

__all__ = [
    "COLUMN_ORDER",
    "SCHEMA",
    "StoreCorruptError",
    "StoreError",
    "StoreFileKindError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreReader",
    "Tuning",
    "UserStore",
    "columns_path",
    "load_columns",
]

class UserStore:
    """The users of one bot, in memory, persisted to a TinyDB JSON file.

    Use as a context manager. A writer (``readonly=False``) holds an exclusive
    lock until :meth:`close`; a reader loads the file plus its journal once and
    never writes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        readonly: bool = False,
        *,
        flush_interval: float | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.journal_path = journal_path_of(self.path)
        tuning = tuning or Tuning()
        if flush_interval is not None:
            tuning = dataclasses.replace(tuning, flush_interval=flush_interval)
        self.tuning = tuning
        self._records: dict[int, Record] = {}
        self._meta: dict[str, Any] = {"schema": SCHEMA}
        self._other_tables: dict[str, Any] = {}
        self._timestamp = TimestampCache()
        self._closed = False

        # Writer state. _lock guards records/meta/pending changes; _journal_lock
        # the journal file (appends and compaction); _snapshot_lock one snapshot at a time.
        self._lock = threading.Lock()
        self._journal_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._pending = PendingChanges()
        self._gen = 0
        self._snapshot_bytes = 0
        self._snapshot_quiet_until = 0.0
        self._writer_lock = WriterLock(self.path)
        self._journal = JournalFile(self.journal_path)
        self._columns = ColumnCache(self.path)
        self._persister = Persister(self, str(self.path))

        if readonly:
            self._load_for_reading()
        else:
            self._open_for_writing()

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        """Iterate over the live records (read them; do not mutate them)."""
        with self._lock:
            return iter(list(self._records.values()))

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._records

    def get(self, user_id: int) -> Record | None:
        """A copy of the record of ``user_id``, or None."""
        with self._lock:
            record = self._records.get(user_id)
            return dict(record) if record is not None else None

    def find_username(self, name: str) -> Record | None:
        """A copy of the record whose username is ``name`` (case-insensitive, ``@`` optional)."""
        with self._lock:
            record = find_username(self._records.values(), name)
            return dict(record) if record is not None else None

    @property
    def meta(self) -> dict[str, Any]:
        """A copy of the meta document (``schema``, bio state, ...)."""
        with self._lock:
            return dict(self._meta)

    @meta.setter
    def meta(self, value: Mapping[str, Any]) -> None:
        """Replace the caller-managed meta fields with ``value``."""
        fields = {k: v for k, v in value.items() if k not in OWN_META_KEYS}
        with self._lock:
            self._check_writable()
            own = {k: self._meta[k] for k in OWN_META_KEYS if k in self._meta}
            self._meta = {**fields, **own}
            self._pending.meta = True

    # ----------------------------------------------------------------- writes

    def seen(
        self, profile: Profile, at: datetime, *, message: bool = True, source: str | None = None
    ) -> bool:
        """Record a sighting of ``profile`` at ``at``; return True when the user is new.

        The profile replaces the stored one and ``last_seen`` moves forward only
        when this sighting is at least as new as the last one (a late-delivered
        older update must not undo a rename). Counts a message when ``message``;
        ``source`` is kept only if the record has none yet.
        """
        if type(profile) is not Profile:
            profile = as_profile(profile)
        user_id = profile[0]
        with self._lock:
            self._check_writable()
            seen_at = self._timestamp(at)
            record = self._records.get(user_id)
            is_new = whole_record_changed = record is None
            if record is None:
                record = new_record(profile, seen_at)
                self._records[user_id] = record
            else:
                last_seen = record["last_seen"]
                if last_seen is None or seen_at >= last_seen:  # None: a hand-edited record
                    if profile_values(record) != profile[1:]:
                        record.update(zip(PROFILE_FIELDS, encodable_values(profile), strict=True))
                        whole_record_changed = True
                    record["last_seen"] = seen_at
                    if record["first_seen"] is None:
                        record["first_seen"] = seen_at
                        whole_record_changed = True
            if message:
                record["messages"] += 1
            if source and not record["source"]:
                record["source"] = encodable_text(source)
                whole_record_changed = True
            pending = self._pending.changed if whole_record_changed else self._pending.touched
            pending.add(user_id)
            if len(pending) >= self.tuning.flush_early_at:
                self._persister.flush_wanted.set()
        return is_new

    def set_blocked(self, user_id: int, blocked: bool, at: datetime) -> bool:
        """Mark ``user_id`` as having blocked (or unblocked) the bot; False if unknown."""
        with self._lock:
            self._check_writable()
            blocked_at = self._timestamp(at)  # first: a naive datetime must change nothing
            record = self._records.get(user_id)
            if record is None:
                return False
            record["blocked"] = blocked
            record["blocked_at"] = blocked_at if blocked else None
            self._pending.changed.add(user_id)
            return True

    def forget(self, user_id: int) -> bool:
        """Erase the record of ``user_id``; True when there was one."""
        with self._lock:
            self._check_writable()
            if self._records.pop(user_id, None) is None:
                return False
            self._pending.changed.add(user_id)
            return True

    def update_meta(self, **fields: Any) -> None:
        """Set fields of the meta document (``schema`` is the store's own)."""
        if any(key in fields for key in OWN_META_KEYS):
            raise ValueError(f"{', '.join(OWN_META_KEYS)} are managed by the store")
        with self._lock:
            self._check_writable()
            self._meta.update(fields)
            self._pending.meta = True

    def flush(self) -> None:
        """Make every change so far durable (journal written and fsynced)."""
        if self.readonly or self._closed:
            return
        self._persister.raise_failure()
        self.flush_journal()

    def snapshot(self) -> None:
        """Write the whole store file now and drop the journal it covers.

        The background thread does this when the journal has grown; tests and
        benchmarks call it to get there at a known moment.
        """
        self._check_writable()
        self.write_snapshot_now()

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

    def close(self) -> None:
        """Stop the background threads, fold everything into the store file, unlock."""
        if self._closed:
            return
        self._closed = True
        if self.readonly:
            return
        self._persister.stop()
        try:
            self._append_pending()
            with self._snapshot_lock:
                self._write_snapshot()
            with self._journal_lock:
                self._journal.remove()
        finally:
            self._journal.close()
            self._writer_lock.release()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"store {self.path} is open read-only")
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    # ---------------------------------------------------------------- opening

    def _load_for_reading(self) -> None:
        if not self.path.exists():
            raise StoreNotFoundError(f"no store at {self.path} yet")
        check_file_kinds({"store": self.path, "journal": self.journal_path}, links_ok=frozenset({"store"}))
        state = load_state(self.path)
        self._records, self._meta, self._other_tables = state.records, state.meta, state.other_tables

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
            },
            links_ok=frozenset({"store", "column file"}),  # read through, replaced by rename
        )
        self._writer_lock.acquire()
        try:
            try:
                self._journal.claim()
            except JournalClaimedError:
                raise self._writer_lock.refused(None, f"its journal {self.journal_path} is locked") from None
            self._writer_lock.write_pid()
            self._load_for_writing()
            self._remove_stale_temp_files()
            # Fold any journal into a fresh snapshot so the new journal starts clean.
            self._write_snapshot()
            self._journal.start(self._gen, store_id_of(self._meta))
            return_freed_memory()  # after the parse and the first snapshot
        except BaseException:
            self._journal.release_unused()
            self._writer_lock.release()
            raise
        self._persister.start(self.tuning.flush_interval)

    def _load_for_writing(self) -> None:
        if os.path.lexists(self.path):
            state = load_state(self.path, compact=True)
            self._records, self._meta, self._other_tables = state.records, state.meta, state.other_tables
            self._gen, self._snapshot_bytes = state.gen, state.size
        elif read_journal(self.journal_path):
            raise StoreCorruptError(
                f"journal {self.journal_path} exists but store {self.path} is missing; "
                f"restore the store file or remove the journal"
            )
        # A store gets its id the first time a writer opens it; every journal carries it.
        self._meta.setdefault(STORE_ID, secrets.token_hex(8))

    def _remove_stale_temp_files(self) -> None:
        """Delete snapshot temp files a killed writer left (we hold the lock: none is live)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            unlink_quietly(stale)
        unlink_quietly(self._journal.tmp_path)

    # ------------------------------------------------------------ persistence

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
            if self._journal.size >= max(tuning.snapshot_min_journal_bytes, self._snapshot_bytes // 8):
                return True
            return time.monotonic() - since >= tuning.snapshot_max_age

    def _append_pending(self, *, new_generation: bool = False) -> int:
        """Append pending changes to the journal; return the journal's new size.

        With ``new_generation`` a generation marker follows the changes, and
        the returned offset is where that marker starts: everything before it
        is covered by a snapshot that starts now.
        """
        with self._journal_lock:
            with self._lock:
                crc_start = self._journal.tail_crc
                batch, taken = self._pending.take(self._records, self._meta, crc_start)
                tail_crc = 0 if batch else crc_start
                marker_at = self._journal.size + len(batch)
                if new_generation:
                    self._gen += 1
                    marker = encode(Generation(self._gen, store_id_of(self._meta))) + b"\n"
                    batch += marker
                    tail_crc = zlib.crc32(marker, tail_crc)
            if not batch or not self._journal.is_open:
                return self._journal.size
            try:
                self._journal.append(batch, has_changes=taken.any, tail_crc=tail_crc)
            except StoreError:
                # Keep the changes pending, so the next round writes them again.
                with self._lock:
                    self._pending.put_back(taken)
                    if new_generation:
                        self._gen -= 1
                raise
            return marker_at if new_generation else self._journal.size

    def _write_snapshot(self) -> None:
        """Write the whole store to a temp file and atomically replace the store file."""
        with self._lock:
            user_ids = list(self._records)
            meta = {**self._meta, JOURNAL_GEN: self._gen}
            other_tables = dict(self._other_tables)
        collector = ColumnCollector()
        try:
            size = write_store(self.path, self._user_chunks(user_ids, collector), meta, other_tables)
        except OSError as exc:
            raise StoreError(f"cannot write store {self.path}: {os_reason(exc)}") from None
        self._snapshot_bytes = size
        self._columns.write(collector.columns, meta[JOURNAL_GEN], store_id_of(meta))

    def _user_chunks(self, user_ids: list[int], collector: ColumnCollector) -> Iterator[bytes]:
        """The users table serialised chunk by chunk, each under the lock for a short while."""
        chunk_size = self.tuning.snapshot_chunk
        for start in range(0, len(user_ids), chunk_size):
            chunk = user_ids[start : start + chunk_size]
            # One chunk per lock hold bounds the pause seen() callers feel.
            with self._lock:
                records = self._records
                present = [records[i] for i in chunk if i in records]
                body = orjson.dumps({str(record["id"]): record for record in present})
                collector.add(present)
            yield body


