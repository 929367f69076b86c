"""The audience history kept by a real UserStore, read back through the CLI and plain TinyDB.

:class:`StoreSim` drives a real ``UserStore`` (explicit ``at`` times: events near
local midnight, week and month edges, a non-UTC zone, blocks, forgets, restarts
of the store in the middle) and records the same events in the sqlite3 oracle of
``tests/test_history_aggregates.Simulation``. ``history --json``, ``retention
--json`` and ``sources --json`` (CliRunner over the real store files, while the
writer runs and after it closed) are checked against SQL over the same events.
A real writer process is killed with SIGKILL to check the history's crash
guarantees (slow).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from tinydb import TinyDB

import tracker.cli_history
import tracker.cli_support
from tests.test_history_aggregates import GRAIN_COLUMNS, Simulation, random_events, ts
from tracker.cli import cli
from tracker.models import make_profile
from tracker.periods import Grain
from tracker.store import StoreCorruptError, StoreFileKindError, StoreReader, UserStore, history_path
from tracker.store import reader as reader_module
from tracker.store.history import command_name

REPO = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
HISTORY_TABLES = [f"{kind}_{grain}" for kind in ("history", "retention") for grain in GRAIN_COLUMNS]


@dataclass
class StoreSim(Simulation):
    """The oracle's events, also recorded by a real UserStore at ``path``."""

    path: Path = Path()
    store: UserStore = field(init=False)
    restarts: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.store = UserStore(self.path, timezone=self.tz.key, flush_interval=60)

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
        super().seen(uid, at, message=message, command=command, button=button, source=source)
        if source and not self.users[uid]["source"]:  # the store keeps the first source it gets
            self.users[uid]["source"] = source
        profile = make_profile(uid, f"U{uid}", language_code="en")
        name = command_name(command) if command else None
        self.store.seen(profile, at, message=message, command=name, button=button, source=source)

    def block(self, uid: int, at: datetime, blocked: bool) -> None:
        known = self.store.set_blocked(uid, blocked, at)
        assert known == (uid in self.users)
        super().block(uid, at, blocked)

    def forget(self, uid: int) -> None:
        self.store.forget(uid)
        super().forget(uid)

    def restart(self) -> None:
        """Close the store and open it again (the wrong zone on purpose: the recorded one must win)."""
        super().restart()
        self.store.close()
        self.store = UserStore(self.path, timezone="UTC", flush_interval=60)
        self.restarts += 1
        assert self.store.timezone.key == self.tz.key

    def expected_tables(self) -> dict[str, dict[str, Any]]:
        return {
            **{f"history_{g}": self.expected_history(g) for g in GRAIN_COLUMNS},
            **{f"retention_{g}": self.expected_retention(g) for g in GRAIN_COLUMNS},
        }

    def users_db(self) -> sqlite3.Connection:
        """The users in the store now (the oracle's own bookkeeping), in sqlite."""
        db = sqlite3.connect(":memory:")
        db.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, first_seen TEXT, last_seen TEXT, source TEXT,"
            " blocked INT)"
        )
        db.executemany(
            "INSERT INTO users VALUES (?,?,?,?,?)",
            [
                (u["id"], u["first_seen"], u["last_seen"], u["source"], u["blocked"])
                for u in self.users.values()
            ],
        )
        return db


def drive(
    tmp_path: Path, zone: ZoneInfo = BERLIN, *, start: date = date(2024, 10, 20), days: int = 20
) -> StoreSim:
    """A store through ``days`` days of random events (a restart every 250), sources from ``/start X``."""
    sim = StoreSim(zone, path=tmp_path / "data" / "users.json")
    original_seen = sim.seen

    def seen_with_source(uid: int, at: datetime, **kwargs: Any) -> None:
        command = kwargs.get("command")
        if command and command.startswith("/start "):
            kwargs["source"] = command.split()[1]
        original_seen(uid, at, **kwargs)

    sim.seen = seen_with_source  # type: ignore[method-assign]
    random_events(sim, start, days, seed=11, users=40)
    return sim


