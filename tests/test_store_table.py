"""The writer's struct-of-arrays table and the store file layout it streams back.

Whatever the table holds must read back exactly as the records a whole-file
parse gives, whichever way the file was laid out; a file that is laid out
almost like ours must be read (or refused) exactly as a whole parse would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tinydb import TinyDB

from tests.support import profile
from tracker.models import RECORD_FIELDS
from tracker.store import StoreCorruptError, Tuning, UserStore, columns_path
from tracker.store.format import USERS_OPENING, read_store, read_store_table
from tracker.store.table import UserTable

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ODD_NAMES = [
    "", "x" * 5000, "مرحبا بالعالم", "🦄👩‍👩‍👧", "tab\tnew\nline\x00nul\x1b[31m", "\u202eevil", "a\"b\\c",
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.json"


def small_chunks() -> Tuning:
    return Tuning(snapshot_chunk=7)  # many lines, so the layout's joins are exercised


def varied_store(path: Path, users: int = 40) -> None:
    """Odd names, sources, blocks, a forget and a re-add: every column has something to say."""
    with UserStore(path, tuning=small_chunks()) as store:
        for i in range(users):
            name = ODD_NAMES[i % len(ODD_NAMES)]
            user = profile(1_000 + i, name, username=f"u{i}" if i % 3 else None,
                           language_code=("en", "fa", None)[i % 3], is_premium=(None, True, False)[i % 3])
            source = "ads" if i % 4 == 0 else None
            store.seen(user, NOW + timedelta(seconds=i), source=source, message=i % 2 == 0)
        store.set_blocked(1_003, True, NOW + timedelta(hours=1))
        store.forget(1_005)
        store.seen(profile(1_005, "Back again"), NOW + timedelta(hours=2))


def whole_parse(path: Path) -> dict[int, dict[str, Any]]:
    return read_store(path, compact=False).records


def streamed(path: Path) -> tuple[dict[int, dict[str, Any]], bool]:
    _, table, ours = read_store_table(path)
    return {record["id"]: record for record in table}, ours


def test_the_store_file_has_one_chunk_per_line_and_stays_a_tinydb_database(path: Path) -> None:
    varied_store(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    assert data.startswith(USERS_OPENING)
    assert len(lines) >= 2 + 40 // 7 and lines[-1].startswith(b"},")
    assert all(line.endswith(b",") for line in lines[1:-2]) and not lines[-2].endswith(b",")
    with TinyDB(path) as db:
        assert db.table("users").get(doc_id=1_005)["first_name"] == "Back again"  # type: ignore[index]
        assert len(db.table("users")) == 40


def test_a_streamed_file_reads_exactly_as_a_whole_parse(path: Path) -> None:
    varied_store(path)
    records, ours = streamed(path)
    assert ours
    assert records == whole_parse(path)
    assert records[1_001]["first_name"] == ODD_NAMES[1] and records[1_003]["blocked"] is True


def test_a_file_in_another_layout_reads_the_same_through_the_whole_parse(path: Path) -> None:
    varied_store(path)
    expected = whole_parse(path)
    path.write_bytes(orjson.dumps(orjson.loads(path.read_bytes()), option=orjson.OPT_INDENT_2))
    records, ours = streamed(path)
    assert not ours and records == expected


def bend(path: Path, old: bytes, new: bytes, count: int = 1) -> None:
    data = path.read_bytes()
    assert data.count(old) >= count
    path.write_bytes(data.replace(old, new, count))


def outcome(path: Path) -> Any:
    """What opening ``path`` as a writer gives: the records, or the error's message."""
    try:
        with UserStore(path) as store:
            return {record["id"]: record for record in store}
    except StoreCorruptError as exc:
        return str(exc)


