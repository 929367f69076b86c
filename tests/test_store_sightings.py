"""seen() as a bot calls it: new once, from several threads, odd stored data, users with odd ids."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import profile
from tracker.store import StoreError, StoreReader, Tuning, UserStore
from tracker.store.history import Grain

NOW = datetime(2026, 11, 23, 23, 59, 0, tzinfo=UTC)


def stored(user_id: int, first_seen: str | None, last_seen: str | None) -> dict[str, Any]:
    return {
        "id": user_id, "first_name": "Old", "last_name": None, "username": f"u{user_id}",
        "language_code": "en", "is_bot": False, "is_premium": None, "first_seen": first_seen,
        "last_seen": last_seen, "messages": 3, "source": None, "blocked": False, "blocked_at": None,
    }


def test_a_user_is_new_once_and_again_after_a_forget(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=3600)) as store:
        assert store.seen(profile(1, "A"), NOW) is True
        assert store.seen(profile(1, "A"), NOW) is False
        assert store.seen(profile(2, "B"), NOW) is True
        assert len(store) == 2
        assert store.get(1)["messages"] == 2  # type: ignore[index]
        assert store.forget(1)
        assert store.seen(profile(1, "A"), NOW) is True


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


def test_seen_checks_its_arguments_before_changing_anything(tmp_path: Path) -> None:
    with UserStore(tmp_path / "users.json") as store:
        with pytest.raises(ValueError, match="timezone-aware"):
            store.seen(profile(1, "A"), datetime(2026, 1, 1))  # naive: the point of the test
        with pytest.raises(TypeError, match="Profile"):
            store.seen((1, "A", None, None, None, False, None), NOW)  # type: ignore[arg-type]
        assert len(store) == 0
    with pytest.raises(StoreError, match="closed"):
        store.seen(profile(1, "A"), NOW)


def test_a_sighting_just_before_close_is_saved(tmp_path: Path) -> None:
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


def test_a_user_with_id_0_is_journaled_like_any_other(tmp_path: Path) -> None:
    """Any 64-bit id is valid, 0 included: its visits must reach the journal like anyone's
    (a crash then loses nothing older than a journal round)."""
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


def test_touches_copied_a_slice_at_a_time_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal round copies touched users a few thousand at a time (so it never holds the GIL
    for long at ten million users); whatever the slice, the copy is the same."""
    import tracker.store.copies as copies

    with UserStore(tmp_path / "users.json", tuning=Tuning(flush_interval=3600)) as store:
        for user_id in range(1, 40):
            store.seen(profile(user_id, "U"), NOW + timedelta(seconds=user_id), message=user_id % 3 > 0)
        table, ids = store._table, [*range(1, 40), 999]  # 999: not a user, left out
        whole = copies.TouchValues.of(table, ids)
        monkeypatch.setattr(copies, "TOUCH_PASS", 7)
        assert copies.TouchValues.of(table, ids) == whole
        assert whole.ids == list(range(1, 40))
        assert whole.messages == [int(user_id % 3 > 0) for user_id in range(1, 40)]
