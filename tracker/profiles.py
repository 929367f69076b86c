"""Telegram users as :class:`~tracker.models.Profile`: the one adapter pair.

Pyrogram hands the handlers two shapes of user: its own ``types.User`` (typed
updates) and the raw TL ``User`` (raw updates such as ``UpdateBotStopped``).
Both become the same normalised Profile here, so the store never duck-types
Telegram objects.
"""

from __future__ import annotations

from pyrogram import raw, types

from tracker.models import Profile, make_profile


def from_user(user: types.User) -> Profile:
    """The profile of a pyrogram ``User`` (as typed handlers receive it)."""
    return make_profile(
        user.id, user.first_name, user.last_name, user.username,
        user.language_code, user.is_bot, user.is_premium,
    )  # fmt: skip


def from_raw_user(user: raw.base.User | None) -> Profile | None:
    """The profile of a raw TL ``User``; None for ``UserEmpty`` or a missing user."""
    if not isinstance(user, raw.types.User):
        return None
    return make_profile(
        user.id, user.first_name, user.last_name, user.username,
        user.lang_code, bool(user.bot), bool(user.premium),
    )  # fmt: skip
