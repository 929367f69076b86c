"""history / retention / sources / active_today against sqlite3 over the same events and users.

Stores are real TinyDB JSON files holding the users table and the keeper's
tables (written as a snapshot would), read back through ``tracker.store.StoreReader``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tinydb

from tests.test_history_aggregates import Simulation, random_events, ts
from tracker import audience
from tracker.models import complete_record
from tracker.periods import Grain
from tracker.store import StoreReader

BERLIN = ZoneInfo("Europe/Berlin")


def write_store(sim: Simulation, path: Path, *, extra_users: dict[int, dict[str, Any]] | None = None) -> Path:
    """A TinyDB store file: the simulation's users (plus ``extra_users``) and the keeper's tables."""
    users = {**(extra_users or {}), **sim.users}
    document: dict[str, Any] = {
        "users": {
            str(uid): complete_record({"first_name": f"U{uid}", **record}) for uid, record in users.items()
        },
        "meta": {
            "1": {"schema": 1, "bio_text": None, "bio_set_at": None, "bio_next_at": None, "bio_error": None}
        },
    }
    document.update({name: docs for name, docs in sim.keeper.tables().items() if docs})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def users_db(users: dict[int, dict[str, Any]], tz: ZoneInfo) -> sqlite3.Connection:
    """The users in sqlite, with each first_seen's local day computed per user."""
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, first_seen TEXT, last_seen TEXT, first_day TEXT,"
        " source TEXT, blocked INT)"
    )
    for uid, r in users.items():
        first_day = (
            datetime.strptime(r["first_seen"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).astimezone(tz)
        )
        db.execute(
            "INSERT INTO users VALUES (?,?,?,?,?,?)",
            (
                uid,
                r["first_seen"],
                r["last_seen"],
                first_day.date().isoformat(),
                r.get("source"),
                int(bool(r.get("blocked"))),
            ),
        )
    return db


@pytest.fixture
def sim(tmp_path: Path) -> Simulation:
    simulation = Simulation(BERLIN)
    random_events(simulation, date(2024, 10, 10), 30, seed=11, users=80)
    return simulation


NOW = datetime(2024, 11, 8, 21, 0, tzinfo=UTC)  # Friday evening in Berlin, after the events


@pytest.mark.parametrize("grain", list(Grain))
def test_history_matches_sqlite(sim: Simulation, tmp_path: Path, grain: Grain) -> None:
    source = StoreReader(write_store(sim, tmp_path / "users.json"))
    report = audience.history(source, grain, 40, NOW, ZoneInfo("UTC"))  # the recorded zone wins
    (first_day,) = sim.db.execute("SELECT day FROM events ORDER BY seq LIMIT 1").fetchone()
    assert report.timezone == "Europe/Berlin" and report.since == date.fromisoformat(first_day)
    expected = sim.expected_history(grain.value)
    users = users_db(sim.users, BERLIN)
    periods = [row.period for row in report.periods]
    window_start = date(2024, 11, 8) - timedelta(days=39)
    assert periods[0] <= window_start < grain.next_start(periods[0]) and periods[-1] <= date(2024, 11, 8)
    for row in report.periods:
        doc = expected.get(row.period.strftime("%Y%m%d"), {})
        last_day = grain.next_start(row.period) - timedelta(days=1)
        (total,) = users.execute(
            "SELECT COUNT(*) FROM users WHERE first_day <= ?", (last_day.isoformat(),)
        ).fetchone()
        assert row.to_json() == {
            "period": row.period.isoformat(),
            "new": doc.get("new", 0),
            "active": doc.get("active", 0),
            "messages": doc.get("messages", 0),
            "total": total,
            "commands": doc.get("commands", {}),
            "buttons": doc.get("buttons", 0),
        }
    assert list(report.to_json()) == ["timezone", "by", "since", "periods"]


@pytest.mark.parametrize("grain", list(Grain))
def test_retention_matches_sqlite(sim: Simulation, tmp_path: Path, grain: Grain) -> None:
    source = StoreReader(write_store(sim, tmp_path / "users.json"))
    report = audience.retention(source, grain, 6, NOW, BERLIN)
    cells = sim.expected_retention(grain.value)
    current = grain.start(date(2024, 11, 8))
    assert report.cohorts[-1].cohort == current and len(report.cohorts) == 6
    for back, cohort in enumerate(reversed(report.cohorts)):
        assert cohort.cohort == grain.shift(current, -back)
        key = int(cohort.cohort.strftime("%Y%m%d")) * 1000
        expected = [cells.get(str(key + k), {}).get("active", 0) for k in range(back + 1)]
        assert list(cohort.active) == expected  # zeros kept, up to the current period
        assert cohort.users == expected[0]
    assert list(report.to_json()) == ["timezone", "by", "cohorts"]


def test_sources_match_sqlite(sim: Simulation, tmp_path: Path) -> None:
    for uid, record in sim.users.items():
        record["source"] = [None, "ads", "=evil", "promo"][uid % 4]
    source = StoreReader(write_store(sim, tmp_path / "users.json"))
    report = audience.sources(source.columns(audience.SOURCES_FIELDS), NOW)
    db = users_db(sim.users, BERLIN)
    now = int(NOW.timestamp())
    epoch = "CAST(strftime('%s', {}) AS INTEGER)"
    last, first = epoch.format("last_seen"), epoch.format("first_seen")
    rows = db.execute(
        f"SELECT source, COUNT(*), SUM({last} >= {now - 7 * 86400}), SUM({last} >= {now - 30 * 86400}),"
        f" SUM(blocked), SUM({last} - {first} >= 86400), SUM({last} - {first} >= 7 * 86400),"
        f" SUM({last} - {first} >= 30 * 86400) FROM users GROUP BY source"
    ).fetchall()
    expected = {row[0]: dict(zip(audience.SOURCES_KEYS, row, strict=True)) for row in rows}
    got = report.to_json()
    assert {row["source"]: row for row in got} == expected
    assert [row["users"] for row in got] == sorted((row["users"] for row in got), reverse=True)
    assert all(list(row) == list(audience.SOURCES_KEYS) for row in got)


def test_store_from_before_the_feature(tmp_path: Path) -> None:
    """Users first seen before ``since``: new per day and totals still exact from first_seen."""
    sim = Simulation(BERLIN)
    old = {
        uid: {
            "id": uid,
            "first_seen": ts(at),
            "last_seen": ts(at),
            "source": None,
            "blocked": False,
            "messages": 1,
        }
        for uid, at in [
            (900, datetime(2024, 10, 1, 22, 30, tzinfo=UTC)),  # Oct 2 in Berlin
            (901, datetime(2024, 10, 2, 9, tzinfo=UTC)),
            (902, datetime(2024, 10, 3, 8, tzinfo=UTC)),
        ]  # the day history starts, earlier
    }
    sim.users.update(old)
    sim.lives.update(dict.fromkeys(old, 1))
    sim.seen(1, datetime(2024, 10, 3, 12, tzinfo=UTC))
    sim.seen(901, datetime(2024, 10, 3, 13, tzinfo=UTC))  # a user the store knew: not new
    source = StoreReader(write_store(sim, tmp_path / "users.json"))
    report = audience.history(source, Grain.DAY, 3, datetime(2024, 10, 3, 20, tzinfo=UTC), BERLIN)
    rows = {r.period.isoformat(): (r.new, r.active, r.total) for r in report.periods}
    assert report.since == date(2024, 10, 3)
    assert rows == {"2024-10-01": (0, 0, 0), "2024-10-02": (2, 0, 2), "2024-10-03": (2, 2, 4)}
    cohorts = audience.retention(source, Grain.DAY, 2, datetime(2024, 10, 3, 20, tzinfo=UTC), BERLIN).cohorts
    assert [(c.users, c.active) for c in cohorts] == [(2, (2, 1)), (2, (2,))]


def test_store_without_history_tables(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with tinydb.TinyDB(path) as db:
        db.table("users").insert(
            tinydb.table.Document(
                complete_record(
                    {"id": 5, "first_seen": "2024-01-01T10:00:00Z", "last_seen": "2024-01-02T10:00:00Z"}
                ),
                doc_id=5,
            )
        )
    report = audience.history(StoreReader(path), Grain.WEEK, 10, datetime(2024, 1, 3, tzinfo=UTC), BERLIN)
    assert report.since is None
    assert [(r.period.isoformat(), r.new, r.total) for r in report.periods] == [
        ("2023-12-25", 0, 0),
        ("2024-01-01", 1, 1),
    ]


def test_active_today_is_the_local_day() -> None:
    now = datetime(2024, 3, 31, 21, 30, tzinfo=UTC)  # 23:30 in Berlin on the 23-hour day
    last_seen = [
        "2024-03-30T22:59:59Z",
        "2024-03-30T23:00:00Z",
        "2024-03-31T21:59:59Z",
        "2024-03-31T22:00:00Z",
        "2024-03-31T23:59:59Z",
        None,
    ]
    assert audience.active_today(last_seen, now, BERLIN) == 2
    assert audience.active_today(last_seen, now, ZoneInfo("UTC")) == 3  # 03-31 in UTC: the last three


def test_odd_first_seen_values_are_left_out_of_totals(tmp_path: Path) -> None:
    sim = Simulation(BERLIN)
    sim.seen(1, datetime(2024, 1, 1, 12, tzinfo=UTC))
    path = write_store(sim, tmp_path / "users.json")
    document = json.loads(path.read_text())
    document["users"]["2"] = complete_record({"id": 2, "first_seen": None, "last_seen": None})
    path.write_text(json.dumps(document))
    report = audience.history(StoreReader(path), Grain.DAY, 1, datetime(2024, 1, 1, 20, tzinfo=UTC), BERLIN)
    assert [(r.new, r.total) for r in report.periods] == [(1, 1)]


@pytest.mark.parametrize("odd", [False, True], ids=["columns", "tolerant"])
def test_sources_retained_boundaries(odd: bool) -> None:
    first = "2024-01-01T10:00:00Z"
    lasts = [
        "2024-01-02T09:59:59Z",
        "2024-01-02T10:00:00Z",
        "2024-01-08T10:00:00Z",
        "2024-01-31T09:59:59Z",
        "2024-01-31T10:00:00Z",
        "2024-03-01T00:00:00Z",
    ]
    columns: dict[str, list[Any]] = {
        "source": ["s"] * len(lasts),
        "first_seen": [first] * len(lasts),
        "last_seen": list(lasts),
        "blocked": [False, True, 1, False, False, False],
    }
    if odd:  # a hand-edited user without timestamps sends the whole column through the tolerant loop
        for name, value in (("source", "s"), ("first_seen", None), ("last_seen", None), ("blocked", False)):
            columns[name].append(value)
    (row,) = audience.sources(columns, datetime(2024, 3, 5, tzinfo=UTC)).to_json()
    assert row == {
        "source": "s",
        "users": 6 + odd,
        "active_7d": 1,
        "active_30d": 1,
        "blocked": 1,
        "retained_1d": 5,
        "retained_7d": 4,
        "retained_30d": 2,
    }
