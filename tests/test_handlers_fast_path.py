"""The handlers' per-update shortcuts give the same results as the general path.

``from_user`` builds a Profile without ``make_profile`` when the user's fields
are already normalised, and the command group decides with its own handler
check (a text test) instead of a pyrogram filter: both must behave exactly as
the general code did, for every shape of input.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrogram
import pytest
from pyrogram.handlers import CallbackQueryHandler, MessageHandler

from tests.support import settings_in
from tests.telegram_fakes import FakeTelegram, run
from tracker.bot import TrackerClient, build_app
from tracker.commands import COMMAND_GROUP, FORGET_CONFIRM_DATA
from tracker.models import Profile, make_profile
from tracker.periods import Grain
from tracker.profiles import from_user

pytestmark = pytest.mark.bot

NAMES = [None, "", "Ann", "Пётр", "😀 family", "bad \ud800 half", "zero\u200bwidth"]
USERNAMES = [None, "", "ann_42", "Ann"]
LANGUAGES = [None, "", "en", "pt-br"]
FLAGS = [None, False, True]
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_from_user_is_make_profile_for_every_shape_of_user() -> None:
    shapes = itertools.product(NAMES, NAMES[:4], USERNAMES, LANGUAGES, FLAGS, FLAGS)
    for first, last, username, language, is_bot, is_premium in shapes:
        user = pyrogram.types.User(
            id=42, first_name=first, last_name=last, username=username,
            language_code=language, is_bot=is_bot, is_premium=is_premium,
        )  # fmt: skip
        expected = make_profile(42, first, last, username, language, is_bot, is_premium)
        profile = from_user(user)
        assert type(profile) is Profile
        assert profile == expected
        assert [type(value) for value in profile] == [type(value) for value in expected], profile


def test_from_user_keeps_make_profiles_checks_of_the_id() -> None:
    with pytest.raises(TypeError, match="user id must be an int"):
        from_user(pyrogram.types.User(id=True, first_name="Flag"))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def tracking(
    tmp_path: Path, tg: FakeTelegram, *owners: tuple[Any, int]
) -> AsyncIterator[TrackerClient]:
    """A tracker client at T0 attached to ``tg``; the owner's ``(handler, group)`` added after tracking."""
    app = build_app(settings_in(tmp_path), in_memory=True, clock=lambda: T0)
    for handler, group in owners:
        app.add_handler(handler, group=group)
    await tg.attach(app)
    try:
        yield app
    finally:
        await tg.detach(app)
        app.store.close()


TEXTS = {
    # text: (answered by the tracker, passed on to the owner's handler of the same group)
    "/start": (True, False),
    "/START@Tracker_Bot": (True, False),
    "/mydata 😀 emoji after a command": (True, False),
    "/start@other_bot": (False, True),
    "/help": (False, True),
    "/": (False, True),
    "hi /start": (False, True),
    "😀 /stats": (False, True),
    "plain text": (False, True),
}


def test_the_command_group_takes_only_the_trackers_commands(tmp_path: Path) -> None:
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    passed_on: list[str] = []

    async def owners_handler(client: Any, message: Any) -> None:
        passed_on.append(message.text)

    async def scenario() -> None:
        async with tracking(tmp_path, tg, (MessageHandler(owners_handler), COMMAND_GROUP)) as app:
            for text in TEXTS:
                sent_before = len(tg.invoke.sent_texts())
                await tg.feed(app, tg.message(alice, text))
                answered = len(tg.invoke.sent_texts()) > sent_before
                assert (answered, text in passed_on) == TEXTS[text], text
            record = app.store.get(1001)
            assert record is not None and record["messages"] == len(TEXTS)
            day = app.store.history_period(Grain.DAY, T0.date())
            assert day is not None
            # Every /command of this bot (or of none) counts, whoever answers it.
            assert day["commands"] == {"/start": 2, "/mydata": 1, "/help": 1}, day["commands"]

    run(scenario())


def test_the_forget_button_check_ignores_other_buttons_even_binary_ones(tmp_path: Path, caplog: Any) -> None:
    """An owner's buttons reach the owner: no error from the tracker's button check, nothing erased.

    Callback data that is not UTF-8 reaches handlers as ``bytes``; a text regex
    filter raised on it (logged by pyrogram as an error on every press).
    """
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    pressed: list[str | bytes] = []

    async def owners_buttons(client: Any, query: Any) -> None:
        pressed.append(query.data)

    async def scenario() -> None:
        async with tracking(tmp_path, tg, (CallbackQueryHandler(owners_buttons), COMMAND_GROUP)) as app:
            await tg.feed(app, tg.message(alice, "hi"))
            for data in (b"\xff\xfebinary", b"page:2", FORGET_CONFIRM_DATA.encode() + b"\n"):
                await tg.feed(app, tg.callback_query(alice, data, message_id=1))
            record = app.store.get(1001)
            assert record is not None and record["messages"] == 1  # tracked, never erased
            day = app.store.history_period(Grain.DAY, T0.date())
            assert day is not None and day["buttons"] == 3

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert pressed == [b"\xff\xfebinary", "page:2", FORGET_CONFIRM_DATA + "\n"]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


#: Updates each tracking callback handles, built for a user: (what the log line names, the raw update).
FAILING_KINDS = {
    "message": lambda tg, user: tg.message(user, "plain text"),
    "edit": lambda tg, user: tg.message(user, "edited", edit=True, message_id=1),
    "button": lambda tg, user: tg.callback_query(user, b"page:2", message_id=1),
    "inline query": lambda tg, user: tg.inline_query(user, "cats"),
    "chosen inline result": lambda tg, user: tg.chosen_inline_result(user, "cats"),
}


@pytest.mark.parametrize("kind", FAILING_KINDS)
def test_a_failing_tracking_callback_is_logged_with_the_update_and_tracking_goes_on(
    tmp_path: Path, caplog: Any, kind: str
) -> None:
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> tuple[Any, list[str]]:
        async with tracking(tmp_path, tg) as app:
            await tg.feed(app, tg.message(bob, "the first message"))  # message 1, for edits and buttons
            real_seen = app.store.seen

            def failing_for_alice(profile: Profile, at: datetime, **flags: Any) -> bool:
                if profile.id == 1001:
                    raise RuntimeError("disk on fire")
                return bool(real_seen(profile, at, **flags))

            app.store.seen = failing_for_alice
            update = FAILING_KINDS[kind](tg, alice)
            with caplog.at_level(logging.ERROR, logger="tracker"):
                await tg.feed(app, update, tg.message(bob, "still tracked"))
            app.store.seen = real_seen
            await tg.feed(app, FAILING_KINDS[kind](tg, alice))
            bob_record, alice_record = app.store.get(1002), app.store.get(1001)
            assert bob_record is not None and bob_record["messages"] == 2
            assert alice_record is not None  # tracked once seen() works again
            errors = [r.getMessage() for r in caplog.records if r.name.startswith("tracker") and r.exc_info]
            return update, errors

    update, errors = run(scenario())
    assert len(errors) == 1, errors
    assert errors[0].startswith("tracking failed for ")
    if kind in ("message", "edit"):
        assert f"message {update.message.id} in chat 1001" in errors[0]
    else:
        update_id = getattr(update, "query_id", None) or update.id
        assert str(update_id) in errors[0]
