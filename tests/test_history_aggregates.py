"""The history keeper, driven through days of events and checked against sqlite3.

:class:`Simulation` plays the store's part (it keeps first_seen/last_seen per
user, decides who is new, forgets) and feeds the keeper exactly what the store
will; every event also goes into an sqlite3 table with its local day, week and
month computed per event (``astimezone``), and SQL computes every figure again.
The other history tests import this module's helpers.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tracker.store.history import (
    MAX_COMMANDS,
    TABLES,
    Activity,
    Grain,
    HistoryKeeper,
    command_name,
)

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
GRAIN_COLUMNS = ("day", "week", "month")


def ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime(FORMAT)


def periods_of(at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The local period starts and running indexes of ``at``, computed per event."""
    day = at.astimezone(tz).date()
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    return {
        "day": day.isoformat(),
        "week": week.isoformat(),
        "month": month.isoformat(),
        "day_idx": day.toordinal(),
        "week_idx": week.toordinal() // 7,
        "month_idx": month.year * 12 + month.month,
    }


@dataclass
class Simulation:
    """A stand-in for the store's side of the keeper, with an sqlite3 oracle."""

    tz: ZoneInfo
    keeper: HistoryKeeper = field(init=False)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    lives: dict[int, int] = field(default_factory=dict)  # a forgotten user who returns is a new life
    db: sqlite3.Connection = field(default_factory=lambda: sqlite3.connect(":memory:"))
    replica: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keeper = HistoryKeeper(self.tz)
        self.db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, life TEXT, kind TEXT, at TEXT,"
            " day TEXT, week TEXT, month TEXT, day_idx INT, week_idx INT, month_idx INT,"
            " message INT, command TEXT, button INT)"
        )

    def seen(
        self,
        uid: int,
        at: datetime,
        *,
        message: bool = True,
        command: str | None = None,
        button: bool = False,
        source: str | None = None,
    ) -> None:
        text = ts(at)
        record = self.users.get(uid)
        is_new = record is None
        if record is None:
            self.lives[uid] = self.lives.get(uid, 0) + 1
            record = self.users[uid] = {
                "id": uid,
                "first_seen": text,
                "last_seen": text,
                "source": source,
                "blocked": False,
                "messages": 0,
                "language_code": "en",
            }
            previous = None
        else:
            previous = record["last_seen"]
            record["last_seen"] = max(previous, text)
        record["messages"] += message
        name = command_name(command) if command else None
        self.keeper.record(
            Activity(
                at=text,
                first_seen=record["first_seen"],
                previous_last_seen=previous,
                is_new=is_new,
                message=message,
                command=name,
                button=button,
            )
        )
        self._insert(uid, "seen", at, message=message, command=name, button=button)

    def block(self, uid: int, at: datetime, blocked: bool) -> None:
        if uid not in self.users:
            return  # the store's set_blocked returns False: nothing to count
        self.users[uid]["blocked"] = blocked
        self.keeper.record_block(ts(at), blocked)
        self._insert(uid, "block" if blocked else "unblock", at)

    def forget(self, uid: int) -> None:
        self.users.pop(uid, None)

    def restart(self) -> None:
        """Flush the journal (take_changes), then reload the keeper from a snapshot's JSON."""
        self.flush()
        snapshot = json.loads(json.dumps(self.keeper.tables()))
        # A wrong zone on purpose once something is recorded: the recorded zone must win.
        self.keeper = HistoryKeeper.from_tables(snapshot, ZoneInfo("UTC") if self.keeper.since else self.tz)

    def flush(self) -> None:
        for name, docs in self.keeper.take_changes().items():
            self.replica.setdefault(name, {}).update(json.loads(json.dumps(docs)))

    def _insert(
        self,
        uid: int,
        kind: str,
        at: datetime,
        *,
        message: bool = False,
        command: str | None = None,
        button: bool = False,
    ) -> None:
        p = periods_of(at, self.tz)
        self.db.execute(
            "INSERT INTO events (life, kind, at, day, week, month, day_idx, week_idx, month_idx,"
            " message, command, button) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                f"{uid}.{self.lives[uid]}",
                kind,
                ts(at),
                p["day"],
                p["week"],
                p["month"],
                p["day_idx"],
                p["week_idx"],
                p["month_idx"],
                int(message),
                command,
                int(button),
            ),
        )

    # ------------------------------------------------------------ the oracle

    def expected_history(self, grain: str) -> dict[str, dict[str, Any]]:
        firsts = "SELECT MIN(seq) FROM events WHERE kind = 'seen' GROUP BY life"
        rows = self.db.execute(
            f"SELECT {grain}, SUM(kind = 'seen' AND seq IN ({firsts})),"
            " COUNT(DISTINCT CASE WHEN kind = 'seen' THEN life END), SUM(message), SUM(button),"
            f" SUM(kind = 'block'), SUM(kind = 'unblock') FROM events GROUP BY {grain}"
        ).fetchall()
        docs = {}
        for period, new, active, messages, buttons, blocks, unblocks in rows:
            commands = dict(
                self.db.execute(
                    f"SELECT command, COUNT(*) FROM events WHERE {grain} = ? AND command IS NOT NULL"
                    " GROUP BY command",
                    (period,),
                ).fetchall()
            )
            docs[period.replace("-", "")] = {
                "period": period,
                "new": new,
                "active": active,
                "messages": messages,
                "commands": commands,
                "buttons": buttons,
                "blocks": blocks,
                "unblocks": unblocks,
            }
        return docs

    def expected_retention(self, grain: str) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            f"WITH firsts AS (SELECT life, {grain} AS cohort, {grain}_idx AS cohort_idx FROM events"
            " WHERE seq IN (SELECT MIN(seq) FROM events WHERE kind = 'seen' GROUP BY life))"
            f" SELECT cohort, e.{grain}_idx - cohort_idx AS after, COUNT(DISTINCT e.life)"
            " FROM events e JOIN firsts USING (life) WHERE e.kind = 'seen' GROUP BY cohort, after"
        ).fetchall()
        return {
            str(int(cohort.replace("-", "")) * 1000 + after): {"cohort": cohort, "after": after, "active": n}
            for cohort, after, n in rows
        }

    def check(self) -> None:
        """Every table of the keeper equals the oracle's, and the journal replica equals both."""
        tables = self.keeper.tables()
        for grain in GRAIN_COLUMNS:
            assert tables[f"history_{grain}"] == self.expected_history(grain), grain
            assert tables[f"retention_{grain}"] == self.expected_retention(grain), grain
        self.flush()
        assert self.replica == {name: docs for name, docs in tables.items() if docs}


