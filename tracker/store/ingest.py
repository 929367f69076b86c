"""Sightings: what ``UserStore.seen()`` queues, and how a batch of them reaches the table.

``seen()`` runs for every update a bot gets. Done there one at a time, under
the store's lock, its ~100 bytecodes and a dozen cache misses cost ~5 µs at a
million users, and every caller waited while a journal round held the lock.
So ``seen()`` checks its arguments, looks its user up once and queues the
sighting (:class:`SightingQueue`); the journal thread, or any read (which must
see every sighting made before it), applies the queue as one batch
(:func:`apply_sightings`) under the store's lock: a few C-level passes over
the whole batch (``map`` over the arrays) for the common batch, the
one-at-a-time steps (:func:`apply_one`) for the rare ones.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from itertools import compress, count, repeat
from operator import add, and_, ge, itemgetter, lt, mul, ne
from typing import Any, NamedTuple

from tracker.models import Profile, encodable_text
from tracker.store.copies import FIRST_SEEN, LAST_SEEN
from tracker.store.history import Activity, HistoryKeeper
from tracker.store.records import PendingChanges
from tracker.store.stamps import DAY, ODD, seconds_or_odd
from tracker.store.table import HASH_SLOT, LAST_SEEN_SLOT, MESSAGES_SLOT, STRIDE, UserTable

_new_activity = tuple.__new__
_USER_ID = itemgetter(0)
_SECONDS = itemgetter(2)


#: One queued ``seen()`` call: ``(profile, row, seconds, text, message, source, command, button)``.
#: ``row``: the user's row when it was queued (None: not in the table then); ``seconds``
#: and ``text``: its time as the table and the file keep it. A plain tuple rather than
#: a NamedTuple: building one of those costs seen() twice as much.
Sighting = tuple[Profile, int | None, int, str, bool, str | None, str | None, bool]


class SightingQueue:
    """Sightings not yet applied, and which of their users are new (thread-safe).

    ``seen()`` must answer "is this user new?" at once: a user is new when it is
    neither in the table nor queued as new. The queued-as-new ids are dropped
    only after their batch is in the table, so no moment answers yes twice.
    """

    __slots__ = ("_lock", "_new", "_removals", "items")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Sighting] = []
        self._new: set[int] = set()
        self._removals = 0

    def add(
        self,
        table: UserTable,
        profile: Profile,
        seconds: int,
        text: str,
        message: bool,
        source: str | None,
        command: str | None,
        button: bool,
    ) -> tuple[bool, int]:
        """Queue a sighting; return whether its user is new and how many sightings are queued now."""
        user_id = profile[0]
        # acquire/release rather than ``with``: half the cost, and this runs for every update.
        self._lock.acquire()
        try:
            items = self.items
            row = table.rows.get(user_id)
            items.append((profile, row, seconds, text, message, source, command, button))
            is_new = row is None and user_id not in self._new
            if is_new:
                self._new.add(user_id)
            return is_new, len(items)
        finally:
            self._lock.release()

    def take(self, table: UserTable, limit: int | None = None) -> tuple[list[Sighting], bool]:
        """The queued sightings (the oldest ``limit``) in order, and whether their rows may be stale.

        Called under the store's lock, which every removal holds too: the rows
        are stale when a user was forgotten since the queue was last emptied
        (rows of the others stay right: rows are never reused).
        """
        with self._lock:
            if limit is None or limit >= len(self.items):
                items, self.items = self.items, []
                emptied = True
            else:
                items, self.items = self.items[:limit], self.items[limit:]
                emptied = False
        stale = table.removals != self._removals
        if emptied:  # what is queued from now on is looked up after every removal so far
            self._removals = table.removals
        return items, stale

    def applied(self, batch: list[Sighting]) -> None:
        """``batch`` is in the table now: its users need no "queued as new" mark any more."""
        with self._lock:
            if self._new:
                self._new.difference_update(map(_USER_ID, map(_USER_ID, batch)))


class DayBounds:
    """The history's current day as seconds, recomputed only when the history moves to another day."""

    __slots__ = ("seconds", "texts")

    def __init__(self) -> None:
        self.texts = ("", "")
        self.seconds = (0, 0)

    def of(self, keeper: HistoryKeeper) -> tuple[int, int]:
        texts = keeper.current_day
        if texts != self.texts:
            self.texts = texts
            self.seconds = (seconds_or_odd(texts[0] or None), seconds_or_odd(texts[1] or None))
        return self.seconds


class Ingest:
    """One writer's queue of sightings, and how it reaches the table (see :func:`apply_sightings`)."""

    __slots__ = ("day", "queue", "slice_size")

    def __init__(self, slice_size: int) -> None:
        self.queue = SightingQueue()
        self.day = DayBounds()
        #: Sightings applied per hold of the writer's lock when the queue is applied in slices.
        self.slice_size = slice_size

    def apply(
        self, table: UserTable, keeper: HistoryKeeper, pending: PendingChanges, limit: int | None = None
    ) -> None:
        """Apply the queued sightings, or the oldest ``limit``.

        Call under the writer's lock: taking and applying under the one lock
        keeps the batches in the order they were queued.
        """
        if not self.queue.items:
            return
        batch, stale_rows = self.queue.take(table, limit)
        try:
            apply_sightings(batch, stale_rows, table, keeper, pending, self.day)
        finally:
            self.queue.applied(batch)


