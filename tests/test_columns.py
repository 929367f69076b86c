"""The column file: a derived, column-per-field copy that fast readers use.

Whatever ``load_columns`` returns must be exactly what a read-only UserStore
sees (store file + journal), and whenever it cannot be sure it returns None.
"""

from __future__ import annotations

import csv
import io
import random
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.support import profile
from tracker.models import RECORD_FIELDS, Profile
from tracker.stats import STATS_FIELDS, compute_stats, compute_stats_from_columns
from tracker.store import StoreReader, UserStore, columns_path, load_columns
from tracker.store.column_codec import seconds_of, texts_of
from tracker.store.column_views import CodeColumn, FlagColumn, NumberColumn, TimeColumn
from tracker.store.columns import FORMAT, HEADER_ROOM

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def user(i: int, name: str = "Name", **fields: Any) -> Profile:
    return profile(i, name, **{"username": f"user{i}", "language_code": ("en", "ru", None)[i % 3], **fields})


def as_rows(columns: dict[str, list[Any]]) -> dict[int, dict[str, Any]]:
    names = list(columns)
    return {row[0]: dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)}


def reader_view(path: Path) -> dict[int, dict[str, Any]]:
    with UserStore(path, readonly=True) as store:
        return {rec["id"]: {name: rec[name] for name in RECORD_FIELDS} for rec in store}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.json"


def test_columns_match_the_store_after_close(path: Path) -> None:
    with UserStore(path) as store:
        for i in range(50):
            store.seen(user(i), NOW - timedelta(hours=i), source="ad" if i % 4 == 0 else None)
    columns = load_columns(path, RECORD_FIELDS)
    assert columns is not None
    assert as_rows(columns) == reader_view(path)
    assert columns_path(path).stat().st_mode & 0o777 == 0o600


def test_columns_follow_the_journal_of_a_running_writer(path: Path) -> None:
    with UserStore(path) as store:
        for i in range(100):
            store.seen(user(i), NOW)
        store.snapshot()  # column file at this point; all below is journal only
        for i in range(0, 100, 2):
            store.seen(user(i), NOW + timedelta(minutes=5))  # touches
        store.seen(user(7, "Renamed"), NOW + timedelta(minutes=6))  # whole record
        store.seen(user(7, "Renamed"), NOW + timedelta(minutes=7))  # then a touch of it
        store.forget(3)
        store.set_blocked(9, True, NOW + timedelta(minutes=8))
        for i in range(100, 110):
            store.seen(user(i), NOW + timedelta(minutes=9))  # new users
        store.forget(105)
        store.flush()
        columns = load_columns(path, RECORD_FIELDS)
        assert columns is not None
        rows = as_rows(columns)
        assert rows == reader_view(path)
        assert 3 not in rows and 105 not in rows and rows[109]["messages"] == 1
        assert rows[7]["first_name"] == "Renamed" and rows[7]["messages"] == 3
        assert rows[9]["blocked"] is True


def test_only_the_asked_fields_are_loaded(path: Path) -> None:
    with UserStore(path) as store:
        store.seen(user(1), NOW)
    columns = load_columns(path, ["last_seen"])
    assert columns is not None and sorted(columns) == ["id", "last_seen"]


