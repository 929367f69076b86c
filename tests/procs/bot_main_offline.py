"""``tracker.bot.main()`` with only the network faked, for the signal tests.

The real ``pyrogram.Client.start``/``stop`` run, with the fake Telegram of
tests/telegram_fakes.py behind ``connect``/``invoke``. Once started, Alice sends
``/start from_sub`` and Bob sends "hi" then blocks the bot; then ``READY`` is
printed. ``STOPPED`` is printed once the client has stopped.

Usage: ``python tests/procs/bot_main_offline.py [bot.py arguments]`` (with this
checkout on ``PYTHONPATH``).
"""

from __future__ import annotations

import sys
from typing import Any

import pyrogram

from tests.telegram_fakes import FakeTelegram
from tracker import bot

tg = FakeTelegram()
alice = tg.user(1001, "Alice", username="alice")
bob = tg.user(1002, "Bob")
tg.offline(pyrogram.Client)  # only the network is fake: the real start() and stop() run
real_start, real_stop = pyrogram.Client.start, pyrogram.Client.stop


async def start(self: pyrogram.Client, *args: Any, **kwargs: Any) -> pyrogram.Client:
    await real_start(self, *args, **kwargs)
    await tg.feed(self, tg.message(alice, "/start from_sub"), tg.message(bob, "hi"), tg.bot_stopped(bob))
    print("READY", flush=True)
    return self


async def stop(self: pyrogram.Client, *args: Any, **kwargs: Any) -> pyrogram.Client:
    await real_stop(self, *args, **kwargs)
    print("STOPPED", flush=True)
    return self


if __name__ == "__main__":
    pyrogram.Client.start = start  # type: ignore[method-assign]
    pyrogram.Client.stop = stop  # type: ignore[method-assign]
    bot.main(sys.argv[1:])
