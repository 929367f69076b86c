"""The bot path of the audience history: raw updates reach the command and button counts.

A real never-connected ``pyrogram.Client`` (``build_app``) fed raw TL updates
through ``handle_updates`` (tests/telegram_fakes.py); the store is opened in the
configured time zone and ``/stats`` shows today's active users against the same
day last week.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support import settings_in
from tests.telegram_fakes import FakeTelegram, run
from tests.test_bot import StepClock, running
from tracker.models import make_profile
from tracker.periods import Grain
from tracker.store import StoreReader, UserStore

pytestmark = pytest.mark.bot

TOKYO = ZoneInfo("Asia/Tokyo")
#: 00:30 on Thursday 2 May 2024 in Tokyo, still 1 May in UTC: the day must be Tokyo's.
T0 = datetime(2024, 5, 1, 15, 30, tzinfo=UTC)
TODAY = date(2024, 5, 2)


def test_commands_and_buttons_reach_the_history(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, timezone="Asia/Tokyo")
    tg = FakeTelegram(me_username="tracker_bot")
    alice = tg.user(1001, "Alice", username="alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> None:
        async with running(settings, tg, StepClock(T0)) as app:
            assert app.store.timezone == TOKYO
            await tg.feed_each(
                app,
                tg.message(alice, "/start ref42"),
                tg.message(alice, "/help"),
                tg.message(bob, "/Help@tracker_bot now"),
                tg.message(bob, "/cmd@other_bot"),  # another bot's command: not ours
                tg.message(bob, "hello"),
                tg.callback_query(alice, b"vote:1"),
                tg.inline_query(bob, "cats"),  # active, but not a button
            )
            doc = app.store.history_period(Grain.DAY, TODAY)
            assert app.store.get(1001)["source"] == "ref42"  # type: ignore[index]
        assert doc is not None
        assert doc["commands"] == {"/start": 1, "/help": 2}
        assert (doc["buttons"], doc["messages"], doc["active"], doc["new"]) == (1, 5, 2, 2)

    run(scenario())
    # Closed with the store: the figures are in the store file, in Tokyo's day.
    stored = StoreReader(settings.store).table("history_day")["20240502"]
    assert stored["commands"] == {"/start": 1, "/help": 2}


def test_stats_shows_active_today_against_last_week(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, timezone="Asia/Tokyo", admins="1001")
    settings.store.parent.mkdir(parents=True, exist_ok=True)
    with UserStore(settings.store, timezone=TOKYO) as store:  # a week earlier: three users
        for uid in (5, 6, 7):
            store.seen(make_profile(uid, "Old"), T0 - timedelta(days=7))
    tg = FakeTelegram()
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")

    async def scenario() -> list[str]:
        async with running(settings, tg, StepClock(T0)) as app:
            await tg.feed_each(app, tg.message(bob, "hi"), tg.message(alice, "/stats"))
        return tg.invoke.sent_texts()

    texts = run(scenario())
    assert any("Active today: 2 (-1, -33% vs Thu 25 Apr)" in text for text in texts), texts
