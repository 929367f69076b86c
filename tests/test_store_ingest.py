"""Batched sightings: a batch applied in bulk ends exactly where one-at-a-time (in time order) ends.

``seen()`` queues sightings and a batch is applied in whole-batch passes
(``ingest.apply_sightings``). Every batch here is applied both ways, to twin
tables, histories and pending changes, and all three must come out equal:
repeats of a user in a batch, renames back and forth, new users seen twice,
sources, commands, buttons, late updates, a batch crossing midnight, one out
of time order (as threads may queue them), and stored records with null or
odd times.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support import profile
from tracker.store import StoreReader, Tuning, UserStore
from tracker.store.history import Grain, HistoryKeeper
from tracker.store.ingest import DayBounds, Sighting, SightingQueue, apply_one, apply_sightings
from tracker.store.records import PendingChanges
from tracker.store.stamps import Stamps
from tracker.store.table import ID_SLOT, STRIDE, UserTable

NOW = datetime(2026, 11, 23, 23, 59, 0, tzinfo=UTC)  # a minute before midnight: batches may cross it
TZ = ZoneInfo("UTC")
NAMES = ["Ann", "Bob", "", "مرحبا", "🦄", None]


def stored(user_id: int, first_seen: str | None, last_seen: str | None) -> dict[str, Any]:
    return {
        "id": user_id, "first_name": "Old", "last_name": None, "username": f"u{user_id}",
        "language_code": "en", "is_bot": False, "is_premium": None, "first_seen": first_seen,
        "last_seen": last_seen, "messages": 3, "source": None, "blocked": False, "blocked_at": None,
    }


class Twin:
    """A table, its history and its pending changes, started from the same records as its twin."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.table = UserTable()
        self.table.put([dict(record) for record in records])
        self.keeper = HistoryKeeper(TZ)
        self.pending = PendingChanges()
        self.day = DayBounds()

    def state(self) -> tuple[Any, ...]:
        hot = self.table.hot
        touched = {hot[row * STRIDE + ID_SLOT] for row in self.pending.touched} - self.pending.changed
        return (
            sorted(self.table.records(), key=lambda record: record["id"]),
            self.pending.changed,
            touched,
            self.keeper.tables(),
        )


def a_store(rng: random.Random, irregular: bool) -> list[dict[str, Any]]:
    records = []
    for user_id in range(1, 30):
        days_ago = rng.choice([0, 0, 1, 3, 10, 40])
        last = NOW - timedelta(days=days_ago, minutes=rng.randrange(600))
        first = last - timedelta(days=rng.randrange(30))
        records.append(stored(user_id, f"{first:%Y-%m-%dT%H:%M:%SZ}", f"{last:%Y-%m-%dT%H:%M:%SZ}"))
    if irregular:
        records.append(stored(30, None, None))
        records.append(stored(31, "2026-13-45T00:00:00Z", "2026-11-23T10:00:00Z"))
        records.append(stored(32, "2026-11-01T00:00:00Z", None))
    return records


def a_batch(rng: random.Random, order: str, table: UserTable) -> list[Sighting]:
    stamps = Stamps()
    at = NOW - timedelta(seconds=rng.randrange(3)) if order != "midnight" else NOW
    sightings = []
    for _ in range(rng.randrange(1, 60)):
        user_id = rng.choice([rng.randrange(1, 33), rng.randrange(1, 33), rng.randrange(100, 110)])
        name = rng.choice(NAMES) if rng.random() < 0.3 else "Old"
        user = profile(user_id, name, username=f"u{user_id}", language_code=rng.choice(["en", "en", "fa"]))
        if order == "midnight":
            at += timedelta(seconds=rng.randrange(0, 9))
        elif order == "shuffled":
            at = NOW - timedelta(seconds=rng.randrange(60))
        text, seconds = stamps(at)
        message = rng.random() < 0.8
        source = rng.choice([None, None, None, "ads", "-x"])
        command = rng.choice([None, None, "/start", "/help"])
        button = rng.random() < 0.1
        sightings.append((user, table.rows.get(user_id), seconds, text, message, source, command, button))
    return sightings


