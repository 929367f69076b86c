"""The CLI through CliRunner on real store files, and as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import tracker.cli
import tracker.cli_support
from tests.support import REPO, profile, run_python
from tracker.cli import cli
from tracker.export import CSV_COLUMNS
from tracker.models import format_ts
from tracker.stats import STATS_KEYS
from tracker.store import UserStore

NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker.cli_support, "now", lambda: NOW)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store of four users built through UserStore."""
    path = tmp_path / "data" / "users.json"
    with UserStore(path) as store:
        store.seen(profile(101, first_name="Anna", last_name="Lee", username="anna",
                    language_code="en"), NOW - timedelta(days=40), source="ads")
        store.seen(profile(101, first_name="Anna", last_name="Lee", username="anna",
                    language_code="en"), NOW - timedelta(hours=2))
        store.seen(profile(202, first_name="=cmd|' /C calc'!A0", language_code="ru"),
                   NOW - timedelta(days=3), source="promo")
        store.seen(profile(303, first_name="Bob", username="BobTheBot", is_bot=True,
                    language_code="en"), NOW - timedelta(minutes=30), message=False)
        store.seen(profile(404, first_name="Zoë 🙂", last_name="\u202eevil", is_premium=True),
                   NOW - timedelta(days=8))
        for _ in range(4):
            store.seen(profile(404, first_name="Zoë 🙂", last_name="\u202eevil", is_premium=True),
                       NOW - timedelta(days=8))
        store.set_blocked(202, True, NOW - timedelta(days=1))
    return path


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_the_commands_of_the_contract_exist() -> None:
    assert set(cli.commands) >= {"stats", "export", "users", "show", "forget", "refresh-bio"}
    assert "--store" in run("--help").output and "--config" in run("--help").output


