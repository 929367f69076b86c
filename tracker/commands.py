"""The chat commands: ``/start``, ``/stats``, ``/mydata``, ``/forget`` (group :data:`COMMAND_GROUP`).

Bot mode: anyone, in a private chat (``/stats`` also in groups: admins only,
answered in private). User mode: the owner's own ``/stats`` anywhere (e.g. Saved Messages); other
people get answers only in private chats; there is no ``/start``. Only these
commands match the command handler's filter, so an owner's other commands in
the same group reach their own handlers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import pyrogram
from pyrogram import enums, filters
from pyrogram.errors import RPCError, UserIsBlocked
from pyrogram.handlers import (
    CallbackQueryHandler,
    ChosenInlineResultHandler,
    EditedMessageHandler,
    InlineQueryHandler,
    MessageHandler,
    RawUpdateHandler,
)
from pyrogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from tracker.handlers import TRACKING_GROUP, Tracker, chat_id_of, keeps_tracking
from tracker.periods import Grain
from tracker.stats import compute_stats

log = logging.getLogger(__name__)

#: Chat commands.
COMMAND_GROUP = 0

#: callback_data of the "yes, erase my data" button of /forget.
FORGET_CONFIRM_DATA = "forget:yes"


def _command_failure(message: Any) -> str:
    command = (message.text or "/").split(maxsplit=1)[0].partition("@")[0]
    return f"command {command} failed for message {message.id} in chat {chat_id_of(message)}"


class ChatCommands(Tracker):
    """The tracking callbacks (:class:`~tracker.handlers.Tracker`) plus the chat commands."""


    def is_admin(self, client: pyrogram.Client, user: Any) -> bool:
        """May ``user`` see the full /stats? Bot mode: ``admins``; user mode: the owner."""
        if user is None:
            return False
        if not self.is_bot(client):
            return self._is_me(client, user)
        if user.id in self._admin_ids:
            return True
        return self._admin_names.check(user.id, user.username)  # see tracker.admin_pins

    async def reply(
        self, client: pyrogram.Client, message: pyrogram.types.Message, text: str, **kwargs: Any
    ) -> pyrogram.types.Message | None:
        """Send ``text`` to the message's chat; a USER_IS_BLOCKED failure marks the user blocked."""
        return await self.send(client, message.chat.id, text, user=message.from_user, **kwargs)

    async def send(
        self, client: pyrogram.Client, chat_id: int | str, text: str, *, user: Any = None, **kwargs: Any
    ) -> pyrogram.types.Message | None:
        """Send a plain-text message; errors are logged, never raised."""
        try:
            result: pyrogram.types.Message | None = await client.send_message(
                chat_id, text, parse_mode=enums.ParseMode.DISABLED, **kwargs
            )
            return result
        except UserIsBlocked:
            if user is not None:
                self.mark_blocked(user.id)
        except RPCError as exc:
            log.warning("cannot send to chat %s: %s", chat_id, exc)
        return None

    def mark_blocked(self, user_id: int) -> None:
        """Telegram said USER_IS_BLOCKED: record the block (if the user is known)."""
        if self.store.set_blocked(user_id, True, self.clock()):
            log.info("user %s blocked the bot", user_id)
            self.changed()

    @keeps_tracking(_command_failure)
    async def on_command(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """Route ``/start``, ``/stats``, ``/mydata``, ``/forget`` to their handlers.

        Bot mode: anyone, in a private chat (``/stats`` also in groups: admins only,
        answered in private). User mode: the owner's own ``/stats`` anywhere (e.g. Saved Messages); other
        people get answers only in private chats; there is no ``/start``.
        """
        me = client.me
        command = command_of(message.text or "/", me.username if me else None)
        private = message.chat is not None and message.chat.type == enums.ChatType.PRIVATE
        if self.is_bot(client):
            allowed = command == "stats" or private
        else:
            sender = message.from_user
            own = bool(message.outgoing) or (sender is not None and self._is_me(client, sender))
            incoming_private = private and not own
            allowed = (command == "stats" and own) or (command != "start" and incoming_private)
        if not allowed:
            return
        handler = {
            "start": self.cmd_start,
            "stats": self.cmd_stats,
            "mydata": self.cmd_mydata,
            "forget": self.cmd_forget,
        }.get(command or "")
        if handler is not None:
            await handler(client, message)

    async def cmd_start(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """``/start``: the configured welcome (bot mode)."""
        user = message.from_user
        first_name = (user.first_name if user else None) or ""
        await self.reply(client, message, self.settings.welcome.format(first_name=first_name))

    async def cmd_stats(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """``/stats``: full figures for admins, in private; the total for others if ``public_stats``.

        The figures never go to a group (or, for a user account, to someone else's
        chat): they go to the admin's private chat with the bot, or to the owner's
        Saved Messages. Outside private chats, non-admins get no answer at all.
        """
        user = message.from_user
        if self.is_admin(client, user):
            text = await self.stats_text()
            if self.is_bot(client):
                await self.send(client, user.id, text, user=user)  # a bot's private chat id = the user's id
            else:
                await self.send(client, "me", text)  # the owner's Saved Messages
            return
        if message.chat is None or message.chat.type != enums.ChatType.PRIVATE:
            return  # non-admins cannot make the bot post in a group
        if self.settings.public_stats:
            text = f"👥 Users: {len(self.store):,}"
        elif self.is_bot(client):
            text = "Statistics are only available to the bot's admins."
        else:
            return  # a user account stays silent towards strangers
        await self.reply(client, message, text)

    async def stats_text(self) -> str:
        """The admin /stats text: the same figures as ``cli.py stats``."""
        now = self.clock()
        # A shallow list is cheap on the loop; the O(n) scan runs in a thread so
        # updates keep flowing. seen() only reassigns existing keys of a record
        # (it never adds or removes one), so reading records from another thread
        # is safe (at worst a figure is a moment old).
        records = list(self.store)
        stats = await asyncio.to_thread(compute_stats, records, now=now, tz=self.settings.tz)
        return (
            f"👥 Users: {stats['total_users']:,}\n"
            f"🆕 New today: {stats['new_today']:,}\n"
            f"🟢 Active 24h: {stats['active_24h']:,}\n"
            f"📅 Active 7d: {stats['active_7d']:,}\n"
            f"🗓 Active 30d: {stats['active_30d']:,}\n"
            f"⛔ Blocked: {stats['blocked_users']:,}\n"
            f"{self.active_today_text(now)}"
        )

    def active_today_text(self, now: datetime) -> str:
        """Today's active users (from the audience history) and the change against the same day last week."""
        today = now.astimezone(self.store.timezone).date()
        this_day = self.store.history_period(Grain.DAY, today)
        last_week = self.store.history_period(Grain.DAY, today - timedelta(days=7))
        active = this_day["active"] if this_day else 0
        text = f"📈 Active today: {active:,}"
        if last_week is None:
            return f"{text} (no figure for {today - timedelta(days=7):%a %d %b} yet)"
        change = active - last_week["active"]
        percent = f", {change * 100 / last_week['active']:+.0f}%" if last_week["active"] else ""
        return f"{text} ({change:+,}{percent} vs {today - timedelta(days=7):%a %d %b})"

    async def cmd_mydata(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """``/mydata``: the caller's own record as JSON."""
        user = message.from_user
        record = self.store.get(user.id) if user else None
        if record is None:
            await self.reply(client, message, "I have no data about you.")
            return
        text = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=False)
        await self.reply(client, message, text)

    async def cmd_forget(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """``/forget``: ask for confirmation; ``/forget yes`` erases at once."""
        user = message.from_user
        if user is None:
            return
        words = (message.text or "").split()
        if len(words) > 1 and words[1].lower() == "yes":
            erased = self.forget(user.id, peer_later=True)
            try:
                await self.reply(client, message, forget_text(erased))
            finally:
                self.forget_peer(user.id, client)
            return
        if self.is_bot(client):
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton("Yes, erase my data", callback_data=FORGET_CONFIRM_DATA)]]
            )
            await self.reply(
                client,
                message,
                "Erase everything I know about you? Press the button or send /forget yes.",
                reply_markup=markup,
            )
        else:
            await self.reply(client, message, "Erase everything I know about you? Send /forget yes.")

    @keeps_tracking(lambda query: f"forget button failed for callback query {query.id}")
    async def on_forget_button(self, client: pyrogram.Client, query: pyrogram.types.CallbackQuery) -> None:
        """The /forget confirmation button: erase the presser's record."""
        text = forget_text(self.forget(query.from_user.id, peer_later=True))
        try:
            await query.answer("Erased.")
        except RPCError as exc:
            log.warning("cannot answer callback query %s: %s", query.id, exc)
        if query.message is not None:
            try:
                await query.message.edit_text(text)
            except RPCError as exc:
                log.warning("cannot edit message %s: %s", query.message.id, exc)
        else:
            await self.send(client, query.from_user.id, text, user=query.from_user)
        self.forget_peer(query.from_user.id, client)  # last: answering needed the peer (and re-cached it)


def forget_text(erased: bool) -> str:
    """What to tell a user who asked to be forgotten."""
    if erased:
        return "Your data was erased. If you write to me again, a new record will start."
    return "I had no data about you. If you write to me again, a new record will start."


#: The commands the tracker answers (group :data:`COMMAND_GROUP`).
COMMANDS = frozenset({"start", "stats", "mydata", "forget"})


def is_tracker_command(client: pyrogram.Client, message: pyrogram.types.Message) -> bool:
    """``message`` is one of :data:`COMMANDS` (for this account, when ``/cmd@name``)."""
    # One cheap check per message instead of a filters.command per command: the
    # command group sees every message, so this is on the hot path. Only our
    # own commands match, so an owner's other commands in the same group
    # (Pyrogram runs the first matching handler of a group) still reach theirs.
    text = message.text
    if text is None or not text.startswith("/"):  # not text[0]: see Tracker.track_message
        return False
    me = client.me
    return command_of(text, me.username if me is not None else None) in COMMANDS


async def _tracker_command_filter(flt: Any, client: pyrogram.Client, message: pyrogram.types.Message) -> bool:
    return is_tracker_command(client, message)


#: Messages with one of :data:`COMMANDS`, as a pyrogram filter (for the owner's own handlers).
tracker_command = filters.create(_tracker_command_filter, "tracker_command")


class CommandHandler(MessageHandler):  # type: ignore[misc]  # pyrogram ships no type information
    """The ``MessageHandler`` of the chat commands: matches :func:`is_tracker_command` messages.

    The check is the handler's own ``check`` rather than a filter: pyrogram's
    ``Handler.check`` introspects a filter (``inspect.iscoroutinefunction``) on
    every update before calling it, which cost more than the test itself, and
    this group sees every message (most of them not commands).
    """

    def __init__(self, callback: Callable[..., Coroutine[Any, Any, None]]) -> None:
        super().__init__(callback, tracker_command)

    async def check(self, client: pyrogram.Client, update: pyrogram.types.Message) -> bool:
        # Most messages are not commands: rejected here without a further call.
        text = update.text
        return text is not None and text.startswith("/") and is_tracker_command(client, update)


class ForgetButtonHandler(CallbackQueryHandler):  # type: ignore[misc]  # pyrogram ships no type information
    """The ``CallbackQueryHandler`` of the /forget button: data exactly :data:`FORGET_CONFIRM_DATA`.

    An equality test, not ``filters.regex``: other buttons' data reaches handlers as
    ``bytes`` when it is not UTF-8, on which a text pattern raises (pyrogram logs
    that as an error on every press), and ``$`` also matched before a trailing
    newline. Like :class:`CommandHandler`, it also spares pyrogram's per-update
    filter introspection.
    """

    def __init__(self, callback: Callable[..., Coroutine[Any, Any, None]]) -> None:
        super().__init__(callback)

    async def check(self, client: pyrogram.Client, update: pyrogram.types.CallbackQuery) -> bool:
        return bool(update.data == FORGET_CONFIRM_DATA)


def command_of(text: str, my_username: str | None) -> str | None:
    """The lower-case command name of ``/cmd@me args``; None when addressed to another bot."""
    name, _, target = text.split(maxsplit=1)[0][1:].partition("@")
    if target and (not my_username or target.lower() != my_username.lower()):
        return None
    return name.lower() or None


def register(client: pyrogram.Client, tracker: ChatCommands) -> None:
    """Add the tracking and command handlers of ``tracker`` to ``client``."""
    tracker.client = client
    for handler in (
        MessageHandler(tracker.track_message),
        EditedMessageHandler(tracker.track_edit),
        CallbackQueryHandler(tracker.track_query),
        InlineQueryHandler(tracker.track_query),
        ChosenInlineResultHandler(tracker.track_query),
        RawUpdateHandler(tracker.track_raw),  # last: see the module docstring
    ):
        client.add_handler(handler, group=TRACKING_GROUP)

    client.add_handler(CommandHandler(tracker.on_command), COMMAND_GROUP)
    # Registered in either mode (the mode is known only once signed in): a user
    # account never sends the button, so it never receives its callback query.
    client.add_handler(ForgetButtonHandler(tracker.on_forget_button), COMMAND_GROUP)
