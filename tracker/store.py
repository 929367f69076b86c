"""UserStore: the TinyDB JSON file of users, kept in memory and made durable.

This is the only module that knows the file format. The file is a plain TinyDB
JSON database (``TinyDB(path).table("users").get(doc_id=USER_ID)`` works), but
TinyDB's own write path rewrites the whole file in place on every write: about
half a second per update at 100k users, and a crash mid-write leaves a torn
file. So records live in memory and reach the disk two ways:

* **Journal** (``<store>.journal``): every ~0.2 s a background thread appends
  the records changed since the last round as JSON lines, closed by a commit
  line, in one ``write()``. A SIGKILL loses at most that round.
* **Snapshot** (the store file itself): when the journal has grown, a second
  thread writes the whole store to a temp file in the same folder, fsyncs it,
  ``os.replace``s it over the store and fsyncs the folder, then drops the
  journal lines the snapshot covers. ``close()`` always ends with a snapshot
  and no journal, so a plain TinyDB sees everything.

The snapshot is *fuzzy*: it is serialised in chunks while ``seen()`` keeps
running, so it may mix states from different moments. That is safe because a
generation marker is written to the journal before the first chunk: every
change after the marker is journaled under the new generation, and replaying
those full-record lines on top of the snapshot yields the latest state.

Journal lines (orjson arrays): ``["g", gen]`` generation marker,
``["u", [record, ...]]`` upserts, ``["t", [[id, last_seen, messages], ...]]``
touches (the common case: a known user with an unchanged profile wrote again,
journaled without re-serialising the whole record), ``["d", [id, ...]]``
deletes, ``["m", meta]`` meta, ``["c"]`` commit. Lines after the last commit
are a torn write and are ignored.

One process writes (an ``flock`` on ``<store>.lock`` holding its pid); readers
take no lock and retry when a snapshot replaced the file under them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gc
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from tracker.files import PRIVATE, atomic_write, fsync_folder, unlink_quietly
from tracker.models import (
    RECORD_FIELDS,
    Record,
    TimestampCache,
    complete_record,
    encodable,
    encodable_text,
    new_record,
    profile_of,
    user_id_of,
)

__all__ = [
    "SCHEMA",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreReader",
    "UserStore",
]

log = logging.getLogger(__name__)

#: The store format version this code reads and writes.
SCHEMA = 1

USERS_TABLE = "users"
META_TABLE = "meta"
META_DOC_ID = "1"
_RECORD_KEYS = frozenset(RECORD_FIELDS)
# Column file order: the fields a whole-store count needs come first, so a
# reader that wants only those stops reading early (see load_columns).
_COUNTED_FIELDS = ("id", "first_seen", "last_seen", "messages", "blocked", "language_code", "source")
COLUMN_ORDER: tuple[str, ...] = (
    *_COUNTED_FIELDS,
    *(name for name in RECORD_FIELDS if name not in _COUNTED_FIELDS),
)

# Meta keys the store manages itself; callers use the rest (e.g. bio_*).
_JOURNAL_GEN = "journal_gen"

FILE_MODE = PRIVATE
FLUSH_INTERVAL = 0.2
# Journal early once this many changes are pending: serialising a batch holds
# the lock, so bounding the batch bounds the pause seen() callers can feel.
FLUSH_EARLY_AT = 8_192
# Records serialised per chunk of a snapshot: the longest pause a snapshot
# imposes on seen() callers is one chunk (see bench/store.py for figures).
SNAPSHOT_CHUNK = 5_000
# Snapshot when the journal reaches this size or 1/8 of the last snapshot,
# whichever is larger, or when it holds changes older than SNAPSHOT_MAX_AGE.
SNAPSHOT_MIN_JOURNAL_BYTES = 1 << 20
SNAPSHOT_MAX_AGE = 300.0
# At most this share of the time goes to snapshots: after one that took d
# seconds the next waits (1 / SNAPSHOT_MAX_DUTY - 1) * d. Under a flood of
# updates the journal then grows instead of the writer snapshotting nonstop.
SNAPSHOT_MAX_DUTY = 0.1
READ_RETRIES = 20


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
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._flush_interval = flush_interval
        self._records: dict[int, Record] = {}
        self._meta: dict[str, Any] = {"schema": SCHEMA}
        self._other_tables: dict[str, Any] = {}
        self._timestamp = TimestampCache()
        self._closed = False

        # Writer state. _lock guards records/meta/dirty; _journal_lock guards
        # the journal file (appends and compaction).
        self._lock = threading.Lock()
        self._journal_lock = threading.Lock()
        # Changes not yet journaled: ids whose whole record (or deletion) must
        # be written, and ids that only got a new last_seen/messages.
        self._changed: set[int] = set()
        self._touched: set[int] = set()
        self._meta_dirty = False
        self._gen = 0
        self._journal_fd: int | None = None
        self._journal_bytes = 0
        self._journal_since: float | None = None
        self._snapshot_bytes = 0
        self._snapshot_quiet_until = 0.0
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._flush_wanted = threading.Event()
        self._snapshot_wanted = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failure: StoreError | None = None

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
        # A scan (~0.1 s at 1M users) rather than an index: lookups by name are
        # rare (CLI, admin commands) and an index would cost memory per user and
        # time on every update.
        wanted = name.lstrip("@").lower()
        if not wanted:
            return None
        with self._lock:
            for record in self._records.values():
                username = record["username"]
                if username and username.lower() == wanted:
                    return dict(record)
        return None

    @property
    def meta(self) -> dict[str, Any]:
        """A copy of the meta document (``schema``, bio state, ...)."""
        with self._lock:
            return dict(self._meta)

    @meta.setter
    def meta(self, value: Mapping[str, Any]) -> None:
        """Replace the caller-managed meta fields with ``value``."""
        fields = {k: v for k, v in value.items() if k not in ("schema", _JOURNAL_GEN)}
        with self._lock:
            self._check_writable()
            own = {k: self._meta[k] for k in ("schema", _JOURNAL_GEN) if k in self._meta}
            self._meta = {**fields, **own}
            self._meta_dirty = True

    # ----------------------------------------------------------------- writes

    def seen(
        self,
        user: Mapping[str, Any] | object,
        at: datetime,
        *,
        message: bool = True,
        source: str | None = None,
    ) -> bool:
        """Record a sighting of ``user`` at ``at``; return True when the user is new.

        Updates the profile fields and ``last_seen``; counts a message when
        ``message``; ``source`` is kept only if the record has none yet.
        """
        user_id = user_id_of(user)
        profile = profile_of(user)
        with self._lock:
            self._check_writable()
            seen_at = self._timestamp(at)
            record = self._records.get(user_id)
            is_new = whole_record_changed = record is None
            if record is None:
                record = new_record(user_id, encodable(profile), seen_at)
                self._records[user_id] = record
            else:
                # items() views compare in C: the cheap "nothing changed" test.
                if not profile.items() <= record.items():
                    record.update(encodable(profile))
                    whole_record_changed = True
                last_seen = record["last_seen"]
                if last_seen is None or seen_at > last_seen:  # None: a hand-edited record
                    record["last_seen"] = seen_at
                    if record["first_seen"] is None:
                        record["first_seen"] = seen_at
                        whole_record_changed = True
            if message:
                record["messages"] += 1
            if source and not record["source"]:
                record["source"] = encodable_text(source)
                whole_record_changed = True
            pending = self._changed if whole_record_changed else self._touched
            pending.add(user_id)
            if len(pending) >= FLUSH_EARLY_AT:
                self._flush_wanted.set()
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
            self._changed.add(user_id)
            return True

    def forget(self, user_id: int) -> bool:
        """Erase the record of ``user_id``; True when there was one."""
        with self._lock:
            self._check_writable()
            if self._records.pop(user_id, None) is None:
                return False
            self._changed.add(user_id)
            return True

    def update_meta(self, **fields: Any) -> None:
        """Set fields of the meta document (``schema`` is the store's own)."""
        if "schema" in fields or _JOURNAL_GEN in fields:
            raise ValueError("schema and journal_gen are managed by the store")
        with self._lock:
            self._check_writable()
            self._meta.update(fields)
            self._meta_dirty = True

    def flush(self) -> None:
        """Make every change so far durable (journal written and fsynced)."""
        if self.readonly or self._closed:
            return
        self._raise_background_failure()
        self._flush_journal()

    def close(self) -> None:
        """Stop the background threads, fold everything into the store file, unlock."""
        if self._closed:
            return
        self._closed = True
        if self.readonly:
            return
        self._stop.set()
        self._flush_wanted.set()
        self._snapshot_wanted.set()
        for thread in self._threads:
            thread.join()
        try:
            self._flush_journal()
            self._write_snapshot()
            self._remove_journal()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"store {self.path} is open read-only")
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    # ---------------------------------------------------------------- loading

    def _load_for_reading(self) -> None:
        if not self.path.exists():
            raise StoreNotFoundError(f"no store at {self.path} yet")
        # A snapshot may replace the file and compact the journal between our
        # two reads: the journal then starts at a generation newer than the
        # snapshot we read. The writer replaces the file before it compacts the
        # journal, so the file on disk now is at least that new; if it is
        # exactly that generation, it and the journal we hold are a consistent
        # pair. Otherwise yet another snapshot landed: start over.
        for _ in range(READ_RETRIES):
            snapshot_gen = self._load_snapshot()
            journal = self._read_bytes(self.journal_path, missing_ok=True)
            journal_gen = _first_generation(journal)
            if journal_gen is not None and journal_gen > snapshot_gen:
                snapshot_gen = self._load_snapshot()
                if snapshot_gen != journal_gen:
                    continue
            self._replay(journal, snapshot_gen)
            return
        raise StoreError(f"store {self.path} kept changing while being read; try again")

    def _open_for_writing(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
        self._take_lock()
        try:
            if self.path.exists():
                snapshot_gen = self._load_snapshot()
                journal = self._read_bytes(self.journal_path, missing_ok=True)
                journal_gen = _first_generation(journal)
                if journal_gen is not None and journal_gen > snapshot_gen:
                    raise StoreCorruptError(
                        f"journal {self.journal_path} is newer than store {self.path}; "
                        f"the store file was replaced by hand?"
                    )
                self._replay(journal, snapshot_gen)
                self._gen = snapshot_gen
            elif self._read_bytes(self.journal_path, missing_ok=True):
                raise StoreCorruptError(
                    f"journal {self.journal_path} exists but store {self.path} is missing; "
                    f"restore the store file or remove the journal"
                )
            self._remove_stale_temp_files()
            # Fold any journal into a fresh snapshot so the new journal starts clean.
            self._write_snapshot()
            self._remove_journal()
            self._open_journal()
            _return_freed_memory()  # after the parse and the first snapshot
        except BaseException:
            os.close(self._lock_fd)  # type: ignore[arg-type]
            self._lock_fd = None
            raise
        self._start_threads()

    def _remove_stale_temp_files(self) -> None:
        """Delete snapshot temp files a killed writer left (we hold the lock: none is live)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            unlink_quietly(stale)
        unlink_quietly(self.journal_path.with_name(self.journal_path.name + ".tmp"))

    def _take_lock(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise StoreError(f"cannot create lock file {self.lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f"process {holder}" if holder else "another process"
                raise StoreLockedError(
                    f"store {self.path} is already open for writing by {who} "
                    f"(lock {self.lock_path}); stop it first",
                    holder,
                ) from None
            raise StoreError(f"cannot lock {self.lock_path}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _read_bytes(self, path: Path, *, missing_ok: bool = False) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if missing_ok:
                return b""
            raise StoreNotFoundError(f"no store at {path}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _load_snapshot(self) -> int:
        """Parse the store file into memory; return its journal generation."""
        data = self._read_bytes(self.path)
        self._records = {}
        self._meta = {"schema": SCHEMA}
        self._other_tables = {}
        if not data.strip():
            return 0  # an empty file is a new store
        # Parsing a large store creates millions of objects; the cyclic GC
        # would scan them repeatedly while they are being built.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            problem = "truncated JSON" if exc.pos >= len(data.rstrip()) - 1 else f"invalid JSON ({exc})"
            raise StoreCorruptError(f"store {self.path} is not readable: {problem}") from None
        finally:
            if gc_was_enabled:
                gc.enable()
        size = len(data)
        del data  # the parsed objects are what we keep; free the text early
        if not isinstance(document, dict):
            raise StoreCorruptError(f"store {self.path} is not a TinyDB database (not a JSON object)")
        if document and USERS_TABLE not in document and META_TABLE not in document:
            tables = ", ".join(sorted(map(str, document))[:3])
            raise StoreCorruptError(
                f"store {self.path} is not a user store (it has tables {tables} but no 'users')"
            )
        ours = META_TABLE in document
        meta_table = document.pop(META_TABLE, {}) or {}
        meta = meta_table.get(META_DOC_ID) if isinstance(meta_table, dict) else None
        if meta is not None:
            if not isinstance(meta, dict) or not isinstance(meta.get("schema", SCHEMA), int):
                raise StoreCorruptError(f"store {self.path} has a malformed 'meta' table")
            schema = meta.get("schema", SCHEMA)
            if schema > SCHEMA:
                raise StoreCorruptError(
                    f"store {self.path} has schema {schema}, newer than this version reads "
                    f"({SCHEMA}); upgrade telegram-user-tracker"
                )
            self._meta = {**meta, "schema": SCHEMA}
        users = document.pop(USERS_TABLE, {}) or {}
        if not isinstance(users, dict):
            raise StoreCorruptError(f"store {self.path}: table 'users' is not an object")
        if not (all(map(str.isdigit, users)) and all(map(str.isascii, users))):
            bad = next(doc_id for doc_id in users if not (doc_id.isdigit() and doc_id.isascii()))
            raise StoreCorruptError(f"store {self.path}: users record {bad!r} has a non-numeric id")
        if self.readonly:
            # Readers are short-lived: keep orjson's objects as they are, fast.
            self._records = {int(doc_id): record for doc_id, record in users.items()}
        else:
            self._records = self._compact_records(users)
        for user_id, record in self._records.items():
            if type(record) is not dict:
                raise StoreCorruptError(f"store {self.path}: users record {user_id} is not an object")
            if not record.keys() >= _RECORD_KEYS or record["id"] != user_id:
                # Without our meta table, only records keyed by their own Telegram
                # id say "a user store (hand-made or older)"; another program's
                # "users" table (doc ids 1, 2, 3...) is foreign and left alone.
                if not ours and record.get("id") != user_id:
                    raise StoreCorruptError(
                        f"store {self.path} is not a user store (its 'users' record {user_id} "
                        f"is not keyed by its Telegram id)"
                    )
                complete_record(record)["id"] = user_id
        del users
        self._other_tables = document
        self._snapshot_bytes = size
        gen = self._meta.get(_JOURNAL_GEN, 0)
        return gen if isinstance(gen, int) else 0

    @staticmethod
    def _compact_records(users: dict[str, Any]) -> dict[int, Record]:
        """The parsed records, made smaller for a long-lived writer.

        orjson's dicts are over-allocated while being built: a copy is ~25%
        smaller. Low-cardinality strings share one object, a record seen once
        shares its two timestamps, and the dict key is the record's own id
        object. Each parsed dict is freed once copied.
        """
        records: dict[int, Record] = {}
        shared: dict[str, str] = {}
        for doc_id in list(users):
            parsed = users.pop(doc_id)
            # Inserted key by key: dict(parsed) would clone orjson's oversized table.
            record = {key: value for key, value in parsed.items()} if type(parsed) is dict else parsed
            if type(record) is dict:
                for field in ("language_code", "source"):
                    value = record.get(field)
                    if type(value) is str:
                        record[field] = shared.setdefault(value, value)
                if record.get("last_seen") == record.get("first_seen"):
                    record["last_seen"] = record.get("first_seen")
                user_id = record.get("id")
                if type(user_id) is int and str(user_id) == doc_id:
                    records[user_id] = record  # the key is the record's own id object
                    continue
            records[int(doc_id)] = record
        return records

    def _replay(self, journal: bytes, snapshot_gen: int) -> None:
        """Apply the committed journal batches of generation >= ``snapshot_gen``."""
        for op in _committed_ops(journal, snapshot_gen, self.journal_path):
            self._apply(op)

    def _apply(self, op: list[Any]) -> None:
        kind, value = op[0], op[1]
        records = self._records
        if kind == "t":
            for user_id, last_seen, messages in value:
                record = records.get(user_id)
                if record is not None:
                    record["last_seen"] = last_seen
                    record["messages"] = messages
        elif kind == "u":
            for record in value:
                records[record["id"]] = record
        elif kind == "d":
            for user_id in value:
                records.pop(user_id, None)
        elif kind == "m":
            self._meta = value
        else:
            raise StoreCorruptError(f"journal {self.journal_path} has an unknown entry {kind!r}")

    # ---------------------------------------------------------------- journal

    def _open_journal(self) -> None:
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, FILE_MODE)
        marker = orjson.dumps(["g", self._gen]) + b"\n"
        os.write(fd, marker)
        os.fsync(fd)
        fsync_folder(self.path.parent)
        self._journal_fd = fd
        self._journal_bytes = len(marker)
        self._journal_since = None

    def _remove_journal(self) -> None:
        with self._journal_lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal_path)
            fsync_folder(self.path.parent)

    def _take_changes(self) -> tuple[bytes, set[int], set[int], bool]:
        """Serialise what changed since the last call as journal lines (``_lock`` held).

        Returns the lines and what was taken, so a failed write can put it back.
        Each kind of change is one orjson call over a list: far cheaper than a
        call per record.
        """
        changed, self._changed = self._changed, set()
        touched, self._touched = self._touched, set()
        meta_dirty, self._meta_dirty = self._meta_dirty, False
        records = self._records
        lines = []
        if changed:
            upserts = [records[i] for i in changed if i in records]
            deletes = [i for i in changed if i not in records]
            if upserts:
                lines.append(orjson.dumps(["u", upserts]))
            if deletes:
                lines.append(orjson.dumps(["d", deletes]))
        touches = [
            (i, record["last_seen"], record["messages"])
            for i in touched - changed
            if (record := records.get(i)) is not None
        ]
        if touches:
            lines.append(orjson.dumps(["t", touches]))
        if meta_dirty:
            lines.append(orjson.dumps(["m", self._meta]))
        if not lines:
            return b"", changed, touched, meta_dirty
        lines.append(b'["c"]')
        return b"\n".join(lines) + b"\n", changed, touched, meta_dirty

    def _flush_journal(self, *, new_generation: bool = False) -> int:
        """Append pending changes to the journal; return the journal's new size.

        With ``new_generation`` a generation marker follows the changes, and
        the returned offset is where that marker starts: everything before it
        is covered by a snapshot that starts now.
        """
        with self._journal_lock:
            with self._lock:
                batch, changed, touched, meta_taken = self._take_changes()
                marker_at = self._journal_bytes + len(batch)
                if new_generation:
                    self._gen += 1
                    batch += orjson.dumps(["g", self._gen]) + b"\n"
            if not batch or self._journal_fd is None:
                return self._journal_bytes
            try:
                _write_all(self._journal_fd, batch)
                os.fsync(self._journal_fd)
            except OSError as exc:
                # Cut the journal back to its last good end and keep the changes
                # pending, so the next round writes them again.
                os.ftruncate(self._journal_fd, self._journal_bytes)
                with self._lock:
                    self._changed |= changed
                    self._touched |= touched
                    self._meta_dirty |= meta_taken
                    if new_generation:
                        self._gen -= 1
                raise StoreError(f"cannot write journal {self.journal_path}: {exc.strerror or exc}") from None
            self._journal_bytes += len(batch)
            if self._journal_since is None and (changed or touched or meta_taken):
                self._journal_since = time.monotonic()
            return marker_at if new_generation else self._journal_bytes

    def _compact_journal(self, keep_from: int) -> None:
        """Drop journal bytes before ``keep_from`` (they are in the snapshot now)."""
        with self._journal_lock:
            if self._journal_fd is None:
                return
            with open(self.journal_path, "rb") as fh:
                fh.seek(keep_from)
                tail = fh.read()
            tmp = self.journal_path.with_name(self.journal_path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, FILE_MODE)
            try:
                _write_all(fd, tail)
                os.fsync(fd)
                os.replace(tmp, self.journal_path)
            except BaseException:
                os.close(fd)
                raise
            # Switch to the new file before anything else can fail: appends to
            # the old, now unlinked, file would be lost.
            os.close(self._journal_fd)
            self._journal_fd = fd
            self._journal_bytes = len(tail)
            self._journal_since = time.monotonic() if tail.count(b"\n") > 1 else None
            fsync_folder(self.path.parent)

    # --------------------------------------------------------------- snapshot

    def _write_snapshot(self) -> None:
        """Write the whole store to a temp file and atomically replace the store file."""
        with self._lock:
            user_ids = list(self._records)
            meta = {**self._meta, _JOURNAL_GEN: self._gen}
            other_tables = dict(self._other_tables)
        columns: dict[str, list[Any]] = {name: [] for name in COLUMN_ORDER}
        getters = [(columns[name].extend, itemgetter(name)) for name in COLUMN_ORDER]
        try:
            with atomic_write(self.path) as out:
                out.write(b'{"' + USERS_TABLE.encode() + b'":{')
                first = True
                for start in range(0, len(user_ids), SNAPSHOT_CHUNK):
                    chunk = user_ids[start : start + SNAPSHOT_CHUNK]
                    # One chunk per lock hold bounds the pause seen() callers feel.
                    with self._lock:
                        records = self._records
                        present = [records[i] for i in chunk if i in records]
                        body = orjson.dumps({str(record["id"]): record for record in present})
                        for extend, field in getters:
                            extend(map(field, present))
                    if len(body) > 2:
                        out.write(body[1:-1] if first else b"," + body[1:-1])
                        first = False
                out.write(b"},")
                out.write(orjson.dumps({META_TABLE: {META_DOC_ID: meta}, **other_tables})[1:])
                size = out.tell()
        except OSError as exc:
            raise StoreError(f"cannot write store {self.path}: {exc.strerror or exc}") from None
        self._snapshot_bytes = size
        self._write_columns(columns, meta[_JOURNAL_GEN], _file_identity(self.path))

    def _write_columns(self, columns: dict[str, list[Any]], gen: int, store_identity: list[int]) -> None:
        """Write the column file: a derived copy for fast whole-store reads.

        Parsing a million JSON objects takes seconds; the same data as one
        array per field parses several times faster, and a reader can skip the
        fields it does not need (see :func:`load_columns`). It is a cache, not
        a source of truth: no fsync, and readers fall back to the store file
        whenever it is missing, torn or stale.
        """
        path = columns_path(self.path)
        # The store file's identity ties this file to the snapshot it was made
        # from: a store file replaced or edited since then no longer matches.
        header = {
            "gen": gen,
            "count": len(columns["id"]),
            "fields": list(columns),
            "store": store_identity,
        }
        try:
            with atomic_write(path, durable=False) as out:
                out.write(orjson.dumps(header) + b"\n")
                for values in columns.values():
                    out.write(orjson.dumps(values) + b"\n")
                out.write(_COLUMNS_END)
        except (OSError, TypeError) as exc:
            unlink_quietly(path)  # better none than a stale one
            log.warning("cannot write column file %s: %s", path, exc)

    def _snapshot_and_compact(self) -> None:
        started = time.monotonic()
        marker_at = self._flush_journal(new_generation=True)
        self._write_snapshot()
        self._compact_journal(marker_at)
        finished = time.monotonic()
        self._snapshot_quiet_until = finished + (finished - started) * (1 / SNAPSHOT_MAX_DUTY - 1)

    def _snapshot_due(self) -> bool:
        with self._journal_lock:
            if self._journal_since is None or time.monotonic() < self._snapshot_quiet_until:
                return False
            if self._journal_bytes >= max(SNAPSHOT_MIN_JOURNAL_BYTES, self._snapshot_bytes // 8):
                return True
            return time.monotonic() - self._journal_since >= SNAPSHOT_MAX_AGE

    # ------------------------------------------------------------ background

    def _start_threads(self) -> None:
        for name, target in (("journal", self._journal_loop), ("snapshot", self._snapshot_loop)):
            thread = threading.Thread(target=target, name=f"tracker-store-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _journal_loop(self) -> None:
        while not self._stop.is_set():
            self._flush_wanted.wait(self._flush_interval)
            self._flush_wanted.clear()
            try:
                self._flush_journal()
                if self._snapshot_due():
                    self._snapshot_wanted.set()
            except Exception as exc:  # any: a dead thread would silently stop saving
                self._record_failure(exc)

    def _snapshot_loop(self) -> None:
        while True:
            self._snapshot_wanted.wait()
            if self._stop.is_set():
                return
            self._snapshot_wanted.clear()
            try:
                self._snapshot_and_compact()
            except Exception as exc:  # any: a dead thread would silently stop saving
                self._record_failure(exc)

    def _record_failure(self, exc: Exception) -> None:
        if not isinstance(exc, StoreError):
            exc = StoreError(f"store {self.path}: saving failed: {exc!r}")
        if self._failure is None or str(self._failure) != str(exc):
            log.error("%s (will retry)", exc)
        self._failure = exc

    def _raise_background_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


_COLUMNS_END = b'"end"\n'


def columns_path(store_path: Path) -> Path:
    """Where the column file of the store at ``store_path`` lives."""
    return store_path.with_name(store_path.name + ".columns")


def load_columns(store_path: str | os.PathLike[str], fields: Sequence[str]) -> dict[str, list[Any]] | None:
    """``fields`` of every user, one list per field, as current as the store.

    Reads the column file the writer leaves beside the store plus the journal,
    so it sees what a read-only :class:`UserStore` would, at a fraction of the
    time and memory. Returns None when the column file is missing, torn or too
    old to pair with the journal: the caller then opens a :class:`UserStore`.
    The ``id`` column is always included.
    """
    store_path = Path(store_path)
    journal_path = store_path.with_name(store_path.name + ".journal")
    wanted = {"id", *fields}
    try:
        columns, gen = _read_columns(store_path, wanted)
        journal = journal_path.read_bytes() if journal_path.exists() else b""
        journal_gen = _first_generation(journal)
        if journal_gen is not None and journal_gen > gen:
            # Same race as UserStore readers: a snapshot landed between reads.
            columns, gen = _read_columns(store_path, wanted)
            if gen != journal_gen:
                return None
        _apply_to_columns(columns, _committed_ops(journal, gen, journal_path))
    except (OSError, ValueError, TypeError, KeyError, IndexError, StoreCorruptError):
        return None
    return columns


def _read_columns(store_path: Path, wanted: set[str]) -> tuple[dict[str, list[Any]], int]:
    path = columns_path(store_path)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of new objects: see _load_snapshot
    try:
        with open(path, "rb") as fh:
            # A reader may stop before the last column: the end mark proves the
            # file is whole (it was not fsynced, so a crash can leave it torn).
            fh.seek(-len(_COLUMNS_END), os.SEEK_END)
            if fh.read() != _COLUMNS_END:
                raise ValueError("torn column file")
            fh.seek(0)
            header = orjson.loads(fh.readline())
            if header["store"] != _file_identity(store_path):
                raise ValueError("column file does not match the store file")
            count = header["count"]
            columns: dict[str, list[Any]] = {}
            for name in header["fields"]:
                if wanted <= columns.keys():
                    break  # the rest of the file is fields nobody asked for
                line = fh.readline()
                if not line.endswith(b"\n"):
                    raise ValueError("torn column file")
                if name in wanted:
                    values = orjson.loads(line)
                    if not isinstance(values, list) or len(values) != count:
                        raise ValueError("malformed column")
                    columns[name] = values
    finally:
        if gc_was_enabled:
            gc.enable()
    if not wanted <= columns.keys():
        raise ValueError("column file lacks fields")
    return columns, header["gen"]


def _apply_to_columns(columns: dict[str, list[Any]], ops: Iterator[list[Any]]) -> None:
    """Apply journal operations (the ones UserStore._apply takes) to columns."""
    records: dict[int, Record | None] = {}  # latest whole record; None = deleted
    touches: dict[int, tuple[str, int]] = {}  # latest (last_seen, messages) of other users
    for kind, value in ops:
        if kind == "u":
            for record in value:
                records[record["id"]] = record
                touches.pop(record["id"], None)
        elif kind == "t":
            for user_id, last_seen, messages in value:
                record = records.get(user_id)
                if record is not None:
                    record["last_seen"], record["messages"] = last_seen, messages
                elif user_id not in records:
                    touches[user_id] = (last_seen, messages)
        elif kind == "d":
            for user_id in value:
                records[user_id] = None
                touches.pop(user_id, None)
        elif kind != "m":  # meta is not part of the columns
            raise ValueError(f"unknown journal entry {kind!r}")
    if not records and not touches:
        return
    affected = records.keys() | touches.keys()
    positions = [(i, user_id) for i, user_id in enumerate(columns["id"]) if user_id in affected]
    deleted: set[int] = set()
    for position, user_id in positions:
        if user_id in touches:
            last_seen, messages = touches[user_id]
            if "last_seen" in columns:
                columns["last_seen"][position] = last_seen
            if "messages" in columns:
                columns["messages"][position] = messages
            continue
        record = records.pop(user_id)
        if record is None:
            deleted.add(position)
        else:
            for name, values in columns.items():
                values[position] = record.get(name)
    if deleted:
        for name, values in columns.items():
            columns[name] = [v for i, v in enumerate(values) if i not in deleted]
    for record in records.values():  # users new since the column file
        if record is not None:
            for name, values in columns.items():
                values.append(record.get(name))


def _committed_ops(journal: bytes, min_gen: int, journal_path: Path) -> Iterator[list[Any]]:
    """The operations of the committed journal batches of generation >= ``min_gen``."""
    lines = journal.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn write
    gen = -1
    pending: list[list[Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            entry = orjson.loads(line)
            kind = entry[0]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            raise StoreCorruptError(f"journal {journal_path} line {number} is corrupt") from None
        if kind == "g":
            gen = entry[1]
        elif kind == "c":
            if gen >= min_gen:
                yield from pending
            pending.clear()
        else:
            pending.append(entry)


def _first_generation(journal: bytes) -> int | None:
    """The generation a journal starts at (its first line is always a marker)."""
    first_line = journal[: journal.find(b"\n")] if b"\n" in journal else b""
    try:
        entry = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == "g" and isinstance(entry[1], int):
        return entry[1]
    return None


def _return_freed_memory() -> None:
    """Hand the memory freed after a big load back to the OS.

    The parsed objects are freed once copied into compact records, but glibc
    keeps freed memory in its heap (the writer's resident size would stay at
    the parse's peak, ~50% above what it needs). A no-op where there is no
    ``malloc_trim`` (not glibc).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _file_identity(path: Path) -> list[int]:
    """Inode, size and modification time: changes whenever the file is replaced or edited."""
    stat = path.stat()
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------- StoreReader
#
# INTERIM: a thin StoreReader over load_columns() and UserStore(readonly=True),
# so the CLI can code against the shared read interface now. The store helper
# is turning this module into the tracker/store/ package with the real
# StoreReader (streaming reads, no whole-store load); the lead drops this one
# when merging.


class StoreReader:
    """Read-only, lock-free view of a store (journal applied); each call reads the files as they are then."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            raise StoreNotFoundError(f"no store at {self.path} yet") from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):
            raise StoreError(f"{self.path} is not a regular file")

    def _load(self) -> UserStore:
        return UserStore(self.path, readonly=True)

    def columns(self, fields: Sequence[str]) -> dict[str, list[Any]]:
        """One list per field ("id" always included), from the column cache when fresh."""
        wanted = ["id", *(f for f in fields if f != "id")]
        columns = load_columns(self.path, wanted)
        if columns is not None:
            return {name: columns[name] for name in wanted}
        with self._load() as store:
            records = list(store)
        return {name: [rec.get(name) for rec in records] for name in wanted}

    def records(self) -> Iterator[Record]:
        """Every record (dict), current."""
        with self._load() as store:
            yield from store

    def get(self, user_id: int) -> Record | None:
        """The record of ``user_id``, or None."""
        with self._load() as store:
            return store.get(user_id)

    def find_username(self, name: str) -> Record | None:
        """The record whose username is ``name`` (case-insensitive, '@' optional), or None."""
        with self._load() as store:
            return store.find_username(name)

    def meta(self) -> dict[str, Any]:
        """The meta document."""
        with self._load() as store:
            return store.meta

    def count(self) -> int:
        """How many users the store holds."""
        return len(self.columns(())["id"])

    def table(self, name: str) -> dict[str, Any]:
        """Any other TinyDB table ({doc_id: doc}), journal applied; {} when absent."""
        with self._load() as store:
            return dict(store._other_tables.get(name, {}))

    def document(self) -> dict[str, dict[str, Any]]:
        """The whole TinyDB document (every table), journal applied."""
        with self._load() as store:
            users = {str(rec["id"]): dict(rec) for rec in store}
            return {USERS_TABLE: users, META_TABLE: {META_DOC_ID: store.meta}, **store._other_tables}