def random_events(sim: Simulation, start: date, days: int, seed: int, users: int = 60) -> None:
    """Events over ``days`` local days, many within seconds of local midnight (week and month edges too)."""
    rng = random.Random(seed)
    times = []
    for _ in range(days * 40):
        day = start + timedelta(days=rng.randrange(days))
        midnight = datetime(day.year, day.month, day.day, tzinfo=sim.tz)
        offset = rng.choice([rng.uniform(-90, 90), rng.uniform(0, 86400)])
        times.append(midnight + timedelta(seconds=offset))
    times.sort(key=lambda t: t.astimezone(UTC))
    commands = ["/start", "/start ad_7", "/help@thisbot", "/Help", "/stats", None, None, None]
    for i, at in enumerate(times):
        uid = rng.randrange(users)
        roll = rng.random()
        if roll < 0.05:
            sim.block(uid, at, blocked=rng.random() < 0.6)
        elif roll < 0.07:
            sim.forget(uid)
        elif roll < 0.2:
            sim.seen(uid, at, message=False, button=True)
        else:
            sim.seen(uid, at, command=rng.choice(commands))
        if i % 250 == 249:
            sim.restart()


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "start,days",
    [(date(2024, 10, 20), 20), (date(2024, 3, 5), 30), (date(2023, 12, 26), 12)],
    ids=["autumn-dst-month-edge", "spring-dst", "year-edge"],
)
def test_every_figure_matches_sqlite(zone: str, start: date, days: int) -> None:
    sim = Simulation(ZoneInfo(zone))
    random_events(sim, start, days, seed=hash((zone, start)) & 0xFFFF)
    sim.check()


