"""A fake Telegram for tests: real pyrogram objects, no network.

The boundary is ``client.invoke``. Everything else is the real thing:

* the client is a real ``pyrogram.Client`` (normally built with ``in_memory=True``)
  that is never connected; :meth:`FakeTelegram.attach` does what ``start()`` would
  do locally (opens the session storage, sets ``me``/``is_connected``, starts the
  dispatcher's worker) and replaces ``invoke`` with a :class:`InvokeRecorder`;
* updates are hand-built raw TL objects wrapped in ``raw.types.Updates`` and
  round-tripped through ``.write()`` / ``TLObject.read`` (so vectors are real lists
  and every field survives serialisation, as from the wire) before being fed to
  ``client.handle_updates``;
* the recorder returns real raw TL results (or raises real ``pyrogram.errors``).

Works with kurigram and with pyrogram 2.0.106. Build clients inside a running
event loop (pyrogram 2.0.106 binds ``asyncio.get_event_loop()`` in ``__init__``).

Typical use::

    async def scenario(tmp_path):
        tg = FakeTelegram(bot=True)
        app = build_app(settings, in_memory=True)
        await tg.attach(app)
        alice = tg.user(1001, "Alice", username="alice")
        await tg.feed(app, tg.message(alice, "/start ref42"))
        assert tg.invoke.sent_texts() == ["Hi Alice!"]
        await tg.detach(app)
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

import pyrogram
from pyrogram import raw
from pyrogram.handlers import RawUpdateHandler
from pyrogram.raw.core import TLObject

#: Group of the barrier handler: after every other group.
BARRIER_GROUP = 2**30

#: Channel ids stay below 2**31: pyrogram 2.0.106 rejects newer (larger) ids.
DEFAULT_CHANNEL_ID = 1_234_567_890

Responder = Callable[[Any], Any]


def roundtrip(obj: TLObject) -> Any:
    """Serialise a raw TL object and read it back, as if it came from the wire."""
    return TLObject.read(BytesIO(obj.write()))


def peer_id_of(chat: Any) -> int:
    """Pyrogram's (Bot API style) id of a raw User, Chat or Channel."""
    if isinstance(chat, raw.types.User):
        return int(chat.id)
    if isinstance(chat, raw.types.Chat):
        return -int(chat.id)
    return int(f"-100{chat.id}")


def _peer(chat: Any) -> Any:
    if isinstance(chat, raw.types.User):
        return raw.types.PeerUser(user_id=chat.id)
    if isinstance(chat, raw.types.Chat):
        return raw.types.PeerChat(chat_id=chat.id)
    return raw.types.PeerChannel(channel_id=chat.id)


def _peer_of_input(peer: Any, me_id: int) -> Any:
    """The raw Peer for an InputPeer that the client sent in a request."""
    if isinstance(peer, raw.types.InputPeerSelf):
        return raw.types.PeerUser(user_id=me_id)
    if isinstance(peer, raw.types.InputPeerUser):
        return raw.types.PeerUser(user_id=peer.user_id)
    if isinstance(peer, raw.types.InputPeerChat):
        return raw.types.PeerChat(chat_id=peer.chat_id)
    if isinstance(peer, raw.types.InputPeerChannel):
        return raw.types.PeerChannel(channel_id=peer.channel_id)
    raise AssertionError(f"unexpected peer in a request: {peer!r}")


def inline_buttons(message: Any) -> list[tuple[str, bytes | None]]:
    """``(text, callback data)`` of every inline button of a raw message, row by row.

    Layers differ: 2.0.106 has ``KeyboardButtonCallback(text, data)``, newer ones
    ``KeyboardInlineButton(text, type=...(data))``.
    """
    markup = getattr(message, "reply_markup", None)
    found: list[tuple[str, bytes | None]] = []
    for row in getattr(markup, "rows", None) or ():
        for button in row.buttons:
            data = getattr(button, "data", None)
            if data is None:
                data = getattr(getattr(button, "type", None), "data", None)
            found.append((button.text, data))
    return found


