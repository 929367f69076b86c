"""The profile counter: rendering, limits, scheduling with an injected clock, FloodWait, restart.

The Telegram boundary is ``client.invoke`` of a real, never-connected, in-memory
``pyrogram.Client``, answered by the shared fake of tests/telegram_fakes.py (real
raw TL results, real ``pyrogram.errors``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pyrogram
import pytest
from pyrogram import errors, raw

from tests.support import profile, settings_in
from tests.telegram_fakes import FakeTelegram
from tracker import bio
from tracker.bio import BioService, OutcomeKind, fit, render, render_for, utf16_len
from tracker.bio import service as bio_service
from tracker.config import ConfigError, Settings
from tracker.models import PROFILE_FIELDS, Profile
from tracker.store import UserStore

pytestmark = pytest.mark.bot

START = 1_800_000_000.0  # an arbitrary fixed origin for the fake clock


# --------------------------------------------------------------------------- helpers


def make_settings(tmp_path: Path, *, bot: bool = True, **tracker: str) -> Settings:
    """A real config.ini in tmp_path, loaded by the real loader."""
    return settings_in(tmp_path, bot_token="123456:TEST-token" if bot else None, **tracker)


class FakeTime:
    """An injected clock and sleep: time moves only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, future)
        self.sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self.sleepers:
                self.sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = [s for s in self.sleepers if s[0] <= target and not s[1].done()]
            if not due:
                break
            wake_at, future = min(due, key=lambda s: s[0])
            self.now = max(self.now, wake_at)
            self.sleepers.remove((wake_at, future))
            future.set_result(None)
            await settle()
        self.now = target
        await settle()

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


async def settle() -> None:
    """Let the background task run until it blocks again."""
    for _ in range(50):
        await asyncio.sleep(0)


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro_fn())


def user(n: int) -> Profile:
    return profile(1000 + n, f"U{n}", username=f"u{n}", language_code="en", is_premium=False)


class Harness:
    """Service + store + client + fake time for one test."""

    def __init__(self, settings: Settings, time_: FakeTime | None = None, *, premium: bool = False) -> None:
        self.settings = settings
        self.time = time_ or FakeTime()
        self.premium = premium

    async def __aenter__(self) -> Harness:
        self.tg = FakeTelegram(bot=self.settings.is_bot, me_first_name="Me", me_premium=self.premium)
        self.client = pyrogram.Client(
            "test-bio", api_id=self.settings.api_id, api_hash=self.settings.api_hash,
            bot_token=self.settings.bot_token, in_memory=True, no_updates=True,
        )  # fmt: skip
        await self.tg.attach(self.client)
        self.store = UserStore(self.settings.store)
        self.service = BioService(
            self.client, self.store, self.settings, clock=self.time.clock, sleep=self.time.sleep
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
        self.store.close()
        await self.tg.detach(self.client)

    def add_users(self, *numbers: int) -> None:
        """What the tracking handler does for each new user: store.seen, then notify."""
        for n in numbers:
            assert self.store.seen(user(n), self.time.at()) is True
            self.service.notify_changed()


# --------------------------------------------------------------------------- rendering


def test_utf16_length_counts_like_telegram() -> None:
    assert utf16_len("Users") == 5
    assert utf16_len("👥") == 2  # outside the BMP: a surrogate pair
    assert utf16_len("é") == 1
    assert utf16_len("👨‍👩‍👧") == 8  # three emoji and two ZWJ


def test_render_uses_thousands_separators() -> None:
    values = {"users": 1234567, "reachable": 1234, "active_30d": 999, "new_today": 0}
    text = render("👥 {users} / {reachable} / {active_30d} / {new_today}", values)
    assert text == "👥 1,234,567 / 1,234 / 999 / 0"


def test_unknown_placeholder_is_a_config_error_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bio_template.*\{followers\}"):
        make_settings(tmp_path, bio_template="Users: {followers}")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a" * 69 + "👥", 70, "a" * 69),  # the emoji needs 2 units, only 1 is left
        ("a" * 68 + "👥", 70, "a" * 68 + "👥"),  # exactly at the limit: untouched
        ("ab👨‍👩‍👧cd", 9, "ab"),  # a ZWJ family is one character: not split
        ("ab🇩🇪🇫🇷", 6, "ab🇩🇪"),  # flags are pairs of regional indicators
        ("abe\u0301e\u0301", 4, "abe\u0301"),  # a combining accent stays with its letter
        ("Users: 1,234 and more", 12, "Users: 1,234"),
    ],
)
def test_fit_cuts_at_a_character_boundary(text: str, limit: int, expected: str) -> None:
    fitted, cut = fit(text, limit)
    assert fitted == expected
    assert cut is (utf16_len(text) > limit)
    assert utf16_len(fitted) <= limit
    fitted.encode("utf-8")  # no lone surrogate


