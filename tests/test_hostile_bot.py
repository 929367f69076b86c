"""Hostile users against the bot: what /forget leaves behind, a borrowed admin name, /stats in groups.

A real never-connected ``pyrogram.Client`` fed raw TL updates through
``handle_updates``; Telegram is faked only at ``client.invoke`` (tests/telegram_fakes.py).
Runs on kurigram and on pyrogram 2.0.106 (``-m bot``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyrogram import raw

from tests.support import settings_in
from tests.telegram_fakes import FakeTelegram, inline_buttons, run
from tracker.bot import TrackerClient, build_app
from tracker.commands import FORGET_CONFIRM_DATA
from tracker.config import Settings
from tracker.control import request, socket_path_for
from tracker.session_peers import forget_peer_in_file
from tracker.store import UserStore

pytestmark = pytest.mark.bot

ALICE_NAME = "alice_private_handle"
ALICE_PHONE = "15550009876"


class StepClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@contextlib.asynccontextmanager
async def running(
    settings: Settings, tg: FakeTelegram, *, in_memory: bool = True
) -> AsyncIterator[TrackerClient]:
    app = build_app(settings, in_memory=in_memory, clock=StepClock())
    await tg.attach(app)
    try:
        yield app
    finally:
        await app.tracking.stop()
        await tg.detach(app)
        app.tracking.close_store()


def alice_of(tg: FakeTelegram) -> Any:
    alice = tg.user(1001, "Alice", username=ALICE_NAME)
    alice.phone = ALICE_PHONE  # the raw User carries it when the user shared it
    return alice


def cached(app: TrackerClient, user_id: int) -> list[tuple[Any, ...]]:
    """Every row about ``user_id`` in the session's peer tables (both pyrogram schemas)."""
    conn: sqlite3.Connection = app.storage.conn
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows: list[tuple[Any, ...]] = []
    for table in ("peers", "usernames"):
        if table in tables:
            rows += conn.execute(f"SELECT * FROM {table} WHERE id = ?", (user_id,)).fetchall()
    return rows


def sent_to(tg: FakeTelegram) -> list[Any]:
    """The peers of every message the bot sent (send or edit), oldest first."""
    kinds = (raw.functions.messages.SendMessage, raw.functions.messages.EditMessage)
    return [call.peer for call in tg.invoke.calls if isinstance(call, kinds)]


# ------------------------------------------------------------------ /forget and the peer cache


def test_forget_yes_removes_the_user_from_the_session_peer_cache_after_replying(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = alice_of(tg)
    bob = tg.user(1002, "Bob", username="bob")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "hello"), tg.message(bob, "hi"))
            assert cached(app, 1001)  # precondition: pyrogram cached her
            await tg.feed(app, tg.message(alice, "/forget yes"))
            # The confirmation reached her (it needs her peer) ...
            assert "new record" in tg.invoke.sent_texts()[-1]
            assert sent_to(tg)[-1].user_id == 1001
            # ... and then nothing about her is left; Bob is untouched.
            assert cached(app, 1001) == []
            assert cached(app, 1002)
            assert app.store.get(1001) is None

    run(scenario())