@pytest.mark.parametrize("damage", ["missing", "torn", "store replaced", "garbage"])
def test_no_columns_when_they_cannot_be_trusted(path: Path, damage: str) -> None:
    with UserStore(path) as store:
        for i in range(20):
            store.seen(user(i), NOW)
    col_file = columns_path(path)
    if damage == "missing":
        col_file.unlink()
    elif damage == "torn":
        col_file.write_bytes(col_file.read_bytes()[:-40])
    elif damage == "store replaced":
        path.write_bytes(path.read_bytes().replace(b"Name", b"Other name"))
    else:
        col_file.write_bytes(b"\x00\xff not json")
    assert load_columns(path, STATS_FIELDS) is None


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York", "Pacific/Kiritimati"])
def test_column_stats_equal_record_stats(path: Path, zone: str) -> None:
    rng = random.Random(zone)
    with UserStore(path) as store:
        for i in range(3000):
            at = NOW - timedelta(minutes=rng.randrange(60 * 24 * 45))
            store.seen(user(i), at, message=rng.random() < 0.8, source=rng.choice([None, "ad", "promo"]))
            if rng.random() < 0.1:
                store.set_blocked(i, True, at)
        store.snapshot()
        for i in rng.sample(range(3000), 300):  # fresh activity, journal only
            store.seen(user(i), NOW - timedelta(minutes=rng.randrange(600)))
        store.flush()
        columns = load_columns(path, STATS_FIELDS)
        assert columns is not None
        tz = ZoneInfo(zone)
        with UserStore(path, readonly=True) as reader:
            expected = compute_stats(reader, now=NOW, tz=tz)
        assert compute_stats_from_columns(columns, now=NOW, tz=tz) == expected
        assert expected["active_24h"] > 0 and expected["blocked_users"] > 0


def test_column_stats_of_an_empty_store(path: Path) -> None:
    UserStore(path).close()
    columns = load_columns(path, STATS_FIELDS)
    assert columns is not None
    tz = ZoneInfo("UTC")
    assert compute_stats_from_columns(columns, now=NOW, tz=tz) == compute_stats([], now=NOW, tz=tz)


ODD_NAMES = [
    "", "=1+2", "+cmd", "-x", "@sum", "\tTab", "\rcr", "Ωmega 😀", "שלום", "a\u200bb", "x" * 300, "\x00\x07",
    "a,b", "say \"hi\"", "two\nlines", "cr\rin", " padded ", "\"=x\"",
]


@pytest.mark.parametrize("options", [[], ["--excel"], ["--raw"]])
def test_csv_export_from_columns_equals_export_from_records(path: Path, options: list[str]) -> None:
    from click.testing import CliRunner

    from tracker.cli import cli

    with UserStore(path) as store:
        for i, name in enumerate(ODD_NAMES * 3):
            odd = user(i, name, last_name=ODD_NAMES[-1 - i % len(ODD_NAMES)], is_premium=i % 2 == 0)
            store.seen(odd, NOW - timedelta(days=i), source=name or None)
        store.set_blocked(4, True, NOW)
    runner = CliRunner()
    fast = runner.invoke(cli, ["--store", str(path), "export", "-", *options])
    assert fast.exit_code == 0, fast.output
    columns_path(path).unlink()  # now only the record path can answer
    slow = runner.invoke(cli, ["--store", str(path), "export", "-", *options])
    assert slow.exit_code == 0, slow.output
    assert fast.stdout_bytes == slow.stdout_bytes
    # "=1+2" is a first name, a last name and a source, three users each.
    assert fast.stdout_bytes.count(b"'=1+2") == (0 if "--raw" in options else 9)
    assert b"\"say \"\"hi\"\"\"" in fast.stdout_bytes
    # Parsed back by the csv module, every odd name is one intact cell.
    text = fast.stdout_bytes.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(ODD_NAMES) * 3
    by_id = {int(row[0]): row for row in rows[1:]}
    for i, name in enumerate(ODD_NAMES * 3):
        risky = "--raw" not in options and name[:1] in ("=", "+", "-", "@", "\t", "\r")
        assert by_id[i][2] == ("'" + name if risky else name)