class _Batch(NamedTuple):
    """A run of sightings as aligned columns (position ``p`` of each is sighting ``p``)."""

    profiles: tuple[Profile, ...]
    ids: list[int]
    digests: list[int]
    seconds: tuple[int, ...]
    texts: tuple[str, ...]
    messages: tuple[bool, ...]
    sources: tuple[str | None, ...]
    commands: tuple[str | None, ...]
    buttons: tuple[bool, ...]


def apply_sightings(
    batch: list[Sighting],
    stale_rows: bool,
    table: UserTable,
    keeper: HistoryKeeper,
    pending: PendingChanges,
    day: DayBounds,
) -> None:
    """Apply ``batch`` (in order) to ``table``, the history and the pending changes.

    The same outcome as :func:`apply_one` on each sighting in time order
    (queue order among equal times): sightings from several threads may be
    queued a little out of time order, and applying them in time order is what
    "the newer sighting wins" means. A run of sightings within the history's
    current day goes in whole-batch passes (:func:`_apply_in_bulk`); the first
    sighting of a new day moves the history there on its own.
    """
    seconds = list(map(_SECONDS, batch))
    if not all(map(ge, seconds[1:], seconds)):
        batch = sorted(batch, key=_SECONDS)  # stable: ties stay in queue order
        seconds = list(map(_SECONDS, batch))
    start = 0
    while start < len(batch):
        day_start, day_end = day.of(keeper)
        if not day_start <= seconds[start] < day_end:  # a new day (or the first sighting): moves the history
            apply_one(batch[start], table, keeper, pending)
            start += 1
            continue
        end = bisect_left(seconds, day_end, start)  # the run within the current day
        run = batch[start:end]
        if not _apply_in_bulk(run, stale_rows, table, keeper, pending, day_start):
            for sighting in run:
                apply_one(sighting, table, keeper, pending)
        start = end


def _apply_in_bulk(
    run: list[Sighting],
    stale_rows: bool,
    table: UserTable,
    keeper: HistoryKeeper,
    pending: PendingChanges,
    day_start: int,
) -> bool:
    """Apply a run of sightings, in time order and within the history's current day, in whole-run passes.

    False, with nothing changed, when one of its users has a null or odd stored
    time (compared as text: the slow way).
    """
    profiles, queued_rows, seconds, texts, messages, sources, commands, buttons = zip(*run, strict=True)
    ids = list(map(_USER_ID, profiles))
    # None (not in the table when queued) is looked up again when added.
    rows: list[int | None] = list(map(table.rows.get, ids)) if stale_rows else list(queued_rows)
    if table.irregular and not table.irregular.isdisjoint(rows):
        return False
    digests = list(map(hash, profiles))
    batch = _Batch(profiles, ids, digests, seconds, texts, messages, sources, commands, buttons)
    known_rows, added = _add_new_users(batch, rows, table, pending)
    hot = table.hot  # each row's hot slots share a cache line: one miss for all three fields
    last_seen_at = list(map(mul, known_rows, repeat(STRIDE)))  # LAST_SEEN_SLOT is 0
    previous = list(map(hot.__getitem__, last_seen_at))
    _take_new_profiles(batch, known_rows, last_seen_at, previous, table, pending)
    list(map(hot.__setitem__, last_seen_at, map(max, previous, seconds)))
    counted = Counter(compress(known_rows, messages))
    if counted:
        messages_at = list(map(add, map(mul, counted, repeat(STRIDE)), repeat(MESSAGES_SLOT)))
        list(map(hot.__setitem__, messages_at, map(add, map(hot.__getitem__, messages_at), counted.values())))
    if any(sources):
        _keep_first_sources(batch, known_rows, table, pending)
    _count_first_visits(batch, known_rows, previous, added, day_start, table, keeper)
    keeper.record_repeats(sum(messages), sum(buttons), filter(None, commands))
    pending.touched += known_rows
    return True


def _add_new_users(
    batch: _Batch, rows: list[int | None], table: UserTable, pending: PendingChanges
) -> tuple[list[int], set[int]]:
    """Add the run's new users, in order (one new twice in a run is added once).

    Returns every position's row, and the positions that added a user.
    """
    added: set[int] = set()
    if None in rows:
        for position in [position for position, row in enumerate(rows) if row is None]:
            user_id = batch.ids[position]
            row = table.rows.get(user_id)
            if row is None:
                profile = batch.profiles[position]
                row = table.add(user_id, profile[1:], batch.digests[position],
                                batch.seconds[position], batch.texts[position])
                pending.changed.add(user_id)
                added.add(position)
            rows[position] = row
    return rows, added  # type: ignore[return-value]  # no None left