def test_limits_per_mode(tmp_path: Path) -> None:
    long_template = "👥 Users: {users} " + "x" * 200
    values = {"users": 1234, "reachable": 0, "active_30d": 0, "new_today": 0}
    bot = make_settings(tmp_path / "bot", bio_template=long_template)
    userbot = make_settings(tmp_path / "user", bot=False, bio_template=long_template)
    in_bot_mode = render_for(bot, values, is_bot=True, premium=None)
    assert [in_bot_mode.length, in_bot_mode.limit] == [120, 120]
    plain = render_for(userbot, values, is_bot=False, premium=False)
    premium = render_for(userbot, values, is_bot=False, premium=True)
    assert (plain.limit, premium.limit) == (70, 140)
    assert plain.length == 70 and premium.length == 140
    assert plain.about.startswith("👥 Users: 1,234 xx")
    assert plain.warnings and "70" in plain.warnings[0]
    ok = render_for(make_settings(tmp_path / "ok"), values, is_bot=True, premium=None)
    assert ok.about == "👥 Users: 1,234" and ok.warnings == ()


def test_description_limit_is_512(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, description_template="{users} " + "é" * 600)
    values = {"users": 7, "reachable": 0, "active_30d": 0, "new_today": 0}
    rendered = render_for(settings, values, is_bot=True, premium=None)
    assert rendered.description is not None
    assert utf16_len(rendered.description) == 512
    assert any("description" in w for w in rendered.warnings)


# --------------------------------------------------------------------------- targets


def test_bot_mode_sends_exactly_set_bot_info(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path)) as h:
            h.add_users(1, 2)
            await h.service.start()
            await settle()
            assert len(h.tg.invoke.calls) == 1
            call = h.tg.invoke.calls[0]
            assert type(call) is raw.functions.bots.SetBotInfo
            assert (call.lang_code, call.about, call.description, call.name, call.bot) == (
                "", "👥 Users: 2", None, None, None
            )
            # A valid TL request: it round-trips through its wire format.
            again = raw.core.TLObject.read(BytesIO(call.write()))
            assert (again.lang_code, again.about) == ("", "👥 Users: 2")

    run(main)


def test_bot_mode_sends_description_when_configured(tmp_path: Path) -> None:
    async def main() -> None:
        settings = make_settings(
            tmp_path, description_template="Tracking {users} users, {reachable} reachable"
        )
        async with Harness(settings) as h:
            h.add_users(1)
            await h.service.start()
            await settle()
            (call,) = h.tg.invoke.calls
            assert type(call) is raw.functions.bots.SetBotInfo
            assert (call.about, call.description) == ("👥 Users: 1", "Tracking 1 users, 1 reachable")
            assert h.store.meta["bio_description"] == "Tracking 1 users, 1 reachable"

    run(main)