@pytest.mark.parametrize(
    ("case", "old", "new"),
    [
        # A trailing comma before the end of the users table: not JSON, so refused.
        ("trailing comma", b"\n},", b",\n},"),
        # A missing comma between two lines: not JSON either.
        ("missing comma", b",\n", b"\n"),
        # A second users table after meta: a whole parse keeps the last one.
        ("second users table", b'},"meta":', b'},"users":{"7":{"id":7}},"meta":'),
        # The end of the users table without the rest.
        ("truncated", b"\n},", b"\n"),
        # A record with a wrong value on a line of its own.
        ("bad value", b'"messages":0', b'"messages":"zero"'),
        # An id that is not a number.
        ("bad id", b'"1000":{', b'"x1000":{'),
        # A line split in two inside a record: still JSON as a whole.
        ("line split", b',"last_name"', b',\n"last_name"'),
        # Whitespace the layout does not use.
        ("spaces", b"\n},", b" \n},"),
    ],
)
def test_a_file_bent_out_of_the_layout_is_read_as_a_whole_parse_reads_it(path: Path, case: str, old: bytes,
                                                                        new: bytes) -> None:
    varied_store(path)
    bend(path, old, new)
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        document = None
    got = outcome(path)
    if document is None:
        assert isinstance(got, str) and "not readable" in got, case
    elif isinstance(got, str):
        assert "users record" in got or "not a user store" in got, (case, got)
        with pytest.raises(StoreCorruptError):
            read_store(path, compact=False)
    else:
        assert got == {int(k): v for k, v in document["users"].items()} or case == "second users table"
        if case == "second users table":  # the last users table wins, as in any JSON parser
            assert set(got) == {7}


def test_the_serialised_chunk_is_byte_for_byte_what_orjson_writes(path: Path) -> None:
    varied_store(path)
    records = whole_parse(path)
    records[1_002]["nested"] = {"deep": [1, {"x": None}], "big": 2**63 - 1}  # a hand-made extra field
    records[1_004]["first_seen"] = "2026-13-45T99:99:99Z"  # odd: kept as text
    records[1_006]["blocked_at"] = "1969-07-20T20:17:40Z"
    table = UserTable()
    table.put(records.values())
    chunk = table.chunk(0, table.row_count)
    expected = orjson.dumps({str(record["id"]): record for record in chunk.records()})
    assert chunk.encoded() == expected
    assert orjson.loads(expected) == {str(k): v for k, v in records.items()}


def test_a_forgotten_and_readded_user_is_written_once(path: Path) -> None:
    with UserStore(path, tuning=small_chunks()) as store:
        for i in range(30):
            store.seen(profile(i + 1), NOW)
        store.forget(3)
        store.seen(profile(3, "New life"), NOW + timedelta(minutes=1))
        store.snapshot()
        assert path.read_bytes().count(b'"3":{') == 1
    records, _ = streamed(path)
    assert records[3]["first_name"] == "New life" and len(records) == 30