def test_local_midnight_and_week_edges_in_berlin() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    sim = Simulation(berlin)
    # Sunday 2024-03-31 is the spring-forward day (23 hours); Monday starts a new week and April a new month.
    sim.seen(1, datetime(2024, 3, 30, 23, 59, 59, tzinfo=berlin))  # Saturday
    sim.seen(1, datetime(2024, 3, 31, 0, 0, 0, tzinfo=berlin))  # Sunday: a new day, same week
    sim.seen(1, datetime(2024, 3, 31, 23, 59, 59, tzinfo=berlin))
    sim.seen(1, datetime(2024, 4, 1, 0, 0, 0, tzinfo=berlin))  # Monday: new day, week and month
    tables = sim.keeper.tables()
    assert sorted(tables["history_day"]) == ["20240330", "20240331", "20240401"]
    assert tables["history_day"]["20240331"]["messages"] == 2
    assert tables["history_day"]["20240331"]["active"] == 1
    assert sorted(tables["history_week"]) == ["20240325", "20240401"]
    assert [d["active"] for d in tables["history_month"].values()] == [1, 1]
    assert tables["retention_week"]["20240325001"]["active"] == 1
    assert tables["history"]["1"] == {
        "since": "2024-03-30",
        "since_at": "2024-03-30T22:59:59Z",
        "timezone": "Europe/Berlin",
    }
    sim.check()


def test_block_is_not_activity_and_forget_keeps_counts() -> None:
    sim = Simulation(ZoneInfo("America/New_York"))
    at = datetime(2024, 11, 3, 12, tzinfo=UTC)
    sim.seen(7, at)
    sim.block(7, at + timedelta(days=1), blocked=True)
    day2 = sim.keeper.tables()["history_day"]["20241104"]
    assert (day2["active"], day2["blocks"]) == (0, 1)
    sim.forget(7)
    assert sim.keeper.tables()["history_day"]["20241103"]["new"] == 1  # counts are counts
    sim.seen(7, at + timedelta(days=2))  # a forgotten user who comes back is new
    assert sim.keeper.tables()["history_day"]["20241105"]["new"] == 1
    sim.check()


def test_commands_are_capped_per_period() -> None:
    sim = Simulation(ZoneInfo("UTC"))
    at = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(MAX_COMMANDS + 5):
        sim.seen(1, at + timedelta(seconds=i), command=f"/c{i}")
    sim.seen(1, at + timedelta(seconds=99), command="/c0")  # a name already counted keeps counting
    commands = sim.keeper.tables()["history_day"]["20240101"]["commands"]
    assert len(commands) == MAX_COMMANDS + 1
    assert commands["other"] == 5 and commands["/c0"] == 2


@pytest.mark.parametrize(
    "text,bot,expected",
    [
        ("/start PAYLOAD", None, "/start"),
        ("/Help@ThisBot", "thisbot", "/help"),
        ("/cmd@other", "thisbot", None),
        ("hello", None, None),
        ("/", None, None),
        (None, None, None),
        ("/x@bot", None, "/x"),
    ],
)
def test_command_name(text: str | None, bot: str | None, expected: str | None) -> None:
    assert command_name(text, bot) == expected


def test_late_update_counts_but_adds_no_active_user() -> None:
    sim = Simulation(ZoneInfo("UTC"))
    sim.seen(1, datetime(2024, 1, 2, tzinfo=UTC))
    previous = sim.users[1]["last_seen"]
    sim.keeper.record(
        Activity(at="2024-01-01T10:00:00Z", first_seen=previous, previous_last_seen=previous, message=True)
    )
    day1 = sim.keeper.tables()["history_day"]["20240101"]
    assert (day1["messages"], day1["active"]) == (1, 0)


def test_tables_round_trip_and_keep_the_recorded_zone() -> None:
    sim = Simulation(ZoneInfo("Asia/Kolkata"))
    random_events(sim, date(2024, 5, 1), 5, seed=3)
    tables = json.loads(json.dumps(sim.keeper.tables()))
    assert set(tables) == set(TABLES)
    again = HistoryKeeper.from_tables(tables, ZoneInfo("UTC"))
    assert again.timezone.key == "Asia/Kolkata"
    assert again.tables() == sim.keeper.tables()
    assert HistoryKeeper.from_tables({}, ZoneInfo("UTC")).tables() == {name: {} for name in TABLES}