@pytest.mark.parametrize(("premium", "limit"), [(False, 70), (True, 140)])
def test_user_mode_sends_exactly_update_profile(tmp_path: Path, premium: bool, limit: int) -> None:
    async def main() -> None:
        settings = make_settings(tmp_path, bot=False, bio_template="{users} " + "y" * 200)
        async with Harness(settings, premium=premium) as h:
            h.add_users(1)
            await h.service.start()
            await settle()
            (call,) = h.tg.invoke.calls
            assert type(call) is raw.functions.account.UpdateProfile
            assert (call.first_name, call.last_name) == (None, None)
            assert call.about == ("1 " + "y" * 200)[:limit]
            assert utf16_len(call.about) == limit

    run(main)


# --------------------------------------------------------------------------- scheduling


def test_burst_inside_interval_gives_one_update_at_its_end(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="3600")) as h:
            await h.service.start()
            await settle()
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0"]  # start-up update
            for n in range(1, 51):  # a burst of new users across the interval
                await h.time.advance(60)
                h.add_users(n)
                await settle()
            assert h.time.now - START == 3000
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0"]  # nothing inside the interval
            assert h.store.meta["bio_next_at"] == bio.stamp(START + 3600)  # the pending update is recorded
            await h.time.advance(599)
            assert len(h.tg.invoke.calls) == 1
            await h.time.advance(1)  # the interval ends
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 50"]
            meta = h.store.meta
            assert (meta["bio_text"], meta["bio_set_at"], meta["bio_next_at"], meta["bio_error"]) == (
                "👥 Users: 50", bio.stamp(START + 3600), None, None
            )
            await h.time.advance(10 * 3600)  # nothing changed: nothing more is sent
            assert len(h.tg.invoke.calls) == 2

    run(main)


def test_change_after_a_quiet_interval_is_sent_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="600")) as h:
            await h.service.start()
            await settle()
            await h.time.advance(5000)
            h.add_users(1)
            await settle()
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 1"]

    run(main)


def test_time_dependent_counts_are_refreshed_without_any_new_user(tmp_path: Path) -> None:
    """{active_30d} falls as users age out of the window: no event says so, a tick does."""
    async def main() -> None:
        settings = make_settings(tmp_path, bio_interval="3600", bio_template="Active: {active_30d}")
        async with Harness(settings) as h:
            h.add_users(1, 2)
            await h.service.start()
            await settle()
            assert h.tg.invoke.bio_texts() == ["Active: 2"]
            await h.time.advance(29 * 86400)
            assert h.tg.invoke.bio_texts() == ["Active: 2"]  # still inside 30 days: nothing to send
            await h.time.advance(2 * 86400)
            assert h.tg.invoke.bio_texts() == ["Active: 2", "Active: 0"]

    run(main)


def test_same_text_is_never_sent_twice(tmp_path: Path) -> None:
    async def main() -> None:
        settings = make_settings(
            tmp_path, bio_interval="60", bio_template="{users} users, {reachable} reachable"
        )
        async with Harness(settings) as h:
            h.add_users(1)
            await h.service.start()
            await settle()
            for _ in range(5):  # notifications without a change of the text
                h.service.notify_changed()
                await h.time.advance(120)
            assert h.tg.invoke.bio_texts() == ["1 users, 1 reachable"]
            # block then unblock inside one interval: the text ends where it started
            h.store.set_blocked(1001, True, h.time.at())
            h.service.notify_changed()
            await settle()
            assert h.tg.invoke.bio_texts() == ["1 users, 1 reachable", "1 users, 0 reachable"]
            h.store.set_blocked(1001, False, h.time.at())
            h.service.notify_changed()
            h.store.set_blocked(1001, True, h.time.at())
            h.service.notify_changed()
            await h.time.advance(120)
            assert h.tg.invoke.bio_texts() == ["1 users, 1 reachable", "1 users, 0 reachable"]
            reply = await h.service.refresh(force=True)
            assert reply.ok is True and reply.kind is OutcomeKind.UNCHANGED
            assert len(h.tg.invoke.calls) == 2

    run(main)


