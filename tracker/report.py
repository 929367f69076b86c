"""``report PATH.html``: one self-contained HTML page about the audience.

Everything is inline (styles and SVG charts drawn here; no scripts, fonts,
images or links to anywhere), so the page works offline, opened from disk or
mailed. Every user-controlled string (sources, languages, commands) is escaped.
SVGs scale with the page (``viewBox``, width 100%), so it reads on a phone.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from tracker import audience
from tracker.audience import AudienceSource, Cohort
from tracker.periods import Grain
from tracker.stats import STATS_FIELDS, compute_stats_from_columns

_W, _H, _PAD_L, _PAD_B, _PAD_T = 640, 260, 56, 30, 14
_NEW, _ACTIVE, _TOTAL = "#2f6fde", "#f08c2e", "#2a9d6f"

_STYLE = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:12px;
background:#f6f7f9;color:#1d232b}
main{max-width:900px;margin:auto}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.note{color:#5b6573;font-size:.9em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:8px}
.card{background:#fff;border-radius:8px;padding:10px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:1.5em}
section{background:#fff;border-radius:8px;padding:10px;margin-top:10px;box-shadow:0 1px 2px #0002;
overflow-x:auto}
svg{width:100%;max-width:760px;height:auto;display:block;margin:auto}
svg text{font-size:15px;fill:#5b6573}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{padding:4px 6px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
"""


def render(source: AudienceSource, *, days: int, now: datetime, tz: ZoneInfo) -> str:
    """The whole page. Raises ValueError when the history tables are malformed."""
    # One list of the page's parts in reading order: split up, the page's order would be scattered.
    hist = audience.history(source, Grain.DAY, days, now, tz)
    cohorts = audience.retention(source, Grain.WEEK, 12, now, tz)
    columns = source.columns(sorted({*STATS_FIELDS, *audience.SOURCES_FIELDS}))
    stats = compute_stats_from_columns(columns, now=now, tz=ZoneInfo(hist.timezone))
    active_today = audience.active_today(columns["last_seen"], now, ZoneInfo(hist.timezone))
    srcs = audience.sources(columns, now)
    since = hist.since.isoformat() if hist.since else "not yet recorded"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Audience report {escape(now.astimezone(tz).date().isoformat())}</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        "<h1>Audience report</h1>",
        f"<p class='note'>Made {escape(now.astimezone(tz).strftime('%Y-%m-%d %H:%M'))} "
        f"({escape(hist.timezone)}); "
        f"activity recorded since {escape(since)}.</p>",
        _cards(stats, active_today),
        "<section><h2>Users over time</h2>",
        _line_chart([r.period.isoformat() for r in hist.periods], [r.total for r in hist.periods]),
        "</section><section><h2>New and active users per day</h2>",
        f"<div class='legend note'><span style='background:{_NEW}'></span>new"
        f"<span style='background:{_ACTIVE}'></span>active</div>",
        _bar_chart(
            [r.period.isoformat() for r in hist.periods],
            [r.new for r in hist.periods],
            [r.active for r in hist.periods],
        ),
        "</section><section><h2>Weekly retention</h2>",
        "<p class='note'>Share of each week's new users active in each later week.</p>",
        _heatmap(cohorts.cohorts),
        "</section><section><h2>Sources</h2>",
        _sources_table(srcs),
        "</section><section><h2>Languages</h2>",
        _table(["language", "users"], [[k, v] for k, v in stats["languages"].items()]),
        "</section><section><h2>Commands in these days</h2>",
        _table(["command", "count"], _commands(hist.periods)),
        "</section></main></body></html>",
    ]
    return "\n".join(parts)


def _sources_table(report: audience.SourcesReport) -> str:
    rows = [
        [r.source if r.source is not None else "(none)", *(getattr(r, k) for k in audience.SOURCES_KEYS[1:])]
        for r in report.rows
    ]
    return _table([k.replace("_", " ") for k in audience.SOURCES_KEYS], rows)


def _cards(stats: dict[str, Any], active_today: int) -> str:
    figures = [
        ("Users", stats["total_users"]),
        ("New today", stats["new_today"]),
        ("Active today", active_today),
        ("Active 7 days", stats["active_7d"]),
        ("Active 30 days", stats["active_30d"]),
        ("Blocked", stats["blocked_users"]),
        ("Messages", stats["messages_total"]),
    ]
    cards = "".join(f"<div class='card'>{escape(label)}<b>{value:,}</b></div>" for label, value in figures)
    return f"<div class='cards'>{cards}</div>"


def _commands(periods: tuple[audience.PeriodRow, ...]) -> list[list[Any]]:
    total: Counter[str] = Counter()
    for row in periods:
        total.update(row.commands)
    return [[name, count] for name, count in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:20]]


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p class='note'>None yet.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    return f"{value:,}" if type(value) is int else escape(str(value))


# ------------------------------------------------------------------ charts


