"""The world of ``python -m bench bot``: a pre-filled store file and the raw updates of each round.

Kept apart from the measuring (``bench/bot.py``): what is sent, not how it is timed.
The store file is written directly in the TinyDB layout the store keeps (one
``orjson`` dump per 100k records), so a 1M-user store takes seconds to build;
opening it is the bot's own start. The updates are text messages, one
``Updates`` container each (as Telegram sends them), 80 % in private chats and
20 % in a supergroup, 1 in 20 a ``/command`` the tracker does not answer (it
counts it in the audience history; answering is the bot's job, not the cost of
tracking). Their senders are drawn at random from the store (same profile as
stored) plus a share of new users, different ones in every round. Everything is
built and deserialised before the clock starts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tests.telegram_fakes import FakeTelegram
from tracker.models import RECORD_FIELDS
from tracker.store import SCHEMA

FIRST_ID = 100_000_000
LANGUAGES = ("en", "de", "ru", "es", "pt-br", None)
STORED_AT = "2026-01-01T00:00:00Z"
#: Records per orjson dump when writing the store file.
CHUNK = 100_000


class Person(NamedTuple):
    """User number ``index``: the same profile in the store file and in the updates."""

    id: int
    first_name: str
    last_name: str | None
    username: str | None
    lang_code: str | None
    premium: bool | None


def person(index: int) -> Person:
    """The deterministic profile of user ``index`` (stored users and new ones alike)."""
    return Person(
        FIRST_ID + index,
        f"User {index}",
        "Last" if index % 3 == 0 else None,
        f"user{index}" if index % 2 else None,
        LANGUAGES[index % len(LANGUAGES)],
        None if index % 4 == 0 else index % 5 == 0,
    )


def write_store(path: Path, users: int) -> None:
    """A store file of ``users`` users (indexes ``0 .. users-1``) in the TinyDB layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(b'{"users":{')
        for start in range(0, users, CHUNK):
            records = {}
            for index in range(start, min(users, start + CHUNK)):
                p = person(index)
                values = (p.id, p.first_name, p.last_name, p.username, p.lang_code, False, p.premium,
                          STORED_AT, STORED_AT, index % 50, None, False, None)  # fmt: skip
                records[str(p.id)] = dict(zip(RECORD_FIELDS, values, strict=True))
            body = orjson.dumps(records)[1:-1]
            out.write(body if start == 0 else b"," + body)
        out.write(b'},"meta":{"1":' + orjson.dumps({"schema": SCHEMA}) + b"}}")


class World:
    """The fake Telegram and the prepared rounds of raw ``Updates`` containers."""

    def __init__(self, store_users: int, updates: int, new_share: float, rounds: int, seed: int) -> None:
        self.tg = FakeTelegram(bot=True)
        self.supergroup = self.tg.channel()
        self.rng = random.Random(seed)
        self._raw_users: dict[int, Any] = {}
        new = round(updates * new_share)
        # One shared sequence of stored senders; each round gets its own new users.
        stored = [self.rng.randrange(store_users) for _ in range(updates - new)]
        self.rounds: list[list[Any]] = []
        for round_no in range(rounds):
            first_new = store_users + round_no * new
            senders = stored + list(range(first_new, first_new + new))
            random.Random(seed + round_no).shuffle(senders)
            self.rounds.append([self._update(index) for index in senders])

    def _update(self, index: int) -> Any:
        tg, rng = self.tg, self.rng
        user = self._raw_users.get(index)
        if user is None:
            p = person(index)
            user = self._raw_users[index] = tg.user(
                p.id, p.first_name, last_name=p.last_name, username=p.username,
                lang_code=p.lang_code, premium=p.premium,
            )  # fmt: skip
        in_group = rng.random() < 0.2
        roll = rng.random()
        text = "/help" if roll < 0.025 else "/settings now" if roll < 0.05 else f"message {roll}"
        update = tg.message(user, text, chat=self.supergroup if in_group else None)
        # Telegram sends only the peers an update mentions.
        all_users, all_chats = tg.users, tg.chats
        tg.users = {user.id: user}
        tg.chats = {self.supergroup.id: self.supergroup} if in_group else {}
        try:
            return tg.updates(update)
        finally:
            tg.users, tg.chats = all_users, all_chats