def _take_new_profiles(
    batch: _Batch,
    rows: list[int],
    last_seen_at: list[int],
    previous: list[int],
    table: UserTable,
    pending: PendingChanges,
) -> None:
    """A sighting not older than the stored one, with another profile, replaces it (the last one wins)."""
    hot = table.hot
    hash_at = map(add, last_seen_at, repeat(HASH_SLOT))
    # Lazy on purpose: compress pulls each stored hash only when it reaches that
    # position, after the replacements before it, as one-at-a-time would compare.
    other = map(ne, map(hot.__getitem__, hash_at), batch.digests)
    for position in compress(count(), map(and_, other, map(ge, batch.seconds, previous))):
        row = rows[position]
        if hot[row * STRIDE + HASH_SLOT] != batch.digests[position]:
            table.set_profile(row, batch.profiles[position][1:], batch.digests[position])
            pending.changed.add(batch.ids[position])


def _keep_first_sources(batch: _Batch, rows: list[int], table: UserTable, pending: PendingChanges) -> None:
    """A source is kept only by a record that has none yet."""
    for position in compress(count(), batch.sources):
        row, source = rows[position], batch.sources[position]
        if source and not table.sources[row]:
            table.sources[row] = table.share(encodable_text(source))
            pending.changed.add(batch.ids[position])


def _count_first_visits(
    batch: _Batch,
    rows: list[int],
    previous: list[int],
    added: set[int],
    day_start: int,
    table: UserTable,
    keeper: HistoryKeeper,
) -> None:
    """Record each user's first interaction of the day in the history (messages etc. are counted in bulk)."""
    firsts = added.union(compress(count(), map(lt, previous, repeat(day_start))))
    done: set[int] = set()
    day_prefix, time_of_day = table.day_prefix, table.time_of_day
    for position in sorted(firsts):
        row = rows[position]
        if row in done:  # the same user again, later in the run: already active today
            continue
        done.add(row)
        text = batch.texts[position]
        activity: tuple[str, str, str | None, bool, bool, None, bool]
        if position in added:
            activity = (text, text, None, True, False, None, False)
        else:
            first, last = table.first_seen[row], previous[position]
            activity = (text, day_prefix[first // DAY] + time_of_day[first % DAY],
                        day_prefix[last // DAY] + time_of_day[last % DAY], False, False, None, False)
        keeper.record(_new_activity(Activity, activity))


def apply_one(sighting: Sighting, table: UserTable, keeper: HistoryKeeper, pending: PendingChanges) -> None:
    """Apply one sighting: the reference for what :func:`apply_sightings` does in bulk."""
    profile, _, seen_at, seen_text, message, source, command, button = sighting
    user_id = profile[0]
    values = profile[1:]
    digest = hash(profile)  # profile_hash(user_id, values): a Profile hashes as its tuple
    row = table.rows.get(user_id)  # not the queued row: it may be stale
    is_new = whole_record_changed = row is None
    if row is None:
        row = table.add(user_id, values, digest, seen_at, seen_text)
        first_seen, last_seen = seen_text, None
    else:
        previous, first = table.last_seen(row), table.first_seen[row]
        if 0 < previous < ODD and 0 < first < ODD and seen_at != ODD:  # the norm: plain seconds
            day_prefix, time_of_day = table.day_prefix, table.time_of_day
            last_seen = day_prefix[previous // DAY] + time_of_day[previous % DAY]
            first_seen = day_prefix[first // DAY] + time_of_day[first % DAY]
            if seen_at >= previous:
                table.hot[row * STRIDE + LAST_SEEN_SLOT] = seen_at
                if table.hot[row * STRIDE + HASH_SLOT] != digest:
                    table.set_profile(row, values, digest)
                    whole_record_changed = True
        else:  # a null or odd timestamp (hand-edited): compared as text, as the file has them
            first_seen, last_seen, whole_record_changed = _see_as_text(
                table, row, values, digest, seen_at, seen_text
            )
    if message:
        table.hot[row * STRIDE + MESSAGES_SLOT] += 1
    if source and not table.sources[row]:
        table.sources[row] = table.share(encodable_text(source))
        whole_record_changed = True
    activity = (seen_text, first_seen, last_seen, is_new, message, command, button)
    keeper.record(_new_activity(Activity, activity))
    if whole_record_changed:
        pending.changed.add(user_id)
    else:
        pending.touched.append(row)


def _see_as_text(
    table: UserTable, row: int, profile: tuple[Any, ...], digest: int, seconds: int, text: str
) -> tuple[str, str | None, bool]:
    """A sighting of a row with a null or odd timestamp, or at an odd time, compared as text.

    What :func:`apply_one` does with seconds, for the rare rows it cannot.
    Returns ``(first_seen, previous last_seen, whether the whole record changed)``.
    """
    changed = False
    last_seen = table.time_of(row, LAST_SEEN)
    if last_seen is None or text >= last_seen:
        if table.hot[row * STRIDE + HASH_SLOT] != digest:
            table.set_profile(row, profile, digest)
            changed = True
        table.set_time(row, LAST_SEEN, seconds, text)
        if table.first_seen[row] == 0:
            table.set_time(row, FIRST_SEEN, seconds, text)
            changed = True
    # A null first_seen left (a record seen late, before its last_seen): counted as first seen now.
    return table.time_of(row, FIRST_SEEN) or text, last_seen, changed