def test_refresh_without_force_respects_the_interval(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="3600")) as h:
            await h.service.start()
            await settle()
            h.store.seen(user(1), h.time.at())  # no notify: the refresh request finds it
            reply = await h.service.refresh(force=False)
            assert reply.ok is True and reply.kind is OutcomeKind.PENDING
            assert reply.next_at == bio.stamp(START + 3600)
            assert len(h.tg.invoke.calls) == 1
            reply = await h.service.refresh(force=True)
            assert (reply.ok, reply.kind, reply.text) == (True, OutcomeKind.SET, "👥 Users: 1")
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 1"]
            await h.time.advance(3600)  # the pending update was the same text: not sent again
            assert len(h.tg.invoke.calls) == 2

    run(main)


def test_notify_changed_is_thread_safe(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="0")) as h:
            await h.service.start()
            await settle()
            h.store.seen(user(1), h.time.at())
            # pyrogram runs sync handlers in its thread pool
            await asyncio.get_running_loop().run_in_executor(None, h.service.notify_changed)
            await settle()
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 1"]

    run(main)


# --------------------------------------------------------------------------- errors


def test_flood_wait_is_waited_out_and_handlers_keep_working(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="0")) as h:
            h.tg.invoke.fail_next(errors.FloodWait(value=30))
            await h.service.start()
            await settle()
            assert len(h.tg.invoke.calls) == 1
            assert h.store.meta["bio_error"].startswith("FLOOD_WAIT_30")
            # tracking goes on during the wait: the handlers' calls return at once
            h.add_users(1, 2, 3)
            await settle()
            assert len(h.store) == 3
            assert len(h.tg.invoke.calls) == 1
            reply = await h.service.refresh(force=True)  # not even --force sends during a FloodWait
            assert reply.ok is False and reply.flood_wait == 30 + bio.FLOOD_MARGIN  # seconds left
            assert "30" in h.store.meta["bio_error"]
            await h.time.advance(30)
            assert len(h.tg.invoke.calls) == 1  # "plus a little"
            await h.time.advance(bio.FLOOD_MARGIN)
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 3"]
            assert h.store.meta["bio_error"] is None

    run(main)


def test_other_errors_are_logged_once_and_retried_with_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="0")) as h:
            h.tg.invoke.fail_next(errors.BotInvalid(), errors.BotInvalid(), errors.BotInvalid())
            with caplog.at_level(logging.DEBUG, logger="tracker.bio"):
                await h.service.start()
                await settle()
                assert len(h.tg.invoke.calls) == 1
                await h.time.advance(bio.BACKOFF_START)
                assert len(h.tg.invoke.calls) == 2
                await h.time.advance(bio.BACKOFF_START * 2 - 1)
                assert len(h.tg.invoke.calls) == 2  # doubled back-off
                await h.time.advance(1)
                assert len(h.tg.invoke.calls) == 3
                # pyrogram versions word the description differently
                assert h.store.meta["bio_error"].startswith("BOT_INVALID: ")
                await h.time.advance(bio.BACKOFF_START * 4)
                assert len(h.tg.invoke.calls) == 4
            errors_logged = [
                r for r in caplog.records if r.levelno >= logging.ERROR and "BOT_INVALID" in r.message
            ]
            assert len(errors_logged) == 1
            assert h.store.meta["bio_error"] is None and h.store.meta["bio_text"] == "👥 Users: 0"

    run(main)


def test_network_error_is_retried(tmp_path: Path) -> None:
    async def main() -> None:
        async with Harness(make_settings(tmp_path, bio_interval="0")) as h:
            h.tg.invoke.fail_next(OSError(101, "Network is unreachable"))
            await h.service.start()
            await settle()
            assert h.store.meta["bio_error"] == "network: Network is unreachable"
            await h.time.advance(bio.BACKOFF_START)
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0", "👥 Users: 0"]
            assert h.store.meta["bio_error"] is None

    run(main)


