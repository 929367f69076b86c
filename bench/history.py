"""``python -m bench history``: what the audience history costs and how fast it answers.

In one run, for each size (users in the store):

* the keeper's cost per update (``HistoryKeeper.record`` with the ``Activity`` built),
  over the workload and for each common kind of update (already active today,
  first of the day, with a command, a new user), next to ``UserStore.seen()`` on
  the same number of users: the ratio is what wiring the keeper into ``seen()`` adds;
* ``history`` (day/30 days, week/90 days), ``retention`` (week/12, day/30) and
  ``sources`` answered from the aggregates and the users' columns (what
  ``StoreReader`` hands the queries), against sqlite3 answering the same from an
  events table and a users table (id primary key, no other index; each event
  row carries its local day and week precomputed, which favours sqlite), with a
  check that both give the same figures;
* bytes of history per day (the tables as JSON, divided by the days recorded).

The workload: users arrive evenly over ``--days`` days in Europe/Berlin; each day
5% of the users seen so far come back; an active user sends 1-2 updates a day,
some of them commands or button presses.
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import orjson

from tracker import audience
from tracker.history_aggregates import Activity, HistoryKeeper
from tracker.models import make_profile
from tracker.periods import Grain, local_midnight_utc
from tracker.store import UserStore

TZ = ZoneInfo("Europe/Berlin")
START = date(2026, 9, 1)
FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Source:
    """What StoreReader would hand the queries: the tables and the users' columns."""

    tables: dict[str, dict[str, Any]]
    cols: dict[str, list[Any]]

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.get(name, {})

    def columns(self, fields: Sequence[str]) -> dict[str, list[Any]]:
        return {f: self.cols[f] for f in {"id", *fields}}


@dataclass
class Workload:
    users: int
    days: int
    keeper: HistoryKeeper = field(default_factory=lambda: HistoryKeeper(TZ))
    first_seen: list[str] = field(default_factory=list)
    last_seen: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    updates: int = 0
    keeper_seconds: float = 0.0


