"""The bot's handlers, driven through a real never-connected pyrogram.Client.

Raw TL updates go through ``client.handle_updates`` -> dispatcher -> handlers;
requests to Telegram are answered by the recorder of tests/telegram_fakes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyrogram import raw
from pyrogram.errors import AccessTokenInvalid, AuthKeyUnregistered, UserIsBlocked
from pyrogram.handlers import MessageHandler
from tinydb import TinyDB

from tests.support import settings_in
from tests.telegram_fakes import FakeTelegram, inline_buttons, run
from tracker.bio import Outcome, OutcomeKind
from tracker.bot import FatalStartError, build_app, start_client
from tracker.commands import FORGET_CONFIRM_DATA
from tracker.config import Settings
from tracker.handlers import start_payload
from tracker.models import format_ts, parse_ts

pytestmark = pytest.mark.bot

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class StepClock:
    """A clock that moves one minute per reading (so last_seen visibly advances)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@contextlib.asynccontextmanager
async def running(
    settings: Settings, tg: FakeTelegram, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[Any]:
    app = build_app(settings, in_memory=True, clock=clock or StepClock())
    await tg.attach(app)
    try:
        yield app
    finally:
        await tg.detach(app)
        app.store.close()


def stored(settings: Settings) -> dict[int, dict[str, Any]]:
    """The users table as plain TinyDB reads it from disk."""
    with TinyDB(settings.store) as db:
        return {doc.doc_id: dict(doc) for doc in db.table("users").all()}


# ------------------------------------------------------------------ messages by chat type


def test_private_message_records_the_full_profile(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice", last_name="Liddell", username="alice", lang_code="en", premium=True)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "hello"))
            first = app.store.get(1001)
            await tg.feed(app, tg.message(alice, "again"))
            second = app.store.get(1001)
        assert first is not None and second is not None
        assert first["messages"] == 1 and second["messages"] == 2
        assert second["first_seen"] == first["first_seen"]
        assert parse_ts(second["last_seen"]) > parse_ts(first["last_seen"])

    run(scenario())
    record = stored(settings)[1001]
    assert record["first_name"] == "Alice"
    assert record["last_name"] == "Liddell"
    assert record["username"] == "alice"
    assert record["language_code"] == "en"
    assert record["is_premium"] is True
    assert record["is_bot"] is False
    assert record["blocked"] is False and record["source"] is None


def test_group_and_supergroup_messages_record_their_senders(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    bob = tg.user(2001, "Bob", username="bob")
    carol = tg.user(2002, "Carol")
    helper_bot = tg.user(2003, "Helper", username="helper_bot", is_bot=True)
    group = tg.group()
    supergroup = tg.channel()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(
                app,
                tg.message(bob, "in a group", chat=group),
                tg.message(carol, "in a supergroup", chat=supergroup),
                tg.message(bob, "supergroup too", chat=supergroup),
                tg.message(helper_bot, "beep", chat=group),
            )

    run(scenario())
    records = stored(settings)
    assert set(records) == {2001, 2002, 2003}
    assert records[2001]["messages"] == 2
    assert records[2002]["messages"] == 1
    assert records[2003]["is_bot"] is True


def test_messages_without_a_user_sender_create_no_users(tmp_path: Path, caplog: Any) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    news = tg.channel(1_111_111_111, "News", broadcast=True)
    supergroup = tg.channel()
    dave = tg.user(3001, "Dave")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            with caplog.at_level(logging.WARNING):
                await tg.feed(
                    app,
                    tg.message(news, "a channel post", chat=news, post=True),
                    tg.message(supergroup, "from an anonymous admin", chat=supergroup),
                    tg.message(dave, "a real user", chat=supergroup),
                )
            assert len(app.store) == 1

    run(scenario())
    assert set(stored(settings)) == {3001}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------ other interactions


def test_edits_buttons_and_inline_queries_update_without_counting_messages(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    erin = tg.user(4001, "Erin")
    frank = tg.user(4002, "Frank", username="frank")
    grace = tg.user(4003, "Grace")
    heidi = tg.user(4004, "Heidi", lang_code="de")
    supergroup = tg.channel()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(erin, "original"))
            before = app.store.get(4001)
            await tg.feed(
                app,
                tg.message(erin, "edited", edit=True, message_id=1),
                tg.message(erin, "edited in a supergroup", chat=supergroup, edit=True),
                tg.callback_query(frank, b"some:button", message_id=1),
                tg.inline_query(grace, "cats"),
                tg.chosen_inline_result(heidi, "cats"),
            )
            after = app.store.get(4001)
            assert before is not None and after is not None
            assert after["messages"] == 1
            assert parse_ts(after["last_seen"]) > parse_ts(before["last_seen"])
            for user_id in (4002, 4003, 4004):
                record = app.store.get(user_id)
                assert record is not None, user_id
                assert record["messages"] == 0
            assert app.store.get(4004)["language_code"] == "de"  # type: ignore[index]

    run(scenario())


def test_new_chat_members_are_recorded_but_not_as_messages(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    ivan = tg.user(5001, "Ivan")
    judy = tg.user(5002, "Judy")
    ken = tg.user(5003, "Ken")
    group = tg.group()
    supergroup = tg.channel()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(
                app,
                tg.new_members(group, ivan, [judy, tg.me]),  # Ivan adds Judy and the bot
                tg.new_members(supergroup, ken, [ken]),  # Ken joins by himself
            )

    run(scenario())
    records = stored(settings)
    assert set(records) == {5001, 5002, 5003}  # never the bot itself
    assert all(r["messages"] == 0 for r in records.values())


def test_user_mode_own_messages_are_not_users(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None)
    tg = FakeTelegram(bot=False, me_id=600600, me_username="owner")
    mallory = tg.user(6001, "Mallory")
    group = tg.group()

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(
                app,
                tg.message(tg.me, "my own message", chat=mallory, out=True),
                tg.message(tg.me, "note to self", chat=tg.me, out=True),
                tg.message(tg.me, "hi all", chat=group, out=True),
                tg.message(mallory, "hello there"),
            )

    run(scenario())
    records = stored(settings)
    assert set(records) == {6001}
    assert records[6001]["messages"] == 1


# ------------------------------------------------------------------ /start and deep links


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", None),
        ("/start ref42", "ref42"),
        ("/start   spaced  ", "spaced"),
        ("/start@tracker_bot grp", "grp"),
        ("/start@Tracker_Bot grp", "grp"),
        ("/start@other_bot grp", None),
        ("/starting x", None),
        ("hello /start x", None),
    ],
)
def test_start_payload(text: str, expected: str | None) -> None:
    assert start_payload(text, "tracker_bot") == expected


def test_deep_link_sets_the_first_source_and_welcomes(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, welcome="Welcome, {first_name}! 🎉")
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/start ads_may"), tg.message(alice, "/start other"))
            await tg.feed(app, tg.message(bob, "/start"), tg.message(bob, "/start later_payload"))
            assert tg.invoke.sent_texts() == ["Welcome, Alice! 🎉"] * 2 + ["Welcome, Bob! 🎉"] * 2
            sends = tg.invoke.of_type(raw.functions.messages.SendMessage)
            assert [s.peer.user_id for s in sends] == [1001, 1001, 1002, 1002]

    run(scenario())
    records = stored(settings)
    assert records[1001]["source"] == "ads_may"
    assert records[1002]["source"] == "later_payload"  # the first *non-empty* payload
    assert records[1001]["messages"] == 2


def test_start_in_user_mode_gets_no_welcome_and_no_source(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None)
    tg = FakeTelegram(bot=False, me_username="owner")
    alice = tg.user(1001, "Alice")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/start x"))
            assert tg.invoke.sent_texts() == []

    run(scenario())
    assert stored(settings)[1001]["source"] is None


# ------------------------------------------------------------------ blocks


def test_bot_stopped_blocks_and_unblocks(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    changes: list[int] = []

    async def scenario() -> None:
        async with running(settings, tg) as app:
            app.tracking.on_change.append(lambda: changes.append(len(app.store)))
            await tg.feed(app, tg.message(alice, "hi"))
            stop = tg.bot_stopped(alice, stopped=True)
            await tg.feed(app, stop)
            record = app.store.get(1001)
            assert record is not None and record["blocked"] is True
            assert record["blocked_at"] == format_ts(datetime.fromtimestamp(stop.date, UTC))
            await tg.feed(app, tg.bot_stopped(alice, stopped=False))
            record = app.store.get(1001)
            assert record is not None
            assert record["blocked"] is False and record["blocked_at"] is None

    run(scenario())
    assert changes == [1, 1, 1]  # new user, block, unblock
    assert stored(settings)[1001]["blocked"] is False


def test_bot_stopped_by_a_user_seen_before_tracking_creates_a_blocked_record(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    old = tg.user(1003, "Oldtimer", username="oldie")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.bot_stopped(old, stopped=True))

    run(scenario())
    record = stored(settings)[1003]
    assert record["blocked"] is True and record["username"] == "oldie" and record["messages"] == 0


def test_reply_failing_with_user_is_blocked_marks_the_user_blocked(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    tg.invoke.respond(raw.functions.messages.SendMessage, UserIsBlocked())

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/start"))
            assert len(tg.invoke.of_type(raw.functions.messages.SendMessage)) == 1
            record = app.store.get(1001)
            assert record is not None and record["blocked"] is True and record["blocked_at"]

    run(scenario())


# ------------------------------------------------------------------ /stats


def _seed(tg: FakeTelegram) -> list[Any]:
    return [tg.user(7000 + i, f"User{i}") for i in range(3)]


def test_stats_for_an_admin_by_id_and_by_username(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, admins="7000, @Boss")
    tg = FakeTelegram()
    users = _seed(tg)
    boss = tg.user(7100, "Boss", username="boss")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, *(tg.message(u, "hi") for u in users), tg.bot_stopped(users[2]))
            await tg.feed(app, tg.message(users[0], "/stats"))
            await tg.feed(app, tg.message(boss, "/stats", chat=tg.group()))
            texts = tg.invoke.sent_texts()
            assert len(texts) == 2
            for text in texts:
                assert "Users: 3" in text or "Users: 4" in text
                assert "Blocked: 1" in text and "Active 24h" in text and "New today" in text
            assert "Users: 3" in texts[0] and "Users: 4" in texts[1]  # the boss is a user now

    run(scenario())


def test_stats_for_others_is_refused_or_public(tmp_path: Path) -> None:
    tg = FakeTelegram()
    users = _seed(tg)

    async def scenario(settings: Settings) -> list[str]:
        async with running(settings, tg) as app:
            await tg.feed(app, *(tg.message(u, "hi") for u in users))
            before = len(tg.invoke.sent_texts())
            await tg.feed(app, tg.message(users[1], "/stats"))
            return tg.invoke.sent_texts()[before:]

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    private = settings_in(tmp_path / "a", admins="7000")
    texts = run(scenario(private))
    assert len(texts) == 1 and "admin" in texts[0] and "3" not in texts[0]

    public = settings_in(tmp_path / "b", public_stats="true")
    texts = run(scenario(public))
    assert texts == ["👥 Users: 3"]


def test_stats_in_user_mode_only_for_the_owner(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None, admins="7001")  # admins do not apply to user accounts
    tg = FakeTelegram(bot=False, me_id=600600, me_username="owner")
    users = _seed(tg)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, *(tg.message(u, "hi") for u in users))
            await tg.feed(app, tg.message(users[1], "/stats"))
            assert tg.invoke.sent_texts() == []
            await tg.feed(app, tg.message(tg.me, "/stats", chat=tg.me, out=True))  # Saved Messages
            texts = tg.invoke.sent_texts()
            assert len(texts) == 1 and "Users: 3" in texts[0]
            assert tg.invoke.of_type(raw.functions.messages.SendMessage)[0].peer is not None

    run(scenario())


# ------------------------------------------------------------------ /mydata and /forget


def test_mydata_returns_the_callers_record(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice", username="alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(bob, "hi"), tg.message(alice, "/start promo"))
            await tg.feed(app, tg.message(alice, "/mydata"))
            data = json.loads(tg.invoke.sent_texts()[-1])
            assert data == app.store.get(1001)
            assert data["source"] == "promo" and data["messages"] == 2

    run(scenario())


def test_forget_with_the_button(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")
    changes: list[int] = []

    async def scenario() -> None:
        async with running(settings, tg) as app:
            app.tracking.on_change.append(lambda: changes.append(len(app.store)))
            await tg.feed(app, tg.message(bob, "hi"), tg.message(alice, "/forget"))
            assert app.store.get(1001) is not None  # nothing erased before confirming
            prompt = tg.sent[-1]
            [(_, data)] = inline_buttons(prompt)
            assert data == FORGET_CONFIRM_DATA.encode()
            await tg.feed(app, tg.callback_query(alice, data, message_id=prompt.id))
            assert app.store.get(1001) is None
            assert app.store.get(1002) is not None
            assert len(tg.invoke.of_type(raw.functions.messages.SetBotCallbackAnswer)) == 1
            edits = tg.invoke.of_type(raw.functions.messages.EditMessage)
            assert len(edits) == 1 and edits[0].id == prompt.id and "new record" in edits[0].message
            await tg.feed(app, tg.message(alice, "back again"))
            record = app.store.get(1001)
            assert record is not None and record["messages"] == 1

    run(scenario())
    assert changes == [1, 2, 1, 2]  # bob, alice, forget alice, alice anew


def test_forget_yes_in_one_message(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "hello"), tg.message(alice, "/forget yes"))
            assert app.store.get(1001) is None
            assert "new record" in tg.invoke.sent_texts()[-1]

    run(scenario())
    assert stored(settings) == {}


def test_forget_in_user_mode_needs_the_text_confirmation(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, bot_token=None)
    tg = FakeTelegram(bot=False, me_username="owner")
    alice = tg.user(1001, "Alice")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, tg.message(alice, "/forget"))
            assert app.store.get(1001) is not None
            send = tg.invoke.of_type(raw.functions.messages.SendMessage)[-1]
            assert send.reply_markup is None and "/forget yes" in send.message
            await tg.feed(app, tg.message(alice, "/forget yes"))
            assert app.store.get(1001) is None

    run(scenario())


# ------------------------------------------------------------------ robustness


def test_a_failing_handler_is_logged_with_the_update_id_and_tracking_goes_on(
    tmp_path: Path, caplog: Any
) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            real_seen = app.store.seen

            def flaky_seen(user: Any, at: datetime, **kwargs: Any) -> bool:
                if user.id == 1001:
                    raise RuntimeError("disk on fire")
                return real_seen(user, at, **kwargs)

            app.store.seen = flaky_seen
            failing = tg.message(alice, "/start boom")
            with caplog.at_level(logging.ERROR, logger="tracker"):
                await tg.feed(app, failing, tg.message(bob, "still tracked"))
            app.store.seen = real_seen
            await tg.feed(app, tg.message(alice, "me too"))
            assert app.store.get(1002) is not None
            record = app.store.get(1001)
            assert record is not None and record["messages"] == 1
            # the command group still ran for the update whose tracking failed
            assert tg.invoke.sent_texts() == ["Hi Alice!"]
            errors = [r for r in caplog.records if r.name.startswith("tracker") and r.exc_info]
            assert len(errors) == 1
            assert f"message {failing.message.id}" in errors[0].getMessage()

    run(scenario())


ODD_NAMES = [
    "😀👩‍👩‍👧‍👦 Emoji",
    "שלום עליכם",  # RTL
    "zero\u200bwidth\u200d",
    "ctrl\x00\x07\x1b[31m\n\ttab",
    "",
    "L" * 64 + "ong",
    "\u202eevil override",
]


def test_odd_names_are_stored_faithfully(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    users = [tg.user(8000 + i, name, last_name=name or None) for i, name in enumerate(ODD_NAMES)]

    async def scenario() -> None:
        async with running(settings, tg) as app:
            await tg.feed(app, *(tg.message(u, "hi") for u in users))

    run(scenario())
    records = stored(settings)
    for i, name in enumerate(ODD_NAMES):
        assert records[8000 + i]["first_name"] == name
        assert records[8000 + i]["last_name"] == (name or None)


def test_on_change_fires_for_new_users_not_for_repeat_messages(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")
    calls: list[int] = []

    async def scenario() -> None:
        async with running(settings, tg) as app:
            app.tracking.on_change.append(lambda: calls.append(len(app.store)))
            app.tracking.on_change.insert(0, lambda: 1 / 0)  # a broken callback does not stop the others
            await tg.feed(app, tg.message(alice, "1"), tg.message(alice, "2"), tg.message(bob, "3"))

    run(scenario())
    assert calls == [1, 2]


def test_control_handler_ping_and_forget(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")

    async def scenario() -> None:
        async with running(settings, tg) as app:
            refreshed: list[bool] = []

            async def refresh(force: bool = False) -> Outcome:
                refreshed.append(force)
                return Outcome(OutcomeKind.UNCHANGED, text="👥 Users: 1")

            app.tracking.bio.refresh = refresh  # type: ignore[method-assign]
            handle = app.tracking.handle_control
            await tg.feed(app, tg.message(alice, "hi"))
            pong = await handle({"cmd": "ping"})
            assert pong["ok"] is True and pong["users"] == 1
            assert await handle({"cmd": "forget", "user_id": 1001}) == {"ok": True, "forgotten": True}
            assert await handle({"cmd": "forget", "user_id": 1001}) == {"ok": True, "forgotten": False}
            assert (await handle({"cmd": "forget", "user_id": "x"}))["ok"] is False
            reply = await handle({"cmd": "refresh-bio", "force": True})
            assert (reply["ok"], reply["changed"], reply["text"]) == (True, False, "👥 Users: 1")
            assert refreshed == [True]
            assert (await handle({"cmd": "nope"}))["ok"] is False
            assert app.store.get(1001) is None

    run(scenario())


def test_build_app_uses_the_data_folder_for_the_session(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, session="mybot")

    async def scenario() -> None:
        app = build_app(settings)
        try:
            assert Path(app.workdir) == settings.data_dir == tmp_path / "data"
            assert app.name == "mybot"
            assert app.bot_token == "12345:TEST-token"
            assert app.store.path == settings.store
        finally:
            app.store.close()

    run(scenario())


# ------------------------------------------------------------------ start-up retries


def _flaky_start(app: Any, failures: list[BaseException]) -> list[int]:
    attempts: list[int] = []

    async def start(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        if failures:
            raise failures.pop(0)
        return app

    app.start = start
    return attempts


def test_start_is_retried_while_telegram_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tracker.bot.RETRY_FIRST", 0.01)
    settings = settings_in(tmp_path)

    async def scenario() -> None:
        app = build_app(settings, in_memory=True)
        try:
            failures: list[BaseException] = [OSError("unreachable"), ConnectionError(), TimeoutError()]
            attempts = _flaky_start(app, failures)
            assert await start_client(app, asyncio.Event()) is True
            assert len(attempts) == 4
        finally:
            app.store.close()

    run(scenario())


@pytest.mark.parametrize("error", [AuthKeyUnregistered(), AccessTokenInvalid(), EOFError()])
def test_refused_credentials_are_fatal(tmp_path: Path, error: BaseException) -> None:
    settings = settings_in(tmp_path)

    async def scenario() -> None:
        app = build_app(settings, in_memory=True)
        try:
            attempts = _flaky_start(app, [error])
            with pytest.raises(FatalStartError):
                await start_client(app, asyncio.Event())
            assert len(attempts) == 1
        finally:
            app.store.close()

    run(scenario())


def test_stop_during_a_hanging_start_returns_false(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)

    async def scenario() -> None:
        app = build_app(settings, in_memory=True)
        cancelled: list[bool] = []

        async def hang(*args: Any, **kwargs: Any) -> Any:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        app.start = hang
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        try:
            assert await start_client(app, stop) is False
            assert cancelled == [True]
        finally:
            app.store.close()

    run(scenario())


def test_a_failing_command_is_logged_with_the_message_id(
    tmp_path: Path, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_in(tmp_path, admins="1001")
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ValueError("broken stats")

    monkeypatch.setattr("tracker.commands.compute_stats", broken)

    async def scenario() -> None:
        async with running(settings, tg) as app:
            stats = tg.message(alice, "/stats")
            with caplog.at_level(logging.ERROR, logger="tracker"):
                await tg.feed(app, stats, tg.message(alice, "/mydata"))
            assert json.loads(tg.invoke.sent_texts()[-1])["messages"] == 2  # later commands still work
            [error] = [r for r in caplog.records if r.name.startswith("tracker") and r.exc_info]
            assert f"command /stats failed for message {stats.message.id}" in error.getMessage()

    run(scenario())


def test_tracking_and_commands_never_stop_propagation(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    seen_later: list[str] = []

    async def later_group(client: Any, message: Any) -> None:
        seen_later.append(message.text)

    async def scenario() -> None:
        app = build_app(settings, in_memory=True)
        app.add_handler(MessageHandler(later_group), group=5)  # an application's own handler
        await tg.attach(app)
        try:
            texts = ["/start x", "hello", "/mydata"]
            await tg.feed(app, *(tg.message(alice, text) for text in texts))
        finally:
            await tg.detach(app)
            app.store.close()

    run(scenario())
    assert seen_later == ["/start x", "hello", "/mydata"]
    assert stored(settings)[1001]["messages"] == 3


def test_build_app_returns_a_pyrogram_client_that_declares_its_tracking(tmp_path: Path) -> None:
    """DESIGN.md: ``build_app(settings) -> pyrogram.Client``; what tracking adds is typed on it."""
    import pyrogram

    from tracker.app import Tracking

    async def scenario() -> None:
        app = build_app(settings_in(tmp_path), in_memory=True)
        try:
            assert isinstance(app, pyrogram.Client)
            assert isinstance(app.tracking, Tracking) and app.tracking.client is app
            assert app.store is app.tracking.store and app.store.path == tmp_path / "data" / "users.json"
        finally:
            app.tracking.close_store()

    run(scenario())