def _good_tables() -> dict[str, Any]:
    sim = Simulation(ZoneInfo("UTC"))
    sim.seen(1, datetime(2024, 1, 1, tzinfo=UTC), command="/start")
    return json.loads(json.dumps(sim.keeper.tables()))


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t.__setitem__("history_day", []),
        lambda t: t["history_day"]["20240101"].__setitem__("new", -1),
        lambda t: t["history_day"]["20240101"].__setitem__("active", "3"),
        lambda t: t["history_day"]["20240101"].__setitem__("period", "2024-01-02"),
        lambda t: t["history_day"]["20240101"].__setitem__("commands", {"/start": 1.5}),
        lambda t: t["history_week"].__setitem__("abc", {}),
        lambda t: t["retention_month"]["20240101000"].__setitem__("after", 2),
        lambda t: t["retention_day"]["20240101000"].__setitem__("active", None),
        lambda t: t["history"]["1"].__setitem__("timezone", "Mars/Base"),
        lambda t: t["history"]["1"].__setitem__("since", 5),
    ],
)
def test_wrong_shapes_are_one_line_value_errors(damage: Any) -> None:
    tables = _good_tables()
    damage(tables)
    with pytest.raises(ValueError) as info:
        HistoryKeeper.from_tables(tables, ZoneInfo("UTC"))
    assert "\n" not in str(info.value) and "table" in str(info.value)


def test_grain_arithmetic() -> None:
    assert Grain.MONTH.shift(date(2024, 1, 1), -1) == date(2023, 12, 1)
    assert Grain.MONTH.next_start(date(2024, 12, 1)) == date(2025, 1, 1)
    assert Grain.WEEK.start(date(2024, 3, 31)) == date(2024, 3, 25)
    assert Grain.WEEK.index(date(2024, 4, 1)) - Grain.WEEK.index(date(2024, 3, 25)) == 1


def test_cohorts_are_followed_for_a_bounded_number_of_periods() -> None:
    sim = Simulation(ZoneInfo("UTC"))
    first = datetime(2024, 1, 1, 12, tzinfo=UTC)
    sim.seen(1, first)
    sim.seen(1, first + timedelta(days=Grain.DAY.max_after))
    sim.seen(1, first + timedelta(days=Grain.DAY.max_after + 1))
    tables = sim.keeper.tables()
    assert [d["after"] for d in tables["retention_day"].values()] == [0, Grain.DAY.max_after]
    assert len(tables["retention_week"]) == 1 + len(
        {(Grain.DAY.max_after + 1) // 7, Grain.DAY.max_after // 7}
    )


def test_reads_see_updates_not_yet_taken() -> None:
    """period() and cell() answer with every recorded update, before any take_changes or tables."""
    keeper = HistoryKeeper(ZoneInfo("UTC"))
    keeper.record(Activity("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", None, is_new=True, message=True))
    keeper.record(
        Activity("2024-01-02T10:00:00Z", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", message=True)
    )
    keeper.record_block("2024-01-02T11:00:00Z", blocked=True)
    day2 = keeper.period(Grain.DAY, date(2024, 1, 2))
    assert day2 is not None
    assert (day2["active"], day2["messages"], day2["blocks"]) == (1, 1, 1)
    assert keeper.cell(Grain.DAY, date(2024, 1, 1), 1) == 1
    assert keeper.cell(Grain.WEEK, date(2024, 1, 1), 0) == 1


def test_command_cap_holds_across_journal_flushes_and_many_names() -> None:
    """The first MAX_COMMANDS names of a period are kept, whatever the flushes in between."""
    rng = random.Random(11)
    names = [f"/c{rng.randrange(3 * MAX_COMMANDS)}" for _ in range(2_000)]
    keeper = HistoryKeeper(ZoneInfo("UTC"))
    start = datetime(2024, 5, 1, tzinfo=UTC)
    expected: dict[str, int] = {}
    for i, name in enumerate(names):
        at = ts(start + timedelta(seconds=i))
        keeper.record(Activity(at, at, at, command=name))
        kept = name in expected or len(expected) - ("other" in expected) < MAX_COMMANDS
        expected[name if kept else "other"] = expected.get(name if kept else "other", 0) + 1
        if rng.random() < 0.01:
            keeper.take_changes()
    for grain in Grain:
        doc = keeper.period(grain, grain.start(date(2024, 5, 1)))
        assert doc is not None and doc["commands"] == expected, grain
