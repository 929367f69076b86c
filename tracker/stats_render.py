"""The human ``stats`` table: one labelled line per figure, fitted to the terminal.

Languages and sources are user text (a deep-link payload, a language code
from a client) of any length and script: each list shows the top entries
that fit the width and ends with ``+N more`` for the rest; a single entry too
long for the line has its name cut with ``…``, never its numbers. The
new-per-day chart keeps its bars and drops the dates before the maximum. No
control character reaches the terminal (:func:`~tracker.table.printable`).
Re-exported by :mod:`tracker.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tracker.models import parse_ts
from tracker.table import display_width, fit, printable

if TYPE_CHECKING:
    from tracker.stats import Stats

#: At most this many languages or sources are listed.
TOP_N = 5

#: Every line starts with a label padded to this many columns.
LABEL_WIDTH = 16

_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int]) -> str:
    """Unicode block bars, one per value, scaled to the largest (0 is a blank)."""
    top = max(values, default=0)
    if top <= 0:
        return _BARS[0] * len(values)
    steps = len(_BARS) - 1
    # Any non-zero day gets at least the lowest bar so it is not mistaken for none.
    return "".join(_BARS[0] if v <= 0 else _BARS[max(1, round(v * steps / top))] for v in values)


def render_stats(stats: Stats | Mapping[str, Any], tz: ZoneInfo, width: int | None = None) -> str:
    """The human table of a :class:`~tracker.stats.Stats` (or its JSON document), chart included.

    With ``width``, every line fits in ``width`` terminal columns (short of a
    terminal too narrow for a label and one number); without, nothing is cut.
    """
    if not isinstance(stats, Mapping):
        stats = stats.to_json()
    room = None if width is None else max(width - LABEL_WIDTH, 1)
    total = stats["total_users"]
    figures = [
        ("Users", f"{total:,}"),
        ("New today", f"{stats['new_today']:,}  ({tz.key})"),
        ("Active 24h", f"{stats['active_24h']:,}"),
        ("Active 7d", f"{stats['active_7d']:,}"),
        ("Active 30d", f"{stats['active_30d']:,}"),
        ("Blocked", f"{stats['blocked_users']:,}"),
        ("Reachable", f"{stats['reachable_users']:,}"),
        ("Messages", f"{stats['messages_total']:,}"),
        ("First seen", _cut(_fmt_ts(stats["first_seen"], tz), room)),
        ("Last seen", _cut(_fmt_ts(stats["last_seen"], tz), room)),
        ("Languages", _top(stats["languages"], total, room)),
        ("Sources", _top(stats["sources"], total, room)),
    ]
    days = stats["new_per_day"]
    if days:
        figures.append(("New per day", _chart(days, room)))
    return "\n".join(f"{label + ':':<{LABEL_WIDTH}}{value}" for label, value in figures)


def _fmt_ts(text: str | None, tz: ZoneInfo) -> str:
    if text is None:
        return "-"
    try:
        at = parse_ts(text)
    except (TypeError, ValueError):
        return printable(text)  # a hand-edited store: shown as it is, made safe
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _cut(text: str, room: int | None) -> str:
    """``text`` cut with ``…`` to ``room`` columns (``None``: as it is)."""
    if room is None or display_width(text) <= room:
        return text
    return fit(text, room).rstrip()


def _top(counts: Mapping[str, int], total: int, room: int | None) -> str:
    """The largest entries of ``counts`` that fit ``room``, each with its numbers, then ``+N more``."""
    if not counts:
        return "-"
    entries = [
        (printable(name), f"{n:,} ({n * 100 / total:.0f}%)" if total else f"{n:,}")
        for name, n in list(counts.items())[:TOP_N]
    ]
    def listed(shown: int) -> str:
        rest = len(counts) - shown
        return ", ".join(f"{name} {figure}" for name, figure in entries[:shown]) + (
            f", +{rest} more" if rest else ""
        )

    if room is None:
        return listed(len(entries))
    # Fewer entries until the line fits; the first is always listed (its name cut if need be).
    for shown in range(len(entries), 0, -1):
        text = listed(shown)
        if display_width(text) <= room:
            return text
    name = entries[0][0]
    tail = listed(1)[len(name) :]  # its numbers and the "+N more"
    return _cut(name, max(room - display_width(tail), 1)) + tail


def _chart(days: Sequence[Mapping[str, Any]], room: int | None) -> str:
    """The sparkline, then the days it covers and its maximum, as much of that as fits."""
    counts = [d["users"] for d in days]
    bars = sparkline(counts)
    first, last = days[0]["date"], days[-1]["date"]
    peak = f"max {max(counts):,}/day"
    # Shorter and shorter captions: full dates, dates without the year, the maximum alone.
    for caption in (f"  {first} .. {last}, {peak}", f"  {first[5:]} .. {last[5:]}, {peak}", f"  {peak}"):
        if room is None or len(bars) + len(caption) <= room:
            return bars + caption
    return bars[-room:] if room is not None else bars  # the latest days
