"""Telegram users as :class:`~tracker.models.Profile`: the one adapter pair.

Pyrogram hands the handlers two shapes of user: its own ``types.User`` (typed
updates) and the raw TL ``User`` (raw updates such as ``UpdateBotStopped``).
Both become the same normalised Profile here, so the store never duck-types
Telegram objects.

:func:`from_user` runs for every update the bot sees, so it has a fast path:
a user whose fields are already what :func:`~tracker.models.make_profile`
would make of them (text that is ``str`` and UTF-8 encodable, flags that are
``bool``) becomes a Profile without a second pass; anything else goes through
``make_profile``. Both paths give the same Profile.
"""

from __future__ import annotations

from pyrogram import raw, types

from tracker.models import Profile, make_profile

# tuple.__new__ is the keyword-free way to build a NamedTuple (no argument parsing).
_new_profile = tuple.__new__


def _encodable(text: str) -> bool:
    """UTF-8 can carry ``text`` (no lone surrogate): ``encodable_text`` would keep it as is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def from_user(user: types.User) -> Profile:
    """The profile of a pyrogram ``User`` (as typed handlers receive it)."""
    user_id, first, last, name = user.id, user.first_name, user.last_name, user.username
    lang, is_bot, is_premium = user.language_code, user.is_bot, user.is_premium
    if (
        type(user_id) is int  # not a bool either
        and (is_bot is None or type(is_bot) is bool)  # None: pyrogram's "not a bot"
        and (is_premium is None or type(is_premium) is bool)
        # Usernames and language codes are ASCII; an empty one means "not set" (None).
        and (name is None or (type(name) is str and name.isascii() and name))
        and (lang is None or (type(lang) is str and lang.isascii() and lang))
        # Names: None or text UTF-8 can carry (inline: this runs for every update).
        and (first is None or (type(first) is str and (first.isascii() or _encodable(first))))
        and (last is None or (type(last) is str and (last.isascii() or _encodable(last))))
    ):
        return _new_profile(Profile, (user_id, first, last, name, lang, is_bot is True, is_premium))  # type: ignore[no-any-return]
    return make_profile(user_id, first, last, name, lang, is_bot, is_premium)


def from_raw_user(user: raw.base.User | None) -> Profile | None:
    """The profile of a raw TL ``User``; None for ``UserEmpty`` or a missing user."""
    if not isinstance(user, raw.types.User):
        return None
    return make_profile(
        user.id, user.first_name, user.last_name, user.username,
        user.lang_code, bool(user.bot), bool(user.premium),
    )  # fmt: skip