def test_column_stats_with_odd_timestamps_match_the_tolerant_record_stats() -> None:
    """Hand-edited values (a number, a null) must not be counted as if they were dates."""
    base = {"language_code": "en", "source": None, "blocked": False, "messages": 1}
    records = [
        {**base, "first_seen": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T11:00:00Z"},
        {**base, "first_seen": 1700000000, "last_seen": 1700000000},
        {**base, "first_seen": None, "last_seen": "2026-11-22T11:00:00Z"},
    ]
    columns = {name: [rec[name] for rec in records] for name in STATS_FIELDS}
    tz = ZoneInfo("UTC")
    result = compute_stats_from_columns(columns, now=NOW, tz=tz)
    assert result == compute_stats(records, now=NOW, tz=tz)
    assert result["active_24h"] == 1 and result["active_7d"] == 2 and result["total_users"] == 3


# ------------------------------------------------ the binary column file (issue 11)


def typical_store(path: Path, users: int = 2000) -> None:
    with UserStore(path) as store:
        for i in range(users):
            store.seen(user(i), NOW - timedelta(minutes=i), source=("ad", "promo", None)[i % 3])
        store.set_blocked(5, True, NOW)


def test_the_column_file_is_binary_and_small(path: Path) -> None:
    typical_store(path)
    data = columns_path(path).read_bytes()
    assert orjson.loads(data.split(b"\n", 1)[0])["format"] == FORMAT
    # ids 8, three timestamps 12, messages 8, four flags and two codes 6, names as JSON.
    text_fields = ("first_name", "last_name", "username")
    names = sum(len(orjson.dumps([getattr(user(i), k) for i in range(2000)])) for k in text_fields)
    assert len(data) <= 2000 * 34 + names + 1024


@pytest.mark.parametrize("odd", ["2026-13-45T99:99:99Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
                                 "2200-01-01T00:00:00Z", "0000-00-00T00:00:00Z"])
def test_timestamps_that_do_not_fit_seconds_are_kept_exactly(path: Path, odd: str) -> None:
    typical_store(path, 20)
    document = orjson.loads(path.read_bytes())
    document["users"]["7"]["first_seen"] = odd
    document["users"]["8"]["blocked_at"] = odd
    path.write_bytes(orjson.dumps(document))
    UserStore(path).close()  # the writer writes the column file
    columns = load_columns(path, RECORD_FIELDS)
    assert columns is not None
    rows = as_rows(columns)
    assert rows == reader_view(path)
    assert rows[7]["first_seen"] == odd and rows[8]["blocked_at"] == odd


def test_a_stale_column_file_is_rebuilt_by_the_next_read(path: Path) -> None:
    typical_store(path, 300)
    stale = columns_path(path).read_bytes()
    document = orjson.loads(path.read_bytes())
    document["users"]["7"]["first_name"] = "Changed by hand"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))  # another file, same generation
    assert load_columns(path, STATS_FIELDS) is None  # stale: not trusted
    columns = StoreReader(path).columns(RECORD_FIELDS)
    assert as_rows({name: list(values) for name, values in columns.items()}) == reader_view(path)
    assert as_rows(columns)[7]["first_name"] == "Changed by hand"
    assert columns_path(path).read_bytes() != stale
    assert load_columns(path, STATS_FIELDS) is not None  # the next reader finds it fresh


def test_a_column_file_is_still_trusted_after_a_copy_of_the_same_bytes(path: Path) -> None:
    typical_store(path, 300)
    before = load_columns(path, RECORD_FIELDS)
    copy = path.with_name("copy.json")
    copy.write_bytes(path.read_bytes())
    copy.replace(path)  # new inode and mtime, same bytes: as after copying the data folder
    assert load_columns(path, RECORD_FIELDS) == before
    header = orjson.loads(columns_path(path).read_bytes().split(b"\n", 1)[0])
    assert header["store"][0] == path.stat().st_ino  # re-stamped: the next read skips the checksum


def test_same_size_different_bytes_is_stale(path: Path) -> None:
    typical_store(path, 30)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"user7"', b'"usex7"', 1))
    assert path.stat().st_size == len(data)
    assert load_columns(path, RECORD_FIELDS) is None
    assert as_rows(StoreReader(path).columns(RECORD_FIELDS))[7]["username"] == "usex7"


