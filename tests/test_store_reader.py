"""StoreReader: the read API everyone else uses, checked against a read-only UserStore and plain TinyDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tinydb import TinyDB

from tracker.models import RECORD_FIELDS, Profile
from tracker.store import StoreNotFoundError, StoreReader, UserStore, columns_path

AT = datetime(2024, 3, 1, tzinfo=UTC)


def fill(store: UserStore) -> None:
    for i in range(1, 40):
        store.seen(Profile(i, f"N{i}", username=f"User{i}", language_code="en" if i % 2 else None), AT)
    store.update_meta(bio_text="hello")


def test_a_running_writers_store_reads_the_same_every_way(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        fill(store)
        store.snapshot()  # a column file, then changes only in the journal:
        store.seen(Profile(5, "Renamed"), AT + timedelta(hours=1))
        store.forget(7)
        store.seen(Profile(100, "New"), AT + timedelta(hours=2), source="ad")
        store.update_meta(bio_text="changed")
        store.flush()
        reader = StoreReader(path)
        with UserStore(path, readonly=True) as plain:
            expected = {r["id"]: dict(r) for r in plain}
            assert {r["id"]: r for r in reader.records()} == expected
            assert reader.meta() == plain.meta
        assert reader.count() == len(expected) == 39
        columns = reader.columns(["first_name", "source"])
        assert sorted(columns) == ["first_name", "id", "source"]
        pairs = zip(columns["first_name"], columns["source"], strict=True)
        rows = dict(zip(columns["id"], pairs, strict=True))
        assert rows == {i: (r["first_name"], r["source"]) for i, r in expected.items()}
        assert reader.get(5)["first_name"] == "Renamed"  # type: ignore[index]
        assert reader.get(7) is None
        assert reader.find_username("@USER12")["id"] == 12  # type: ignore[index]
        assert reader.table("meta")["1"]["bio_text"] == "changed"
        assert reader.table("nothing") == {}
        document = reader.document()
    with TinyDB(path, access_mode="r") as db:  # after close, plain TinyDB sees the same document
        assert db.table("users").get(doc_id=5) == document["users"]["5"]
        assert len(db.table("users")) == len(document["users"])


def test_columns_fall_back_to_the_store_file_without_a_cache(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        fill(store)
    columns_path(path).unlink()
    columns = StoreReader(path).columns(RECORD_FIELDS)
    with UserStore(path, readonly=True) as plain:
        assert columns["id"] == [r["id"] for r in plain]
        assert columns["username"] == [r["username"] for r in plain]


def test_a_missing_store_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "users.json"
    with pytest.raises(StoreNotFoundError) as info:
        StoreReader(path)
    assert str(path) in str(info.value)
    assert not path.parent.exists()
