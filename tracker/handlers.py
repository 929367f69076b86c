"""The tracking callbacks: turn incoming updates into :class:`~tracker.store.UserStore` calls.

Two kinds of handlers, registered by :func:`tracker.commands.register`:

* **Tracking** (here; group :data:`TRACKING_GROUP`, before every other group): record
  whoever sent a message, edited one, pressed a button, typed an inline query,
  picked an inline result, joined a chat, or blocked/unblocked the bot. They
  never stop propagation and never raise: a failure is logged with the update
  id and the next update is tracked as usual.
* **Commands** (:mod:`tracker.commands`): ``/start``, ``/stats``,
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

import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import pyrogram
from pyrogram import raw

from tracker.admin_pins import AdminPins
from tracker.config import Settings
from tracker.profiles import from_raw_user, from_user
from tracker.session_peers import forget_peer
from tracker.store import UserStore
from tracker.store.history import command_name

log = logging.getLogger(__name__)

#: The tracking handlers: before every group an application would use.
TRACKING_GROUP = -1
Clock = Callable[[], datetime]


#: The current time, timezone-aware (the store wants aware datetimes). A partial
#: rather than a ``def``: it is read once per update, and a C call has no frame.
utc_now: Clock = functools.partial(datetime.now, UTC)


Callback = Callable[..., Coroutine[Any, Any, None]]


def keeps_tracking(failure: Callable[[Any], str]) -> Callable[[Callable[..., Any]], Callback]:
    """Log a callback's exception and return: one bad update never stops tracking.

    ``failure(update)`` says in words what failed (with the update's id), e.g.
    ``"tracking failed for message 7 in chat 42"``; the log line carries the
    traceback. The decorated callback takes ``(self, client, update, *rest)``.
    It may be a coroutine function (the commands, which await replies) or a
    plain function (``UpdateBotStopped`` tracking, which never awaits): either way the
    result is the coroutine function pyrogram calls, and a plain body is called
    directly, without a second coroutine per update.
    """

    def decorate(callback: Callable[..., Any]) -> Callback:
        if inspect.iscoroutinefunction(callback):

            @functools.wraps(callback)
            async def guarded(self: Any, client: Any, update: Any, *rest: Any) -> None:
                try:
                    await callback(self, client, update, *rest)
                except Exception:
                    log.exception("%s", failure(update))

            return guarded

        @functools.wraps(callback)
        async def guarded_sync(self: Any, client: Any, update: Any, *rest: Any) -> None:
            try:
                callback(self, client, update, *rest)
            except Exception:
                log.exception("%s", failure(update))

        return guarded_sync

    return decorate


def _message_failure(what: str) -> Callable[[Any], str]:
    return lambda message: f"{what} failed for message {message.id} in chat {chat_id_of(message)}"


_tracking_failure = _message_failure("tracking")


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
        self._pins_names = bool(self._admin_names)  # read per update: no __bool__ call each time
        #: The client the handlers are registered on (set by ``register``): the
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

    def _seen(
        self,
        user: pyrogram.types.User,
        message: bool,
        source: str | None = None,
        command: str | None = None,
        button: bool = False,
    ) -> None:
        # Positional parameters: this runs for every update (keywords cost per call).
        if self._pins_names and user.username:
            self._admin_names.check(user.id, user.username)  # pins an admin name at first sight
        if self.store.seen(
            from_user(user), self.clock(), message=message, source=source, command=command, button=button
        ):
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

    # The three callbacks below run for nearly every update. Each is one coroutine
    # with keeps_tracking's try/except written out: the decorator's wrapper would be
    # one more function (and frame) per update, and in the dispatcher, between
    # Pyrogram's own work, every extra object touched costs cache misses.

    async def track_message(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """A new message anywhere: count it for its sender; record joined members."""
        try:
            sender = message.from_user
            me = client.me
            # Outgoing = the account's own message (user mode): not a user.
            if sender is not None and not message.outgoing and (me is None or sender.id != me.id):
                # Pyrogram's message text is a str subclass whose indexing re-encodes the
                # whole text (text[0] costs a regex pass); startswith is plain str's.
                text = message.text
                if message.service:
                    # Service messages (joins, pins, ...) are interactions, not messages.
                    self._seen(sender, False)
                elif text is None or not text.startswith("/"):
                    # The commonest update of all: _seen inlined, store.seen's defaults
                    # (a message, no source, no command) not passed as keywords.
                    if self._pins_names and sender.username:
                        self._admin_names.check(sender.id, sender.username)
                    if self.store.seen(from_user(sender), self.clock()):
                        self.changed()
                else:  # every /command counts in the history
                    text = str(text)  # a plain str, for the same reason
                    command = command_name(text, me.username if me is not None else None)
                    deep_link = command == "/start" and me is not None and me.is_bot
                    self._seen(sender, True, start_payload(text, me.username) if deep_link else None, command)
            members = message.new_chat_members
            if members:
                for member in members:
                    if me is None or member.id != me.id:
                        self._seen(member, False)
        except Exception:
            log.exception("%s", _tracking_failure(message))

    async def track_edit(self, client: pyrogram.Client, message: pyrogram.types.Message) -> None:
        """An edited message: the sender was active, but it is not a new message."""
        try:
            sender = message.from_user
            if sender is not None and not message.outgoing and not self._is_me(client, sender):
                self._seen(sender, False)
        except Exception:
            log.exception("%s", _tracking_failure(message))

    async def track_query(self, client: pyrogram.Client, query: Any) -> None:
        """A callback query (a button press), inline query or chosen inline result: the user was active."""
        try:
            user = query.from_user
            if user is not None and not self._is_me(client, user):
                self._seen(user, False, button=isinstance(query, pyrogram.types.CallbackQuery))
        except Exception:
            log.exception("%s", _query_failure(query))

    async def track_raw(
        self, client: pyrogram.Client, update: Any, users: Mapping[int, Any], chats: Mapping[int, Any]
    ) -> None:
        """``UpdateBotStopped``: the user blocked (stopped) or unblocked the bot."""
        if isinstance(update, raw.types.UpdateBotStopped):
            await self._track_bot_stopped(client, update, users)

    @keeps_tracking(_bot_stopped_failure)
    def _track_bot_stopped(
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


def chat_id_of(message: Any) -> Any:
    """The id of a message's chat, for log lines (None when there is none)."""
    chat = getattr(message, "chat", None)
    return getattr(chat, "id", None)
