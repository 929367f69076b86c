"""A running bot for the tests that need one in another process.

The real wiring (``tracker.bot.build_app``: store, handlers, BioService,
ControlServer), with Telegram faked at ``client.invoke`` by
tests/telegram_fakes.py. Talks over its standard streams:

* prints ``ready`` once the app has started (the control socket is open and
  the start-up bio update has been attempted);
* each stdin line ``add ID`` feeds a ``/start`` from user ID, then prints ``added``;
* at the end of stdin it stops the app and prints, as one JSON line, every
  request that set a bio text: ``[{"type": "SetBotInfo", "about": "..."}, ...]``.

Usage: ``python tests/procs/running_bot.py CONFIG [--users N] [--telegram ok|flood|refuse]``
(with this checkout on ``PYTHONPATH``). ``--users`` feeds N ``/start`` messages
before the app starts; ``--telegram flood`` answers the first bio request with
FLOOD_WAIT_42, ``refuse`` answers every one with ABOUT_TOO_LONG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pyrogram import errors, raw

from tests.telegram_fakes import FakeTelegram
from tracker.bot import build_app
from tracker.config import load


def bio_answer(mode: str) -> Any:
    """What the fake Telegram answers to ``bots.SetBotInfo`` in ``mode``."""
    if mode == "refuse":

        def refuse(query: Any) -> Any:
            raise errors.AboutTooLong()

        return refuse
    if mode == "flood":
        calls = 0

        def flood_once(query: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise errors.FloodWait(value=42)
            return True

        return flood_once
    return True


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--telegram", choices=("ok", "flood", "refuse"), default="ok")
    args = parser.parse_args(argv)

    tg = FakeTelegram(bot=True)
    tg.invoke.respond(raw.functions.bots.SetBotInfo, bio_answer(args.telegram))
    app = build_app(load(args.config), in_memory=True)
    await tg.attach(app)
    for n in range(args.users):
        await tg.feed(app, tg.message(tg.user(1000 + n, f"U{n}"), "/start"))
    await app.tracking.start()  # what the client's start() does once signed in
    await asyncio.sleep(0.2)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        user_id = int(line.split()[1])
        await tg.feed(app, tg.message(tg.user(user_id, "New"), "/start"))
        print("added", flush=True)
    await app.tracking.stop()
    await tg.detach(app)
    app.store.close()
    bio_requests = [call for call in tg.invoke.calls if hasattr(call, "about")]
    print(json.dumps([{"type": type(c).__name__, "about": c.about} for c in bio_requests]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