def run_cli(sim: StoreSim, now: datetime, *args: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(tracker.cli_support, "now", lambda: now)
    config = sim.path.parent.parent / "config.ini"
    config.write_text(f"[tracker]\ntimezone = {sim.tz.key}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--store", str(sim.path), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------ the oracle's answers


def expected_history(sim: StoreSim, grain: str, periods: list[str]) -> list[dict[str, Any]]:
    docs = sim.expected_history(grain)
    users = sim.users_db()
    rows = []
    for period in periods:
        doc = docs.get(period.replace("-", ""), {})
        start = date.fromisoformat(period)
        end = Grain(grain).next_start(start)
        end_utc = ts(datetime(end.year, end.month, end.day, tzinfo=sim.tz))
        (total,) = users.execute("SELECT COUNT(*) FROM users WHERE first_seen < ?", (end_utc,)).fetchone()
        counts = {key: doc.get(key, 0) for key in ("new", "active", "messages", "buttons")}
        rows.append({"period": period, **counts, "total": total, "commands": doc.get("commands", {})})
    return rows


def expected_cohorts(sim: StoreSim, grain: str, cohorts: list[str], current: str) -> list[dict[str, Any]]:
    cells = sim.expected_retention(grain)
    g = Grain(grain)
    result = []
    for cohort in cohorts:
        start = date.fromisoformat(cohort)
        after = g.index(date.fromisoformat(current)) - g.index(start)
        active = [
            cells.get(f"{cohort.replace('-', '')}{k:03d}", {}).get("active", 0) for k in range(after + 1)
        ]
        result.append({"cohort": cohort, "users": active[0], "active": active})
    return result


def expected_sources(sim: StoreSim, now: datetime) -> list[dict[str, Any]]:
    users = sim.users_db()
    cut7, cut30 = ts(now - timedelta(days=7)), ts(now - timedelta(days=30))
    span = "(CAST(strftime('%s', last_seen) AS INT) - CAST(strftime('%s', first_seen) AS INT))"
    rows = users.execute(
        f"SELECT source, COUNT(*), SUM(last_seen >= ?), SUM(last_seen >= ?), SUM(blocked),"
        f" SUM({span} >= 86400), SUM({span} >= 7 * 86400), SUM({span} >= 30 * 86400)"
        " FROM users GROUP BY source",
        (cut7, cut30),
    ).fetchall()
    keys = (
        "source",
        "users",
        "active_7d",
        "active_30d",
        "blocked",
        "retained_1d",
        "retained_7d",
        "retained_30d",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


def by_source(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {row["source"]: row for row in rows}


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("open_writer", [True, False], ids=["writer-running", "closed"])
def test_cli_figures_match_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_writer: bool) -> None:
    sim = drive(tmp_path)
    assert sim.restarts >= 2
    if open_writer:
        sim.store.flush()  # readers see the side file of the last snapshot plus the journal
    else:
        sim.store.close()
    now = datetime(2024, 11, 9, 12, tzinfo=UTC)
    for grain, days in (("day", 25), ("week", 30), ("month", 40)):
        document = run_cli(
            sim, now, "history", "--by", grain, "--days", str(days), "--json", monkeypatch=monkeypatch
        )
        assert document["timezone"] == "Europe/Berlin" and document["by"] == grain
        assert document["since"] == sim.keeper.since
        periods = [row["period"] for row in document["periods"]]
        assert document["periods"] == expected_history(sim, grain, periods), grain
        assert sum(row["active"] for row in document["periods"]) > 0
    for grain, count in (("day", 25), ("week", 6), ("month", 3)):
        document = run_cli(
            sim, now, "retention", "--by", grain, "--periods", str(count), "--json", monkeypatch=monkeypatch
        )
        cohorts = [c["cohort"] for c in document["cohorts"]]
        assert document["cohorts"] == expected_cohorts(sim, grain, cohorts, cohorts[-1]), grain
    rows = run_cli(sim, now, "sources", "--json", monkeypatch=monkeypatch)
    assert by_source(rows) == by_source(expected_sources(sim, now))
    assert len(rows) >= 2
    sim.store.close()


def test_store_file_holds_the_tables_plain_tinydb_reads(tmp_path: Path) -> None:
    sim = drive(tmp_path, ZoneInfo("America/New_York"), start=date(2024, 2, 20), days=15)
    sim.store.close()
    with TinyDB(sim.path) as db:
        tables = {
            name: {str(doc.doc_id): dict(doc) for doc in db.table(name).all()} for name in HISTORY_TABLES
        }
        info = db.table("history").get(doc_id=1)
    assert tables == sim.expected_tables()
    assert info is not None and info["timezone"] == "America/New_York" and info["since"] == sim.keeper.since


def test_counts_survive_forget_and_a_returning_user_is_new(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    day = datetime(2024, 3, 30, 23, 30, tzinfo=UTC)  # 00:30 on Sunday 31 March in Berlin (DST day)
    with UserStore(path, timezone=BERLIN) as store:
        store.seen(make_profile(5, "A"), day, command="/start")
        before = store.history_period(Grain.DAY, date(2024, 3, 31))
        assert store.forget(5)
        assert store.history_period(Grain.DAY, date(2024, 3, 31)) == before
        store.seen(make_profile(5, "A"), day + timedelta(hours=1), button=True, message=False)
        store.set_blocked(5, True, day + timedelta(hours=2))
    doc = StoreReader(path).table("history_day")["20240331"]
    assert (doc["new"], doc["active"], doc["messages"], doc["buttons"], doc["blocks"]) == (2, 2, 1, 1, 1)
    assert doc["commands"] == {"/start": 1}


def test_periods_come_from_at_not_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path, timezone="Asia/Kolkata") as store:
        store.seen(make_profile(1), datetime(2020, 1, 31, 18, 29, 59, tzinfo=UTC))  # 23:59:59 local
        store.seen(make_profile(1), datetime(2020, 1, 31, 18, 30, tzinfo=UTC))  # 00:00 on 1 February
    reader = StoreReader(path)
    assert sorted(reader.table("history_day")) == ["20200131", "20200201"]
    assert sorted(reader.table("history_month")) == ["20200101", "20200201"]
    assert reader.table("retention_month")["20200101001"]["active"] == 1


def test_readers_use_the_side_file_not_the_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = drive(tmp_path, days=6)
    sim.store.snapshot()
    sim.seen(999, datetime(2024, 10, 26, 12, tzinfo=UTC), command="/help")  # after the snapshot: journal only
    sim.store.flush()
    expected = sim.expected_tables()
    parsed: list[Path] = []
    real_read_store = reader_module.read_store

    def counting_read_store(path: Path, *, compact: bool) -> Any:
        parsed.append(path)
        return real_read_store(path, compact=compact)

    monkeypatch.setattr(reader_module, "read_store", counting_read_store)
    reader = StoreReader(sim.path)
    assert {name: reader.table(name) for name in HISTORY_TABLES} == expected
    assert parsed == []  # the side file and the journal were enough
    # A side file that does not belong to the store file (replaced by hand) is ignored.
    os.utime(sim.path, ns=(1, 1))
    assert {name: reader.table(name) for name in HISTORY_TABLES} == expected
    assert parsed  # fell back to the store file
    sim.store.close()


def test_malformed_history_table_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(make_profile(1), datetime(2024, 1, 1, tzinfo=UTC))
    document = json.loads(path.read_text())
    document["history_day"]["20240101"]["active"] = "many"
    path.write_text(json.dumps(document))
    for readonly in (False, True):
        with pytest.raises(StoreCorruptError) as raised:
            UserStore(path, readonly)
        message = str(raised.value)
        assert str(path) in message and "history_day" in message and "\n" not in message
    assert json.loads(path.read_text()) == document  # nothing overwritten


def test_side_file_is_written_beside_the_store(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(make_profile(1), datetime(2024, 1, 1, tzinfo=UTC), command="/start")
    side = history_path(path)
    assert side.exists() and oct(side.stat().st_mode & 0o777) == "0o600"
    assert b"/start" in side.read_bytes() and side.stat().st_size < 2000


# ------------------------------------------------------------------ crash (real writer, SIGKILL)

WRITER_SCRIPT = textwrap.dedent(
    """
    import json, signal, sys, time
    from tests.test_history_store import crash_events
    from tracker.models import make_profile
    from tracker.store import UserStore

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    store = UserStore(sys.argv[1], timezone="Europe/Berlin")
    done = store.meta.get("events", 0)
    events = crash_events()
    while done < len(events) and not stop:
        for kind, uid, at, command, button in events[done : done + 40]:
            if kind == "seen":
                store.seen(make_profile(uid), at, command=command, button=button, message=not button)
            elif kind == "block":
                store.set_blocked(uid, True, at)
            else:
                store.forget(uid)
            done += 1
            store.update_meta(events=done)
        print(json.dumps({"events": done, "t": time.monotonic()}), flush=True)
        time.sleep(0.01)
    store.close()
    print(json.dumps({"closed": done}), flush=True)
    """
)


def crash_events() -> list[tuple[str, int, datetime, str | None, bool]]:
    """A fixed event list (every ~7 minutes, so days, a week and a month edge pass) for the crash test."""
    events: list[tuple[str, int, datetime, str | None, bool]] = []
    at = datetime(2024, 10, 27, 20, tzinfo=UTC)
    commands = ["/start", "/help", None, None, "/stats"]
    for i in range(9000):
        at += timedelta(seconds=397 + (i % 13))
        uid = (i * 7919) % 300
        if i % 97 == 0:
            events.append(("block", uid, at, None, False))
        elif i % 89 == 0:
            events.append(("forget", uid, at, None, False))
        else:
            events.append(("seen", uid, at, commands[i % 5], i % 11 == 0))
    return events


def oracle_tables(events: list[tuple[str, int, datetime, str | None, bool]]) -> dict[str, Any]:
    sim = Simulation(BERLIN)
    for kind, uid, at, command, button in events:
        if kind == "seen":
            sim.seen(uid, at, command=command, button=button, message=not button)
        elif kind == "block":
            sim.block(uid, at, True)
        else:
            sim.forget(uid)
    return {
        **{f"history_{g}": sim.expected_history(g) for g in GRAIN_COLUMNS},
        **{f"retention_{g}": sim.expected_retention(g) for g in GRAIN_COLUMNS},
    }


def stored_tables(path: Path) -> tuple[int, dict[str, Any]]:
    with UserStore(path, readonly=True) as store:
        tables = store.history_tables()
        done = store.meta.get("events", 0)
    return done, {name: tables[name] for name in HISTORY_TABLES}


@pytest.mark.slow
def test_history_survives_sigkill_and_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    events = crash_events()
    done = 0
    for trial, sig in enumerate((signal.SIGKILL, signal.SIGKILL, signal.SIGTERM)):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reports.append(json.loads(proc.stdout.readline()))
            if reports[-1].get("events", 0) >= done + 1500 + 500 * trial:
                break
        killed_at = time.monotonic()
        proc.send_signal(sig)
        rest = proc.stdout.read()
        proc.wait(timeout=30)
        reports += [json.loads(line) for line in rest.splitlines()]
        done, tables = stored_tables(path)
        assert tables == oracle_tables(events[:done]), f"trial {trial}"
        if sig == signal.SIGKILL:
            safe = max((r["events"] for r in reports if "t" in r and r["t"] < killed_at - 1.0), default=0)
            assert done >= safe, f"trial {trial}: lost more than 1 s ({done} < {safe})"
        else:
            assert reports[-1] == {"closed": done}  # nothing lost on SIGTERM
    assert 0 < done < len(events)


def test_a_fifo_where_the_side_file_goes_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(make_profile(1), datetime(2024, 1, 1, tzinfo=UTC))
    side = history_path(path)
    side.unlink()
    os.mkfifo(side)
    for open_it in (lambda: StoreReader(path).table("history_day"), lambda: UserStore(path)):
        with pytest.raises(StoreFileKindError, match="named pipe") as raised:
            open_it()
        assert str(side) in str(raised.value)


def test_a_malformed_history_entry_in_the_journal_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    store = UserStore(path, flush_interval=60)
    store.seen(make_profile(1), datetime(2024, 1, 1, tzinfo=UTC), command="/start")
    store.flush()
    saved = {p: p.read_bytes() for p in (path, path.with_name("users.json.journal"))}
    store.close()
    for p, data in saved.items():  # the files as a SIGKILL would have left them
        p.write_bytes(data)
    journal = path.with_name("users.json.journal")
    lines = journal.read_bytes().split(b"\n")[:-1]
    (number,) = [i for i, line in enumerate(lines) if line.startswith(b'["h"')]
    lines[number] = b'["h",{"history_day":[1,2]}]'
    commit = next(i for i in range(number, len(lines)) if lines[i].startswith(b'["c"'))
    crc = zlib.crc32(b"".join(line + b"\n" for line in lines[:commit]))  # the first batch: since the start
    lines[commit] = json.dumps(["c", crc]).encode()
    journal.write_bytes(b"".join(line + b"\n" for line in lines))
    for open_it in (lambda: UserStore(path, readonly=True), lambda: UserStore(path)):
        with pytest.raises(StoreCorruptError) as raised:
            open_it()
        message = str(raised.value)
        assert f"{journal} line {number + 1}" in message and "history_day" in message and "\n" not in message


def test_export_refuses_the_history_side_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(make_profile(1), datetime(2024, 1, 1, tzinfo=UTC))
    side = history_path(path)
    before = side.read_bytes()
    result = CliRunner().invoke(cli, ["--store", str(path), "export", str(side), "--format", "json"])
    assert result.exit_code in (1, 2) and side.read_bytes() == before
