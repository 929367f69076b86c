"""UserStore in one process: the API, the file format, and the files it refuses to touch."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pyrogram
import pytest
from tinydb import TinyDB

from tests.support import profile
from tracker.models import RECORD_FIELDS, Profile
from tracker.profiles import from_user
from tracker.store import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    UserStore,
)

AT = datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def user(user_id: int, **fields: Any) -> Profile:
    defaults = {"first_name": f"First{user_id}", "username": f"user{user_id}", "language_code": "en"}
    return profile(user_id, **{**defaults, **fields})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.json"


@pytest.fixture
def store(path: Path) -> Iterator[UserStore]:
    with UserStore(path) as opened:
        yield opened


def reopen_records(path: Path) -> dict[int, dict[str, Any]]:
    """All records as a fresh writer, a reader and plain JSON see them (they must agree)."""
    with UserStore(path, readonly=True) as reader:
        read_only = {r["id"]: dict(r) for r in reader}
    with UserStore(path) as writer:
        written = {r["id"]: dict(r) for r in writer}
    assert read_only == written
    plain = json.loads(path.read_bytes())["users"]
    assert {int(k): v for k, v in plain.items()} == written
    return written


# ----------------------------------------------------------------- the API


def test_seen_returns_true_only_for_a_new_user_and_counts_messages(store: UserStore) -> None:
    assert store.seen(user(1), AT) is True
    assert store.seen(user(1), AT + timedelta(seconds=1)) is False
    assert store.seen(user(1), AT + timedelta(seconds=2), message=False) is False
    assert store.seen(user(2), AT, message=False) is True
    assert store.get(1)["messages"] == 2  # type: ignore[index]
    assert store.get(2)["messages"] == 0  # type: ignore[index]
    assert len(store) == 2


def test_a_new_record_has_exactly_the_design_fields(store: UserStore) -> None:
    store.seen(user(7, last_name="Last", is_premium=True), AT, source="ad1")
    assert store.get(7) == {
        "id": 7,
        "first_name": "First7",
        "last_name": "Last",
        "username": "user7",
        "language_code": "en",
        "is_bot": False,
        "is_premium": True,
        "first_seen": "2024-03-01T12:30:45Z",
        "last_seen": "2024-03-01T12:30:45Z",
        "messages": 1,
        "source": "ad1",
        "blocked": False,
        "blocked_at": None,
    }
    assert tuple(store.get(7)) == RECORD_FIELDS  # type: ignore[arg-type]


def test_profile_follows_the_latest_sighting_and_last_seen_only_moves_forward(store: UserStore) -> None:
    store.seen(user(1, language_code="en", is_premium=None), AT)
    later = AT + timedelta(hours=5)
    store.seen(user(1, first_name="New", last_name="Name", username="renamed", language_code="de",
                    is_premium=True), later)  # fmt: skip
    record = store.get(1)
    assert record is not None
    assert (record["first_name"], record["last_name"], record["username"]) == ("New", "Name", "renamed")
    assert (record["language_code"], record["is_premium"]) == ("de", True)
    assert record["first_seen"] == "2024-03-01T12:30:45Z"
    assert record["last_seen"] == "2024-03-01T17:30:45Z"
    # A late-delivered older update refreshes nothing about time.
    store.seen(user(1, first_name="New"), AT - timedelta(days=1))
    assert store.get(1)["last_seen"] == "2024-03-01T17:30:45Z"  # type: ignore[index]
    assert store.get(1)["first_seen"] == "2024-03-01T12:30:45Z"  # type: ignore[index]


def test_an_older_sighting_does_not_overwrite_a_newer_profile(store: UserStore) -> None:
    """Updates can arrive out of order: the profile seen last in time wins, not the one delivered last."""
    store.seen(user(1, first_name="Renamed", username="new_name"), AT)
    store.seen(user(1, first_name="Old", username="old_name"), AT - timedelta(hours=1))
    record = store.get(1)
    assert record is not None
    assert (record["first_name"], record["username"]) == ("Renamed", "new_name")
    assert record["messages"] == 2  # the late message still counts
    store.flush()
    with UserStore(store.path, readonly=True) as reader:  # and so does the journal
        assert reader.get(1)["first_name"] == "Renamed"  # type: ignore[index]


def test_source_is_only_the_first_non_empty_payload(store: UserStore) -> None:
    store.seen(user(1), AT)
    assert store.get(1)["source"] is None  # type: ignore[index]
    store.seen(user(1), AT, source="")
    assert store.get(1)["source"] is None  # type: ignore[index]
    store.seen(user(1), AT, source="first")
    store.seen(user(1), AT, source="second")
    store.seen(user(1), AT)
    assert store.get(1)["source"] == "first"  # type: ignore[index]
    store.seen(user(2), AT, source="direct")
    assert store.get(2)["source"] == "direct"  # type: ignore[index]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2024, 3, 1, 18, 0, 45, 999_999, tzinfo=ZoneInfo("Asia/Kolkata")), "2024-03-01T12:30:45Z"),
        (datetime(2024, 12, 31, 22, 15, 0, tzinfo=ZoneInfo("America/St_Johns")), "2025-01-01T01:45:00Z"),
        (datetime(2024, 1, 1, 13, 59, 59, 1, tzinfo=timezone(timedelta(hours=14))), "2023-12-31T23:59:59Z"),
        (datetime(2024, 7, 4, 0, 0, 0, 500_000, tzinfo=UTC), "2024-07-04T00:00:00Z"),
    ],
    ids=["kolkata-micro", "st-johns-year-change", "plus-14", "utc"],
)
def test_timestamps_are_utc_whole_seconds(path: Path, at: datetime, expected: str) -> None:
    with UserStore(path) as store:
        store.seen(user(1), at)
        store.seen(user(2), AT - timedelta(days=400))
        store.set_blocked(2, True, at)
        assert store.get(1)["first_seen"] == expected  # type: ignore[index]
    record = reopen_records(path)[1]
    assert record["first_seen"] == record["last_seen"] == expected
    assert reopen_records(path)[2]["blocked_at"] == expected
    assert TS_RE.match(expected)


def test_naive_datetimes_are_rejected(store: UserStore) -> None:
    with pytest.raises((ValueError, TypeError)):
        store.seen(user(1), datetime(2024, 3, 1, 12, 0, 0))
    assert 1 not in store
    store.seen(user(2), AT)
    # Same instant as a timestamp just formatted, but naive: still rejected.
    naive = datetime.fromtimestamp(AT.timestamp())
    with pytest.raises((ValueError, TypeError)):
        store.seen(user(3), naive)
    assert 3 not in store


class PlainUser:
    """Not a Profile: an object with a user's attributes."""

    def __init__(self, user_id: int) -> None:
        self.id = user_id
        self.first_name = "Obj"


