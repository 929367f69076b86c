"""``cli.py refresh-bio`` against the real bot wiring, in two real processes.

The "bot" process is tests/procs/running_bot.py: the real ``build_app`` with the
services it wires (BioService, ControlServer), driven by tests/telegram_fakes.py
(Telegram faked at ``client.invoke``); the CLI is ``python cli.py`` as a user runs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, run_python, settings_in
from tracker.config import Settings
from tracker.control import socket_path_for
from tracker.store import UserStore

pytestmark = [pytest.mark.bot, pytest.mark.slow]


def settings_for(tmp_path: Path) -> Settings:
    return settings_in(tmp_path, bot_token="123456:TEST-token", bio_interval=3600)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python([str(REPO / "cli.py"), "--config", str(settings.config_path), *args],
                      stdin=subprocess.DEVNULL, timeout=120, cwd=settings.config_path.parent)


def test_cli_refresh_bio_through_the_running_bot(tmp_path: Path, running_bot: Any) -> None:
    settings = settings_for(tmp_path)
    bot = running_bot(settings.config_path, users=2)
    assert stat_mode(socket_path_for(settings.store)) == 0o600

    unchanged = cli(settings, "refresh-bio")
    assert (unchanged.returncode, unchanged.stdout, unchanged.stderr) == (
        0, "unchanged: 👥 Users: 2 (11/120)\n", ""
    )

    bot.add_user(5001)
    waiting = cli(settings, "refresh-bio")
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith("not sent: '👥 Users: 3' waits for bio_interval")

    forced = cli(settings, "refresh-bio", "--force")
    assert (forced.returncode, forced.stdout) == (0, "set bot short description to: 👥 Users: 3 (11/120)\n")

    assert [request["about"] for request in bot.stop()] == ["👥 Users: 2", "👥 Users: 3"]
    assert not socket_path_for(settings.store).exists()
    meta = UserStore(settings.store, readonly=True).meta
    assert (meta["bio_text"], meta["bio_error"]) == ("👥 Users: 3", None)
    # The CLI never logged in by itself: no session file anywhere.
    assert list(tmp_path.rglob("*.session")) == []


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