#: Every command, the lazily registered ones included (``cli.commands`` holds only the loaded ones).
ALL_COMMANDS = sorted(cli.list_commands(click.Context(cli)))


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_every_command_has_help_text(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    result = run(name, "--help")
    assert result.exit_code == 0
    assert command.help and command.help.split("\n")[0] in result.output
    assert "Usage:" in result.output
    # --config and --store are accepted after the command name too.
    assert "--config" in result.output and "--store" in result.output


def test_stats_json(store_path: Path) -> None:
    result = run("--store", str(store_path), "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert tuple(stats) == STATS_KEYS
    assert {k: stats[k] for k in STATS_KEYS[:10]} == {
        "total_users": 4, "new_today": 1, "active_24h": 2, "active_7d": 3, "active_30d": 4,
        "blocked_users": 1, "reachable_users": 3, "messages_total": 8,
        "first_seen": format_ts(NOW - timedelta(days=40)),
        "last_seen": format_ts(NOW - timedelta(minutes=30)),
    }
    assert stats["languages"] == {"en": 2, "ru": 1, "unknown": 1}
    assert stats["sources"] == {"ads": 1, "promo": 1}
    per_day = {d["date"]: d["users"] for d in stats["new_per_day"]}
    assert per_day == {**{d: 0 for d in per_day}, "2024-06-15": 1, "2024-06-12": 1, "2024-06-07": 1}


def test_stats_table_has_chart(store_path: Path) -> None:
    result = run("--store", str(store_path), "stats")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "Users:          4"
    assert "Blocked:        1" in lines
    chart = next(line for line in lines if line.startswith("New per day:"))
    assert chart.startswith("New per day:    " + " " * 21 + "█")
    assert "2024-05-17 .. 2024-06-15, max 1/day" in chart


@pytest.mark.parametrize(("zone", "today"), [("UTC", 0), ("Asia/Tokyo", 1), ("America/Los_Angeles", 1)])
def test_stats_today_depends_on_tz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zone: str,
                                   today: int) -> None:
    # First seen 23:30 UTC on the 14th, now 00:40 UTC on the 15th. UTC: yesterday.
    # Tokyo: 08:30 and 09:40 on the 15th. Los Angeles: 16:30 and 17:40 on the 14th.
    monkeypatch.setattr(tracker.cli_support, "now", lambda: datetime(2024, 6, 15, 0, 40, tzinfo=UTC))
    path = tmp_path / "u.json"
    with UserStore(path) as store:
        store.seen(profile(1, first_name="Late"), datetime(2024, 6, 14, 23, 30, tzinfo=UTC))
    result = run("--store", str(path), "stats", "--json", "--tz", zone)
    assert json.loads(result.output)["new_today"] == today


@pytest.mark.parametrize(
    "args",
    [["stats"], ["stats", "--json"], ["users"], ["show", "1"], ["export", "-"], ["forget", "1", "--yes"]],
)
def test_commands_on_missing_store_fail(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "none.json"
    result = CliRunner().invoke(cli, ["--store", str(missing), *args])
    assert result.exit_code == 1
    assert result.stderr == f"Error: no store at {missing} yet\n"
    assert not missing.exists()


@pytest.mark.parametrize(
    "args", [["stats"], ["users"], ["show", "1"], ["export", "-"], ["forget", "1", "--yes"]]
)
def test_corrupt_store_is_one_line_and_untouched(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "users.json"
    path.write_bytes(b'{"users": {"1": {"id": 1, "first_')
    result = CliRunner().invoke(cli, ["--store", str(path), *args])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == b'{"users": {"1": {"id": 1, "first_'


@pytest.mark.parametrize(
    "args",
    [["stats", "--tz", "Mars/Base"], ["users", "--active-within", "7 years"], ["users", "--sort", "name"],
     ["forget", "a b"], ["export", "-", "--format", "xml"], ["export", "-", "--format", "json", "--excel"],
     ["nope"], ["users", "--limit", "-1"]],
)
def test_bad_usage_exits_2(store_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store_path), *args])
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr


def test_config_error_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.ini"
    cfg.write_text("[tracker]\ntimezone = Nowhere/Land\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "stats"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: config {cfg}: timezone: unknown time zone 'Nowhere/Land'\n"


def test_store_comes_from_config_relative_to_its_folder(store_path: Path) -> None:
    cfg = store_path.parent.parent / "config.ini"
    cfg.write_text("[tracker]\nstore = data/users.json\ntimezone = Asia/Tokyo\n")
    result = run("--config", str(cfg), "stats")
    assert result.exit_code == 0 and "Users:          4" in result.output
    assert "(Asia/Tokyo)" in result.output


# ------------------------------------------------------------------ users


def test_users_table(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "132")
    result = run("--store", str(store_path), "users")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "USERNAME", "NAME", "LANG", "MSGS", "FIRST", "SEEN", "LAST", "SEEN",
                                "SOURCE", "BLOCKED"]
    assert [line.split()[0] for line in lines[1:]] == ["303", "101", "202", "404"]
    assert lines[1].split()[:5] == ["303", "@BobTheBot", "Bob", "en", "0"]
    # The RTL override in 404's name is neutralised in the table.
    assert "\u202e" not in result.output and "Zoë 🙂 ?evil" in lines[4]
    assert "yes" in lines[3]
    assert result.stderr == "4 of 4 matching users (4 in total)\n"


def test_users_filters_sort_limit(store_path: Path) -> None:
    def ids(*args: str) -> list[int]:
        result = run("--store", str(store_path), "users", "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--sort", "messages") == [404, 101, 202, 303]
    assert ids("--sort", "first_seen", "--limit", "2") == [303, 202]
    assert ids("--lang", "EN") == [303, 101]
    assert ids("--blocked") == [202]
    assert ids("--active-within", "7d") == [303, 101, 202]
    assert ids("--active-within", "24h") == [303, 101]
    assert ids("--search", "@ann") == [101]
    assert ids("--search", "lee") == [101]
    assert ids("--search", "zoë") == [404]
    assert ids("--search", "30") == [303]
    assert ids("--since", "2024-06-07") == [303, 202, 404]
    assert ids("--search", "nobody") == []


# ------------------------------------------------------------------- show


def test_show_every_field(store_path: Path) -> None:
    result = run("--store", str(store_path), "show", "101")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "id             101",
        "first_name     Anna",
        "last_name      Lee",
        "username       anna",
        "language_code  en",
        "is_bot         false",
        "is_premium     null",
        "first_seen     2024-05-06 12:00:00 UTC (40 d ago)",
        "last_seen      2024-06-15 10:00:00 UTC (2 h ago)",
        "messages       2",
        "source         ads",
        "blocked        false",
        "blocked_at     null",
    ]
    assert run("--store", str(store_path), "show", "@ANNA").output == result.output
    as_json = json.loads(run("--store", str(store_path), "show", "--json", "anna").output)
    assert as_json["id"] == 101 and len(as_json) == 13
    assert as_json["first_seen"] == format_ts(NOW - timedelta(days=40))  # stored UTC form kept