@pytest.mark.parametrize("order", ["in order", "midnight", "shuffled"])
@pytest.mark.parametrize("irregular", [False, True], ids=["plain", "irregular"])
@pytest.mark.parametrize("seed", range(40))
def test_a_batch_in_bulk_ends_where_one_at_a_time_ends(seed: int, irregular: bool, order: str) -> None:
    rng = random.Random(seed)
    records = a_store(rng, irregular)
    bulk, single = Twin(records), Twin(records)
    for _ in range(4):  # several batches: the later ones find the history's day set
        batch = a_batch(rng, order, bulk.table)
        apply_sightings(batch, False, bulk.table, bulk.keeper, bulk.pending, bulk.day)
        for sighting in sorted(batch, key=lambda sighting: sighting[2]):  # in time order, ties as queued
            apply_one(sighting, single.table, single.keeper, single.pending)
        assert bulk.state() == single.state()


def test_most_batches_of_the_day_go_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equivalence above is only worth something if the bulk path runs: count its calls."""
    import tracker.store.ingest as ingest

    slow = []
    original = ingest.apply_one
    monkeypatch.setattr(ingest, "apply_one", lambda *args: slow.append(1) or original(*args))
    twin = Twin(a_store(random.Random(1), irregular=False))
    rng = random.Random(2)
    for order in ["in order", "shuffled"] * 3:  # a batch out of time order is sorted, not slowed down
        batch = a_batch(rng, order, twin.table)
        apply_sightings(batch, False, twin.table, twin.keeper, twin.pending, twin.day)
    assert len(slow) == 1  # only the very first sighting, which sets the history's day


def test_rows_queued_before_a_forget_are_looked_up_again() -> None:
    """A row looked up before its user was forgotten is stale: the sighting re-adds the user elsewhere."""
    table, keeper, pending, day = UserTable(), HistoryKeeper(TZ), PendingChanges(), DayBounds()
    queue = SightingQueue()
    text, seconds = Stamps()(NOW)
    assert queue.add(table, profile(7, "Seven"), seconds, text, True, None, None, False) == (True, 1)
    batch, stale = queue.take(table)
    apply_sightings(batch, stale, table, keeper, pending, day)
    queue.applied(batch)
    old_row = table.rows[7]
    assert queue.add(table, profile(7, "Seven"), seconds, text, True, None, None, False) == (False, 1)
    table.remove(7)  # as forget() does, between the sighting's lookup and its batch
    batch, stale = queue.take(table)
    assert stale
    apply_sightings(batch, stale, table, keeper, pending, day)
    assert table.rows[7] != old_row
    assert table.profiles[old_row] is None  # the forgotten row stays empty
    assert table.get(7)["messages"] == 1  # type: ignore[index]


def test_a_new_user_is_new_once_while_queued(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=3600)) as store:
        assert store.seen(profile(1, "A"), NOW) is True
        assert store.seen(profile(1, "A"), NOW) is False  # still queued: not new again
        assert store.seen(profile(2, "B"), NOW) is True
        assert len(store) == 2  # reads see queued sightings
        assert store.get(1)["messages"] == 2  # type: ignore[index]
        assert store.forget(1)
        assert store.seen(profile(1, "A"), NOW) is True  # forgotten: new again


def test_threads_seeing_the_same_new_users_count_each_once(tmp_path: Path) -> None:
    """Four threads race to see the same 2,000 new users: each is new exactly once, nothing lost."""
    answers: list[list[bool]] = [[] for _ in range(4)]
    users = [profile(user_id, "Same") for user_id in range(1, 2_001)]
    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=0.001, flush_early_at=64)) as store:

        def see_all(answer: list[bool]) -> None:
            answer.extend(store.seen(user, NOW) for user in users)

        threads = [threading.Thread(target=see_all, args=(answer,)) for answer in answers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        new_answers = [sum(answer[i] for answer in answers) for i in range(len(users))]
        assert new_answers == [1] * len(users)
        assert {record["messages"] for record in store} == {4}


def test_a_stuck_journal_thread_does_not_let_the_queue_grow_without_end(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=3600, flush_early_at=16)) as store:
        store._persister.stop()  # nobody applies in the background any more
        for user_id in range(1, 1_001):
            store.seen(profile(user_id, "U"), NOW)
        assert len(store._queue.items) < 4 * 16
        assert len(store) == 1_000


def test_seen_checks_its_arguments_before_queueing(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json") as store:
        with pytest.raises(ValueError, match="timezone-aware"):
            store.seen(profile(1, "A"), datetime(2026, 1, 1))  # naive: the point of the test
        with pytest.raises(TypeError, match="Profile"):
            store.seen((1, "A", None, None, None, False, None), NOW)  # type: ignore[arg-type]
        assert len(store) == 0
    with pytest.raises(Exception, match="closed"):
        store.seen(profile(1, "A"), NOW)


def test_a_sighting_queued_before_close_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path, tuning=Tuning(flush_interval=3600)) as store:
        store.seen(profile(5, "Five"), NOW, source="ads", command="/start")
    with UserStore(path, readonly=True) as store:
        assert store.get(5)["source"] == "ads"  # type: ignore[index]
        assert store.get(5)["first_name"] == "Five"  # type: ignore[index]


def test_a_hand_edited_first_seen_that_is_no_date_does_not_stop_recording(tmp_path: Path) -> None:
    """Bug: the history parsed the stored first_seen of a returning user to find its cohort, and
    ``2026-13-45T…`` raised out of seen(), so that user's visits were never recorded."""
    path = tmp_path / "users.json"
    path.write_text(
        '{"users": {"1": ' + json.dumps(stored(1, "2026-13-45T00:00:00Z", "2026-11-20T10:00:00Z")) + '}}'
    )
    with UserStore(path) as store:
        store.seen(profile(1, "Old"), NOW)
        store.seen(profile(1, "Old"), NOW + timedelta(seconds=1))
        assert store.get(1)["messages"] == 5  # type: ignore[index]
        day = store.history_period(Grain.DAY, NOW.date())
    assert day is not None
    assert (day["active"], day["messages"]) == (1, 2)