def test_a_pyrogram_user_is_recorded_through_its_profile(store: UserStore) -> None:
    real = pyrogram.types.User(id=12, first_name="Pyro", username="Pyro_User", language_code="uk",
                               is_bot=False, is_premium=True)  # fmt: skip
    assert store.seen(from_user(real), AT) is True
    assert store.seen(from_user(real), AT + timedelta(seconds=1)) is False
    pyro = store.find_username("pyro_user")
    assert pyro is not None and pyro["id"] == 12 and pyro["messages"] == 2
    assert (pyro["language_code"], pyro["is_premium"]) == ("uk", True)


@pytest.mark.parametrize(
    "not_a_profile",
    [
        {"id": 10, "first_name": "Dict"},
        PlainUser(10),
        SimpleNamespace(id=10, first_name="ns"),
        pyrogram.types.User(id=10, first_name="Pyro"),
        (10, "Tuple", None, None, None, False, None),
    ],
    ids=["dict", "object", "namespace", "pyrogram-user", "tuple"],
)
def test_seen_takes_only_a_profile(store: UserStore, not_a_profile: object) -> None:
    with pytest.raises(TypeError, match="Profile"):
        store.seen(not_a_profile, AT)  # type: ignore[arg-type]
    assert 10 not in store and len(store) == 0


