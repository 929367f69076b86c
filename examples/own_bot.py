"""An owner's own bot with the tracker added: one line, ``tracker.attach(app)``.

Run it beside a ``config.ini`` (store, admins, bio_template ...; no token needed
there, the client has its own credentials)::

    API_ID=12345 API_HASH=0123... BOT_TOKEN=123:ABC python examples/own_bot.py

Every user who writes to the bot is recorded, the profile shows the live count,
and ``cli.py stats`` / ``forget`` / ``refresh-bio`` work against the running bot.
The owner's handlers run as before: tracking sits in group -1 and never stops
propagation, so even ``/hello`` below, which stops propagation, is tracked.
"""

from __future__ import annotations

import os
from typing import Any

from pyrogram import Client, filters
from pyrogram.types import Message

import tracker


def build(
    config: str | os.PathLike[str] | None = None, **client_options: Any
) -> tuple[Client, tracker.Tracking]:
    """The owner's client with its handlers, and the tracking attached to it."""
    app = Client(
        "own_bot",
        api_id=os.environ["API_ID"],
        api_hash=os.environ["API_HASH"],
        bot_token=os.environ["BOT_TOKEN"],
        **client_options,
    )
    tracking = tracker.attach(app, config)  # the one line

    @app.on_message(filters.command("hello"))
    async def hello(client: Client, message: Message) -> None:
        # The store is the tracker's: the sender is already recorded (group -1 ran first).
        await message.reply(f"Hello! You are one of {len(tracking.store):,} users.")
        message.stop_propagation()  # the owner's choice; tracking has already happened

    @app.on_message(filters.command("active"))
    async def active(client: Client, message: Message) -> None:
        stats = tracking.stats()  # the same document as `cli.py stats --json`
        active_users, users = stats["active_30d"], stats["total_users"]
        await message.reply(f"{active_users:,} of {users:,} users were active this month.")

    @app.on_message(filters.private & filters.text, group=1)
    async def echo(client: Client, message: Message) -> None:
        await message.reply(message.text)  # never reached for /hello: it stopped propagation

    return app, tracking


if __name__ == "__main__":
    client, _ = build()
    client.run()  # start, idle until Ctrl-C / SIGTERM, stop (the store is closed on stop)
