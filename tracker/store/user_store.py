"""UserStore: the record API of a writer (or a read-only copy) over the files of :mod:`.writer`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tracker.history_tables import copy_doc
from tracker.models import Profile, Record, encodable_text
from tracker.store.copies import BLOCKED_AT
from tracker.store.format import OWN_META_KEYS
from tracker.store.history import Activity, Grain
from tracker.store.persister import Tuning
from tracker.store.stamps import DAY, ODD, Stamps
from tracker.store.writer import StoreFiles

_new_activity = tuple.__new__


class UserStore(StoreFiles):
    """The users of one bot, in memory, persisted to a TinyDB JSON file.

    Use as a context manager. A writer (``readonly=False``) holds an exclusive
    lock until :meth:`close`; a reader loads the file plus its journal once and
    never writes. ``timezone`` (a zone name or ``ZoneInfo``) is where the audience
    history's days, weeks and months are; a store that has recorded history
    keeps the zone it recorded in (see :attr:`timezone`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        readonly: bool = False,
        *,
        timezone: str | ZoneInfo = "UTC",
        flush_interval: float | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        tuning = tuning or Tuning()
        if flush_interval is not None:
            tuning = dataclasses.replace(tuning, flush_interval=flush_interval)
        tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        super().__init__(Path(path), readonly, tuning, tz)
        self._stamps = Stamps()
        if readonly:
            self._load_for_reading()
        else:
            self._open_for_writing()

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[Record]:
        """Iterate over copies of the records as they are now."""
        with self._lock:
            return iter(self._table.records())

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._table

    def get(self, user_id: int) -> Record | None:
        """A copy of the record of ``user_id``, or None."""
        with self._lock:
            return self._table.get(user_id)

    def find_username(self, name: str) -> Record | None:
        """A copy of the record whose username is ``name`` (case-insensitive, ``@`` optional)."""
        with self._lock:
            return self._table.find_username(name)

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

    @property
    def timezone(self) -> ZoneInfo:
        """The zone of the audience history's periods."""
        return self._keeper.timezone

    def history_period(self, grain: Grain, start: date) -> dict[str, Any] | None:
        """A copy of the history document of the period starting on ``start`` (None: nothing recorded)."""
        with self._lock:
            doc = self._keeper.period(grain, start)
            return copy_doc(dict(doc)) if doc is not None else None

    def history_tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every audience-history table as it is now (copies): what the next snapshot writes."""
        with self._lock:
            return self._keeper.tables()

    # ----------------------------------------------------------------- writes

    def seen(
        self,
        profile: Profile,
        at: datetime,
        *,
        message: bool = True,
        source: str | None = None,
        command: str | None = None,
        button: bool = False,
    ) -> bool:
        """Record a sighting of ``profile`` at ``at``; return True when the user is new.

        The profile replaces the stored one and ``last_seen`` moves forward only
        when this sighting is at least as new as the last one (a late-delivered
        older update must not undo a rename). Counts a message when ``message``;
        ``source`` is kept only if the record has none yet. The audience history
        counts the sighting in ``at``'s day, week and month, with ``command`` (a
        name from :func:`~tracker.store.history.command_name`) and ``button`` (a
        button press).
        """
        # One function on purpose (~50 lines of body): it runs for every update the bot
        # sees, under the store's lock, and each helper split out of it would
        # cost a Python call per update (``python -m bench store`` measures it).
        if type(profile) is not Profile:  # a plain tuple or a pyrogram User would be misread
            raise TypeError(f"seen() takes a tracker.models.Profile, not {type(profile).__name__}")
        user_id = profile[0]
        values = profile[1:]
        digest = hash(values)  # outside the lock: the one costly step that needs no state
        with self._lock:
            self._check_writable()
            seen_text, seen_at = self._stamps(at)
            table = self._table
            row = table.rows.get(user_id)
            is_new = whole_record_changed = row is None
            if row is None:
                row = table.add(user_id, values, digest, seen_at, seen_text)
                first_seen, last_seen = seen_text, None
            else:
                previous, first = table.last_seen[row], table.first_seen[row]
                if 0 < previous < ODD and 0 < first < ODD and seen_at != ODD:  # the norm: plain seconds
                    day_prefix, time_of_day = table.day_prefix, table.time_of_day
                    last_seen = day_prefix[previous // DAY] + time_of_day[previous % DAY]
                    first_seen = day_prefix[first // DAY] + time_of_day[first % DAY]
                    if seen_at >= previous:
                        table.last_seen[row] = seen_at
                        if table.hashes[row] != digest:
                            table.set_profile(row, values, digest)
                            whole_record_changed = True
                else:  # a null or odd timestamp (hand-edited): compared as text, as the file has them
                    first_seen, last_seen, whole_record_changed = table.see_as_text(
                        row, values, digest, seen_at, seen_text
                    )
            if message:
                table.messages[row] += 1
            if source and not table.sources[row]:
                table.sources[row] = table.share(encodable_text(source))
                whole_record_changed = True
            # Built with tuple.__new__: the keyword-free fast path of a NamedTuple (hot path).
            self._keeper.record(
                _new_activity(Activity, (seen_text, first_seen, last_seen, is_new, message, command, button))
            )
            pending = self._pending.changed if whole_record_changed else self._pending.touched
            pending.add(user_id)
            if len(pending) >= self.tuning.flush_early_at:
                self._persister.flush_wanted.set()
        return is_new

    def set_blocked(self, user_id: int, blocked: bool, at: datetime) -> bool:
        """Mark ``user_id`` as having blocked (or unblocked) the bot; False if unknown."""
        with self._lock:
            self._check_writable()
            blocked_text, blocked_at = self._stamps(at)  # first: a naive datetime must change nothing
            table = self._table
            row = table.rows.get(user_id)
            if row is None:
                return False
            table.blocked[row] = blocked
            if blocked:
                table.set_time(row, BLOCKED_AT, blocked_at, blocked_text)
            else:
                table.set_time(row, BLOCKED_AT, 0, None)
            self._keeper.record_block(blocked_text, blocked)
            self._pending.changed.add(user_id)
            return True

    def forget(self, user_id: int) -> bool:
        """Erase the record of ``user_id``; True when there was one.

        The audience history keeps what it counted (counts are counts, not people).
        """
        with self._lock:
            self._check_writable()
            if not self._table.remove(user_id):
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
        # Write first: if that works, a journal failure in the background is
        # over and must not be raised now; one that persists raises here.
        self.flush_journal()
        self._persister.forget_failure("journal")
        self._persister.raise_failure()

    def snapshot(self) -> None:
        """Write the whole store file now and drop the journal it covers.

        The background thread does this when the journal has grown; tests and
        benchmarks call it to get there at a known moment.
        """
        self._check_writable()
        self.write_snapshot_now()

    def close(self) -> None:
        """Stop the background threads, fold everything into the store file, unlock."""
        if self._closed:
            return
        self._closed = True
        if self.readonly:
            return
        self._persister.stop()
        try:
            self._save_for_close()
        finally:
            self._journal.close()
            self._writer_lock.release()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