def test_get_and_meta_return_copies(store: UserStore) -> None:
    store.seen(user(1), AT)
    copy = store.get(1)
    assert copy is not None
    copy["first_name"] = "changed"
    copy["messages"] = 99
    assert store.get(1)["first_name"] == "First1"  # type: ignore[index]
    meta = store.meta
    meta["bio_text"] = "sneaky"
    assert "bio_text" not in store.meta
    assert store.get(404) is None


def test_find_username(store: UserStore) -> None:
    store.seen(user(1, username="Alice_Bot"), AT)
    store.seen(user(2, username=None), AT)
    for name in ("Alice_Bot", "alice_bot", "@ALICE_BOT", "@alice_bot"):
        assert store.find_username(name)["id"] == 1, name  # type: ignore[index]
    assert store.find_username("alice") is None
    assert store.find_username("") is None
    store.seen(user(1, username="alice2"), AT)
    assert store.find_username("alice_bot") is None
    assert store.find_username("@Alice2")["id"] == 1  # type: ignore[index]
    store.forget(1)
    assert store.find_username("alice2") is None


def test_len_iter_contains(store: UserStore) -> None:
    assert len(store) == 0 and list(store) == [] and 1 not in store
    for user_id in (5, 3, 9):
        store.seen(user(user_id), AT)
    assert len(store) == 3
    assert sorted(r["id"] for r in store) == [3, 5, 9]
    assert 3 in store and 4 not in store
    assert all(set(r) == set(RECORD_FIELDS) for r in store)


