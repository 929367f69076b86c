"""``refresh-bio``: dry run, errors, and the way through a running bot (a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrogram
import pytest

from tests.support import profile, settings_in
from tracker import bio
from tracker.bio import BioError, refresh_command
from tracker.config import Settings
from tracker.control import socket_path_for
from tracker.store import UserStore

pytestmark = pytest.mark.bot  # also run against pyrogram 2.0.106

ROOT = Path(__file__).resolve().parent.parent
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


def test_user_mode_without_cli_session_and_no_terminal(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, bot=False)
    seed(settings, 1)
    script = (
        "import sys; from tracker.config import load; from tracker.bio import refresh_command, BioError\n"
        "try: print(refresh_command(load(sys.argv[1]), dry_run=False, force=False))\n"
        "except BioError as e: print(e, file=sys.stderr); sys.exit(1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(settings.config_path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "tracker-cli.session" in proc.stderr
    assert not (settings.data_dir / "tracker.session").exists()


CLI_SCRIPT = (
    "import sys; from tracker.config import load; from tracker.bio import refresh_command, BioError\n"
    "try: print(refresh_command(load(sys.argv[1]), dry_run=False, force='--force' in sys.argv,"
    " timeout=float(sys.argv[2])))\n"
    "except BioError as e: print(e, file=sys.stderr); sys.exit(1)\n"
)


def test_network_unreachable_gives_a_bounded_one_line_error(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rn` to run the CLI without any network")
    settings = settings_for(tmp_path)
    seed(settings, 1)
    started = time.monotonic()
    proc = subprocess.run(
        [unshare, "-rn", sys.executable, "-c", CLI_SCRIPT, str(settings.config_path), "3", "--force"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
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

BOT_STUB = textwrap.dedent(
    """
    # A running "bot" for the test: the real BioService and ControlServer, a real
    # never-connected pyrogram.Client whose invoke records calls (Telegram boundary).
    import asyncio, json, sys
    import pyrogram
    from pyrogram import errors, raw
    from tracker.bio import BioService
    from tracker.config import load
    from tracker.control import ControlServer, socket_path_for
    from tracker.store import UserStore

    async def main():
        settings = load(sys.argv[1])
        flood = sys.argv[2] == "flood"
        client = pyrogram.Client("stub", api_id=1, api_hash="x" * 32, bot_token="1:x",
                                 in_memory=True, no_updates=True)
        await client.storage.open()
        client.me = pyrogram.types.User(id=1, is_bot=True, first_name="Bot")
        client.is_connected = True
        calls = []

        async def invoke(query, *args, **kwargs):
            calls.append({"type": type(query).__name__, "about": query.about})
            if flood and len(calls) == 1:
                raise errors.FloodWait(value=42)
            if sys.argv[2] == "refuse":
                raise errors.AboutTooLong()
            return True

        client.invoke = invoke
        store = UserStore(settings.store)
        service = BioService(client, store, settings)

        async def handle(req):  # the refresh-bio part of the bot's control handler
            assert req["cmd"] == "refresh-bio", req
            return (await service.refresh(req["force"])).to_reply()

        server = ControlServer(socket_path_for(settings.store), handle)
        await service.start()
        await server.start()
        await asyncio.sleep(0.1)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop()
        await service.stop()
        store.close()
        print(json.dumps(calls), flush=True)

    asyncio.run(main())
    """
)


class RunningBot:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def stop(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        calls: list[dict[str, Any]] = json.loads(self.proc.stdout.readline())
        assert self.proc.wait(10) == 0
        return calls


@pytest.fixture
def start_bot(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(settings: Settings, mode: str = "ok") -> RunningBot:
        script = tmp_path / "bot_stub.py"
        script.write_text(BOT_STUB, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, str(script), str(settings.config_path), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return RunningBot(proc)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """refresh_command in a process of its own, as the CLI runs it."""
    return subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, str(settings.config_path), "5", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_refresh_through_the_running_bot(tmp_path: Path, start_bot: Any) -> None:
    settings = settings_for(tmp_path)
    # The bot set "2" a moment ago, a third user came since: the update waits for the interval.
    seed(settings, 3, bio_text="👥 Users: 2", bio_set_at=bio.stamp(time.time()))
    bot = start_bot(settings)
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


def test_flood_wait_through_the_running_bot(tmp_path: Path, start_bot: Any) -> None:
    settings = settings_for(tmp_path)
    seed(settings, 1)
    bot = start_bot(settings, "flood")  # its start-up update gets FLOOD_WAIT_42
    result = run_cli(settings, "--force")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "FloodWait" in result.stderr and " s " in result.stderr
    seconds = int(result.stderr.split("wait ")[1].split(" s")[0])
    assert 40 <= seconds <= 42 + bio.FLOOD_MARGIN
    assert bot.stop() == [{"type": "SetBotInfo", "about": "👥 Users: 1"}]
    assert UserStore(settings.store, readonly=True).meta["bio_error"].startswith("FLOOD_WAIT_42")


def test_telegram_refusing_the_text_through_the_running_bot(tmp_path: Path, start_bot: Any) -> None:
    settings = settings_for(tmp_path)
    seed(settings, 1)
    bot = start_bot(settings, "refuse")
    result = run_cli(settings, "--force")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "cannot set the bot short description: ABOUT_TOO_LONG: Telegram says the text is too long\n"
    )
    assert len(bot.stop()) == 2  # the start-up attempt and the forced one
    assert UserStore(settings.store, readonly=True).meta["bio_error"].startswith("ABOUT_TOO_LONG")