def _tamper(data: bytes, field: str, change: Any) -> bytes:
    """The column file with ``field``'s data section replaced by ``change(section)``."""
    line, body = data.split(b"\n", 1)
    header = orjson.loads(line)
    entry = next(f for f in header["fields"] if f[0] == field)
    start, length = entry[4], entry[5]
    return line + b"\n" + body[:start] + change(body[start : start + length]) + body[start + length :]


TAMPERING = {
    "flag out of range": ("blocked", lambda s: b"\x07" + s[1:]),
    "tri out of range": ("is_premium", lambda s: b"\x03" + s[1:]),
    "code out of range": ("language_code", lambda s: b"\xff" + s[1:]),
    "count over 63 bits": ("messages", lambda s: s[:7] + b"\xff" + s[8:]),
    "short section": ("id", lambda s: s[:-8] + b"\n" * 8),
}


@pytest.mark.parametrize("label", list(TAMPERING))
def test_a_tampered_column_file_is_not_trusted(path: Path, label: str) -> None:
    typical_store(path, 40)
    field, change = TAMPERING[label]
    col_file = columns_path(path)
    identity = path.stat()
    col_file.write_bytes(_tamper(col_file.read_bytes(), field, change))
    assert path.stat().st_mtime_ns == identity.st_mtime_ns
    if label == "short section":  # same length, different bytes: ids then do not match any record
        columns = load_columns(path, ["id"])
        assert columns is None or columns["id"] != sorted(reader_view(path))
        return
    assert load_columns(path, RECORD_FIELDS) is None
    assert as_rows(StoreReader(path).columns(RECORD_FIELDS)) == reader_view(path)


def test_time_columns_read_like_lists_of_strings() -> None:
    texts = ["2026-11-23T12:00:00Z", None, "1970-01-02T00:00:01Z", "2106-02-06T00:00:00Z",
             "2000-02-29T23:59:59Z"]
    column = TimeColumn(seconds_of(texts))
    assert list(column) == texts and column == texts and len(column) == 5
    assert column[0] == texts[0] and column[1] is None and column[1:3] == texts[1:3]
    assert texts_of(column.seconds) == texts
    column[1] = "2026-01-01T00:00:00Z"
    column.append(None)
    assert list(column) == [texts[0], "2026-01-01T00:00:00Z", *texts[2:], None]
    assert list(column.without({0, 5})) == ["2026-01-01T00:00:00Z", *texts[2:]]
    with pytest.raises((ValueError, KeyError)):
        seconds_of(["2026-13-01T00:00:00Z"])


def test_a_journaled_time_before_1970_turns_its_column_into_a_plain_list(path: Path) -> None:
    """A valid timestamp that uint32 seconds cannot hold, met in the journal: read exactly, never a crash."""
    with UserStore(path) as store:
        for i in range(10):
            store.seen(user(i), NOW)
        store.snapshot()  # the column file holds seconds; what follows is journal only
        store.seen(user(11), datetime(1969, 7, 21, 2, 56, tzinfo=UTC))  # a new user, appended
        store.flush()
        columns = StoreReader(path).columns(RECORD_FIELDS)
        rows = as_rows(columns)
        assert rows == reader_view(path)
        assert rows[11]["first_seen"] == rows[11]["last_seen"] == "1969-07-21T02:56:00Z"
        stats = compute_stats_from_columns(columns, now=NOW, tz=ZoneInfo("UTC"))
        with UserStore(path, readonly=True) as reader:
            assert stats == compute_stats(reader, now=NOW, tz=ZoneInfo("UTC"))


