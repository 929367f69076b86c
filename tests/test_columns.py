"""The column file: a derived, column-per-field copy that fast readers use.

Whatever ``load_columns`` returns must be exactly what a read-only UserStore
sees (store file + journal), and whenever it cannot be sure it returns None.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support import profile
from tracker.models import RECORD_FIELDS, Profile
from tracker.stats import STATS_FIELDS, compute_stats, compute_stats_from_columns
from tracker.store import UserStore, columns_path, load_columns

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
