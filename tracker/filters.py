"""Which users a listing, an export or ``stats`` covers: :class:`Filters` over columns.

The CLI reads the store as columns (one list per field, see
``StoreReader.columns``), so every filter is a pass over one list that yields
a keep/drop flag per user; :meth:`Filters.select` then cuts every column down
to the kept users. Nothing here builds a dict per user.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import nlargest
from itertools import compress
from operator import and_
from typing import TYPE_CHECKING, Any

from tracker.models import format_ts

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from tracker.models import Record

__all__ = ["Filters", "find_row", "fold", "top_rows"]

Columns = dict[str, list[Any]]
#: A test over columns: one keep/drop flag per user.
ColumnTest = Callable[[Mapping[str, Sequence[Any]]], list[bool]]


def fold(text: str) -> str:
    """``text`` without accents and case, for search: ``Jürgen``, ``JÜRGEN`` and ``jurgen`` all fold alike."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Filters:
    """The record filters shared by ``users``, ``export`` and ``stats`` (all must match)."""

    search: str | None = None
    lang: str | None = None
    active_within: timedelta | None = None
    since: datetime | None = None
    blocked: bool = False
    #: Exact deep-link payloads; None stands for "no source".
    sources: tuple[str | None, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when every user passes."""
        return self.fields == ()

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns these filters read."""
        wanted: list[str] = []
        if self.active_within is not None:
            wanted.append("last_seen")
        if self.since is not None:
            wanted.append("first_seen")
        if self.lang:
            wanted.append("language_code")
        if self.blocked:
            wanted.append("blocked")
        if self.sources:
            wanted.append("source")
        if self.search:
            wanted += ["id", "username", "first_name", "last_name", "source"]
        return tuple(dict.fromkeys(wanted))

    def mask(self, columns: Mapping[str, Sequence[Any]], *, now: datetime, tz: ZoneInfo) -> list[bool] | None:
        """One flag per user (True: keep), or None when every user passes."""
        flags: list[bool] | None = None
        for test_column in self._tests(now=now, tz=tz):
            new = test_column(columns)
            flags = new if flags is None else list(map(and_, flags, new))
        return flags

    def select(self, columns: Columns, *, now: datetime, tz: ZoneInfo) -> Columns:
        """``columns`` cut down to the matching users (the same dict when all match)."""
        flags = self.mask(columns, now=now, tz=tz)
        if flags is None:
            return columns
        return {name: list(compress(values, flags)) for name, values in columns.items()}

    def _tests(self, *, now: datetime, tz: ZoneInfo) -> list[ColumnTest]:
        tests: list[ColumnTest] = []
        if self.active_within is not None:
            seen_after = format_ts(now - self.active_within)
            tests.append(lambda c: [isinstance(v, str) and v >= seen_after for v in c["last_seen"]])
        if self.since is not None:
            first_after = format_ts(self.since.replace(tzinfo=tz))
            tests.append(lambda c: [isinstance(v, str) and v >= first_after for v in c["first_seen"]])
        if self.lang:
            lang = self.lang.lower()
            tests.append(lambda c: [isinstance(v, str) and v.lower() == lang for v in c["language_code"]])
        if self.blocked:
            tests.append(lambda c: [v is True for v in c["blocked"]])
        if self.sources:
            wanted = set(self.sources)
            tests.append(lambda c: [v in wanted for v in c["source"]])
        if self.search:
            tests.append(_search(self.search))
        return tests


def _search(text: str) -> ColumnTest:
    """Search ids (digits), @usernames, names and sources, accents and case folded."""
    needle = fold(text.strip())
    as_username = needle.lstrip("@")
    digits = needle.isascii() and needle.isdigit()

    def contains(value: Any, part: str) -> bool:
        return isinstance(value, str) and bool(part) and part in fold(value)

    def test(columns: Mapping[str, Sequence[Any]]) -> list[bool]:
        rows = zip(columns["id"], columns["username"], columns["first_name"], columns["last_name"],
                   columns["source"], strict=True)
        return [
            (digits and needle in str(uid))
            or contains(username, as_username)
            or contains(first, needle)
            or contains(last, needle)
            or contains(f"{first} {last}" if first and last else None, needle)
            or contains(source, needle)
            for uid, username, first, last, source in rows
        ]

    return test


# ----------------------------------------------------------- picking rows


def top_rows(columns: Columns, sort: str, limit: int) -> list[Record]:
    """The ``limit`` (0: all) largest rows by ``sort`` (then id), as dicts: only these are built."""
    ids = [i if isinstance(i, int) else 0 for i in columns["id"]]
    values = columns[sort]
    if sort == "messages":
        keys: list[Any] = [v if isinstance(v, int) and not isinstance(v, bool) else 0 for v in values]
    else:
        keys = [v if isinstance(v, str) else "" for v in values]
    order = zip(keys, ids, range(len(ids)), strict=True)  # tuples compare in C: no key function per user
    best = nlargest(limit, order) if limit else sorted(order, reverse=True)
    return [{name: column[k] for name, column in columns.items()} for _, _, k in best]


def find_row(columns: Columns, *, user_id: int | None = None, username: str | None = None) -> int | None:
    """The row of ``user_id``, else of ``username`` (case-insensitive, no ``@``); None when absent."""
    if user_id is not None:
        try:
            return columns["id"].index(user_id)
        except ValueError:
            return None
    wanted = (username or "").lower()
    for row, name in enumerate(columns["username"]):
        if isinstance(name, str) and name.lower() == wanted:
            return row
    return None