@pytest.mark.parametrize("distinct", [3, 40, 300])
def test_stats_count_the_stored_codes_as_the_values_would_count(path: Path, distinct: int) -> None:
    """Sources counted from their codes (one byte each, or wider past 256 names) as from the values."""
    with UserStore(path) as store:
        for i in range(900):
            store.seen(user(i), NOW - timedelta(hours=i), source=None if i % 7 == 0 else f"s{i % distinct}")
            if i % 5 == 0:
                store.set_blocked(i, True, NOW)
    columns = load_columns(path, STATS_FIELDS)
    assert columns is not None
    codes = columns["source"]
    assert isinstance(codes, CodeColumn) and codes.codes.itemsize == (1 if distinct < 256 else 2)
    plain = {name: list(values) for name, values in columns.items()}
    tz = ZoneInfo("UTC")
    assert compute_stats_from_columns(columns, now=NOW, tz=tz) == compute_stats_from_columns(plain, now=NOW,
                                                                                               tz=tz)
    assert len(compute_stats_from_columns(columns, now=NOW, tz=tz)["sources"]) == distinct


def test_encoded_columns_read_and_change_like_lists() -> None:
    """What readers and the journal do with a column: compare, index, slice, assign, append, drop rows."""
    made = [
        (CodeColumn(["en", None], array("B", [0, 1, 0])), ["en", None, "en"], "ru"),
        (FlagColumn(bytearray([0, 1, 1]), (False, True)), [False, True, True], False),
        (FlagColumn(bytearray([2, 1, 0]), (False, True, None)), [None, True, False], None),
        (NumberColumn(array("q", [5, -6, 7])), [5, -6, 7], 2**62),
    ]
    for column, values, new in made:
        assert column == values and list(column) == values and len(column) == 3
        assert column[1] == values[1] and column[-1] == values[-1] and column[0:2] == values[0:2]
        assert column.index(values[2]) == values.index(values[2]) and column.count(values[0]) == values.count(
            values[0])
        column[1] = new
        column.append(new)
        expected = [values[0], new, values[2], new]
        assert column == expected
        assert list(column.without({0})) == expected[1:]
    codes = made[0][0]
    assert isinstance(codes, CodeColumn) and codes.counts() == {"en": 2, "ru": 2}
    flags = made[1][0]
    assert isinstance(flags, FlagColumn) and flags.count(True) == 1 and flags.count(False) == 3


def test_an_encoded_column_refuses_a_value_its_form_cannot_hold_and_stays_as_it_was() -> None:
    numbers = NumberColumn(array("q", [1, 2]))
    flags = FlagColumn(bytearray([0, 1]), (False, True))
    times = TimeColumn(seconds_of(["2026-01-01T00:00:00Z", None]))
    for column, bad in ((numbers, True), (flags, None), (flags, 1), (times, "1969-12-31T23:59:59Z")):
        before = list(column)
        with pytest.raises((ValueError, KeyError, TypeError)):
            column.assign([0, 1], [before[1], bad])  # the first value alone would fit
        with pytest.raises((ValueError, KeyError, TypeError)):
            column.extend([before[0], bad])
        assert list(column) == before and len(column) == 2


def test_a_header_without_room_is_rewritten_with_room_after_a_copy(path: Path) -> None:
    """A header that cannot take the store file's new identity in place (short numbers and no padding,
    as an older writer left it) is rewritten whole, with room for the next re-stamp."""
    typical_store(path, 50)
    before = load_columns(path, RECORD_FIELDS)
    col_file = columns_path(path)
    line, body = col_file.read_bytes().split(b"\n", 1)
    header = orjson.loads(line)
    header["store"] = [1, header["store"][1], 1]  # another file of the same size (a copy)
    col_file.write_bytes(orjson.dumps(header) + b"\n" + body)
    inode = col_file.stat().st_ino
    assert load_columns(path, RECORD_FIELDS) == before  # the checksum matches: still trusted
    assert col_file.stat().st_ino != inode  # rewritten, not stamped in place
    line = col_file.read_bytes().split(b"\n", 1)[0]
    assert orjson.loads(line)["store"][0] == path.stat().st_ino and line.endswith(b" " * HEADER_ROOM)