def test_rows_stay_suspect_until_the_queue_is_emptied() -> None:
    """A forget between two partial takes: the second take must still look its rows up again."""
    table, keeper, pending, day = UserTable(), HistoryKeeper(TZ), PendingChanges(), DayBounds()
    queue = SightingQueue()
    text, seconds = Stamps()(NOW)
    for user_id in (1, 2):
        queue.add(table, profile(user_id, "U"), seconds, text, True, None, None, False)
    batch, stale = queue.take(table)
    apply_sightings(batch, stale, table, keeper, pending, day)
    queue.applied(batch)
    for user_id in (1, 2):  # both queued with their rows
        queue.add(table, profile(user_id, "U"), seconds, text, True, None, None, False)
    table.remove(2)
    first, stale_first = queue.take(table, limit=1)
    second, stale_second = queue.take(table, limit=1)
    assert stale_first and stale_second
    apply_sightings(first, stale_first, table, keeper, pending, day)
    apply_sightings(second, stale_second, table, keeper, pending, day)
    assert table.get(2)["messages"] == 1  # type: ignore[index]  # re-added, not written into the hole
    assert table.get(1)["messages"] == 2  # type: ignore[index]


def test_a_caller_past_the_limit_applies_only_the_oldest(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=3600, flush_early_at=64)) as store:
        store._persister.stop()
        for user_id in range(1, 65):
            store.seen(profile(user_id, "U"), NOW)
        assert len(store._queue.items) == 64 - 32 // 4  # the 64th call applied the oldest 8
        assert len(store) == 64


def test_a_user_with_id_0_is_journaled_like_any_other(tmp_path: Path) -> None:
    """Bug: the first journal of touched rows took id 0 for a forgotten row, so the visits of a
    user whose id is 0 (any 64-bit id is valid) never reached the journal and a crash lost them."""
    path = tmp_path / "users.json"
    with UserStore(path, tuning=Tuning(flush_interval=3600)) as store:
        for user_id in (0, 1):
            store.seen(profile(user_id, "U"), NOW)
        store.flush()
        store.forget(1)
        store.seen(profile(0, "U"), NOW + timedelta(seconds=5))
        store.flush()
        # What a crash leaves: the store file and the journal, read as the next open would.
        recovered = StoreReader(path).get(0)
        assert recovered is not None
        assert (recovered["last_seen"], recovered["messages"]) == ("2026-11-23T23:59:05Z", 2)
        assert StoreReader(path).get(1) is None
