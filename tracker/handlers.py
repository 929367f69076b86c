"""Pyrogram callbacks: turn incoming updates into :class:`~tracker.store.UserStore` calls.

Two kinds of handlers, registered by :func:`register`:

* **Tracking** (group :data:`TRACKING_GROUP`, before every other group): record
  whoever sent a message, edited one, pressed a button, typed an inline query,
  picked an inline result, joined a chat, or blocked/unblocked the bot. They
  never stop propagation and never raise: a failure is logged with the update
  id and the next update is tracked as usual.
* **Commands** (group :data:`COMMAND_GROUP`): ``/start``, ``/stats``,
  ``/mydata``, ``/forget``.

Pyrogram runs only the first matching handler of a group, and a
``RawUpdateHandler`` matches every update (pyrogram 2.0.106 has no filters for
it). So the raw handler for ``UpdateBotStopped`` is the *last* handler of the
tracking group: messages, queries etc. stop at their typed handler before it (no
extra call on the hot path), while updates without a typed tracking handler
(``UpdateBotStopped`` among them) reach it.

Everything in a tracking handler is synchronous, in-memory work
(``store.seen`` is a dict update): no I/O on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import pyrogram
from pyrogram import enums, filters, raw
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

from tracker.admin_pins import AdminPins
from tracker.config import Settings
from tracker.profiles import from_raw_user, from_user
from tracker.session_peers import forget_peer
from tracker.stats import compute_stats
from tracker.store import UserStore

log = logging.getLogger(__name__)

#: The tracking handlers: before every group an application would use.
TRACKING_GROUP = -1
#: Chat commands.
COMMAND_GROUP = 0

#: callback_data of the "yes, erase my data" button of /forget.
FORGET_CONFIRM_DATA = "forget:yes"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware (the store wants aware datetimes)."""
    return datetime.now(UTC)


Callback = TypeVar("Callback", bound=Callable[..., Coroutine[Any, Any, None]])


def keeps_tracking(failure: Callable[[Any], str]) -> Callable[[Callback], Callback]:
    """Log a callback's exception and return: one bad update never stops tracking.

    ``failure(update)`` says in words what failed (with the update's id), e.g.
    ``"tracking failed for message 7 in chat 42"``; the log line carries the
    traceback. The decorated callback takes ``(self, client, update, *rest)``.
    """

    def decorate(callback: Callback) -> Callback:
        @functools.wraps(callback)
        async def guarded(self: Any, client: Any, update: Any, *rest: Any) -> None:
            try:
                await callback(self, client, update, *rest)
            except Exception:
                log.exception("%s", failure(update))

        return cast(Callback, guarded)

    return decorate


def _message_failure(what: str) -> Callable[[Any], str]:
    return lambda message: f"{what} failed for message {message.id} in chat {_chat_id(message)}"


def _command_failure(message: Any) -> str:
    command = (message.text or "/").split(maxsplit=1)[0].partition("@")[0]
    return f"command {command} failed for message {message.id} in chat {_chat_id(message)}"


def _query_failure(query: Any) -> str:
    query_id = getattr(query, "id", None) or getattr(query, "result_id", None)
    return f"tracking failed for {type(query).__name__} {query_id}"


def _bot_stopped_failure(update: Any) -> str:
    return f"tracking failed for UpdateBotStopped of user {update.user_id} (qts {update.qts})"


def start_payload(text: str | None, bot_username: str | None) -> str | None:
    """The deep-link payload of ``/start PAYLOAD`` (or ``/start@bot PAYLOAD``), else None."""
    if not text or not text.startswith("/start"):
        return None
    parts = text.split(maxsplit=1)
    command = parts[0]
    if command != "/start":
        target = command[len("/start"):]
        if not target.startswith("@") or not bot_username or target[1:].lower() != bot_username.lower():
            return None
    if len(parts) < 2:
        return None
    payload = parts[1].strip()
    return payload or None


