"""Timestamps as the writer keeps them: uint32 seconds, with a way out for the odd ones.

The store file has ``YYYY-MM-DDTHH:MM:SSZ`` text; the writer's table keeps the
same instants as seconds since 1970 (0 = null), the column cache's form. A
stored text that does not fit (a hand-edited ``2026-13-45...``, a date before
1970-01-02) is :data:`ODD`: the table keeps its text as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracker.models import format_ts
from tracker.store.column_codec import seconds_of

#: A timestamp kept as text beside the seconds (see ``UserTable.odd_times``): uint32 seconds never reach it.
ODD = 2**32 - 1
#: Seconds in a (UTC) day.
DAY = 86_400
_ONE_SECOND = timedelta(seconds=1)


def seconds_or_odd(text: str | None) -> int:
    """``text`` as uint32 seconds: 0 for None, :data:`ODD` when it does not fit."""
    if text is None:
        return 0
    try:
        return seconds_of([text])[0]
    except (ValueError, KeyError):
        return ODD


class Stamps:
    """Aware datetimes as ``(text, seconds)``, cached while the second is the same (see TimestampCache)."""

    __slots__ = ("_end", "_stamp", "_start")

    def __init__(self) -> None:
        self._start = self._end = datetime.min.replace(tzinfo=UTC)
        self._stamp = ("", 0)

    def __call__(self, at: datetime) -> tuple[str, int]:
        # Aware datetimes in another zone compare by wall clock (wrong across a
        # DST fold), so only UTC ones hit the cache.
        if at.tzinfo is UTC and self._start <= at < self._end:
            return self._stamp
        text = format_ts(at)  # raises for a naive datetime, before anything changes
        stamp = (text, seconds_or_odd(text))
        if at.tzinfo is UTC:
            self._start = at.replace(microsecond=0)
            self._end = self._start + _ONE_SECOND
            self._stamp = stamp
        return stamp
