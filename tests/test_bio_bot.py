"""The profile counter driven by the bot's real handlers (raw updates -> handlers -> store -> bio).

The BioService runs on an injected clock; Telegram is the recorder of
tests/telegram_fakes.py behind ``client.invoke``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyrogram import errors, raw

from tests.telegram_fakes import FakeTelegram
from tests.test_bio import START, FakeTime, make_settings, settle
from tracker import bio
from tracker.bio import BioService
from tracker.bot import build_app

pytestmark = pytest.mark.bot


def set_bot_info_abouts(tg: FakeTelegram) -> list[str]:
    return [call.about for call in tg.invoke.of_type(raw.functions.bots.SetBotInfo)]


async def with_bot(tmp_path: Path, scenario: Any, **config: str) -> None:
    settings = make_settings(tmp_path, **config)
    tg = FakeTelegram(bot=True)
    time_ = FakeTime()
    app = build_app(settings, in_memory=True, clock=lambda: datetime.fromtimestamp(time_.now, UTC))
    await tg.attach(app)
    service = BioService(app, app.store, settings, clock=time_.clock, sleep=time_.sleep)
    app.tracking.on_change.append(service.notify_changed)  # what the bot's wiring does
    try:
        await scenario(app, tg, service, time_)
    finally:
        await service.stop()
        await tg.detach(app)
        app.store.close()


def test_new_users_through_the_handlers_update_the_bio_once_per_interval(tmp_path: Path) -> None:
    async def scenario(app: Any, tg: FakeTelegram, service: BioService, time_: FakeTime) -> None:
        tg.invoke.respond(raw.functions.bots.SetBotInfo, True)
        await service.start()
        await settle()
        assert set_bot_info_abouts(tg) == ["👥 Users: 0"]
        for n in range(1, 6):
            await time_.advance(100)
            await tg.feed(app, tg.message(tg.user(2000 + n, f"U{n}"), "/start"))
            await settle()
        assert len(app.store) == 5
        assert set_bot_info_abouts(tg) == ["👥 Users: 0"]
        await time_.advance(3600 - 500)
        assert set_bot_info_abouts(tg) == ["👥 Users: 0", "👥 Users: 5"]
        call = tg.invoke.of_type(raw.functions.bots.SetBotInfo)[-1]
        assert (call.lang_code, call.description) == ("", None)

    asyncio.run(with_bot(tmp_path, scenario))


def test_flood_wait_does_not_touch_the_handlers(tmp_path: Path) -> None:
    async def scenario(app: Any, tg: FakeTelegram, service: BioService, time_: FakeTime) -> None:
        answers: list[Any] = [errors.FloodWait(value=120)]

        def set_bot_info(query: Any) -> Any:
            if answers:
                raise answers.pop(0)
            return True

        tg.invoke.respond(raw.functions.bots.SetBotInfo, set_bot_info)
        await service.start()
        await settle()
        assert len(tg.invoke.of_type(raw.functions.bots.SetBotInfo)) == 1
        # During the FloodWait users keep coming: every one is tracked and welcomed.
        for n in range(1, 4):
            await tg.feed(app, tg.message(tg.user(3000 + n, f"V{n}"), "/start"))
        assert len(app.store) == 3
        assert tg.invoke.sent_texts() == ["Hi V1!", "Hi V2!", "Hi V3!"]
        assert len(tg.invoke.of_type(raw.functions.bots.SetBotInfo)) == 1
        assert app.store.meta["bio_error"].startswith("FLOOD_WAIT_120")
        await time_.advance(120 + bio.FLOOD_MARGIN)
        assert set_bot_info_abouts(tg) == ["👥 Users: 0", "👥 Users: 3"]
        assert app.store.meta["bio_next_at"] is None
        assert time_.now == START + 120 + bio.FLOOD_MARGIN

    asyncio.run(with_bot(tmp_path, scenario, bio_interval="0"))


def test_blocking_the_bot_changes_reachable(tmp_path: Path) -> None:
    async def scenario(app: Any, tg: FakeTelegram, service: BioService, time_: FakeTime) -> None:
        tg.invoke.respond(raw.functions.bots.SetBotInfo, True)
        alice = tg.user(4001, "Alice")
        await tg.feed(app, tg.message(alice, "/start"))
        await service.start()
        await settle()
        assert set_bot_info_abouts(tg) == ["1 users, 1 reachable"]
        await tg.feed(app, tg.bot_stopped(alice))
        await settle()
        assert set_bot_info_abouts(tg) == ["1 users, 1 reachable", "1 users, 0 reachable"]

    asyncio.run(
        with_bot(tmp_path, scenario, bio_interval="0", bio_template="{users} users, {reachable} reachable")
    )
