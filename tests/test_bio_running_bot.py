"""``cli.py refresh-bio`` against the real bot wiring, in two real processes.

The "bot" process is the real ``build_app`` with the services it wires (BioService,
ControlServer), driven by tests/telegram_fakes.py (Telegram faked at
``client.invoke``); the CLI is ``python cli.py`` as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracker.config import Settings, load
from tracker.control import socket_path_for
from tracker.store import UserStore

pytestmark = pytest.mark.bot

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
for _name in ("TRACKER_API_ID", "TRACKER_API_HASH", "TRACKER_BOT_TOKEN", "TRACKER_CONFIG"):
    ENV.pop(_name, None)

BOT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pyrogram import raw
    from tests.telegram_fakes import FakeTelegram
    from tracker.bot import build_app
    from tracker.config import load

    async def main():
        settings = load(sys.argv[1])
        tg = FakeTelegram(bot=True)
        tg.invoke.respond(raw.functions.bots.SetBotInfo, True)
        app = build_app(settings, in_memory=True)
        await tg.attach(app.client)
        for n in range(int(sys.argv[2])):
            await tg.feed(app.client, tg.message(tg.user(1000 + n, f"U{n}"), "/start"))
        await app.start()  # what the client's start() does once signed in
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            user_id = int(line.split()[1])
            await tg.feed(app.client, tg.message(tg.user(user_id, "New"), "/start"))
            print("added", flush=True)
        await app.stop()
        await tg.detach(app.client)
        app.store.close()
        print(json.dumps([c.about for c in tg.invoke.of_type(raw.functions.bots.SetBotInfo)]), flush=True)

    asyncio.run(main())
    """
)


def settings_for(tmp_path: Path) -> Settings:
    path = tmp_path / "config.ini"
    path.write_text(
        "[pyrogram]\napi_id = 12345\napi_hash = 0123456789abcdef0123456789abcdef\n"
        "bot_token = 123456:TEST-token\n[tracker]\nstore = data/users.json\nbio_interval = 3600\n",
        encoding="utf-8",
    )
    return load(path)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(settings: Settings, users: int) -> subprocess.Popen[str]:
        script = tmp_path / "bot.py"
        script.write_text(BOT, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, str(script), str(settings.config_path), str(users)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=ENV,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--config", str(settings.config_path), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        cwd=settings.config_path.parent, env=ENV,
    )


def test_cli_refresh_bio_through_the_running_bot(tmp_path: Path, bot: Any) -> None:
    settings = settings_for(tmp_path)
    proc = bot(settings, 2)
    assert stat_mode(socket_path_for(settings.store)) == 0o600

    unchanged = cli(settings, "refresh-bio")
    assert (unchanged.returncode, unchanged.stdout, unchanged.stderr) == (
        0, "unchanged: 👥 Users: 2 (11/120)\n", ""
    )

    proc.stdin.write("add 5001\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "added\n"
    waiting = cli(settings, "refresh-bio")
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith("not sent: '👥 Users: 3' waits for bio_interval")

    forced = cli(settings, "refresh-bio", "--force")
    assert (forced.returncode, forced.stdout) == (0, "set bot short description to: 👥 Users: 3 (11/120)\n")

    proc.stdin.close()
    assert json.loads(proc.stdout.readline()) == ["👥 Users: 2", "👥 Users: 3"]
    assert proc.wait(10) == 0
    assert not socket_path_for(settings.store).exists()
    meta = UserStore(settings.store, readonly=True).meta
    assert (meta["bio_text"], meta["bio_error"]) == ("👥 Users: 3", None)
    # The CLI never logged in by itself: no session file anywhere.
    assert list(tmp_path.rglob("*.session")) == []


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