def test_show_escapes_control_characters(store_path: Path) -> None:
    result = run("--store", str(store_path), "show", "404")
    assert "last_name      \\u202eevil" in result.output.splitlines()


def test_show_unknown_user(store_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store_path), "show", "@ghost"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: no user @ghost in {store_path}\n"


# ----------------------------------------------------------------- export


def test_export_csv_file(store_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["--store", str(store_path), "export", str(target)])
    assert result.exit_code == 0
    assert result.stderr == f"exported 4 users to {target}\n"
    with open(target, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = {int(r["id"]): r for r in reader}
    assert set(rows) == {101, 202, 303, 404}
    assert rows[202]["first_name"] == "'=cmd|' /C calc'!A0" and rows[202]["blocked"] == "true"
    assert rows[303]["is_bot"] == "true" and rows[303]["messages"] == "0"
    assert rows[404]["first_name"] == "Zoë 🙂" and rows[404]["is_premium"] == "true"


def test_export_stdout_raw_and_filters(store_path: Path) -> None:
    result = run("--store", str(store_path), "export", "-", "--raw", "--active-within", "7d")
    rows = list(csv.DictReader(io.StringIO(result.output, newline="")))
    assert sorted(int(r["id"]) for r in rows) == [101, 202, 303]
    assert next(r for r in rows if r["id"] == "202")["first_name"] == "=cmd|' /C calc'!A0"
    since = run("--store", str(store_path), "export", "-", "--format", "ndjson", "--since", "2024-06-10")
    assert sorted(json.loads(line)["id"] for line in since.output.splitlines()) == [202, 303]


def test_export_json_and_excel(store_path: Path, tmp_path: Path) -> None:
    run("--store", str(store_path), "export", str(tmp_path / "u.json"), "--format", "json")
    with UserStore(store_path, readonly=True) as store:
        expected = sorted(store, key=lambda r: r["id"])
    assert sorted(json.loads((tmp_path / "u.json").read_text()), key=lambda r: r["id"]) == expected
    run("--store", str(store_path), "export", str(tmp_path / "x.csv"), "--excel")
    raw = (tmp_path / "x.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,username,") and raw.count(b"\r\n") == 5


def test_export_into_missing_folder_fails_cleanly(store_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store_path), "export", str(tmp_path / "no" / "u.csv")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot write ") and result.stderr.count("\n") == 1


# ----------------------------------------------------------------- forget


def test_forget_asks_and_can_be_declined(store_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "101"], input="n\n")
    assert result.exit_code == 1
    assert "Erase user 101 (Anna Lee @anna)? [y/N]" in result.output
    with UserStore(store_path, readonly=True) as store:
        assert 101 in store


def test_forget_without_bot_writes_the_store(store_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "101"], input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("erased user 101\n")
    with UserStore(store_path, readonly=True) as store:
        assert 101 not in store and len(store) == 3
    again = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "101", "--yes"])
    assert again.exit_code == 1 and again.stderr == f"Error: no user 101 in {store_path}\n"


