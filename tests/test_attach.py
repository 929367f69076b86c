"""``tracker.attach`` in an owner's own client, ``plugins =`` in bot.py, ``tracker.open_db``.

The clients run their real ``start()``/``stop()`` (so the hooks of ``attach`` run
as in production); only the network steps (``connect``, ``disconnect``,
``get_me``) and ``invoke`` are faked (:meth:`FakeTelegram.offline`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyrogram
import pytest
from pyrogram import raw
from tinydb import Query, TinyDB

import tracker
from tests.support import write_config
from tests.telegram_fakes import FakeTelegram
from tracker.bio import dry_run_text
from tracker.bot import build_app
from tracker.config import ConfigError, Settings, load
from tracker.control import request, socket_path_for
from tracker.db import ReadOnlyStoreError
from tracker.store import StoreLockedError, StoreNotFoundError, UserStore

pytestmark = pytest.mark.bot

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def owner_config(tmp_path: Path, *, token: bool = False) -> Path:
    """A config.ini as an owner of their own bot writes it: no credentials unless asked."""
    return write_config(tmp_path, credentials=token, bot_token="1:CONFIG" if token else None)


@pytest.fixture
def own_bot(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/own_bot.py, imported from its file, with its credentials in the environment."""
    for name, value in (("API_ID", "12345"), ("API_HASH", "0" * 32), ("BOT_TOKEN", "1:OWNER")):
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("own_bot_example", EXAMPLES / "own_bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


def offline_world(monkeypatch: pytest.MonkeyPatch, *, bot: bool = True) -> FakeTelegram:
    tg = FakeTelegram(bot=bot)
    tg.offline(pyrogram.Client, setattr=monkeypatch.setattr)
    return tg


def stored_users(store: Path) -> dict[int, dict[str, Any]]:
    with TinyDB(store) as db:
        return {doc.doc_id: dict(doc) for doc in db.table("users").all()}


# ------------------------------------------------------------------ attach


def test_the_own_bot_example_answers_and_tracks_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_bot: ModuleType
) -> None:
    tg = offline_world(monkeypatch)
    alice, bob, carol = tg.user(1001, "Alice"), tg.user(1002, "Bob"), tg.user(1003, "Carol")
    store = tmp_path / "data" / "users.json"

    async def scenario() -> None:
        app, tracking = own_bot.build(owner_config(tmp_path), in_memory=True)
        assert isinstance(tracking, tracker.Tracking) and tracking.store.path == store
        async with app:  # the owner's usual way: the real start() and stop()
            await tg.feed(app, tg.message(alice, "/hello"), tg.message(bob, "hi there"))
            await tg.feed(app, tg.message(carol, "/active"))
            pong = await asyncio.to_thread(request, socket_path_for(store), {"cmd": "ping"})
            assert pong["users"] == 3
            assert tracking.stats()["total_users"] == 3
        assert tg.invoke.sent_texts() == [
            "Hello! You are one of 1 users.",  # /hello stopped propagation: no echo
            "hi there",
            "3 of 3 users were active this month.",
            "/active",
        ]
        abouts = [c.about for c in tg.invoke.of_type(raw.functions.bots.SetBotInfo)]
        assert abouts and all(a.startswith("👥 Users: ") for a in abouts)  # the counter ran

    asyncio.run(scenario())
    users = stored_users(store)  # stopping the client flushed and closed the store ...
    assert set(users) == {1001, 1002, 1003} and users[1001]["messages"] == 1
    with UserStore(store) as reopened:  # ... and released the writer lock
        assert reopened.meta["mode"] == "bot"
    assert not socket_path_for(store).exists()


def test_start_idle_stop_works_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tg = offline_world(monkeypatch)

    async def scenario() -> None:
        app = pyrogram.Client("owner", api_id=1, api_hash="0" * 32, bot_token="1:X", in_memory=True)
        tracking = tracker.attach(app, owner_config(tmp_path))
        await app.start()
        assert tracking.bio.running and tracking.is_bot is True
        await tg.feed(app, tg.message(tg.user(1001, "Alice"), "hello"))
        await app.stop()
        assert not tracking.bio.running

    asyncio.run(scenario())
    assert set(stored_users(tmp_path / "data" / "users.json")) == {1001}


def test_the_mode_comes_from_the_signed_in_account_and_the_cli_learns_it_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The config holds a bot token, but the client is a user account: the client wins.
    config = owner_config(tmp_path, token=True)
    tg = offline_world(monkeypatch, bot=False)

    async def scenario() -> None:
        app = pyrogram.Client("owner", api_id=1, api_hash="0" * 32, in_memory=True)
        tracking = tracker.attach(app, config)
        async with app:
            await tg.feed(app, tg.message(tg.user(1001, "Alice"), "hello"))
            assert tracking.is_bot is False

    asyncio.run(scenario())
    assert [type(c) for c in tg.invoke.calls if hasattr(c, "about")] == [raw.functions.account.UpdateProfile]
    settings = load(config)
    assert settings.is_bot  # what the config alone would have guessed
    assert "(user bio)" in dry_run_text(settings)