def test_forget(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(user(1), AT)
        store.seen(user(2), AT)
        assert store.forget(1) is True
        assert store.forget(1) is False
        assert store.forget(3) is False
        assert 1 not in store and store.get(1) is None and len(store) == 1
        # Seen again later: a new user, counted from scratch.
        store.seen(user(2), AT)
    records = reopen_records(path)
    assert set(records) == {2}
    db = TinyDB(path)
    try:
        assert db.table("users").get(doc_id=1) is None
    finally:
        db.close()


def test_set_blocked(path: Path) -> None:
    with UserStore(path) as store:
        assert store.set_blocked(1, True, AT) is False
        assert 1 not in store and len(store) == 0
        store.seen(user(1), AT)
        store.seen(user(2), AT)
        assert store.set_blocked(1, True, AT + timedelta(minutes=1)) is True
        assert store.set_blocked(2, True, AT) is True
        assert store.set_blocked(2, False, AT + timedelta(minutes=2)) is True
    records = reopen_records(path)
    assert (records[1]["blocked"], records[1]["blocked_at"]) == (True, "2024-03-01T12:31:45Z")
    assert (records[2]["blocked"], records[2]["blocked_at"]) == (False, None)


def test_meta(path: Path) -> None:
    with UserStore(path) as store:
        assert store.meta["schema"] == 1
        store.update_meta(bio_text="👥 Users: 2", bio_set_at="2024-03-01T12:30:45Z", bio_error=None)
        store.update_meta(bio_next_at="2024-03-01T13:30:45Z")
        assert store.meta["bio_text"] == "👥 Users: 2"
    with UserStore(path, readonly=True) as reader:
        meta = reader.meta
    assert meta["schema"] == 1
    assert meta["bio_text"] == "👥 Users: 2" and meta["bio_error"] is None
    assert meta["bio_next_at"] == "2024-03-01T13:30:45Z"
    db = TinyDB(path)
    try:
        doc = db.table("meta").all()
        assert len(doc) == 1 and doc[0]["schema"] == 1 and doc[0]["bio_set_at"] == "2024-03-01T12:30:45Z"
    finally:
        db.close()


def test_round_trip_through_close_and_reopen(path: Path) -> None:
    with UserStore(path) as store:
        for user_id in range(1, 201):
            source = f"s{user_id % 4}" if user_id % 5 else None
            profile = user(user_id, is_premium=user_id % 3 == 0 or None)
            store.seen(profile, AT + timedelta(seconds=user_id), message=user_id % 2 == 0, source=source)
        store.seen(user(7, first_name="Seven"), AT + timedelta(days=1))
        store.set_blocked(9, True, AT)
        store.forget(10)
        store.update_meta(bio_text="x")
        before = {r["id"]: dict(r) for r in store}
    assert len(before) == 199
    assert reopen_records(path) == before
    with UserStore(path) as store:
        assert store.get(7)["first_name"] == "Seven"  # type: ignore[index]
        assert store.seen(user(7), AT + timedelta(days=2)) is False
        assert store.get(7)["messages"] == before[7]["messages"] + 1  # type: ignore[index]


def test_plain_tinydb_reads_what_was_written_after_close(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(user(123456789, first_name="Ünï", last_name="☃"), AT, source="promo")
        store.seen(user(42), AT)
        expected = store.get(123456789)
    db = TinyDB(path)
    try:
        assert db.table("users").get(doc_id=123456789) == expected
        assert db.table("users").get(doc_id=42)["id"] == 42
        assert len(db.table("users")) == 2
        assert db.table("meta").get(doc_id=1)["schema"] == 1
    finally:
        db.close()


def test_close_folds_the_journal_into_the_store_file(path: Path) -> None:
    store = UserStore(path)
    store.seen(user(1), AT)
    store.flush()
    store.seen(user(2), AT)
    store.close()
    # The journal is gone; what stays is the store, its column and history files
    # (derived caches) and the lock file.
    assert sorted(os.listdir(path.parent)) == [
        "users.json", "users.json.columns", "users.json.history", "users.json.lock"
    ]
    assert set(json.loads(path.read_bytes())["users"]) == {"1", "2"}
    with pytest.raises(StoreError):
        store.seen(user(3), AT)
    store.close()  # a second close is harmless


def test_flushed_changes_are_visible_to_a_reader_while_the_writer_runs(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(user(1), AT)
        store.flush()
        with UserStore(path, readonly=True) as reader:
            assert reader.get(1)["first_name"] == "First1"  # type: ignore[index]
        store.seen(user(1, first_name="Changed"), AT)
        store.seen(user(2), AT)
        store.flush()
        with UserStore(path, readonly=True) as reader:
            assert reader.get(1)["first_name"] == "Changed"  # type: ignore[index]
            assert len(reader) == 2


def test_unknown_fields_and_tables_survive_load_and_save(path: Path) -> None:
    full = {
        "id": 5, "first_name": "Old", "last_name": None, "username": "five", "language_code": "en",
        "is_bot": False, "is_premium": None, "first_seen": "2023-01-01T00:00:00Z",
        "last_seen": "2023-01-02T00:00:00Z", "messages": 3, "source": None, "blocked": False,
        "blocked_at": None,
    }  # fmt: skip
    db = TinyDB(path)
    users = db.table("users")
    from tinydb.table import Document

    users.insert(Document({**full, "note": {"vip": True, "tags": ["a", "b"]}, "score": 1.5}, doc_id=5))
    users.insert(Document({**full, "id": 6, "username": "six", "legacy": "keep me"}, doc_id=6))
    db.table("meta").insert(Document({"schema": 1, "bio_text": "hi", "custom_meta": [1, 2]}, doc_id=1))
    db.table("notes").insert({"text": "another tool's table", "n": 1})
    db.close()
    notes_before = json.loads(path.read_bytes())["notes"]

    with UserStore(path) as store:
        assert store.get(5)["note"] == {"vip": True, "tags": ["a", "b"]}  # type: ignore[index]
        store.seen(user(5, first_name="New"), AT)
        store.seen(user(7), AT)
        store.update_meta(bio_text="changed")

    document = json.loads(path.read_bytes())
    assert document["notes"] == notes_before
    five = document["users"]["5"]
    assert five["note"] == {"vip": True, "tags": ["a", "b"]} and five["score"] == 1.5
    assert (five["first_name"], five["messages"], five["first_seen"]) == ("New", 4, "2023-01-01T00:00:00Z")
    assert document["users"]["6"]["legacy"] == "keep me"
    assert document["meta"]["1"]["custom_meta"] == [1, 2] and document["meta"]["1"]["bio_text"] == "changed"
    with UserStore(path, readonly=True) as reader:
        assert reader.get(6)["legacy"] == "keep me"  # type: ignore[index]


ODD_NAMES = [
    "",
    "x" * 64,
    "Ω" * 300,
    "مرحبا بالعالم",
    "\u202egnp.exe",
    "👨‍👩‍👧‍👦🏳️‍🌈",
    "zero\u200bwidth\u200d\ufeff",
    "ctrl\x01\x1f\x7f\n\r\t",
    "nul\x00byte",
    "quote\"back\\slash'",
    "𝕳𝖊𝖑𝖑𝖔 ﷽",
]


def test_odd_names_are_stored_faithfully(path: Path) -> None:
    with UserStore(path) as store:
        for index, name in enumerate(ODD_NAMES, 1):
            store.seen(user(index, first_name=name, last_name=name[::-1], username=f"u{index}"), AT,
                       source=name or None)  # fmt: skip
        store.flush()
        with UserStore(path, readonly=True) as reader:  # through the journal
            names = [reader.get(i)["first_name"] for i in range(1, len(ODD_NAMES) + 1)]  # type: ignore[index]
            assert names == ODD_NAMES
    records = reopen_records(path)  # through the snapshot
    for index, name in enumerate(ODD_NAMES, 1):
        assert records[index]["first_name"] == name
        assert records[index]["last_name"] == name[::-1]
        assert records[index]["source"] == (name or None)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def test_files_are_private_and_missing_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "nested" / "users.json"
    old_umask = os.umask(0)  # the store must set modes itself, not rely on the umask
    try:
        with UserStore(path) as store:
            store.seen(user(1), AT)
            store.flush()
            while_open = modes(path.parent)
        after_close = modes(path.parent)
    finally:
        os.umask(old_umask)
    assert "users.json" in after_close
    assert set(while_open.values()) == {0o600}, while_open
    assert set(after_close.values()) == {0o600}, after_close
    assert not stat.S_IMODE(os.stat(path.parent).st_mode) & 0o077  # folder not open to others


# --------------------------------------------------------------- read-only


def test_read_only_open_of_a_missing_store(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "users.json"
    with pytest.raises(StoreNotFoundError) as info:
        UserStore(path, readonly=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not path.parent.exists()


def test_read_only_store_changes_nothing(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(user(1), AT)
    before = snapshot_folder(path.parent)
    with UserStore(path, readonly=True) as reader:
        assert reader.readonly is True
        for attempt in (
            lambda: reader.seen(user(2), AT),
            lambda: reader.forget(1),
            lambda: reader.set_blocked(1, True, AT),
            lambda: reader.update_meta(bio_text="x"),
        ):
            with pytest.raises(StoreError):
                attempt()
        reader.flush()
        assert len(reader) == 1
    assert snapshot_folder(path.parent) == before


# ---------------------------------------------------- files it must not touch


def snapshot_folder(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def make_store_bytes(tmp_path: Path, users: int = 30) -> bytes:
    source = tmp_path / "source" / "users.json"
    with UserStore(source) as store:
        for user_id in range(1, users + 1):
            store.seen(user(user_id), AT)
    return source.read_bytes()


def foreign_tinydb(tmp_path: Path) -> bytes:
    other = tmp_path / "other" / "db.json"
    other.parent.mkdir()
    db = TinyDB(other)
    db.insert({"name": "not a telegram user"})
    db.table("orders").insert({"item": "book", "qty": 2})
    db.close()
    return other.read_bytes()


BAD_FILES = {
    "corrupt": lambda tmp: make_store_bytes(tmp)[:200] + b"}}{,,]" + make_store_bytes(tmp)[206:],
    "truncated": lambda tmp: make_store_bytes(tmp)[: len(make_store_bytes(tmp)) * 2 // 3],
    "truncated-at-brace": lambda tmp: make_store_bytes(tmp)[:-1],
    "foreign-tinydb": foreign_tinydb,
    "binary": lambda tmp: bytes(range(256)) * 8,
    "gzip": lambda tmp: b"\x1f\x8b\x08\x00" + bytes(64),
    "json-array": lambda tmp: b"[1, 2, 3]",
    "json-null": lambda tmp: b"null",
    "newer-schema": lambda tmp: json.dumps(
        {"users": {"1": {"id": 1, "first_name": "future"}}, "meta": {"1": {"schema": 2, "new_thing": 1}}}
    ).encode(),
    "users-not-a-table": lambda tmp: b'{"users": [1, 2], "meta": {"1": {"schema": 1}}}',
    "record-not-an-object": lambda tmp: b'{"users": {"1": "alice"}, "meta": {"1": {"schema": 1}}}',
    "non-numeric-doc-id": lambda tmp: b'{"users": {"abc": {"id": 1}}, "meta": {"1": {"schema": 1}}}',
    "unicode-digit-doc-id": lambda tmp: '{"users": {"²": {"id": 2}}, "meta": {"1": {"schema": 1}}}'.encode(),
    "schema-not-a-number": lambda tmp: b'{"users": {}, "meta": {"1": {"schema": "one"}}}',
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_bad_store_files_give_a_clear_error_and_stay_untouched(
    tmp_path: Path, kind: str, readonly: bool
) -> None:
    data = BAD_FILES[kind](tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "users.json"
    path.write_bytes(data)
    before = snapshot_folder(folder)
    with pytest.raises(StoreError) as info:
        UserStore(path, readonly=readonly)
    error = info.value
    assert not isinstance(error, (StoreLockedError, StoreNotFoundError))
    assert isinstance(error, StoreCorruptError)
    message = str(error)
    assert str(path) in message and "\n" not in message, message
    after = snapshot_folder(folder)
    assert after.pop("users.json") == before["users.json"], "the bad file was modified"
    assert set(after) <= {"users.json.lock"}, f"files left behind: {sorted(after)}"
    if kind == "newer-schema":
        assert "schema" in message
    # And again: a second attempt fails the same way (nothing was "repaired").
    with pytest.raises(StoreCorruptError):
        UserStore(path, readonly=readonly)
    assert path.read_bytes() == data


def crash_image(tmp_path: Path) -> Path:
    """A store and journal as a writer leaves them when killed: copied while it runs."""
    live = tmp_path / "live" / "users.json"
    image = tmp_path / "image" / "users.json"
    image.parent.mkdir()
    with UserStore(live) as store:
        for round_no in range(6):
            for user_id in range(1, 6):
                store.seen(user(user_id, last_name=str(round_no)), AT + timedelta(seconds=round_no))
            store.flush()
        for name in ("users.json", "users.json.journal"):
            shutil.copy2(live.parent / name, image.parent / name)
    return image


def test_crash_image_with_a_journal_opens_with_everything_flushed(tmp_path: Path) -> None:
    image = crash_image(tmp_path)
    assert (image.parent / "users.json.journal").stat().st_size > 0
    records = reopen_records(image)
    assert [records[i]["last_name"] for i in range(1, 6)] == ["5"] * 5
    assert records[1]["messages"] == 6


def test_torn_journal_tail_is_a_crash_not_corruption(tmp_path: Path) -> None:
    image = crash_image(tmp_path)
    journal = image.parent / "users.json.journal"
    data = journal.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 5  # a few bytes into the last line
    journal.write_bytes(data[:cut])
    records = reopen_records(image)
    # The last batch is torn away, the earlier ones are all there.
    assert all(records[i]["last_name"] in ("4", "5") for i in range(1, 6))
    assert records[1]["messages"] >= 5


def test_corruption_in_the_middle_of_the_journal_is_an_error(tmp_path: Path) -> None:
    image = crash_image(tmp_path)
    journal = image.parent / "users.json.journal"
    lines = journal.read_bytes().split(b"\n")
    assert len(lines) > 6
    middle = len(lines) // 2
    lines[middle] = b"#" * len(lines[middle])
    journal.write_bytes(b"\n".join(lines))
    before = snapshot_folder(image.parent)
    for readonly in (True, False):
        with pytest.raises(StoreCorruptError) as info:
            UserStore(image, readonly=readonly)
        message = str(info.value)
        assert str(journal) in message and "\n" not in message, message
    after = snapshot_folder(image.parent)
    after.pop("users.json.lock", None)
    assert after == before


@pytest.mark.parametrize("content", [b"", b"  \n"], ids=["empty", "whitespace"])
def test_an_empty_file_is_a_new_store(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with UserStore(path, readonly=True) as reader:
        assert len(reader) == 0
    with UserStore(path) as store:
        assert len(store) == 0
        assert store.seen(user(1), AT) is True
    assert set(reopen_records(path)) == {1}


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"a regular file")
    for path in (blocker / "users.json", blocker / "deeper" / "users.json"):
        with pytest.raises(StoreError) as info:
            UserStore(path)
        message = str(info.value)
        assert "\n" not in message and str(blocker) in message, message
    assert blocker.read_bytes() == b"a regular file"


def test_store_path_that_is_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.mkdir()
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            UserStore(path, readonly=readonly)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.is_dir() and list(path.iterdir()) == []


def test_records_missing_fields_are_completed_and_can_be_updated(path: Path) -> None:
    """A hand-edited or older record with only some fields: filled in, still updatable."""
    path.write_text(json.dumps({"users": {"5": {"id": 5, "first_name": "Five", "messages": 2, "extra": 1}}}))
    with UserStore(path) as store:
        record = store.get(5)
        assert record is not None and set(RECORD_FIELDS) <= set(record) and record["extra"] == 1
        assert store.seen(user(5), AT) is False
        record = store.get(5)
        assert record is not None
        assert record["messages"] == 3 and record["last_seen"] == "2024-03-01T12:30:45Z"
        assert record["first_seen"] is not None


def test_another_programs_users_table_is_foreign_and_untouched(path: Path) -> None:
    """TinyDB doc ids 1, 2, 3 with records of their own: not ours, never rewritten."""
    original = json.dumps({"users": {"1": {"name": "alice", "email": "a@example.org"}}}).encode()
    path.write_bytes(original)
    for readonly in (False, True):
        with pytest.raises(StoreCorruptError, match="not a user store"):
            UserStore(path, readonly=readonly)
    assert path.read_bytes() == original


# ------------------------------------------------------ timestamp edge cases


def test_timestamps_across_a_dst_fold(store: UserStore) -> None:
    """01:30 happens twice in New York on 2024-11-03: fold=0 is EDT (05:30Z), fold=1 is EST (06:30Z)."""
    new_york = ZoneInfo("America/New_York")
    store.seen(user(1), datetime(2024, 11, 3, 1, 30, 0, tzinfo=new_york))
    store.seen(user(1), datetime(2024, 11, 3, 1, 30, 0, 500_000, tzinfo=new_york, fold=1))
    store.seen(user(2), datetime(2024, 11, 3, 1, 30, 0, 600_000, tzinfo=new_york, fold=1))
    assert store.get(1)["first_seen"] == "2024-11-03T05:30:00Z"  # type: ignore[index]
    assert store.get(1)["last_seen"] == "2024-11-03T06:30:00Z"  # type: ignore[index]
    assert store.get(2)["first_seen"] == "2024-11-03T06:30:00Z"  # type: ignore[index]


def test_set_blocked_with_a_naive_datetime_changes_nothing(store: UserStore) -> None:
    store.seen(user(2), AT)
    with pytest.raises((ValueError, TypeError)):
        store.set_blocked(2, True, datetime(2024, 3, 1, 12, 0, 0))
    assert store.get(2)["blocked"] is False  # type: ignore[index]
    assert store.get(2)["blocked_at"] is None  # type: ignore[index]


def test_a_name_that_cannot_be_encoded_does_not_break_persistence(path: Path) -> None:
    """A lone surrogate (not valid UTF-8) may be refused, but must not stop later writes."""
    with UserStore(path) as store:
        with contextlib.suppress(ValueError, TypeError):
            store.seen(user(1, first_name="bad \ud800 name"), AT)
        store.seen(user(2), AT)
        time.sleep(0.5)  # a few journal rounds of the background thread
        store.seen(user(3), AT)
        store.flush()
    records = reopen_records(path)
    assert {2, 3} <= set(records)
