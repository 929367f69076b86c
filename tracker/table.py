"""Terminal presentation for the CLI: safe text, display widths, local times, the ``users`` table.

Names come from strangers, so every cell is made printable first (control and
bidi characters never reach the terminal raw) and then measured in terminal
columns with :mod:`wcwidth` (a CJK character or most emoji take two columns,
a combining mark none). The ``users`` table is fitted to the terminal: columns
are dropped or narrowed in a fixed order and long text is cut with ``…``, so a
row never wraps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from tracker.models import parse_ts

# ``stats`` imports this module (for printable), ``stats --json`` included:
# what only drawing tables needs is imported where it is used.
if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = [
    "Column",
    "display_width",
    "escape",
    "fit",
    "local_time",
    "printable",
    "relative",
    "render_record",
    "render_users",
    "terminal_width",
]

#: C0/C1 controls and the bidi embedding/override/isolate/mark characters: a
#: name holding them could move the cursor, hide text or reorder a line. Also
#: the invisible ones that make two different values look alike (``ref\u200b1``
#: and ``ref1`` as a --source, a "blank" name of Hangul fillers): zero-width
#: space, word joiner and invisible operators, BOM, Mongolian vowel separator,
#: Hangul fillers. Zero-width (non-)joiners stay: emoji and scripts need them.
UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\u200b\u2060-\u2064\ufeff\u180e\u115f\u1160\u3164\uffa0]"
)

#: Gap between two table columns.
GAP = "  "

#: Width used when neither $COLUMNS nor the terminal says.
DEFAULT_WIDTH = 80

ELLIPSIS = "…"


def printable(value: Any) -> str:
    """``value`` as text with every unsafe character replaced by ``?`` (for tables)."""
    text = "" if value is None else str(value)
    return UNSAFE_CHARS.sub("?", text)


def escape(text: str) -> str:
    """``text`` with every unsafe character written as ``\\uXXXX`` (for ``show``: nothing hidden)."""
    return UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (call on :func:`printable` text)."""
    if text.isascii():
        return len(text)
    from wcwidth import wcswidth, wcwidth  # only non-ASCII text pays for importing it

    width = wcswidth(text)
    if width < 0:  # a character wcwidth cannot place: count it as one column
        width = sum(max(wcwidth(char), 1 if wcwidth(char) < 0 else 0) for char in text)
    return width


def fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` cut with ``…`` to at most ``width`` columns, then padded to exactly ``width``."""
    used = display_width(text)
    if used > width:
        text, used = _cut(text, width - 1)
        text, used = text + ELLIPSIS, used + 1
    pad = " " * (width - used)
    return pad + text if right else text + pad


def _cut(text: str, width: int) -> tuple[str, int]:
    """The longest prefix of ``text`` within ``width`` columns, and its width.

    Measured as whole prefixes, so that zero-width joiners and combining marks
    stay with the character before them exactly as wcswidth counts them.
    """
    best = ("", 0)
    for end in range(1, len(text) + 1):
        used = display_width(text[:end])
        if used > width:
            break
        best = (text[:end], used)
    return best


def terminal_width() -> int:
    """$COLUMNS, else the real terminal's width, else :data:`DEFAULT_WIDTH`."""
    import shutil

    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def known_width() -> int | None:
    """$COLUMNS, else the real terminal's width; None when neither says (output to a file or a pipe).

    For output that is cut only to fit a terminal (``stats``): with no terminal
    to fit, nothing is cut.
    """
    import shutil

    return shutil.get_terminal_size((0, 0)).columns or None


# ------------------------------------------------------------------ times


def local_time(stamp: Any, tz: ZoneInfo, *, seconds: bool = False) -> str:
    """A stored UTC timestamp as wall-clock time in ``tz`` (the text as is if it does not parse)."""
    at = _parse(stamp)
    if at is None:
        return printable(stamp)
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M")


def local_date(stamp: Any, tz: ZoneInfo) -> str:
    """The day of a stored timestamp in ``tz``."""
    at = _parse(stamp)
    return printable(stamp) if at is None else at.astimezone(tz).strftime("%Y-%m-%d")


def relative(stamp: Any, now: datetime) -> str:
    """How long ago a stored timestamp was: ``just now``, ``5 min ago``, ``3 h ago``, ``12 d ago``."""
    at = _parse(stamp)
    if at is None:
        return ""
    seconds = int((now - at).total_seconds())
    suffix = "ago"
    if seconds < 0:
        seconds, suffix = -seconds, "ahead"
    if seconds < 60:
        return "just now" if suffix == "ago" else f"{seconds} s ahead"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:,} {unit} {suffix}"
    return ""  # unreachable: seconds >= 60 here


def _parse(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return parse_ts(stamp)
    except (TypeError, ValueError, OverflowError):
        return None


# ------------------------------------------------------------------ users


Row = Mapping[str, Any]


class Column(NamedTuple):
    """One table column: a title, how to render a row, and how it may give way.

    ``flexible`` columns share the room left over and are cut with ``…`` down to
    ``minimum``; the others always get their widest cell. ``drop_rank`` says
    when the column is dropped to make room (1 first; 0 never).
    """

    title: str
    render: Callable[[Row], str]
    flexible: bool = False
    minimum: int = 0
    right: bool = False
    drop_rank: int = 0


def _name(row: Row) -> str:
    return " ".join(str(p) for p in (row.get("first_name"), row.get("last_name")) if p)


def users_columns(tz: ZoneInfo, now: datetime, *, last_seen_clock: bool) -> list[Column]:
    """The ``users`` columns; ``last_seen_clock`` adds the local time before the relative one."""

    def last_seen(row: Row) -> str:
        ago = relative(row.get("last_seen"), now)
        return f"{local_time(row.get('last_seen'), tz)} ({ago})" if last_seen_clock else ago

    return [
        Column("ID", lambda r: printable(r.get("id")), right=True),
        Column("USERNAME", lambda r: printable(f"@{r['username']}" if r.get("username") else ""),
               flexible=True, minimum=8),
        Column("NAME", lambda r: printable(_name(r)), flexible=True, minimum=8),
        Column("LANG", lambda r: printable(r.get("language_code")), flexible=True, minimum=4, drop_rank=4),
        Column("MSGS", lambda r: printable(r.get("messages")), right=True),
        Column("FIRST SEEN", lambda r: local_date(r.get("first_seen"), tz), drop_rank=2),
        Column("LAST SEEN", last_seen),
        Column("SOURCE", lambda r: printable(r.get("source")), flexible=True, minimum=6, drop_rank=3),
        Column("BLOCKED", lambda r: "yes" if r.get("blocked") is True else "", drop_rank=5),
    ]


#: At this width and above the SOURCE column is always shown (DESIGN.md).
SOURCE_ALWAYS_AT = 100


def render_users(rows: Sequence[Row], *, width: int, tz: ZoneInfo, now: datetime) -> str:
    """The ``users`` table, every line at most ``width`` terminal columns."""
    variants = []
    for clock in (True, False):
        columns = users_columns(tz, now, last_seen_clock=clock)
        variants.append((columns, [[column.render(row) for row in rows] for column in columns]))
    layout = _layout(variants, width)
    lines = [_line([(c.title, c) for c in layout.columns], layout.widths)]
    for i in range(len(rows)):
        lines.append(_line([(layout.cells[k][i], c) for k, c in enumerate(layout.columns)], layout.widths))
    return "\n".join(_cut(line, width)[0] if display_width(line) > width else line for line in lines)


class _Layout(NamedTuple):
    columns: list[Column]
    cells: list[list[str]]
    widths: list[int]


def _layout(variants: list[tuple[list[Column], list[list[str]]]], width: int) -> _Layout:
    """The richest layout that fits ``width``.

    Tried in order: every column, first with the last-seen clock time, then
    with the relative time alone; then the same after dropping the columns of
    each ``drop_rank`` in turn. On a very narrow terminal the narrowest layout
    is returned and the caller cuts its lines.
    """
    ranks = sorted({c.drop_rank for c in variants[0][0] if c.drop_rank})
    dropped: set[int] = set()
    for rank in [0, *ranks]:
        if rank == 3 and width >= SOURCE_ALWAYS_AT:
            continue  # SOURCE stays at 100+ columns
        if rank:
            dropped.add(rank)
        for columns, cells in variants:
            kept = [k for k, c in enumerate(columns) if c.drop_rank not in dropped]
            natural = [_natural(columns[k], cells[k]) for k in kept]
            minimum = [min(n, max(columns[k].minimum, len(columns[k].title))) if columns[k].flexible else n
                       for k, n in zip(kept, natural, strict=True)]
            room = width - len(GAP) * (len(kept) - 1) - sum(minimum)
            if room >= 0:
                widths = _share(room, minimum, natural)
                return _Layout([columns[k] for k in kept], [cells[k] for k in kept], widths)
    return _narrowest(*variants[-1])


def _share(room: int, widths: list[int], wanted: list[int]) -> list[int]:
    """Give ``room`` columns to the narrowed ones, one at a time, widest need last."""
    widths = list(widths)
    while room > 0:
        short = [k for k in range(len(widths)) if widths[k] < wanted[k]]
        if not short:
            break
        for k in short:
            if room == 0:
                break
            widths[k] += 1
            room -= 1
    return widths


def _narrowest(columns: list[Column], cells: list[list[str]]) -> _Layout:
    kept = [k for k, c in enumerate(columns) if c.drop_rank == 0]
    narrow = [columns[k]._replace(minimum=min(columns[k].minimum, 4)) for k in kept]
    widths = [min(c.minimum, len(c.title)) if c.flexible else _natural(c, cells[k])
              for c, k in zip(narrow, kept, strict=True)]
    return _Layout(narrow, [cells[k] for k in kept], widths)


def _natural(column: Column, cells: list[str]) -> int:
    """The width ``column`` takes uncut: its widest cell or its title."""
    return max([display_width(column.title), *map(display_width, cells)])


def _line(cells: list[tuple[str, Column]], widths: list[int]) -> str:
    parts = (fit(text, w, right=col.right) for (text, col), w in zip(cells, widths, strict=True))
    return GAP.join(parts).rstrip()


# ------------------------------------------------------------------- show

#: Fields ``show`` prints as local times.
TIME_FIELDS = frozenset({"first_seen", "last_seen", "blocked_at"})


def render_record(record: Mapping[str, Any], *, tz: ZoneInfo, now: datetime) -> str:
    """``show``: one field per line, times in ``tz`` with how long ago, text escaped."""
    import orjson

    width = max(map(len, record))
    lines = []
    for field, value in record.items():
        if field in TIME_FIELDS and _parse(value) is not None:
            text = f"{local_time(value, tz, seconds=True)} ({relative(value, now)})"
        elif isinstance(value, str):
            text = escape(value)
        else:
            text = orjson.dumps(value).decode()
        lines.append(f"{escape(field).ljust(width)}  {text}")
    return "\n".join(lines)
