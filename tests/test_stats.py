"""compute_stats on plain records and on records from a real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.support import profile
from tracker.models import complete_record, format_ts
from tracker.stats import STATS_FIELDS, STATS_KEYS, compute_stats, scan
from tracker.stats_render import render_stats, sparkline
from tracker.store import StoreReader, UserStore

NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


def rec(uid: int, first: datetime, last: datetime | None = None, **fields: Any) -> dict[str, Any]:
    record = {"id": uid, "first_seen": format_ts(first), "last_seen": format_ts(last or first)}
    record.update(
        first_name=f"U{uid}", last_name=None, username=None, language_code="en", is_bot=False,
        is_premium=None, messages=1, source=None, blocked=False, blocked_at=None,
    )
    record.update(fields)
    return record


def test_empty_has_every_key_and_zeros() -> None:
    stats = compute_stats([], now=NOW, tz=UTC_ZONE)
    assert tuple(stats) == STATS_KEYS
    assert stats["total_users"] == 0 and stats["messages_total"] == 0
    assert stats["first_seen"] is None and stats["last_seen"] is None
    assert stats["languages"] == {} and stats["sources"] == {}
    assert len(stats["new_per_day"]) == 30
    assert stats["new_per_day"][-1] == {"date": "2024-06-15", "users": 0}
    assert stats["new_per_day"][0]["date"] == "2024-05-17"


def test_counts_windows_languages_sources() -> None:
    records = [
        rec(1, NOW - timedelta(days=400), NOW - timedelta(hours=1), language_code="en", messages=5),
        rec(2, NOW - timedelta(days=10), NOW - timedelta(days=3), language_code="ru", source="ads"),
        rec(3, NOW - timedelta(days=20), NOW - timedelta(days=20), language_code=None, source="ads",
            blocked=True, messages=0),
        rec(4, NOW - timedelta(hours=2), NOW - timedelta(minutes=5), language_code="en", source="promo"),
        rec(5, NOW - timedelta(days=100), NOW - timedelta(days=40), language_code="en", blocked=True),
    ]
    stats = compute_stats(records, now=NOW, tz=UTC_ZONE)
    assert stats["total_users"] == 5
    assert stats["new_today"] == 1
    assert (stats["active_24h"], stats["active_7d"], stats["active_30d"]) == (2, 3, 4)
    assert stats["blocked_users"] == 2 and stats["reachable_users"] == 3
    assert stats["messages_total"] == 8
    assert stats["first_seen"] == format_ts(NOW - timedelta(days=400))
    assert stats["last_seen"] == format_ts(NOW - timedelta(minutes=5))
    assert list(stats["languages"].items()) == [("en", 3), ("ru", 1), ("unknown", 1)]
    assert list(stats["sources"].items()) == [("ads", 2), ("promo", 1)]
    per_day = {d["date"]: d["users"] for d in stats["new_per_day"]}
    assert per_day["2024-06-15"] == 1 and per_day["2024-06-05"] == 1 and per_day["2024-05-26"] == 1
    assert sum(per_day.values()) == 3  # 100 and 400 days ago fall outside the chart


def test_activity_boundary_is_inclusive() -> None:
    records = [rec(1, NOW - timedelta(days=9), NOW - timedelta(days=7)),
               rec(2, NOW - timedelta(days=9), NOW - timedelta(days=7, seconds=1))]
    assert compute_stats(records, now=NOW, tz=UTC_ZONE)["active_7d"] == 1


@pytest.mark.parametrize(
    ("zone", "today"),
    [("UTC", 0), ("Europe/Berlin", 1), ("America/New_York", 1)],
)
def test_new_today_depends_on_time_zone(zone: str, today: int) -> None:
    # First seen 23:30 UTC on June 14; "now" is 00:30 UTC on June 15.
    now = datetime(2024, 6, 15, 0, 30, tzinfo=UTC)
    records = [rec(1, datetime(2024, 6, 14, 23, 30, tzinfo=UTC))]
    stats = compute_stats(records, now=now, tz=ZoneInfo(zone))
    # UTC: the 14th, now the 15th. Berlin: 01:30 on the 15th, same day as now
    # (02:30). New York: 19:30 on the 14th, and now is 20:30 on the 14th.
    assert stats["new_today"] == today
    day = stats["new_per_day"][-1]["date"]
    assert day == now.astimezone(ZoneInfo(zone)).date().isoformat()
    assert sum(d["users"] for d in stats["new_per_day"]) == 1


def test_day_of_dst_change_is_bucketed_locally() -> None:
    # Europe/Berlin switched to summer time on 2024-03-31 (a 23-hour day).
    tz = ZoneInfo("Europe/Berlin")
    now = datetime(2024, 4, 2, 12, tzinfo=UTC)
    records = [
        rec(1, datetime(2024, 3, 30, 23, 30, tzinfo=UTC)),  # 00:30 CET on the 31st
        rec(2, datetime(2024, 3, 31, 21, 59, tzinfo=UTC)),  # 23:59 CEST on the 31st
        rec(3, datetime(2024, 3, 31, 22, 0, tzinfo=UTC)),  # 00:00 CEST on April 1st
    ]
    per_day = {d["date"]: d["users"] for d in compute_stats(records, now=now, tz=tz)["new_per_day"]}
    assert per_day["2024-03-31"] == 2 and per_day["2024-04-01"] == 1


def test_odd_records_take_the_tolerant_path() -> None:
    good = rec(1, NOW - timedelta(hours=1), messages=3, source="x")
    odd: dict[str, Any] = {"id": 2, "first_seen": format_ts(NOW), "messages": "many", "blocked": "yes"}
    stats = compute_stats(iter([good, odd]), now=NOW, tz=UTC_ZONE)
    assert stats["total_users"] == 2
    assert stats["messages_total"] == 3
    assert stats["blocked_users"] == 0
    assert stats["languages"] == {"en": 1, "unknown": 1}
    assert stats["new_today"] == 2
    assert stats["active_24h"] == 1  # the odd record has no last_seen


def test_matches_records_read_back_from_a_real_store(tmp_path: Any) -> None:
    path = tmp_path / "users.json"
    with UserStore(path) as store:
        store.seen(profile(10, first_name="A", language_code="de"), NOW - timedelta(days=2),
                   source="ads")
        store.seen(profile(11, first_name="B"), NOW - timedelta(hours=3))
        store.seen(profile(11, first_name="B"), NOW - timedelta(hours=1))
        store.set_blocked(10, True, NOW - timedelta(days=1))
    with UserStore(path, readonly=True) as reader:
        stats = compute_stats(reader, now=NOW, tz=UTC_ZONE)
    assert stats["total_users"] == 2
    assert stats["messages_total"] == 3
    assert stats["blocked_users"] == 1 and stats["reachable_users"] == 1
    assert stats["languages"] == {"de": 1, "unknown": 1}
    assert stats["sources"] == {"ads": 1}
    assert (stats["new_today"], stats["active_24h"], stats["active_7d"]) == (1, 1, 2)


@pytest.mark.parametrize("latest", [timedelta(hours=1), timedelta(days=45)], ids=["recent", "all-idle"])
def test_the_column_cache_and_the_records_agree(tmp_path: Path, latest: timedelta) -> None:
    """Timestamps as seconds (the column cache) and as text (records) give the same figures, also
    with a null first_seen (0 in the cache) and when nobody was active in the last 30 days."""
    records = [rec(i, NOW - latest - timedelta(days=i), NOW - latest - timedelta(hours=i),
                   language_code=["en", "de", None][i % 3], source=["ads", None][i % 2], blocked=i % 4 == 0)
               for i in range(1, 40)]
    records[5]["first_seen"] = None
    path = tmp_path / "users.json"
    document = {"users": {str(r["id"]): r for r in records}, "meta": {"1": {"schema": 1}}}
    path.write_bytes(orjson.dumps(document))
    UserStore(path).close()  # leaves the column cache beside it, as the bot does
    columns = StoreReader(path).columns(STATS_FIELDS)
    assert hasattr(columns["first_seen"], "seconds")  # the precondition: the cache's form

    from_cache = scan(columns, now=NOW, tz=UTC_ZONE).to_json()

    assert from_cache == compute_stats(records, now=NOW, tz=UTC_ZONE)
    assert from_cache["last_seen"] == format_ts(NOW - latest - timedelta(hours=1))
    assert from_cache["first_seen"] == format_ts(NOW - latest - timedelta(days=39))


def test_complete_records_and_plain_dicts_agree() -> None:
    codes = ["en", "de", None]
    records = [rec(i, NOW - timedelta(hours=7 * i), language_code=codes[i % 3]) for i in range(50)]
    partial = [complete_record({k: v for k, v in r.items() if k not in ("source", "blocked_at")})
               for r in records]
    assert compute_stats(records, now=NOW, tz=UTC_ZONE) == compute_stats(partial, now=NOW, tz=UTC_ZONE)


def test_sparkline_scales_and_keeps_small_days_visible() -> None:
    assert sparkline([0, 0, 0]) == "   "
    line = sparkline([0, 1, 100])
    assert line[0] == " " and line[1] != " " and line[2] == "█"


def test_render_stats_shows_figures_and_chart() -> None:
    records = [rec(1, NOW - timedelta(hours=1), source="ads"), rec(2, NOW - timedelta(days=2))]
    text = render_stats(compute_stats(records, now=NOW, tz=UTC_ZONE), UTC_ZONE)
    assert "Users:          2" in text
    assert "Sources:        ads 1 (50%)" in text
    chart = next(line for line in text.splitlines() if line.startswith("New per day:"))
    assert "2024-05-17 .. 2024-06-15" in chart and "█" in chart