# --------------------------------------------------------------------------- restart


def test_restart_neither_resends_nor_forgets_a_pending_update(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bio_interval="3600")
    clock = FakeTime()

    async def first_run() -> None:
        async with Harness(settings, clock) as h:
            await h.service.start()
            await settle()
            await h.time.advance(100)
            h.add_users(1)  # pending until START + 3600
            await settle()
            assert h.tg.invoke.bio_texts() == ["👥 Users: 0"]

    async def second_run() -> None:
        async with Harness(settings, clock) as h:
            await h.service.start()
            await settle()
            assert h.tg.invoke.bio_texts() == []  # a restart inside the interval sends nothing
            await h.time.advance(START + 3600 - clock.now - 1)
            assert h.tg.invoke.bio_texts() == []
            await h.time.advance(1)
            assert h.tg.invoke.bio_texts() == ["👥 Users: 1"]

    run(first_run)
    assert UserStore(settings.store, readonly=True).meta["bio_next_at"] == bio.stamp(START + 3600)
    clock.now += 500  # the bot was down for a while
    run(second_run)


def test_restart_with_unchanged_text_sends_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bio_interval="60")
    clock = FakeTime()
    sent: list[list[str]] = []

    async def one_run() -> None:
        async with Harness(settings, clock) as h:
            await h.service.start()
            await settle()
            await h.time.advance(1000)
            sent.append(h.tg.invoke.bio_texts())

    run(one_run)
    run(one_run)
    assert sent == [["👥 Users: 0"], []]


def test_restart_honours_a_flood_wait(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bio_interval="0")
    clock = FakeTime()
    seen: dict[str, Any] = {}

    async def first() -> None:
        async with Harness(settings, clock) as h:
            h.tg.invoke.fail_next(errors.FloodWait(value=600))
            await h.service.start()
            await settle()

    async def second() -> None:
        async with Harness(settings, clock) as h:
            await h.service.start()
            await settle()
            seen["during"] = list(h.tg.invoke.bio_texts())
            await h.time.advance(600)
            seen["after"] = list(h.tg.invoke.bio_texts())

    run(first)
    clock.now += 100
    run(second)
    assert seen == {"during": [], "after": ["👥 Users: 0"]}



def test_large_store_is_counted_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bio_service, "OFFLOAD_RECORDS", 2)
    threads: list[str] = []
    real = bio_service.store_values

    def spy(*args: Any, **kwargs: Any) -> dict[str, int]:
        import threading

        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(bio_service, "store_values", spy)

    async def main() -> None:
        settings = make_settings(tmp_path, bio_template="{reachable} of {users}")
        async with Harness(settings) as h:
            h.add_users(1, 2, 3)
            h.store.set_blocked(1001, True, h.time.at())
            await h.service.start()
            for _ in range(500):  # a real thread: wait for it in real time (bounded)
                if h.tg.invoke.calls:
                    break
                await asyncio.sleep(0.01)
            assert h.tg.invoke.bio_texts() == ["2 of 3"]

    run(main)
    assert threads and all(name != "MainThread" for name in threads)


def test_error_is_cleared_when_the_text_goes_back_to_what_is_shown(tmp_path: Path) -> None:
    async def main() -> None:
        settings = make_settings(tmp_path, bio_interval="0", bio_template="{reachable} reachable")
        async with Harness(settings) as h:
            h.add_users(1)
            await h.service.start()
            await settle()
            h.tg.invoke.fail_next(errors.BotInvalid())
            h.store.set_blocked(1001, True, h.time.at())
            h.service.notify_changed()
            await settle()
            assert h.tg.invoke.bio_texts() == ["1 reachable", "0 reachable"]  # the second one failed
            assert h.store.meta["bio_error"].startswith("BOT_INVALID")
            h.store.set_blocked(1001, False, h.time.at())  # back to what the profile shows
            await h.time.advance(bio.BACKOFF_START)
            assert h.tg.invoke.bio_texts() == ["1 reachable", "0 reachable"]  # nothing to send
            assert (h.store.meta["bio_error"], h.store.meta["bio_next_at"]) == (None, None)

    run(main)