class InvokeRecorder:
    """Stands in for ``client.invoke``: records every request, answers like Telegram.

    ``respond(FunctionType, result)`` sets the answer for a raw function type:
    a value is returned as is, an exception instance is raised (once per call),
    a callable is called with the request. ``fail_next(*errors)`` raises the
    errors for the next requests, one each, whatever they are. Requests without
    an answer get a built-in default (see :meth:`_default`) or fail the test loudly.
    """

    def __init__(self, world: FakeTelegram) -> None:
        self.world = world
        self.calls: list[Any] = []
        self._responders: dict[type, Any] = {}
        self._failures: list[BaseException] = []

    def respond(self, function: type, result: Any) -> None:
        """Answer every later ``function`` request with ``result`` (value, exception or callable)."""
        self._responders[function] = result

    def fail_next(self, *failures: BaseException) -> None:
        """Raise ``failures`` for the next requests, one per request, before any answer."""
        self._failures.extend(failures)

    def forget_responder(self, function: type) -> None:
        """Go back to the default answer for ``function``."""
        self._responders.pop(function, None)

    async def __call__(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        # kurigram passes extra keywords (business_connection_id, ...); 2.0.106 does not.
        self.calls.append(query)
        if self._failures:
            raise self._failures.pop(0)
        answer = self._responders.get(type(query), _DEFAULT)
        if answer is _DEFAULT:
            return self._default(query)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            result = answer(query)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return answer

    def of_type(self, function: type) -> list[Any]:
        """The recorded requests of one raw function type."""
        return [call for call in self.calls if isinstance(call, function)]

    def sent_texts(self) -> list[str]:
        """Texts of every ``messages.SendMessage`` and ``messages.EditMessage`` request."""
        kinds = (raw.functions.messages.SendMessage, raw.functions.messages.EditMessage)
        return [call.message for call in self.calls if isinstance(call, kinds) and call.message is not None]

    def bio_texts(self) -> list[str]:
        """The ``about`` of every bio request (``bots.SetBotInfo``, ``account.UpdateProfile``)."""
        kinds = (raw.functions.bots.SetBotInfo, raw.functions.account.UpdateProfile)
        return [call.about for call in self.calls if isinstance(call, kinds)]

    def _default(self, query: Any) -> Any:
        world = self.world
        if isinstance(query, raw.functions.messages.SendMessage):
            return world.sent_message_updates(query.peer, query.message, query.reply_markup)
        if isinstance(query, raw.functions.messages.EditMessage):
            return world.edited_message_updates(query.peer, query.id, query.message or "", query.reply_markup)
        if isinstance(
            query,
            raw.functions.messages.SetBotCallbackAnswer | raw.functions.messages.SetInlineBotResults,
        ):
            return True
        if isinstance(query, raw.functions.bots.SetBotInfo):
            return True  # pyrogram turns boolTrue into True
        if isinstance(query, raw.functions.account.UpdateProfile):
            return raw.types.User(id=world.me.id, first_name=world.me.first_name, about=query.about)
        if isinstance(query, raw.functions.messages.GetMessages):
            return world.messages_result([getattr(i, "id", 0) for i in query.id])
        if isinstance(query, raw.functions.updates.GetState):
            return raw.types.updates.State(pts=1, qts=1, date=world.date(), seq=1, unread_count=0)
        if isinstance(query, raw.functions.users.GetUsers):
            return [world.users[i.user_id] for i in query.id if getattr(i, "user_id", None) in world.users]
        raise AssertionError(f"unexpected request to Telegram: {type(query).__name__}: {query}")


_DEFAULT = object()


class FakeTelegram:
    """Builds raw updates from a small in-memory world and drives a client with them."""

    def __init__(
        self,
        *,
        bot: bool = True,
        me_id: int = 777000111,
        me_first_name: str = "Tracker",
        me_username: str | None = "tracker_bot",
        me_premium: bool = False,
    ) -> None:
        self.bot = bot
        self.users: dict[int, Any] = {}
        self.chats: dict[int, Any] = {}
        self.me = self.user(
            me_id, me_first_name, username=me_username, is_bot=bot, premium=me_premium or None, is_self=True
        )
        self.invoke = InvokeRecorder(self)
        self._message_ids = itertools.count(1)
        self._pts = itertools.count(1)
        self._qts = itertools.count(1)
        self._query_ids = itertools.count(9_000_000_001)
        self._date = 1_700_000_000
        #: Non-channel messages by id (what messages.GetMessages can return).
        self.messages: dict[int, Any] = {}
        #: Raw messages the client sent (answers to messages.SendMessage), oldest first.
        self.sent: list[Any] = []
        self._barrier: Any = None
        self._barrier_done: asyncio.Future[None] | None = None

    # --- the world ---------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str | None = "User",
        *,
        last_name: str | None = None,
        username: str | None = None,
        lang_code: str | None = None,
        is_bot: bool = False,
        premium: bool | None = None,
        is_self: bool = False,
    ) -> Any:
        """A raw ``User`` known to this world (it is sent along with every update)."""
        user = raw.types.User(
            id=user_id,
            is_self=is_self or None,
            access_hash=user_id * 7 + 3,
            first_name=first_name,
            last_name=last_name,
            username=username,
            lang_code=lang_code,
            bot=is_bot or None,
            bot_info_version=1 if is_bot else None,
            premium=premium,
        )
        self.users[user_id] = user
        return user

    def group(self, chat_id: int = 4242, title: str = "Group") -> Any:
        """A raw basic group (``Chat``)."""
        chat = raw.types.Chat(
            id=chat_id,
            title=title,
            photo=raw.types.ChatPhotoEmpty(),
            participants_count=3,
            date=self._date,
            version=1,
        )
        self.chats[chat_id] = chat
        return chat

    def channel(
        self, channel_id: int = DEFAULT_CHANNEL_ID, title: str = "Supergroup", *, broadcast: bool = False
    ) -> Any:
        """A raw ``Channel``: a supergroup, or a broadcast channel with ``broadcast=True``."""
        chat = raw.types.Channel(
            id=channel_id,
            title=title,
            photo=raw.types.ChatPhotoEmpty(),
            date=self._date,
            access_hash=channel_id * 5 + 1,
            megagroup=None if broadcast else True,
            broadcast=True if broadcast else None,
        )
        self.chats[channel_id] = chat
        return chat

    def date(self) -> int:
        """A plausible unix time for the next update."""
        self._date += 1
        return self._date

    # --- updates -------------------------------------------------------------------

    def message(
        self,
        sender: Any,
        text: str,
        *,
        chat: Any = None,
        out: bool = False,
        post: bool = False,
        edit: bool = False,
        message_id: int | None = None,
        reply_markup: Any = None,
    ) -> Any:
        """A new (or, with ``edit=True``, edited) text message as a raw update.

        ``sender`` is a raw User, a raw Channel (a channel post or an anonymous
        admin: ``from_id`` is the channel) or None (no sender at all). ``chat``
        defaults to the private chat with ``sender``.
        """
        if chat is None:
            chat = sender
        entities = None
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            entities = [raw.types.MessageEntityBotCommand(offset=0, length=length)]
        peer = _peer(chat)  # a private chat's peer is the other user (or self: Saved Messages)
        msg = raw.types.Message(
            id=message_id if message_id is not None else next(self._message_ids),
            peer_id=peer,
            date=self.date(),
            message=text,
            out=out or None,
            post=post or None,
            from_id=None if sender is None or (post and sender is chat) else _peer(sender),
            entities=entities,
            reply_markup=reply_markup,
            edit_date=self.date() if edit else None,
        )
        self._remember(msg)
        return self._message_update(msg, edit=edit)

    def service(self, sender: Any, chat: Any, action: Any) -> Any:
        """A service message (e.g. ``MessageActionChatAddUser``) as a raw update."""
        msg = raw.types.MessageService(
            id=next(self._message_ids),
            peer_id=_peer(chat),
            date=self.date(),
            action=action,
            from_id=_peer(sender) if sender is not None else None,
        )
        self._remember(msg)
        return self._message_update(msg, edit=False)

    def _remember(self, msg: Any) -> None:
        # messages.GetMessages looks up private-chat and basic-group messages by id alone.
        if not isinstance(msg.peer_id, raw.types.PeerChannel):
            self.messages[msg.id] = msg

    def new_members(self, chat: Any, actor: Any, members: Iterable[Any]) -> Any:
        """``actor`` added ``members`` to ``chat`` (they joined, if actor is the only member)."""
        action = raw.types.MessageActionChatAddUser(users=[m.id for m in members])
        return self.service(actor, chat, action)

    def callback_query(self, user: Any, data: bytes, *, chat: Any = None, message_id: int = 1) -> Any:
        """A button press on a message the bot sent in ``chat`` (default: the private chat)."""
        return raw.types.UpdateBotCallbackQuery(
            query_id=next(self._query_ids),
            user_id=user.id,
            peer=_peer(chat if chat is not None else user),
            msg_id=message_id,
            chat_instance=123456789,
            data=data,
        )

    def inline_query(self, user: Any, query: str = "") -> Any:
        """An inline query (``@bot query``) typed by ``user``."""
        return raw.types.UpdateBotInlineQuery(
            query_id=next(self._query_ids), user_id=user.id, query=query, offset=""
        )

    def chosen_inline_result(self, user: Any, query: str = "", result_id: str = "r1") -> Any:
        """``user`` picked an inline result."""
        return raw.types.UpdateBotInlineSend(user_id=user.id, query=query, id=result_id)

    def bot_stopped(self, user: Any, stopped: bool = True) -> Any:
        """``user`` blocked (``stopped=True``) or unblocked the bot."""
        return raw.types.UpdateBotStopped(
            user_id=user.id, date=self.date(), stopped=stopped, qts=next(self._qts)
        )

    def updates(self, *updates: Any) -> Any:
        """The ``Updates`` container Telegram would send, with every known user and chat.

        Round-tripped through the TL serialiser.
        """
        container = raw.types.Updates(
            updates=list(updates),
            users=list(self.users.values()),
            chats=list(self.chats.values()),
            date=self.date(),
            seq=0,
        )
        return roundtrip(container)

    # --- results of requests ----------------------------------------------------------

    def sent_message_updates(self, input_peer: Any, text: str, reply_markup: Any = None) -> Any:
        """What Telegram answers to ``messages.SendMessage``: the new outgoing message."""
        msg = self._own_message(input_peer, next(self._message_ids), text, reply_markup, edit=False)
        self.sent.append(msg)
        self._remember(msg)
        return self.updates(self._message_update(msg, edit=False))

    def edited_message_updates(self, input_peer: Any, message_id: int, text: str, reply_markup: Any) -> Any:
        """What Telegram answers to ``messages.EditMessage``."""
        msg = self._own_message(input_peer, message_id, text, reply_markup, edit=True)
        return self.updates(self._message_update(msg, edit=True))

    def _own_message(
        self, input_peer: Any, message_id: int, text: str, reply_markup: Any, *, edit: bool
    ) -> Any:
        """A message the signed-in account sent (or edited) where ``input_peer`` points."""
        return raw.types.Message(
            id=message_id,
            peer_id=_peer_of_input(input_peer, self.me.id),
            date=self.date(),
            message=text,
            out=True,
            from_id=raw.types.PeerUser(user_id=self.me.id),
            reply_markup=reply_markup,
            edit_date=self.date() if edit else None,
        )

    def _message_update(self, msg: Any, *, edit: bool) -> Any:
        """The update announcing ``msg``: channel or not, new or edited."""
        if isinstance(msg.peer_id, raw.types.PeerChannel):
            cls = raw.types.UpdateEditChannelMessage if edit else raw.types.UpdateNewChannelMessage
        else:
            cls = raw.types.UpdateEditMessage if edit else raw.types.UpdateNewMessage
        return cls(message=msg, pts=next(self._pts), pts_count=1)

    def messages_result(self, ids: Iterable[int]) -> Any:
        """What Telegram answers to ``messages.GetMessages`` (MessageEmpty for unknown ids)."""
        found = [self.messages.get(i) or raw.types.MessageEmpty(id=i) for i in ids]
        fields: dict[str, Any] = {
            "messages": found,
            "users": list(self.users.values()),
            "chats": list(self.chats.values()),
        }
        if "topics" in inspect.signature(raw.types.messages.Messages.__init__).parameters:
            fields["topics"] = []  # newer layers (kurigram) require it
        return roundtrip(raw.types.messages.Messages(**fields))

    # --- driving a client ----------------------------------------------------------------

    async def attach(self, app: pyrogram.Client, *, workers: int = 1) -> None:
        """Make ``app`` behave as if ``start()`` had run, without any network.

        One dispatcher worker by default, so updates are handled in the order fed
        and :meth:`feed` can wait for them with a barrier. (The client's own
        ``connect``/``initialize`` are not called: see :meth:`offline` for that.)
        """
        await self._prepare(app, workers=workers)
        app.me = self.me_user(app)
        await app.dispatcher.start()
        await asyncio.sleep(0)  # let add_handler's scheduled tasks register the handlers

    async def _prepare(self, app: pyrogram.Client, *, workers: int) -> None:
        """The session storage of a signed-in account, invoke faked, the barrier handler added."""
        me = self.me
        await app.storage.open()
        await app.storage.dc_id(2)
        await app.storage.api_id(app.api_id or 1)
        await app.storage.test_mode(False)
        await app.storage.auth_key(bytes(256))
        await app.storage.date(0)
        await app.storage.user_id(me.id)
        await app.storage.is_bot(self.bot)
        app.invoke = self.invoke
        app.is_connected = True
        app.workers = workers
        app.add_handler(RawUpdateHandler(self._on_barrier), group=BARRIER_GROUP)

    def me_user(self, app: pyrogram.Client) -> pyrogram.types.User:
        """The signed-in account as ``get_me()`` returns it."""
        return pyrogram.types.User(
            id=self.me.id,
            is_self=True,
            is_bot=self.bot,
            is_premium=bool(self.me.premium),
            first_name=self.me.first_name,
            username=self.me.username,
            client=app,
        )

    def offline(self, target: Any, *, workers: int = 1, setattr: Callable[..., Any] = setattr) -> None:
        """Fake only the network steps of ``target`` (``pyrogram.Client`` or one client).

        ``connect``, ``disconnect`` and ``get_me`` become local, so the client's real
        ``start()``/``stop()`` run (``initialize``, ``terminate``, the dispatcher, and
        anything that wraps them, such as ``tracker.attach``). On the class, patch it
        before the clients are built; pass ``setattr=monkeypatch.setattr`` to undo it.
        """
        world = self

        async def connect(app: pyrogram.Client) -> bool:
            if app.is_connected:
                raise ConnectionError("Client is already connected")
            await world._prepare(app, workers=workers)
            return True  # authorized: the session is signed in

        async def disconnect(app: pyrogram.Client) -> None:
            if not app.is_connected:
                raise ConnectionError("Client is already disconnected")
            app.is_connected = False
            await app.storage.close()

        async def get_me(app: pyrogram.Client) -> pyrogram.types.User:
            return world.me_user(app)

        for name, function in (("connect", connect), ("disconnect", disconnect), ("get_me", get_me)):
            if isinstance(target, type):
                setattr(target, name, function)
            else:
                setattr(target, name, function.__get__(target))

    async def detach(self, app: pyrogram.Client) -> None:
        """Stop the dispatcher (queued updates are handled first) and close the session storage."""
        await app.dispatcher.stop()
        app.is_connected = False
        await app.storage.close()

    async def feed(self, app: pyrogram.Client, *updates: Any, timeout: float = 10.0) -> None:
        """Hand ``updates`` to ``app.handle_updates`` (one container) and wait until all are handled."""
        await app.handle_updates(self.updates(*updates))
        await self.settle(app, timeout=timeout)

    async def feed_each(self, app: pyrogram.Client, *updates: Any, timeout: float = 10.0) -> None:
        """Like :meth:`feed`, one ``Updates`` container per update."""
        for update in updates:
            await app.handle_updates(self.updates(update))
        await self.settle(app, timeout=timeout)

    async def settle(self, app: pyrogram.Client, *, timeout: float = 10.0) -> None:
        """Wait until every update queued so far has gone through all handler groups."""
        loop = asyncio.get_running_loop()
        self._barrier = raw.types.UpdateConfig()
        self._barrier_done = loop.create_future()
        app.dispatcher.updates_queue.put_nowait((self._barrier, {}, {}))
        await asyncio.wait_for(self._barrier_done, timeout)

    async def _on_barrier(self, client: Any, update: Any, users: Any, chats: Any) -> None:
        if update is self._barrier and self._barrier_done is not None and not self._barrier_done.done():
            self._barrier_done.set_result(None)


def run(coro: Any) -> Any:
    """Run a test coroutine in a fresh event loop (no pytest-asyncio needed)."""
    return asyncio.run(coro)