def test_a_second_writer_fails_at_attach(tmp_path: Path) -> None:
    config = owner_config(tmp_path)

    async def scenario() -> None:
        first = tracker.attach(pyrogram.Client("a", api_id=1, api_hash="0" * 32, in_memory=True), config)
        second = pyrogram.Client("b", api_id=1, api_hash="0" * 32, in_memory=True)
        try:
            with pytest.raises(StoreLockedError, match=r"users\.json"):
                tracker.attach(second, config)
            assert not any(second.dispatcher.groups.values())  # nothing was added to it
        finally:
            await first.close()

    asyncio.run(scenario())


def test_attach_takes_settings_too(tmp_path: Path) -> None:
    settings = load(owner_config(tmp_path))

    async def scenario() -> None:
        tracking = tracker.attach(pyrogram.Client("a", api_id=1, api_hash="0" * 32, in_memory=True), settings)
        try:
            assert tracking.settings is settings and tracking.store.path == settings.store
        finally:
            await tracking.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------ plugins


def with_plugins(settings: Settings, folder: Path) -> Settings:
    return dataclasses.replace(settings, plugins=folder)


def test_bot_py_loads_the_example_plugins_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository: the folder is found by its path
    settings = with_plugins(load(owner_config(tmp_path, token=True)), EXAMPLES / "plugins")
    tg = FakeTelegram()
    alice, bob = tg.user(1001, "Alice"), tg.user(1002, "Bob")

    async def scenario() -> None:
        tracking = build_app(settings, in_memory=True).tracking
        await tg.attach(tracking.client)
        try:
            await tg.feed(tracking.client, tg.message(alice, "/hello"), tg.message(bob, "/ping"))
            await tg.feed(tracking.client, tg.message(bob, "/start"))
        finally:
            await tg.detach(tracking.client)
            await tracking.close()

    asyncio.run(scenario())
    assert tg.invoke.sent_texts() == ["Hello, Alice! (from a plugin)", "pong", "Hi Bob!"]
    assert set(stored_users(settings.store)) == {1001, 1002}


def test_a_broken_plugin_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("import no_such_module_here\n", encoding="utf-8")
    settings = with_plugins(load(owner_config(tmp_path, token=True)), folder)

    async def scenario() -> None:
        with pytest.raises(ConfigError, match=r"broken\.py.*no_such_module_here"):
            build_app(settings, in_memory=True)
        with UserStore(settings.store):  # the store was closed again
            pass

    asyncio.run(scenario())
    missing = with_plugins(load(owner_config(tmp_path, token=True)), tmp_path / "nope")

    async def no_folder() -> None:
        with pytest.raises(ConfigError, match="nope"):
            build_app(missing, in_memory=True)

    asyncio.run(no_folder())


# ------------------------------------------------------------------ open_db


def seed(store_path: Path) -> UserStore:
    from datetime import UTC, datetime

    from tracker.models import make_profile

    store = UserStore(store_path)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.seen(make_profile(1, "Ali", language_code="fa"), now)
    store.seen(make_profile(2, "Bea", language_code="de"), now)
    store.flush()
    return store


def test_open_db_queries_the_live_store_with_tinydb(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tracker.models import make_profile

    path = tmp_path / "users.json"
    writer = seed(path)
    try:
        db = tracker.open_db(path)
        users = db.table("users")
        fa = Query().language_code == "fa"
        assert [u["first_name"] for u in users.search(fa)] == ["Ali"]
        writer.seen(make_profile(3, "Cyrus", language_code="fa"), datetime(2026, 1, 2, tzinfo=UTC))
        writer.flush()  # in the journal, not yet in the store file
        # The same handle, the same query: the new user (no stale query cache).
        assert sorted(u["first_name"] for u in users.search(fa)) == ["Ali", "Cyrus"]
        assert users.get(doc_id=3)["first_name"] == "Cyrus"  # type: ignore[index]
        assert len(users) == 3
    finally:
        writer.close()


def test_open_db_refuses_writes_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    seed(path).close()
    before = path.read_bytes()
    db = tracker.open_db(path)
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        db.table("users").insert({"id": 9})
    with pytest.raises(ReadOnlyStoreError):
        db.drop_tables()
    assert path.read_bytes() == before
    with pytest.raises(StoreNotFoundError):
        tracker.open_db(tmp_path / "missing.json")
    assert not (tmp_path / "missing.json").exists()


@pytest.mark.slow
def test_the_library_api_is_imported_lazily() -> None:
    import subprocess

    code = "import sys, tracker; print('pyrogram' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"  # the CLI does not pay for pyrogram