def day_events(rng: random.Random, w: Workload, day_index: int) -> list[tuple[int, int]]:
    """(second of the local day, user index) for one day, in time order; new users appended."""
    seen = len(w.first_seen)
    new = w.users * (day_index + 1) // w.days - seen
    back = rng.sample(range(seen), min(seen, seen // 20)) if seen else []
    people = back + list(range(seen, seen + new))
    w.first_seen.extend([""] * new)
    w.last_seen.extend([""] * new)
    w.sources.extend(rng.choice((None, None, "ads", "channel", "friend")) for _ in range(new))
    events = [(rng.randrange(86_000), uid) for uid in people for _ in range(1 + (uid % 2))]
    events.sort()
    return events


def run_workload(w: Workload, db: sqlite3.Connection) -> None:
    """Feed every update to the keeper (timed) and to sqlite's events table (not timed)."""
    rng = random.Random(7)
    for d in range(w.days):
        day = START + timedelta(days=d)
        midnight = datetime.fromisoformat(local_midnight_utc(day, TZ).replace("Z", "+00:00"))
        week = (day - timedelta(days=day.weekday())).toordinal() // 7
        activities, rows = [], []
        for second, uid in day_events(rng, w, d):
            at = (midnight + timedelta(seconds=second)).strftime(FORMAT)
            previous = w.last_seen[uid] or None
            if previous is None:
                w.first_seen[uid] = at
            w.last_seen[uid] = at
            button = second % 7 == 0
            command = "/start" if previous is None else "/help" if second % 11 == 0 else None
            activities.append(
                Activity(at, w.first_seen[uid], previous, previous is None, not button, command, button)
            )
            rows.append((uid, at, day.toordinal(), week, int(not button)))
        record = w.keeper.record
        gc.disable()  # the collector's pauses would land on whichever update allocates next
        started = time.perf_counter()
        for activity in activities:
            record(activity)
        w.keeper_seconds += time.perf_counter() - started
        gc.enable()
        w.updates += len(activities)
        db.executemany("INSERT INTO events VALUES (?,?,?,?,?)", rows)


def sqlite_tracker(w: Workload) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE events (uid INTEGER, at TEXT, day INTEGER, week INTEGER, message INTEGER)")
    return db


def fill_users(db: sqlite3.Connection, w: Workload) -> None:
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, first_seen TEXT, last_seen TEXT, first_day INTEGER,"
        " first_week INTEGER, source TEXT, blocked INTEGER)"
    )

    def local(ts: str) -> date:
        return datetime.fromisoformat(ts).astimezone(TZ).date()

    rows = []
    for uid, (first, last, source) in enumerate(zip(w.first_seen, w.last_seen, w.sources, strict=True)):
        day = local(first)
        rows.append(
            (
                uid,
                first,
                last,
                day.toordinal(),
                (day - timedelta(days=day.weekday())).toordinal() // 7,
                source,
                int(uid % 13 == 0),
            )
        )
    db.executemany("INSERT INTO users VALUES (?,?,?,?,?,?,?)", rows)


def sqlite_history_day(db: sqlite3.Connection, today: date, days: int) -> list[tuple[int, int, int, int]]:
    """(new, active, messages, total) per day for the last ``days`` days, as an sqlite tracker would."""
    first = today.toordinal() - days + 1
    activity = dict(
        (d, (a, m))
        for d, a, m in db.execute(
            "SELECT day, COUNT(DISTINCT uid), SUM(message) FROM events WHERE day >= ? GROUP BY day", (first,)
        )
    )
    new = dict(
        db.execute("SELECT first_day, COUNT(*) FROM users WHERE first_day >= ? GROUP BY first_day", (first,))
    )
    (total,) = db.execute("SELECT COUNT(*) FROM users WHERE first_day < ?", (first,)).fetchone()
    out = []
    for d in range(first, today.toordinal() + 1):
        total += new.get(d, 0)
        a, m = activity.get(d, (0, 0))
        out.append((new.get(d, 0), a, m, total))
    return out


def sqlite_retention_week(
    db: sqlite3.Connection, current_week: int, periods: int
) -> dict[tuple[int, int], int]:
    first = current_week - periods + 1
    return {
        (c, k): n
        for c, k, n in db.execute(
            "SELECT u.first_week, e.week - u.first_week, COUNT(DISTINCT e.uid)"
            " FROM events e JOIN users u ON u.id = e.uid WHERE u.first_week >= ? GROUP BY 1, 2",
            (first,),
        )
    }


def sqlite_sources(db: sqlite3.Connection, now: datetime) -> list[tuple[Any, ...]]:
    epoch = int(now.timestamp())
    last, first = "CAST(strftime('%s', last_seen) AS INTEGER)", "CAST(strftime('%s', first_seen) AS INTEGER)"
    return db.execute(
        f"SELECT source, COUNT(*), SUM({last} >= {epoch - 7 * 86400}), SUM({last} >= {epoch - 30 * 86400}),"
        f" SUM(blocked), SUM({last} - {first} >= 86400), SUM({last} - {first} >= 604800),"
        f" SUM({last} - {first} >= 2592000) FROM users GROUP BY source ORDER BY 2 DESC"
    ).fetchall()


def best_of(runs: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Best time of ``runs``, with the cyclic GC off as the CLI runs (tracker.cli disables it)."""
    best, result = float("inf"), None
    gc.disable()
    try:
        for _ in range(runs):
            started = time.perf_counter()
            result = func()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best, result


def seen_cost(users: int, updates: int) -> float:
    """Seconds per UserStore.seen() on existing users (journal work included via flush)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "users.json"
        at = datetime(2026, 9, 1, tzinfo=UTC)
        with UserStore(path) as store:
            for i in range(users):
                store.seen(make_profile(i + 1, first_name=f"U{i}"), at)
            rng = random.Random(3)
            ids = [rng.randrange(users) + 1 for _ in range(updates)]
            started = time.perf_counter()
            for n, uid in enumerate(ids):
                store.seen(make_profile(uid, first_name=f"U{uid - 1}"), at + timedelta(seconds=n))
            store.flush()
            return (time.perf_counter() - started) / updates


class Keeper(Protocol):
    def record(self, activity: Activity) -> None: ...


def per_case(make_keeper: Callable[[], Keeper], runs: int = 5, updates: int = 100_000) -> dict[str, float]:
    """Seconds per ``record`` for the common kinds of update, on one day in Berlin.

    Returning users were first seen over the 60 days before; "first of the day"
    users were last seen yesterday (same week and month), so only the day gains
    an active user (plus a retention cell per grain where the period is new).
    """
    day = START + timedelta(days=64)  # Wednesday 2026-11-04: yesterday is in the same week and month
    midnight = datetime.fromisoformat(local_midnight_utc(day, TZ).replace("Z", "+00:00"))
    rng = random.Random(5)

    def stamp(moment: datetime) -> str:
        return moment.strftime(FORMAT)

    firsts = [stamp(midnight - timedelta(seconds=rng.randrange(60 * 86_400))) for _ in range(5_000)]
    yesterday = [stamp(midnight - timedelta(seconds=rng.randrange(1, 80_000))) for _ in range(5_000)]
    ats = [stamp(midnight + timedelta(seconds=3_600 + i * 70_000 // updates)) for i in range(updates)]
    cases: dict[str, Callable[[int, str], Activity]] = {
        "already active today": lambda i, at: Activity(at, firsts[i % 5_000], ats[0], False, True),
        "first of the day": lambda i, at: Activity(at, firsts[i % 5_000], yesterday[i % 5_000], False, True),
        "with a command": lambda i, at: Activity(at, firsts[i % 5_000], ats[0], False, True, "/help"),
        "new user, /start": lambda i, at: Activity(at, at, None, True, True, "/start"),
    }
    result = {}
    for name, make in cases.items():
        activities = [make(i, at) for i, at in enumerate(ats)]

        def run(activities: list[Activity] = activities) -> None:
            keeper = make_keeper()
            keeper.record(Activity(ats[0], ats[0], None, True, True))  # today's periods are current
            record = keeper.record
            for activity in activities:
                record(activity)

        result[name] = best_of(runs, run)[0] / updates
    return result


def bench_size(users: int, days: int, runs: int) -> None:
    print(f"\n== {users:,} users, {days} days of history (Europe/Berlin)")
    w = Workload(users, days)
    db = sqlite_tracker(w)
    run_workload(w, db)
    fill_users(db, w)
    per_update = w.keeper_seconds / w.updates
    seen = seen_cost(min(users, 200_000), 200_000)
    print(
        f"keeper: {w.updates:,} updates, {per_update * 1e6:.2f} µs per update; UserStore.seen() "
        f"{seen * 1e6:.2f} µs -> +{100 * per_update / seen:.1f}% per seen()"
    )
    for case, seconds in per_case(lambda: HistoryKeeper(TZ)).items():
        print(f"  {case:<22}{seconds * 1e6:>6.2f} µs per update -> +{100 * seconds / seen:.1f}% per seen()")
    bench_queries(w, db, runs)


def bench_queries(w: Workload, db: sqlite3.Connection, runs: int) -> None:
    """The queries against sqlite over the same workload, and the history's bytes per day."""
    # Over 50 lines because of the queries table below (data: one row per query, ours and sqlite's).
    users, days = w.users, w.days
    tables = w.keeper.tables()
    blocked = [uid % 13 == 0 for uid in range(users)]
    src = Source(
        tables,
        {
            "id": list(range(users)),
            "first_seen": w.first_seen,
            "last_seen": w.last_seen,
            "source": w.sources,
            "blocked": blocked,
        },
    )
    last_day = START + timedelta(days=days - 1)
    now = datetime.combine(last_day, datetime.min.time(), tzinfo=TZ).replace(hour=20).astimezone(UTC)
    queries: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
        (
            "history day 30",
            lambda: audience.history(src, Grain.DAY, 30, now, TZ),
            lambda: sqlite_history_day(db, last_day, 30),
        ),
        ("history week 90", lambda: audience.history(src, Grain.WEEK, 90, now, TZ), None),
        (
            "retention week 12",
            lambda: audience.retention(src, Grain.WEEK, 12, now, TZ),
            lambda: sqlite_retention_week(
                db, (last_day - timedelta(days=last_day.weekday())).toordinal() // 7, 12
            ),
        ),
        ("retention day 30", lambda: audience.retention(src, Grain.DAY, 30, now, TZ), None),
        (
            "sources",
            lambda: audience.sources(src.columns(audience.SOURCES_FIELDS), now),
            lambda: sqlite_sources(db, now),
        ),
    ]
    print(f"{'query':<20}{'ours ms':>10}{'sqlite ms':>11}{'ratio':>8}  same answer")
    for name, ours, theirs in queries:
        ours_s, ours_r = best_of(runs, ours)
        if theirs is None:
            print(f"{name:<20}{ours_s * 1e3:>10.1f}{'-':>11}{'-':>8}")
            continue
        theirs_s, theirs_r = best_of(runs, theirs)
        same = check(name, ours_r, theirs_r)
        print(f"{name:<20}{ours_s * 1e3:>10.1f}{theirs_s * 1e3:>11.1f}{theirs_s / ours_s:>7.0f}x  {same}")

    size = len(orjson.dumps(tables))
    parts = ", ".join(
        f"{name} {len(orjson.dumps(docs)) / days:,.0f}" for name, docs in tables.items() if docs
    )
    print(f"history bytes: {size:,} for {days} days = {size / days:,.0f} bytes per day ({parts})")


def check(name: str, ours: Any, theirs: Any) -> str:
    if name.startswith("history"):
        got = [(r.new, r.active, r.messages, r.total) for r in ours.periods]
        return "yes" if got == theirs else f"NO {got[:2]} vs {theirs[:2]}"
    if name.startswith("retention"):
        want = {(c.cohort.toordinal() // 7, k): n for c in ours.cohorts for k, n in enumerate(c.active) if n}
        return "yes" if want == theirs else "NO"
    got = [tuple(r.to_json().values()) for r in ours.rows]
    return "yes" if sorted(got, key=str) == sorted((tuple(r) for r in theirs), key=str) else "NO"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench history", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated user counts")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3, help="best of N for each query")
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.days, args.runs)
