"""The one Telegram request of the counter, and how its failures read.

Raw functions through ``client.invoke``, because pyrogram 2.0.106 has no
high-level method for either profile text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pyrogram
from pyrogram import errors, raw

from .text import Rendered, target_name


class BioError(Exception):
    """A profile update could not be made; the message is one line."""


def update_request(rendered: Rendered, *, is_bot: bool) -> Any:  # raw TL classes are untyped
    """The raw function that sets ``rendered`` for the mode.

    Bot mode: ``bots.SetBotInfo(lang_code="", about=...)`` (the default language's
    short description, plus ``description`` when configured); user mode:
    ``account.UpdateProfile(about=...)``.
    """
    if is_bot:
        if rendered.description is not None:
            return raw.functions.bots.SetBotInfo(
                lang_code="", about=rendered.about, description=rendered.description
            )
        return raw.functions.bots.SetBotInfo(lang_code="", about=rendered.about)
    return raw.functions.account.UpdateProfile(about=rendered.about)


async def send(client: pyrogram.Client, rendered: Rendered, *, is_bot: bool) -> None:
    """Set ``rendered`` on the account; raises pyrogram errors, or BioError on a refusal."""
    result = await client.invoke(update_request(rendered, is_bot=is_bot))
    # SetBotInfo answers boolTrue/boolFalse (pyrogram turns them into bool);
    # UpdateProfile answers the updated User.
    if result is False:
        raise BioError(f"Telegram refused to set the {target_name(is_bot=is_bot)}")


def flood_seconds(exc: BaseException) -> int | None:
    """The seconds a FloodWait-like error (420) asks to wait, else None."""
    if isinstance(exc, errors.Flood):
        value = getattr(exc, "value", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def describe_error(exc: BaseException) -> str:
    """One line for a failed profile update."""
    if isinstance(exc, errors.RPCError):
        name = exc.ID or exc.NAME or type(exc).__name__
        if isinstance(exc, errors.AboutTooLong):
            return f"{name}: Telegram says the text is too long"
        # "Telegram says: [400 BOT_INVALID] - This is not a valid bot. (caused by ...)"
        text = str(exc).splitlines()[0] if str(exc) else ""
        detail = text.split("] - ", 1)[1] if "] - " in text else text
        detail = detail.split(' (caused by "', 1)[0].strip()
        return f"{name}: {detail}" if detail else name
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "network: no answer from Telegram in time"
    if isinstance(exc, OSError):
        return f"network: {exc.strerror or exc}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
