"""``refresh-bio``: dry run, errors, and the way through a running bot (a real subprocess)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrogram
import pytest

from tests.support import REPO, profile, python_env, run_python, settings_in
from tracker import bio
from tracker.bio import BioError, refresh_command
from tracker.config import Settings
from tracker.control import socket_path_for
from tracker.store import UserStore

pytestmark = pytest.mark.bot  # also run against pyrogram 2.0.106

def settings_for(tmp_path: Path, *, bot: bool = True, **config: Any) -> Settings:
    return settings_in(tmp_path, bot_token="123456:TEST-token" if bot else None, **config)


def seed(settings: Settings, count: int, **meta: Any) -> None:
    now = datetime.now(UTC)
    with UserStore(settings.store) as store:
        for n in range(count):
            store.seen(profile(5000 + n, first_name=f"U{n}", is_bot=False), now)
        if meta:
            store.update_meta(**meta)


@pytest.fixture
def no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything builds a pyrogram.Client (i.e. would contact Telegram)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dry run must not build a Telegram client")

    monkeypatch.setattr(pyrogram.Client, "__init__", refuse)


CLI_SCRIPT = (
    "import sys; from tracker.config import load; from tracker.bio import refresh_command, BioError\n"
    "try: print(refresh_command(load(sys.argv[1]), dry_run=False, force='--force' in sys.argv,"
    " timeout=float(sys.argv[2])))\n"
    "except BioError as e: print(e, file=sys.stderr); sys.exit(1)\n"
)


# --------------------------------------------------------------------------- dry run


def test_dry_run_bot_mode(tmp_path: Path, no_client: None) -> None:
    settings = settings_for(tmp_path)
    seed(settings, 1234)
    out = refresh_command(settings, dry_run=True, force=False)
    assert out.splitlines() == ["👥 Users: 1,234", "length: 15, limit: 120 (bot short description)"]
    assert sorted(p.name for p in settings.data_dir.iterdir() if p.suffix in (".session", ".sock")) == []


def test_dry_run_user_mode_and_cut_text(tmp_path: Path, no_client: None) -> None:
    settings = settings_for(tmp_path, bot=False, bio_template="{users} users " + "z" * 100)
    seed(settings, 3)
    lines = refresh_command(settings, dry_run=True, force=False).splitlines()
    assert lines[0].startswith("warning: bio_template renders to 108 characters, over the 70")
    assert lines[1] == ("3 users " + "z" * 100)[:70]
    assert lines[2] == "length: 70, limit: 70 (140 with Telegram Premium) (user bio)"


def test_dry_run_without_a_store_shows_zero(tmp_path: Path, no_client: None) -> None:
    settings = settings_for(tmp_path, bio_template="{users} / {reachable} / {active_30d} / {new_today}")
    out = refresh_command(settings, dry_run=True, force=False)
    assert out.splitlines()[0] == "0 / 0 / 0 / 0"
    assert not settings.store.exists()  # a dry run creates nothing


def test_dry_run_shows_the_description(tmp_path: Path, no_client: None) -> None:
    settings = settings_for(tmp_path, description_template="{users} people, {new_today} today")
    seed(settings, 2)
    lines = refresh_command(settings, dry_run=True, force=False).splitlines()
    assert lines[-1] == "description: '2 people, 2 today', length: 17, limit: 512"


# --------------------------------------------------------------------------- errors


def test_no_credentials_is_a_one_line_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, credentials=False)
    with pytest.raises(BioError) as info:
        refresh_command(settings, dry_run=False, force=False)
    message = str(info.value)
    assert "api_id" in message and "TRACKER_API_ID" in message and "\n" not in message
    assert list(tmp_path.rglob("*.session")) == []  # failed before building a client


@pytest.mark.slow
def test_user_mode_without_cli_session_and_no_terminal(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, bot=False)
    seed(settings, 1)
    proc = run_python(["-c", CLI_SCRIPT, str(settings.config_path), "60"], stdin=subprocess.DEVNULL, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "tracker-cli.session" in proc.stderr
    assert not (settings.data_dir / "tracker.session").exists()




@pytest.mark.slow
def test_network_unreachable_gives_a_bounded_one_line_error(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rn` to run the CLI without any network")
    settings = settings_for(tmp_path)
    seed(settings, 1)
    started = time.monotonic()
    proc = subprocess.run(
        [unshare, "-rn", sys.executable, "-c", CLI_SCRIPT, str(settings.config_path), "3", "--force"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=python_env(),
    )
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.count("\n") == 1 and "cannot reach Telegram" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 100  # bounded: generous, only to catch a hang
    # its own session, in the data folder (never the bot's, never the current folder)
    assert (settings.data_dir / "tracker-cli.session").exists()
    assert not (settings.data_dir / "tracker.session").exists()
    assert list(tmp_path.glob("*.session")) == []
    assert UserStore(settings.store, readonly=True).meta.get("bio_text") is None


# --------------------------------------------------------------------------- via the running bot

def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """refresh_command in a process of its own, as the CLI runs it."""
    return run_python(["-c", CLI_SCRIPT, str(settings.config_path), "5", *args],
                      stdin=subprocess.DEVNULL, timeout=120, cwd=REPO)


@pytest.mark.slow
def test_refresh_through_the_running_bot(tmp_path: Path, running_bot: Any) -> None:
    settings = settings_for(tmp_path)
    # The bot set "2" a moment ago, a third user came since: the update waits for the interval.
    seed(settings, 3, bio_text="👥 Users: 2", bio_set_at=bio.stamp(time.time()))
    bot = running_bot(settings.config_path)
    waiting = run_cli(settings)
    assert waiting.returncode == 0, waiting.stderr
    assert "not sent" in waiting.stdout and "'👥 Users: 3'" in waiting.stdout and "--force" in waiting.stdout
    forced = run_cli(settings, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout == "set bot short description to: 👥 Users: 3 (11/120)\n"
    again = run_cli(settings, "--force")
    assert again.stdout == "unchanged: 👥 Users: 3 (11/120)\n"
    assert bot.stop() == [{"type": "SetBotInfo", "about": "👥 Users: 3"}]
    meta = UserStore(settings.store, readonly=True).meta
    assert meta["bio_text"] == "👥 Users: 3" and meta["bio_error"] is None
    assert not socket_path_for(settings.store).exists()
    assert list(settings.data_dir.glob("*.session")) == []  # the CLI used no session of its own


@pytest.mark.slow
def test_flood_wait_through_the_running_bot(tmp_path: Path, running_bot: Any) -> None:
    settings = settings_for(tmp_path)
    seed(settings, 1)
    bot = running_bot(settings.config_path, telegram="flood")  # its start-up update gets FLOOD_WAIT_42
    result = run_cli(settings, "--force")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "FloodWait" in result.stderr and " s " in result.stderr
    seconds = int(result.stderr.split("wait ")[1].split(" s")[0])
    assert 40 <= seconds <= 42 + bio.FLOOD_MARGIN
    assert bot.stop() == [{"type": "SetBotInfo", "about": "👥 Users: 1"}]
    assert UserStore(settings.store, readonly=True).meta["bio_error"].startswith("FLOOD_WAIT_42")


@pytest.mark.slow
def test_telegram_refusing_the_text_through_the_running_bot(tmp_path: Path, running_bot: Any) -> None:
    settings = settings_for(tmp_path)
    seed(settings, 1)
    bot = running_bot(settings.config_path, telegram="refuse")
    result = run_cli(settings, "--force")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "cannot set the bot short description: ABOUT_TOO_LONG: Telegram says the text is too long\n"
    )
    assert len(bot.stop()) == 2  # the start-up attempt and the forced one
    assert UserStore(settings.store, readonly=True).meta["bio_error"].startswith("ABOUT_TOO_LONG")
