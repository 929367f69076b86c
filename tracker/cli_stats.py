"""The ``stats`` command's work, and its answer without Click (``tracker stats [--json]``).

``stats`` is meant to answer at once, and at a hundred thousand users most of
its time used to be start-up, half of that importing Click. So
:func:`tracker.cli_main.main` first offers the command line to :func:`answer`,
which understands only the plain form of the command: the global ``--config``
and ``--store``, then ``stats`` with ``--json``, ``--tz``, ``--source``,
``--config`` and ``--store`` (each ``--opt VALUE`` or ``--opt=VALUE``). It
runs what the Click command runs (:func:`stats_text`: settings, the reader,
the scan, the same rendering) and returns the text, or None for anything else
-- another shape of command line, a value Click would check or refuse, or any
failure at all (no store, a bad config, a bad zone) -- and then Click runs the
command from the start, so every message, exit status and usage error is
Click's own. tests/test_cli_stats.py compares both paths byte for byte.

Like :mod:`tracker.cli_main`, this module imports only ``os`` and ``sys`` at
the top: the rest is what the command needs anyway.
"""

from __future__ import annotations

import os
import sys

# Not ``from typing import TYPE_CHECKING``: see tracker/__init__.py. mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tracker.store import StoreReader

#: Options taking a value, as the group (before ``stats``) and the command (after it) accept them.
GROUP_OPTIONS = ("--config", "--store")
COMMAND_OPTIONS = ("--config", "--store", "--tz", "--source")

#: What ``--source`` takes for "no source" (tracker.params.NO_SOURCE; not imported: it imports Click).
NO_SOURCE = "none"


class StatsCall:
    """A plain ``stats`` command line: the values of its options (the last one given wins, as in Click)."""

    __slots__ = ("as_json", "config", "sources", "store", "tz")

    def __init__(self) -> None:
        self.config: str | None = None
        self.store: str | None = None
        self.tz: str | None = None
        self.as_json = False
        self.sources: list[str | None] = []

    def take(self, option: str, value: str) -> None:
        if option == "--source":
            self.sources.append(None if value == NO_SOURCE else value)
        else:
            setattr(self, option[2:], value)


def parse(args: list[str]) -> StatsCall | None:
    """The :class:`StatsCall` of ``args`` (what follows the program name); None if it is not plain."""
    call = StatsCall()
    at, command = 0, False
    while at < len(args):
        arg = args[at]
        at += 1
        if not command and arg == "stats":
            command = True
            continue
        if command and arg == "--json":
            call.as_json = True
            continue
        option, equals, value = arg.partition("=")
        if option not in (COMMAND_OPTIONS if command else GROUP_OPTIONS):
            return None  # another command, an argument, --help, --: Click's business
        if not equals:
            if at == len(args):
                return None
            value = args[at]
            at += 1
        # Values Click reads in ways of its own (an empty one, one that looks like an
        # option) and paths it would refuse (a folder, an unreadable file) go to Click.
        if not value or value.startswith("-") or (option in GROUP_OPTIONS and not _plain_path(value)):
            return None
        call.take(option, value)
    return call if command else None


def _plain_path(value: str) -> bool:
    """Whether ``click.Path(dir_okay=False)`` takes ``value`` as it is: missing, or a readable non-folder."""
    try:
        is_folder = os.path.isdir(value)
        exists = os.path.lexists(value)
    except ValueError:  # a NUL in it
        return False
    return not is_folder and (not exists or os.access(value, os.R_OK))


def answer(args: list[str]) -> str | None:
    """What ``tracker ARGS`` prints when it is a plain ``stats`` that succeeds; None: ask Click.

    None also for any failure: Click then runs the command again and reports
    it in its own words (a failure costs the time of a second try, nothing else).
    """
    call = parse(args)
    if call is None or sys.stdout is None or not _utf8(sys.stdout):
        return None
    try:
        text = _run(call)
    except Exception:
        return None  # see the docstring: Click's path is the reference for every failure
    # Click strips ANSI codes from output that is not a terminal; stats has none to strip, and if
    # it ever had (user text that slipped through), Click shall decide.
    return None if "\x1b" in text else text + "\n"


def _utf8(stream: object) -> bool:
    """Whether Click would write to ``stream`` as it is (it re-wraps an ASCII one) and in UTF-8."""
    import codecs

    encoding = getattr(stream, "encoding", None)
    try:
        return isinstance(encoding, str) and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _run(call: StatsCall) -> str:
    import gc

    # As the Click group does for one-shot commands (millions of values, nothing
    # freed); before the imports, which it would otherwise scan a few times (~3 ms).
    gc.disable()
    from datetime import UTC, datetime
    from pathlib import Path

    from tracker import config as config_mod
    from tracker.store import StoreReader

    settings = config_mod.load(call.config)
    store = Path(call.store) if call.store else settings.store
    zone = settings.tz
    if call.tz is not None:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(call.tz)
    return stats_text(StoreReader(store), zone=zone, sources=tuple(call.sources), as_json=call.as_json,
                      now=lambda: datetime.now(UTC))


def stats_text(
    reader: StoreReader, *, zone: ZoneInfo, sources: tuple[str | None, ...], as_json: bool,
    now: Callable[[], datetime],
) -> str:
    """What ``stats`` prints (without the final newline): the JSON document or the human table.

    The one implementation behind the Click command and :func:`answer`.
    ``now`` is the command's clock, asked once for the filters and once for the scan.
    """
    from tracker.stats import STATS_FIELDS, scan

    fields = ("id", *STATS_FIELDS)
    if sources:
        from tracker.filters import Filters

        filters = Filters(sources=sources)
        columns = filters.select(reader.columns(tuple(dict.fromkeys((*fields, *filters.fields)))),
                                 now=now(), tz=zone)
    else:
        columns = reader.columns(fields)
    result = scan(columns, now=now(), tz=zone)
    if as_json:
        import orjson

        return orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode()
    from tracker.stats_render import render_stats
    from tracker.table import known_width

    return render_stats(result, zone, known_width())