HOLD_WRITER = """
import sys
from tracker.store import UserStore
with UserStore(sys.argv[1]):
    print("open", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def writer_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's writer lock (as the bot does)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(path)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_forget_refuses_while_another_writer_holds_the_lock(store_path: Path) -> None:
    with writer_process(store_path) as proc:
        result = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "101", "--yes"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert f"is already open for writing by process {proc.pid}" in result.stderr
    with UserStore(store_path, readonly=True) as store:
        assert 101 in store


@pytest.mark.slow
def test_forget_goes_through_the_running_bot(store_path: Path) -> None:
    from tracker.control import ControlServer, socket_path_for

    requests: list[dict[str, Any]] = []

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        return {"ok": True, "forgotten": True}

    loop = asyncio.new_event_loop()
    server = ControlServer(socket_path_for(store_path), handler)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        # The bot holds the writer lock meanwhile: the CLI must not need it.
        with writer_process(store_path):
            result = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "202", "--yes"])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(server.stop())
        loop.close()
    assert result.exit_code == 0, result.output
    assert result.stdout == "erased user 202 (through the running bot)\n"
    assert requests == [{"cmd": "forget", "user_id": 202}]


def test_forget_reports_the_bots_refusal(store_path: Path) -> None:
    from tracker.control import ControlServer, socket_path_for

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": "store is read-only"}

    loop = asyncio.new_event_loop()
    server = ControlServer(socket_path_for(store_path), handler)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(cli, ["--store", str(store_path), "forget", "202", "--yes"])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(server.stop())
        loop.close()
    assert result.exit_code == 1 and result.stderr == "Error: store is read-only\n"


# --------------------------------------------------------------- refresh-bio


def test_refresh_bio_dry_run_reads_the_count(store_path: Path) -> None:
    result = run("--store", str(store_path), "refresh-bio", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "👥 Users: 4" in result.output


# ---------------------------------------------------------- real processes


def cli_process(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return run_python([str(REPO / "cli.py"), *args], cwd=cwd)


@pytest.mark.slow
def test_subprocess_stats_export_and_errors(store_path: Path, tmp_path: Path) -> None:
    stats = cli_process("--store", str(store_path), "stats", "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total_users"] == 4
    target = tmp_path / "u.csv"
    export = cli_process("--store", str(store_path), "export", str(target), cwd=tmp_path)
    assert export.returncode == 0 and len(target.read_text().splitlines()) == 5
    bad = cli_process("--store", str(store_path), "show", "999", cwd=tmp_path)
    assert (bad.returncode, bad.stderr) == (1, f"Error: no user 999 in {store_path}\n")
    usage = cli_process("stats", "--bogus", cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr


@pytest.mark.slow
def test_cli_does_not_import_pyrogram_or_asyncio(store_path: Path) -> None:
    code = ("import sys; from tracker.cli import cli\n"
            "try: cli(['--store', sys.argv[1], 'stats'], standalone_mode=False)\n"
            "finally: print(sorted(m for m in ('pyrogram', 'asyncio', 'tinydb') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(store_path)], cwd=REPO, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


WRITER = """
import sys, time
from datetime import datetime, UTC
from tracker.models import make_profile
from tracker.store import UserStore
with UserStore(sys.argv[1], flush_interval=0.05) as store:
    for i in range(int(sys.argv[2])):
        store.seen(make_profile(10_000 + i, f"W{i}"), datetime.now(UTC))
        if i % 20 == 0:
            time.sleep(0.005)
"""


@pytest.mark.slow
def test_reading_while_a_writer_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with UserStore(path):
        pass
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "3000"], cwd=REPO)
    totals: list[int] = []
    try:
        while writer.poll() is None:
            result = CliRunner().invoke(cli, ["--store", str(path), "stats", "--json"])
            assert result.exit_code == 0, result.output
            stats = json.loads(result.stdout)
            # Every user was seen once with one message: a torn read would break this.
            assert stats["total_users"] == stats["messages_total"]
            totals.append(stats["total_users"])
            time.sleep(0.02)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert totals == sorted(totals) and len(totals) >= 2
    final = json.loads(run("--store", str(path), "stats", "--json").output)
    assert final["total_users"] == final["messages_total"] == 3000
