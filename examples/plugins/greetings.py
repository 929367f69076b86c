"""A Pyrogram smart plugin for ``bot.py``: set ``plugins = examples/plugins`` in config.ini.

The folder is found from the config file, not from the current directory, and its
handlers run beside the tracker's (tracking is group -1, so users are recorded
even when a plugin stops propagation).
"""

from pyrogram import Client, filters
from pyrogram.types import Message

from .wording import hello_text


@Client.on_message(filters.command("hello"))
async def hello(client: Client, message: Message) -> None:
    """Answer /hello, and stop: no later group sees this message."""
    await message.reply(hello_text(message.from_user.first_name if message.from_user else None))
    message.stop_propagation()


@Client.on_message(filters.command("ping"), group=1)
async def ping(client: Client, message: Message) -> None:
    """Answer /ping from a group of its own."""
    await message.reply("pong")
