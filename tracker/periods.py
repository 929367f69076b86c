"""The calendar of the audience history: periods in a time zone, as pure functions.

A period is a local day, a Monday-start week or a month, named by its first local
day. Store timestamps are UTC text (``YYYY-MM-DDTHH:MM:SSZ``), which sorts as
text: a period's bounds as such text make "is this timestamp in the period" two
string comparisons. Nothing here reads a clock or a file.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

#: The store's timestamp format (UTC).
TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%SZ"


class Grain(enum.Enum):
    """A calendar period length; ``value`` is the word used in tables and on the CLI."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def history_table(self) -> str:
        return f"history_{self.value}"

    @property
    def retention_table(self) -> str:
        return f"retention_{self.value}"

    @property
    def max_after(self) -> int:
        """How many periods after its cohort a cohort's retention is followed.

        Bounds memory and file size (each followed period is one cell per cohort):
        a day cohort is followed for 90 days, a week cohort for two years, a month
        cohort for as long as the doc id allows.
        """
        return _MAX_AFTER[self]

    def start(self, day: date) -> date:
        """The first day of the period holding ``day``."""
        if self is Grain.DAY:
            return day
        if self is Grain.WEEK:
            return day - timedelta(days=day.weekday())
        return day.replace(day=1)

    def next_start(self, start: date) -> date:
        """The first day of the period after the one starting on ``start``."""
        if self is Grain.DAY:
            return start + timedelta(days=1)
        if self is Grain.WEEK:
            return start + timedelta(days=7)
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)

    def index(self, start: date) -> int:
        """A running number of periods, so that ``k = index(b) - index(a)``."""
        if self is Grain.DAY:
            return start.toordinal()
        if self is Grain.WEEK:
            return (start.toordinal() - 1) // 7  # ordinal 1 (0001-01-01) is a Monday
        return start.year * 12 + start.month - 1

    def shift(self, start: date, periods: int) -> date:
        """The first day of the period ``periods`` after (negative: before) ``start``'s."""
        if self is Grain.DAY:
            return start + timedelta(days=periods)
        if self is Grain.WEEK:
            return start + timedelta(days=7 * periods)
        months = start.year * 12 + start.month - 1 + periods
        return date(months // 12, months % 12 + 1, 1)


_MAX_AFTER: Final = {Grain.DAY: 90, Grain.WEEK: 104, Grain.MONTH: 999}


def local_midnight_utc(day: date, tz: ZoneInfo) -> str:
    """The UTC text of ``day``'s local midnight (fold=0 through DST gaps and repeats)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC).strftime(TIMESTAMP)


def local_date(timestamp: str, tz: ZoneInfo) -> date:
    """The local calendar day of a store timestamp."""
    return datetime.strptime(timestamp, TIMESTAMP).replace(tzinfo=UTC).astimezone(tz).date()


_MAX_COVERED_DAYS: Final = 20 * 366


class LocalDays:
    """Local day of a UTC timestamp by bisection over known local midnights (C speed).

    The keeper needs the local day of a user's ``first_seen`` (the cohort) at each
    first interaction of a day; parsing and converting it each time would cost more
    than all the rest of an update. The midnights cover every day asked for so far
    (within 20 years of the first) and grow on demand; a caller may bisect
    :attr:`midnights` itself while it is the same list (a new list when they grow).
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._first = 0  # ordinal of the day that starts at _bounds[0]
        #: local midnights as UTC text: midnights[i] starts the day with ordinal _first + i
        self.midnights: list[str] = []

    def ordinal(self, timestamp: str) -> int:
        """The local day of ``timestamp`` as a :meth:`date.toordinal` number."""
        bounds = self.midnights
        i = bisect_right(bounds, timestamp) - 1
        if 0 <= i < len(bounds) - 1:
            return self._first + i
        day = local_date(timestamp, self._tz).toordinal()
        if not bounds or abs(day - self._first) < _MAX_COVERED_DAYS:  # an odd far date: no huge list
            self._cover(day)
        return day

    def _cover(self, day: int) -> None:
        if not self.midnights:
            lo, hi = day, day + 1
        else:
            lo, hi = min(day, self._first), max(day + 1, self._first + len(self.midnights) - 1)
        self._first = lo
        self.midnights = [local_midnight_utc(date.fromordinal(o), self._tz) for o in range(lo, hi + 1)]