def test_a_forced_refresh_after_a_restart_still_waits_out_a_flood_wait(tmp_path: Path) -> None:
    # The kind of the stored error (not its text) says that even --force must wait.
    settings = make_settings(tmp_path, bio_interval="0")
    clock = FakeTime()
    replies: list[Any] = []

    async def first() -> None:
        async with Harness(settings, clock) as h:
            h.tg.invoke.fail_next(errors.FloodWait(value=600))
            await h.service.start()
            await settle()

    async def second() -> None:
        async with Harness(settings, clock) as h:
            replies.append(await h.service.refresh(force=True))
            assert h.tg.invoke.calls == []

    run(first)
    assert UserStore(settings.store, readonly=True).meta["bio_error_kind"] == "flood_wait"
    clock.now += 100
    run(second)
    [reply] = replies
    assert (reply.kind, reply.ok, reply.flood_wait) == (OutcomeKind.FLOOD_WAIT, False, 502)


def test_counter_values_agree_with_stats(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from tracker.bio import count_values
    from tracker.models import format_ts
    from tracker.stats import compute_stats

    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    tz = ZoneInfo("Asia/Tehran")  # "today" starts at 20:30 UTC the day before
    day = 86_400
    records = []
    for n, (first_ago, last_ago, blocked) in enumerate(
        [(0, 0, False), (15 * 3600, 3600, True), (17 * 3600, 17 * 3600, False), (40 * day, 31 * day, False),
         (40 * day, 29 * day, True), (2 * day, 2 * day, False)]
    ):
        records.append({
            **dict(zip(("id", *PROFILE_FIELDS), user(n), strict=True)),
            "first_seen": format_ts(now - timedelta(seconds=first_ago)),
            "last_seen": format_ts(now - timedelta(seconds=last_ago)), "messages": 1, "source": None,
            "blocked": blocked, "blocked_at": None,
        })  # fmt: skip
    stats = compute_stats(records, now=now, tz=tz)
    assert count_values(records, now=now, tz=tz) == {
        "users": stats["total_users"],
        "reachable": stats["reachable_users"],
        "active_30d": stats["active_30d"],
        "new_today": stats["new_today"],
    }
    assert stats["new_today"] == 2 and stats["active_30d"] == 5  # the figures are not all trivial


@pytest.mark.parametrize(
    "outcome",
    [
        bio.Outcome(OutcomeKind.SET, text="👥 Users: 5", length=11, limit=120, target="bot short description",
                    set_at="2026-01-01T00:00:00Z"),
        bio.Outcome(OutcomeKind.PENDING, text="x", length=1, limit=70, next_at="2026-01-01T01:00:00Z",
                    warnings=("bio_template renders to 80 characters",)),
        bio.Outcome(OutcomeKind.FLOOD_WAIT, flood_wait=42, next_at="2026-01-01T00:00:44Z", error="wait"),
        bio.Outcome(OutcomeKind.FAILED, error="cannot set the user bio: BOT_INVALID"),
    ],
)
def test_an_outcome_crosses_the_control_channel_unchanged(outcome: bio.Outcome) -> None:
    import json

    reply = json.loads(json.dumps(outcome.to_reply()))
    assert bio.Outcome.from_reply(reply) == outcome
    failed = outcome.kind in {OutcomeKind.FAILED, OutcomeKind.FLOOD_WAIT}
    assert reply["ok"] is outcome.ok is (not failed)


def test_a_reply_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        bio.Outcome.from_reply({"ok": True, "changed": True})
