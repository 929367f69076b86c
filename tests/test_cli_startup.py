"""The CLI's start-up (what each entry point imports) and ``forget`` in the session files.

Start-up is judged by which modules a real process has loaded (``sys.modules``),
never by timings: those are ``python -m bench startup``'s job.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli_run import RUNNERS, Invoke, process_env, tracker_fixture  # noqa: F401  (fixture)
from tracker.config import Settings, load
from tracker.models import make_profile
from tracker.store import StoreReader, UserStore

ALICE_ID = 1001
ALICE_NAME = "alice_private_handle"
ALICE_PHONE = "15550009876"


def loaded_modules(args: list[str], cwd: Path) -> set[str]:
    """The modules a fresh ``python -m tracker ARGS`` process has imported when the command ends."""
    code = (
        "import sys\n"
        "from tracker.cli import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='tracker')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "sys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=process_env(), cwd=cwd, text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def heavy(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.slow  # a fresh process: sys.modules must start empty
def test_help_imports_no_store_config_parser_renderer_or_pyrogram(tmp_path: Path) -> None:
    modules = loaded_modules(["--help"], tmp_path)
    assert "click" in modules and "tracker.cli" in modules  # it did run
    assert heavy(modules, "pyrogram", "asyncio", "sqlite3", "tracker.store", "configparser", "wcwidth",
                 "tracker.table", "tracker.export", "tracker.stats", "tracker.filters", "tracker.bio") == []


@pytest.mark.slow  # a fresh process: sys.modules must start empty
def test_version_imports_only_the_group(tmp_path: Path) -> None:
    """The group and its option types alone: no orjson, zoneinfo, store, config or audience commands."""
    modules = loaded_modules(["--version"], tmp_path)
    assert heavy(modules, "orjson", "zoneinfo", "pathlib", "dataclasses", "tracker.store", "tracker.config",
                 "tracker.cli_history", "tracker.audience", "pyrogram", "configparser") == []


@pytest.mark.slow  # a fresh process: sys.modules must start empty
def test_stats_json_imports_neither_the_audience_commands_nor_renderers(tmp_path: Path) -> None:
    store = tmp_path / "users.json"
    with UserStore(store) as writer:
        writer.seen(make_profile(5, "Eve"), datetime(2024, 5, 1, tzinfo=UTC))
    modules = loaded_modules(["--store", str(store), "stats", "--json"], tmp_path)
    assert "tracker.stats" in modules and "tracker.store" in modules
    assert heavy(modules, "pyrogram", "asyncio", "wcwidth", "tracker.cli_history", "tracker.audience",
                 "tracker.export", "tracker.bio", "tracker.control") == []
    # Nor the human table's renderer, strptime, or what only a writer needs (rescue files, store ids).
    assert heavy(modules, "tracker.stats_render", "tracker.table", "_strptime", "tracker.store.rescue",
                 "secrets", "tempfile", "ctypes") == []


def test_the_audience_commands_registered_by_name_are_those_of_their_module() -> None:
    from tracker.cli import cli
    from tracker.cli_history import COMMANDS

    declared = {name for name, module in cli.lazy_commands.items() if module == "tracker.cli_history"}
    loaded = {name for name in cli.commands if name in {c.name for c in COMMANDS}}
    assert declared | loaded == {c.name for c in COMMANDS}


def test_help_lists_the_audience_commands(tracker: Invoke, tmp_path: Path) -> None:
    out = tracker(["--help"], cwd=tmp_path)
    assert out.code == 0
    listed = {line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed >= {"history", "retention", "sources", "report", "stats", "users", "show", "forget"}


# ------------------------------------------------------------ forget and the session files


def write_config(folder: Path) -> Settings:
    lines = ["[pyrogram]", "api_id = 12345", "api_hash = 0123456789abcdef0123456789abcdef",
             "bot_token = 12345:TEST-token", "[tracker]", "store = data/users.json"]
    path = folder / "config.ini"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load(path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def session_files_met_alice(settings: Settings) -> list[Path]:
    """Run the bot (no network) until Alice wrote once; copy its session as the CLI's own.

    Both are real Pyrogram session files (SQLite) that cache Alice's id,
    access hash, username and phone number, as the bot's and ``refresh-bio``'s
    sessions do once they met her.
    """
    from tests.telegram_fakes import FakeTelegram, run
    from tracker.bot import build_app

    tg = FakeTelegram()
    alice = tg.user(ALICE_ID, "Alice", username=ALICE_NAME)
    alice.phone = ALICE_PHONE

    async def scenario() -> None:
        app = build_app(settings, in_memory=False, clock=lambda: datetime(2024, 5, 1, 12, tzinfo=UTC))
        await tg.attach(app)
        try:
            await tg.feed(app, tg.message(alice, "hello"))
            await app.storage.save()
        finally:
            await app.tracking.stop()
            await tg.detach(app)
            app.tracking.close_store()

    run(scenario())
    bot_session = settings.data_dir / f"{settings.session}.session"
    cli_session = settings.data_dir / f"{settings.session}-cli.session"
    shutil.copyfile(bot_session, cli_session)
    return [bot_session, cli_session]


def cached_rows(session: Path, user_id: int) -> list[tuple[object, ...]]:
    """Every row about ``user_id`` in a session file's peer tables (both Pyrogram schemas)."""
    conn = sqlite3.connect(session)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows: list[tuple[object, ...]] = []
        for table in ("peers", "usernames"):
            if table in tables:
                rows += conn.execute(f"SELECT * FROM {table} WHERE id = ?", (user_id,)).fetchall()
        return rows
    finally:
        conn.close()


