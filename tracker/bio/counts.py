"""The numbers the profile templates may show, counted straight from the records.

One pass reading four fields, not the whole ``stats`` document (languages,
sources, the 30-day chart) only to keep four integers. The definitions are the
ones of :func:`tracker.stats.compute_stats`, so the profile and ``stats`` agree
(a test checks it): ``users`` = ``total_users``, ``reachable`` = users that have not
blocked the account, ``active_30d`` = last seen within 30 days, ``new_today`` =
first seen today in the configured zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tracker.config import Settings
from tracker.models import format_ts
from tracker.stats import day_boundaries
from tracker.store import UserStore

from .text import needs_full_pass


def count_values(records: Iterable[Mapping[str, Any]], *, now: datetime, tz: ZoneInfo) -> dict[str, int]:
    """``users``, ``reachable``, ``active_30d`` and ``new_today`` of ``records`` at ``now``.

    Timestamps are compared as text (the store's format sorts as time); a value of
    the wrong type (a hand-edited store) is simply not counted in that figure.
    """
    _, bounds = day_boundaries(now, tz, days=1)
    today_start, tomorrow_start = bounds
    active_since = format_ts(now - timedelta(days=30))
    users = blocked = active = new = 0
    for record in records:
        users += 1
        get = record.get
        if get("blocked") is True:
            blocked += 1
        last_seen = get("last_seen")
        if type(last_seen) is str and last_seen >= active_since:
            active += 1
        first_seen = get("first_seen")
        if type(first_seen) is str and today_start <= first_seen < tomorrow_start:
            new += 1
    return {"users": users, "reachable": users - blocked, "active_30d": active, "new_today": new}


def store_values(settings: Settings, store: UserStore, *, now: float, is_bot: bool) -> dict[str, int]:
    """The placeholder values for ``store`` at ``now`` (a Unix time).

    Only ``{users}`` in the templates: ``len(store)``, no pass over the records.
    """
    if not needs_full_pass(settings, is_bot=is_bot):
        return {"users": len(store), "reachable": 0, "active_30d": 0, "new_today": 0}
    return count_values(iter(store), now=datetime.fromtimestamp(now, UTC), tz=settings.tz)