def _scale(values: list[int]) -> tuple[int, float]:
    """A round top for the y axis (four equal steps of 1, 2 or 5 × 10ⁿ) and pixels per unit."""
    need = max(max(values, default=0), 1) / 4
    magnitude = 10 ** (len(str(int(need))) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= need)
    return 4 * step, (_H - _PAD_B - _PAD_T) / (4 * step)


def _axes(labels: list[str], top: int) -> list[str]:
    """Grid lines with y labels, and a few x labels (first, middle, last)."""
    out = []
    for i in range(5):
        value = top * i // 4
        y = _H - _PAD_B - (_H - _PAD_B - _PAD_T) * i / 4
        out.append(f"<line x1='{_PAD_L}' x2='{_W}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e4e7eb'/>")
        out.append(f"<text x='{_PAD_L - 6}' y='{y + 4:.1f}' text-anchor='end'>{value:,}</text>")
    step = (_W - _PAD_L) / max(len(labels), 1)
    for i in sorted({0, len(labels) // 2, len(labels) - 1}) if labels else []:
        x = _PAD_L + step * (i + 0.5)
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        out.append(f"<text x='{x:.1f}' y='{_H - 8}' text-anchor='{anchor}'>{escape(labels[i])}</text>")
    return out


def _svg(body: list[str], label: str) -> str:
    return f"<svg viewBox='0 0 {_W} {_H}' role='img' aria-label='{escape(label)}'>" + "".join(body) + "</svg>"


def _line_chart(labels: list[str], values: list[int]) -> str:
    top, unit = _scale(values)
    step = (_W - _PAD_L) / max(len(values), 1)
    points = [(_PAD_L + step * (i + 0.5), _H - _PAD_B - v * unit) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body = _axes(labels, top)
    if points:
        base = _H - _PAD_B
        area = f"{points[0][0]:.1f},{base} {path} {points[-1][0]:.1f},{base}"
        body.append(f"<polygon points='{area}' fill='{_TOTAL}' fill-opacity='.15'/>")
        body.append(f"<polyline points='{path}' fill='none' stroke='{_TOTAL}' stroke-width='2.5'/>")
        for (x, y), label, value in zip(points, labels, values, strict=True):
            body.append(
                f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{_TOTAL}'>"
                f"<title>{escape(label)}: {value:,} users</title></circle>"
            )
    return _svg(body, "users over time")


def _bar_chart(labels: list[str], new: list[int], active: list[int]) -> str:
    top, unit = _scale(new + active)
    step = (_W - _PAD_L) / max(len(labels), 1)
    bar = step * 0.4
    body = _axes(labels, top)
    for i, label in enumerate(labels):
        x = _PAD_L + step * i + step * 0.1
        for offset, value, colour, what in ((0.0, new[i], _NEW, "new"), (bar, active[i], _ACTIVE, "active")):
            h = value * unit
            body.append(
                f"<rect x='{x + offset:.1f}' y='{_H - _PAD_B - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{colour}'><title>{escape(label)}: {value:,} {what}</title></rect>"
            )
    return _svg(body, "new and active users per day")


def _heatmap(cohorts: tuple[Cohort, ...]) -> str:
    width = max((len(c.active) for c in cohorts), default=1)
    label_w, cell_h = 170, 28
    cell_w = (_W - label_w) / width
    height = cell_h * (len(cohorts) + 1)
    body = [
        f"<text x='{label_w + cell_w * (k + 0.5):.1f}' y='19' text-anchor='middle'>+{k}</text>"
        for k in range(width)
    ]
    for row, cohort in enumerate(cohorts):
        y = cell_h * (row + 1)
        body.append(f"<text x='0' y='{y + 19}'>{escape(cohort.cohort.isoformat())} ({cohort.users:,})</text>")
        for k, count in enumerate(cohort.active):
            share = count / cohort.users if cohort.users else 0.0
            colour = _heat(share)
            ink = "#fff" if share > 0.55 else "#1d232b"
            x = label_w + cell_w * k
            text = f"{100 * share:.0f}%" if cohort.users else "–"
            body.append(
                f"<rect x='{x:.1f}' y='{y}' width='{cell_w - 2:.1f}' height='{cell_h - 2}' fill='{colour}'>"
                f"<title>{count:,} of {cohort.users:,}</title></rect>"
            )
            body.append(
                f"<text x='{x + cell_w / 2 - 1:.1f}' y='{y + 18}' text-anchor='middle' "
                f"style='fill:{ink};font-size:12px'>{text}</text>"
            )
    return (
        f"<svg viewBox='0 0 {_W} {height}' role='img' aria-label='retention heatmap'>"
        + "".join(body)
        + "</svg>"
    )


def _heat(share: float) -> str:
    """From a pale grey-blue (0%) to a deep blue (100%)."""
    low, high = (236, 240, 246), (24, 78, 170)
    r, g, b = (round(lo + (hi - lo) * min(max(share, 0.0), 1.0)) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"
