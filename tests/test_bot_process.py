"""``python bot.py`` as a real process: start-up errors, signals, clean shutdown.

Telegram is unreachable here, so either the process really tries to connect (and
keeps retrying) or ``pyrogram.Client.start``/``stop`` are swapped for the fake
Telegram of telegram_fakes.py by tests/procs/bot_main_offline.py; ``tracker.bot.main()``
and its signal handling are always the real ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tinydb import TinyDB

from tests.support import PROCS, REPO, Spawn, run_python, write_config
from tracker.control import request, socket_path_for
from tracker.store import UserStore

pytestmark = [pytest.mark.bot, pytest.mark.slow]


def config(tmp_path: Path, *, credentials: bool = True) -> Path:
    return write_config(tmp_path, credentials=credentials, bot_token="1:FAKE" if credentials else None)


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def assert_closed_store(store: Path) -> dict[int, dict[str, object]]:
    """The store is a complete TinyDB file, folded (no journal) and unlocked."""
    assert store.exists()
    assert not Path(f"{store}.journal").exists() or Path(f"{store}.journal").stat().st_size == 0
    with UserStore(store):  # the writer lock was released
        pass
    with TinyDB(store) as db:
        return {doc.doc_id: dict(doc) for doc in db.table("users").all()}


def test_missing_credentials_name_the_keys_and_exit_1(tmp_path: Path) -> None:
    cfg = config(tmp_path, credentials=False)
    proc = run_python([str(REPO / "bot.py"), "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 1
    for name in ("api_id", "api_hash", "TRACKER_API_ID", "TRACKER_API_HASH", str(cfg)):
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "users.json").exists()


def test_a_second_bot_on_the_same_store_gets_the_lock_error(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with UserStore(tmp_path / "data" / "users.json"):
        proc = run_python([str(REPO / "bot.py"), "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 1
    assert str(os.getpid()) in proc.stderr and "users.json" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_flushes_and_closes_the_store(tmp_path: Path, sig: signal.Signals, spawn: Spawn) -> None:
    cfg = config(tmp_path)
    proc = spawn([str(PROCS / "bot_main_offline.py"), "--config", str(cfg)], cwd=tmp_path)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", proc.stderr.read() if proc.stderr else line
    # The control channel answers (opened before connecting, by tracker.attach).
    sock = socket_path_for(tmp_path / "data" / "users.json")
    wait_for(sock.exists)
    assert request(sock, {"cmd": "ping"})["users"] == 2
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "STOPPED" in out
    records = assert_closed_store(tmp_path / "data" / "users.json")
    assert set(records) == {1001, 1002}
    assert records[1001]["source"] == "from_sub" and records[1001]["messages"] == 1
    assert records[1002]["blocked"] is True
    assert "Traceback" not in err
    assert not sock.exists()  # the control channel was stopped


def test_sigterm_while_telegram_is_unreachable_exits_0_with_a_closed_store(
    tmp_path: Path, spawn: Spawn
) -> None:
    cfg = config(tmp_path)
    store = tmp_path / "data" / "users.json"
    proc = spawn([str(REPO / "bot.py"), "--config", str(cfg)], cwd=tmp_path)
    # The writer lock file appears once the store is open; then the client starts connecting.
    wait_for(lambda: Path(f"{store}.lock").exists() or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(1.0)  # inside the connection attempts (they retry for as long as it takes)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "flushed and closed" in err
    assert assert_closed_store(store) == {}
    session = tmp_path / "data" / "tracker.session"
    assert session.exists()  # the session lives in the data folder
    # It holds the login key: owner-only, like everything the bot creates.
    for created in (session, store, Path(f"{store}.lock")):
        assert created.stat().st_mode & 0o777 == 0o600, created


def test_forget_and_dry_run_work_while_telegram_is_unreachable(tmp_path: Path, spawn: Spawn) -> None:
    cfg = config(tmp_path)
    store = tmp_path / "data" / "users.json"
    with UserStore(store) as seeded:
        from datetime import UTC, datetime

        from tracker.models import make_profile

        seeded.seen(make_profile(1001, "Alice"), datetime(2026, 1, 1, tzinfo=UTC))
        seeded.seen(make_profile(1002, "Bob"), datetime(2026, 1, 1, tzinfo=UTC))
    proc = spawn([str(REPO / "bot.py"), "--config", str(cfg)], cwd=tmp_path)
    sock = socket_path_for(store)
    # The control channel opens before the first connection attempt, which never succeeds here.
    wait_for(lambda: sock.exists() or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()[1]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_python([str(REPO / "cli.py"), "--config", str(cfg), *args], cwd=tmp_path)

    forgot = cli("forget", "1001", "--yes")
    assert forgot.returncode == 0, forgot.stderr
    assert request(sock, {"cmd": "ping"})["users"] == 1  # erased in the running bot
    dry = cli("refresh-bio", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "👥 Users: 1" in dry.stdout
    refresh = request(sock, {"cmd": "refresh-bio"})  # a real refresh must wait for Telegram
    assert refresh["ok"] is False and "not connected" in refresh["error"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert set(assert_closed_store(store)) == {1002}
    assert not sock.exists()