class Tracker:
    """The tracking and command callbacks, bound to one store and one configuration.

    ``on_change`` callbacks run (synchronously) after anything that may change the
    user counts: a new user, a block or unblock, a forget. Bot or user mode is the
    signed-in account's (``client.me.is_bot``), never guessed from the config.
    """

    def __init__(
        self,
        store: UserStore,
        settings: Settings,
        *,
        on_change: list[Callable[[], None]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_change: list[Callable[[], None]] = on_change if on_change is not None else []
        self.clock = clock
        self._admin_ids = settings.admin_ids()
        self._admin_names = AdminPins(store, settings.admin_usernames())
        #: The client the handlers are registered on (set by :func:`register`): the
        #: control channel's forget reaches its session's peer cache through it.
        self.client: pyrogram.Client | None = None

    # ----------------------------------------------------------------- helpers

    def changed(self) -> None:
        """Run the ``on_change`` callbacks; one failing does not stop the others."""
        for callback in self.on_change:
            try:
                callback()
            except Exception:
                log.exception("on_change callback %r failed", callback)

    def _seen(self, user: pyrogram.types.User, *, message: bool, source: str | None = None) -> None:
        if self._admin_names and user.username:
            self._admin_names.check(user.id, user.username)  # pins an admin name at first sight
        if self.store.seen(from_user(user), self.clock(), message=message, source=source):
            self.changed()

    @staticmethod
    def _is_me(client: pyrogram.Client, user: Any) -> bool:
        me = client.me
        return me is not None and user.id == me.id

    @staticmethod
    def is_bot(client: pyrogram.Client) -> bool:
        """Bot mode: the signed-in account is a bot."""
        me = client.me
        return me is not None and bool(me.is_bot)

    def forget(self, user_id: int, *, peer_later: bool = False) -> bool:
        """Erase ``user_id``'s record and session peer (the one forget: chat, button, control channel).

        ``peer_later``: the caller still has to answer the user (which needs the
        peer, and re-caches it), so it calls :meth:`forget_peer` itself afterwards.
        """
        erased = self.store.forget(user_id)
        if erased:
            self.changed()
        if not peer_later:
            self.forget_peer(user_id)
        return erased

    def forget_peer(self, user_id: int, client: pyrogram.Client | None = None) -> None:
        """Remove ``user_id`` (id, access hash, username, phone) from the session's peer cache."""
        client = client or self.client
        if client is not None:
            forget_peer(client.storage, user_id)

    # ----------------------------------------------------------------- tracking

    @keeps_tracking(_message_failure("tracking"))
    async def track_message(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """A new message anywhere: count it for its sender; record joined members."""
        # The hot path (every message): plain attribute reads and one store call.
        sender = message.from_user
        me = client.me
        # Outgoing = the account's own message (user mode): not a user.
        if sender is not None and not message.outgoing and (me is None or sender.id != me.id):
            if message.service:
                # Service messages (joins, pins, ...) are interactions, not messages.
                self._seen(sender, message=False)
            else:
                source = None
                text = message.text
                if me is not None and me.is_bot and text is not None and text.startswith("/start"):
                    source = start_payload(text, me.username)
                self._seen(sender, message=True, source=source)
        members = message.new_chat_members
        if members:
            for member in members:
                if me is None or member.id != me.id:
                    self._seen(member, message=False)

    @keeps_tracking(_message_failure("tracking"))
    async def track_edit(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """An edited message: the sender was active, but it is not a new message."""
        sender = message.from_user
        if sender is not None and not message.outgoing and not self._is_me(client, sender):
            self._seen(sender, message=False)

    @keeps_tracking(_query_failure)
    async def track_query(self, client: pyrogram.Client, query: Any) -> None:
        """A callback query, inline query or chosen inline result: the user was active."""
        user = query.from_user
        if user is not None and not self._is_me(client, user):
            self._seen(user, message=False)

    async def track_raw(
        self, client: pyrogram.Client, update: Any, users: Mapping[int, Any], chats: Mapping[int, Any]
    ) -> None:
        """``UpdateBotStopped``: the user blocked (stopped) or unblocked the bot."""
        if isinstance(update, raw.types.UpdateBotStopped):
            await self._track_bot_stopped(client, update, users)

    @keeps_tracking(_bot_stopped_failure)
    async def _track_bot_stopped(
        self, client: pyrogram.Client, update: raw.types.UpdateBotStopped, users: Mapping[int, Any]
    ) -> None:
        at = datetime.fromtimestamp(update.date, UTC)
        user_id = update.user_id
        if user_id not in self.store:
            # Someone who used the bot before tracking began: worth a record.
            profile = from_raw_user(users.get(user_id))
            if profile is None:
                state = "stopped" if update.stopped else "restarted"
                log.info("bot %s by unknown user %s", state, user_id)
                return
            self.store.seen(profile, self.clock(), message=False)
        self.store.set_blocked(user_id, bool(update.stopped), at)
        self.changed()

    # ----------------------------------------------------------------- commands

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
        answered in private).
        User mode: the owner's own ``/stats`` anywhere (e.g. Saved Messages); other
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
            f"⛔ Blocked: {stats['blocked_users']:,}"
        )

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


def _chat_id(message: Any) -> Any:
    chat = getattr(message, "chat", None)
    return getattr(chat, "id", None)


async def _looks_like_command(flt: Any, client: pyrogram.Client, message: pyrogram.types.Message) -> bool:
    # One cheap check per message instead of a filters.command per command: the
    # command group sees every message, so its filter is on the hot path.
    text = message.text
    return text is not None and text.startswith("/")


#: Messages whose text starts with "/" (the command handler sorts them out).
looks_like_command = filters.create(_looks_like_command, "looks_like_command")


def command_of(text: str, my_username: str | None) -> str | None:
    """The lower-case command name of ``/cmd@me args``; None when addressed to another bot."""
    name, _, target = text.split(maxsplit=1)[0][1:].partition("@")
    if target and (not my_username or target.lower() != my_username.lower()):
        return None
    return name.lower() or None


def register(client: pyrogram.Client, tracker: Tracker) -> None:
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

    client.add_handler(MessageHandler(tracker.on_command, looks_like_command), COMMAND_GROUP)
    # Registered in either mode (the mode is known only once signed in): a user
    # account never sends the button, so it never receives its callback query.
    client.add_handler(
        CallbackQueryHandler(tracker.on_forget_button, filters.regex(f"^{FORGET_CONFIRM_DATA}$")),
        COMMAND_GROUP,
    )