def test_forget_drops_the_data_from_memory_at_once(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(profile(7, "Secret Name", username="secret"), NOW, source="leak")
        store.forget(7)
        table = store._table  # the one place the erased values could linger
        assert "Secret Name" not in repr(table.profiles) and "leak" not in table.sources
        assert store.get(7) is None and store.find_username("secret") is None


def test_a_store_closed_cleanly_is_not_rewritten_at_open_but_its_lost_column_file_is(path: Path) -> None:
    varied_store(path)
    before = path.stat()
    columns_path(path).unlink()
    with UserStore(path) as store:
        during = path.stat()
        assert (during.st_ino, during.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert columns_path(path).exists()
        assert len(store) == 40


def test_a_store_with_journaled_changes_is_folded_at_open(path: Path) -> None:
    varied_store(path)
    store = UserStore(path)
    store.seen(profile(5_000, "Late"), NOW)
    store.flush()
    store._persister.stop()  # as if killed: the journal holds the change, the file does not
    store._journal.close()
    store._writer_lock.release()
    before = path.stat().st_ino
    with UserStore(path) as reopened:
        assert path.stat().st_ino != before and reopened.get(5_000) is not None
    assert 5_000 in whole_parse(path)


def test_a_sighting_against_an_odd_last_seen_compares_as_text(path: Path) -> None:
    varied_store(path)
    document = orjson.loads(path.read_bytes())
    document["users"]["1010"]["last_seen"] = "2026-13-45T99:99:99Z"  # sorts after NOW as text
    document["users"]["1011"]["last_seen"] = None  # a hand-made record never seen
    path.write_bytes(orjson.dumps(document))
    with UserStore(path) as store:
        store.seen(profile(1_010, "Renamed"), NOW + timedelta(days=1))
        store.seen(profile(1_011, "Renamed"), NOW + timedelta(days=1))
        odd, never = store.get(1_010), store.get(1_011)
    assert odd is not None and never is not None
    assert odd["last_seen"] == "2026-13-45T99:99:99Z" and odd["first_name"] != "Renamed"
    assert never["last_seen"] == "2026-11-24T12:00:00Z" and never["first_name"] == "Renamed"


def test_a_rename_is_journaled_whole_and_a_repeat_visit_as_a_touch(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(profile(1, "Ann"), NOW)
        store.flush()
        start = store.journal_path.stat().st_size
        store.seen(profile(1, "Ann"), NOW + timedelta(seconds=1))
        store.flush()
        store.seen(profile(1, "Anna"), NOW + timedelta(seconds=2))
        store.flush()
        lines = store.journal_path.read_bytes()[start:].splitlines()
    kinds = [orjson.loads(line)[0] for line in lines]
    assert kinds.count("t") == 1 and kinds.count("u") == 1
    upserted = next(orjson.loads(line)[1] for line in lines if line.startswith(b'["u"'))
    assert upserted[0]["first_name"] == "Anna"


def test_records_keep_the_design_fields_in_order_and_extras_after_them(path: Path) -> None:
    varied_store(path)
    document = orjson.loads(path.read_bytes())
    document["users"]["1001"]["note"] = "vip"
    path.write_bytes(orjson.dumps(document))
    with UserStore(path) as store:
        record = store.get(1_001)
    assert record is not None and list(record) == [*RECORD_FIELDS, "note"]
    assert whole_parse(path)[1_001]["note"] == "vip"


def test_closing_without_changes_since_the_last_snapshot_leaves_the_file_alone(path: Path) -> None:
    varied_store(path)
    with UserStore(path) as store:
        store.seen(profile(1_001, ODD_NAMES[1]), NOW + timedelta(days=1))
        store.snapshot()
        after_snapshot = path.stat()
    closed = path.stat()
    assert (closed.st_ino, closed.st_mtime_ns) == (after_snapshot.st_ino, after_snapshot.st_mtime_ns)
    assert not UserStore(path, readonly=True).journal_path.exists()
    with UserStore(path) as store:
        store.update_meta(note="changed")  # a change: the close must write it
        before = path.stat().st_ino
    assert path.stat().st_ino != before
    with UserStore(path, readonly=True) as store:
        assert store.meta["note"] == "changed"


def test_a_large_open_leaves_what_it_loaded_out_of_later_collections(path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import tracker.store.writer as writer

    varied_store(path)
    monkeypatch.setattr(writer, "FREEZE_FROM_ROWS", 10)  # "large" for this test: 40 users
    gc.unfreeze()
    try:
        with UserStore(path) as store:
            assert gc.get_freeze_count() > 0
            assert not gc.is_tracked(store._table.rows)  # ints only: never the GC's business
            frozen = gc.get_freeze_count()
        monkeypatch.setattr(writer, "FREEZE_FROM_ROWS", 10**9)
        gc.unfreeze()
        with UserStore(path):
            assert gc.get_freeze_count() == 0  # a small store leaves the process's GC alone
        assert frozen > 0
    finally:
        gc.unfreeze()


def test_a_journal_round_that_fails_to_build_keeps_its_changes_pending(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracker.store.records as records

    real_encode = records.Copied.encode
    with UserStore(path, flush_interval=3600) as store:
        store.seen(profile(1, "Kept"), NOW)
        store.flush()
        store.seen(profile(1, "Renamed"), NOW + timedelta(seconds=1))
        store.seen(profile(2, "New"), NOW + timedelta(seconds=1))
        monkeypatch.setattr(records.Copied, "encode", lambda self, crc: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            store.flush()
        monkeypatch.setattr(records.Copied, "encode", real_encode)
        store.flush()  # the next round writes what the failed one had taken
        journal = store.journal_path.read_bytes()
    assert b'"Renamed"' in journal and b'"New"' in journal