@pytest.mark.bot
def test_forget_without_a_bot_clears_both_session_files(tracker: Invoke, tmp_path: Path) -> None:
    settings = write_config(tmp_path)
    sessions = session_files_met_alice(settings)
    for session in sessions:  # the precondition: both files know Alice
        assert cached_rows(session, ALICE_ID) and ALICE_PHONE.encode() in session.read_bytes()
    assert StoreReader(settings.store).get(ALICE_ID) is not None

    out = tracker(["--config", str(tmp_path / "config.ini"), "forget", str(ALICE_ID), "--yes"], cwd=tmp_path)

    assert (out.code, out.stdout.strip()) == (0, f"erased user {ALICE_ID}"), out.stderr
    assert StoreReader(settings.store).get(ALICE_ID) is None
    for session in sessions:
        assert cached_rows(session, ALICE_ID) == [], session.name
        data = session.read_bytes()
        assert ALICE_PHONE.encode() not in data and ALICE_NAME.encode() not in data, session.name


@pytest.mark.parametrize(
    "runner", [pytest.param(r, marks=[pytest.mark.slow] if r == "process" else []) for r in sorted(RUNNERS)]
)
def test_forget_says_when_a_session_file_cannot_be_cleaned(runner: str, tmp_path: Path) -> None:
    """The record is erased; a session file that is not SQLite is named, and the exit status is 1."""
    settings = write_config(tmp_path)
    with UserStore(settings.store) as writer:
        writer.seen(make_profile(ALICE_ID, "Alice", username=ALICE_NAME),
                    datetime(2024, 5, 1, tzinfo=UTC) - timedelta(days=1))
    broken = settings.data_dir / f"{settings.session}-cli.session"
    broken.write_bytes(b"not a database" * 100)

    out = RUNNERS[runner](["--config", str(tmp_path / "config.ini"), "forget", f"@{ALICE_NAME}", "-y"],
                          cwd=tmp_path)

    assert out.code == 1
    assert str(broken) in out.stderr and "erased user 1001 from the store" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert StoreReader(settings.store).get(ALICE_ID) is None


# ------------------------------------------------------------ invisible characters


def test_invisible_characters_show_in_tables_and_are_escaped_by_show(tracker: Invoke, tmp_path: Path) -> None:
    """``ref\\u200b1`` must not look like ``ref1`` (a --source that would match nothing), nor a
    name of Hangul fillers like no name; emoji joined by ZWJ stay as they are."""
    store = tmp_path / "users.json"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    with UserStore(store) as writer:
        at = datetime(2024, 5, 1, tzinfo=UTC)
        writer.seen(make_profile(7, "\u3164\u3164", username="blank"), at, source="ref\u200b1")
        writer.seen(make_profile(8, family, username="fam"), at + timedelta(hours=1), source="ref1")

    table = tracker(["--store", str(store), "users"], env={"COLUMNS": "132"}, cwd=tmp_path)
    shown = tracker(["--store", str(store), "show", "7"], cwd=tmp_path)

    assert table.code == 0 and shown.code == 0
    row = next(line for line in table.stdout.splitlines() if "@blank" in line)
    assert "ref?1" in row and "??" in row and "\u200b" not in row and "\u3164" not in row
    assert family in next(line for line in table.stdout.splitlines() if "@fam" in line)
    assert "ref\\u200b1" in shown.stdout and "\\u3164\\u3164" in shown.stdout