def test_forget_button_removes_the_user_from_the_session_peer_cache(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = alice_of(tg)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/forget"))
            prompt = tg.sent[-1]
            [(_, data)] = inline_buttons(prompt)
            assert data == FORGET_CONFIRM_DATA.encode()
            await tg.feed(app, tg.callback_query(alice, data, message_id=prompt.id))
            assert len(tg.invoke.of_type(raw.functions.messages.EditMessage)) == 1
            assert cached(app, 1001) == []
            assert app.store.get(1001) is None

    run(scenario())


def test_forget_in_user_mode_removes_the_peer_too(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None)
    tg = FakeTelegram(bot=False, me_username="owner")
    alice = alice_of(tg)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/forget yes"))
            assert "new record" in tg.invoke.sent_texts()[-1]
            assert cached(app, 1001) == []

    run(scenario())


def test_forget_through_the_control_channel_removes_the_peer(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = alice_of(tg)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await app.tracking.open_control()
            await tg.feed(app, tg.message(alice, "hello"))
            assert cached(app, 1001)
            sock = socket_path_for(settings.store)
            reply = await asyncio.to_thread(request, sock, {"cmd": "forget", "user_id": 1001})
            assert reply == {"ok": True, "forgotten": True}
            assert cached(app, 1001) == []
            # Someone never recorded in the store may still be in the cache: erased too.
            carol = tg.user(1003, "Carol", username="carol")
            await tg.feed(app, tg.message(carol, "hi"))
            app.store.forget(1003)
            reply = await asyncio.to_thread(request, sock, {"cmd": "forget", "user_id": 1003})
            assert reply == {"ok": True, "forgotten": False}
            assert cached(app, 1003) == []

    run(scenario())


def test_forget_leaves_no_trace_in_the_session_file_bytes(tmp_path: Path) -> None:
    """A file session: after /forget the name and phone are nowhere in the file (not even in free pages)."""
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = alice_of(tg)
    session_file = settings.data_dir / f"{settings.session}.session"

    async def scenario() -> None:
        async with running(settings, tg, in_memory=False) as app:
            await tg.feed(app, tg.message(alice, "hello"))
            await app.storage.save()  # what pyrogram does on stop
            data = session_file.read_bytes()
            assert ALICE_NAME.encode() in data and ALICE_PHONE.encode() in data  # precondition
            # Some SQLite builds (Debian's) zero deleted rows by default, others do not: act like the latter.
            app.storage.conn.execute("PRAGMA secure_delete = OFF")
            await tg.feed(app, tg.message(alice, "/forget yes"))
            await app.storage.save()

    run(scenario())
    data = session_file.read_bytes()
    assert ALICE_NAME.encode() not in data
    assert ALICE_PHONE.encode() not in data


def test_forget_peer_in_a_session_file_no_client_has_open(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = alice_of(tg)
    session_file = settings.data_dir / f"{settings.session}.session"

    async def scenario() -> None:
        async with running(settings, tg, in_memory=False) as app:
            await tg.feed(app, tg.message(alice, "hello"))
            await app.storage.save()

    run(scenario())
    assert ALICE_PHONE.encode() in session_file.read_bytes()
    assert forget_peer_in_file(session_file, 1001) is True
    assert forget_peer_in_file(session_file, 1001) is False
    assert ALICE_PHONE.encode() not in session_file.read_bytes()
    assert forget_peer_in_file(tmp_path / "missing.session", 1001) is False


# ------------------------------------------------------------------ admins = @username


def test_a_username_admin_is_pinned_to_the_account_first_seen_with_it(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, admins="@Boss")
    tg = FakeTelegram()
    boss = tg.user(7100, "Boss", username="boss")
    impostor = tg.user(7200, "Mallory", username="mallory")

    async def first_run() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(boss, "hi"))

    async def second_run() -> list[str]:
        async with running(settings, tg) as app:
            # The boss renames; the freed name is taken by someone else.
            boss.username = "boss_retired"
            impostor.username = "boss"
            await tg.feed(app, tg.message(impostor, "/stats"))
            await tg.feed(app, tg.message(boss, "/stats"))
            return tg.invoke.sent_texts()

    run(first_run())
    texts = run(second_run())
    assert len(texts) == 2
    assert "Active 24h" not in texts[0] and "2" not in texts[0]  # the impostor sees no figures
    assert "Users: 2" in texts[1] and "Active 24h" in texts[1]  # the pinned account still does
    with UserStore(settings.store, readonly=True) as store:
        pins = store.meta.get("admin_pins")
    assert pins == {"boss": 7100}


def test_a_username_admin_first_seen_through_stats_is_pinned_too(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, admins="@boss")
    tg = FakeTelegram()
    boss = tg.user(7100, "Boss", username="BOSS")
    other = tg.user(7200, "Other", username="boss")

    async def scenario() -> list[str]:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(boss, "/stats"))
            await tg.feed(app, tg.message(other, "/stats"))
            return tg.invoke.sent_texts()

    texts = run(scenario())
    assert "Active 24h" in texts[0]
    assert "Active 24h" not in texts[1]


# ------------------------------------------------------------------ /stats in groups


def test_admin_stats_in_a_group_is_answered_in_private(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, admins="7100")
    tg = FakeTelegram()
    boss = tg.user(7100, "Boss")
    group = tg.group()
    supergroup = tg.channel()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(boss, "/stats", chat=group))
            await tg.feed(app, tg.message(boss, "/stats@tracker_bot", chat=supergroup))
            peers = sent_to(tg)
            assert len(peers) == 2
            for peer in peers:
                assert isinstance(peer, raw.types.InputPeerUser) and peer.user_id == 7100
            assert all("Active 24h" in text for text in tg.invoke.sent_texts())

    run(scenario())


@pytest.mark.parametrize("public", ["true", "false"])
def test_non_admin_stats_in_a_group_gets_no_reply(tmp_path: Path, public: str) -> None:
    settings = settings_in(tmp_path, admins="7100", public_stats=public)
    tg = FakeTelegram()
    mallory = tg.user(7200, "Mallory")
    group = tg.group()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(mallory, "/stats", chat=group))
            await tg.feed(app, tg.message(mallory, "/stats", chat=tg.channel()))
            assert tg.invoke.calls == []  # the bot said nothing at all

    run(scenario())


def test_non_admin_stats_in_private_is_refused_or_public(tmp_path: Path) -> None:
    tg = FakeTelegram()
    mallory = tg.user(7200, "Mallory")

    async def scenario(settings: Settings) -> list[str]:
        before = len(tg.invoke.sent_texts())
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(mallory, "/stats"))
        return tg.invoke.sent_texts()[before:]

    texts = run(scenario(settings_in(tmp_path / "a", admins="7100")))
    assert len(texts) == 1 and "admin" in texts[0] and "Users" not in texts[0]
    texts = run(scenario(settings_in(tmp_path / "b", admins="7100", public_stats="true")))
    assert texts == ["👥 Users: 1"]


def test_owner_stats_in_a_group_goes_to_saved_messages_in_user_mode(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None)
    tg = FakeTelegram(bot=False, me_id=600600, me_username="owner")
    alice = tg.user(1001, "Alice")
    group = tg.group()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "hi", chat=group))
            await tg.feed(app, tg.message(tg.me, "/stats", chat=group, out=True))
            await tg.feed(app, tg.message(tg.me, "/stats", chat=alice, out=True))  # a chat with Alice
            peers = sent_to(tg)
            assert len(peers) == 2
            assert all(isinstance(peer, raw.types.InputPeerSelf) for peer in peers)
            assert all("Users: 1" in text for text in tg.invoke.sent_texts())

    run(scenario())
