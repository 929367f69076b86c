"""The ``tracker`` command line: ``python cli.py --help``.

Every command opens the store, makes one call and turns the domain errors
(:class:`~tracker.store.StoreError`, :class:`~tracker.config.ConfigError`, ...)
into :class:`click.ClickException`: one line on stderr and exit status 1;
Click's usage errors exit with 2. Readers take no lock, so all of this is safe
while the bot runs.

Start-up time matters (``stats`` is meant to answer at once), so this module
imports neither pyrogram nor asyncio: ``refresh-bio`` and the control channel
are imported inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from heapq import nlargest
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson

from tracker import __version__
from tracker import config as config_mod
from tracker.config import ConfigError, Settings
from tracker.models import format_ts
from tracker.store import StoreError, StoreLockedError, StoreNotFoundError, UserStore, load_columns

F = TypeVar("F", bound=Callable[..., Any])
Record = Mapping[str, Any]

#: Exports larger than this show a progress bar (when stderr is a terminal).
PROGRESS_MIN_ROWS = 50_000

SORT_KEYS = ("last_seen", "first_seen", "messages")


# ------------------------------------------------------------------ types


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A span like ``90s``, ``30m``, ``24h``, ``7d`` or ``2w``."""

    name = "duration"
    _units: ClassVar[dict[str, str]] = {
        "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"
    }
    _pattern = re.compile(r"(\d+)\s*([smhdw])")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = self._pattern.fullmatch(str(value).strip().lower())
        if not match:
            self.fail(f"{value!r} is not a duration like 7d, 24h, 30m, 2w", param, ctx)
        try:
            return timedelta(**{self._units[match.group(2)]: int(match.group(1))})
        except OverflowError:
            self.fail(f"{value!r} is too long a span", param, ctx)


class TimeZone(click.ParamType):  # type: ignore[type-arg]
    """An IANA time zone name such as ``Europe/Berlin``."""

    name = "zone"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ZoneInfo:
        if isinstance(value, ZoneInfo):
            return value
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(f"unknown time zone {value!r} (use a name like Europe/Berlin or UTC)", param, ctx)


# ---------------------------------------------------------------- context


@dataclasses.dataclass
class _State:
    config: str | None
    store: str | None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            settings = config_mod.load(self.config)
            if self.store:
                settings = dataclasses.replace(settings, store=Path(self.store))
            self._settings = settings
        return self._settings


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into one-line Click errors (exit 1, no traceback)."""
    from tracker.export import ExportError

    try:
        yield
    except (StoreError, ConfigError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None


def _settings(ctx: click.Context) -> Settings:
    with _errors():
        return ctx.find_object(_State).settings()  # type: ignore[union-attr]


def _open_reader(settings: Settings) -> UserStore:
    with _errors():
        return UserStore(settings.store, readonly=True)


def _now() -> datetime:
    return datetime.now(UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tracker", message="%(prog)s %(version)s")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Config file [default: $TRACKER_CONFIG or ./config.ini].",
)
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    help="User store file, overriding the config's [tracker] store.",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None, store: str | None) -> None:
    """Inspect and export the users recorded by the Telegram user tracker.

    Reads the same store as the bot, safely while it runs.
    """
    # A CLI run builds up to millions of records and frees nothing until exit:
    # the cyclic GC would only rescan them over and over. Restored at the end,
    # for callers that run the CLI in-process (tests, scripts).
    if gc.isenabled():
        gc.disable()
        ctx.call_on_close(gc.enable)
    ctx.obj = _State(config=config, store=store)


# ---------------------------------------------------------------- filters


def filter_options(func: F) -> F:
    """The record filters shared by ``users`` and ``export``."""
    options = [
        click.option(
            "--search", metavar="TEXT", help="Only users whose name, @username or id contains TEXT."
        ),
        click.option("--lang", metavar="CODE", help="Only users with this language code (e.g. en, pt-br)."),
        click.option(
            "--active-within",
            type=Duration(),
            metavar="SPAN",
            help="Only users seen within SPAN, e.g. 24h, 7d, 2w.",
        ),
        click.option(
            "--since",
            type=click.DateTime(formats=["%Y-%m-%d"]),
            metavar="YYYY-MM-DD",
            help="Only users first seen on or after this day (in the configured time zone).",
        ),
        click.option("--blocked", is_flag=True, help="Only users who blocked the bot."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which records a listing or an export includes."""

    search: str | None = None
    lang: str | None = None
    active_within: timedelta | None = None
    since: datetime | None = None
    blocked: bool = False

    @property
    def is_empty(self) -> bool:
        """True when every record passes."""
        return (
            not self.search
            and not self.lang
            and not self.blocked
            and self.active_within is None
            and self.since is None
        )

    def predicate(self, *, now: datetime, tz: ZoneInfo) -> Callable[[Record], bool] | None:
        """A test for one record, or None when every record passes."""
        tests: list[Callable[[Record], bool]] = []
        if self.active_within is not None:
            seen_after = format_ts(now - self.active_within)
            tests.append(lambda r: (r.get("last_seen") or "") >= seen_after)
        if self.since is not None:
            first_after = format_ts(self.since.replace(tzinfo=tz))
            tests.append(lambda r: (r.get("first_seen") or "") >= first_after)
        if self.lang:
            lang = self.lang.lower()
            tests.append(lambda r: (r.get("language_code") or "").lower() == lang)
        if self.blocked:
            tests.append(lambda r: r.get("blocked") is True)
        if self.search:
            tests.append(_search_test(self.search))
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        return lambda r: all(test(r) for test in tests)

    def apply(self, records: Iterable[Record], *, now: datetime, tz: ZoneInfo) -> Iterable[Record]:
        """``records`` restricted to the matching ones (lazily)."""
        test = self.predicate(now=now, tz=tz)
        return records if test is None else filter(test, records)


def _search_test(text: str) -> Callable[[Record], bool]:
    needle = text.strip().lower()
    as_username = needle.lstrip("@")

    def test(rec: Record) -> bool:
        if needle.isdigit() and needle in str(rec.get("id")):
            return True
        username = rec.get("username")
        if username and as_username and as_username in username.lower():
            return True
        name = " ".join(p for p in (rec.get("first_name"), rec.get("last_name")) if p)
        return bool(needle) and needle in name.lower()

    return test


def _filters(kwargs: dict[str, Any]) -> Filters:
    return Filters(
        search=kwargs.pop("search"),
        lang=kwargs.pop("lang"),
        active_within=kwargs.pop("active_within"),
        since=kwargs.pop("since"),
        blocked=kwargs.pop("blocked"),
    )


def _tz(settings: Settings, override: ZoneInfo | None = None) -> ZoneInfo:
    return override if override is not None else settings.tz


# ------------------------------------------------------------------ stats


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of the table.")
@click.option("--tz", "tz", type=TimeZone(), help="Time zone of 'today' [default: the config's timezone].")
@click.pass_context
def stats(ctx: click.Context, as_json: bool, tz: ZoneInfo | None) -> None:
    """Totals, activity, languages, sources and new users per day."""
    from tracker.stats import STATS_FIELDS, compute_stats_from_columns, render_stats

    settings = _settings(ctx)
    zone = _tz(settings, tz)
    # The column file answers without parsing every record; when it is missing
    # or stale the whole store is read.
    columns = load_columns(settings.store, STATS_FIELDS)
    if columns is not None:
        result = compute_stats_from_columns(columns, now=_now(), tz=zone)
    else:
        result = _stats_from_store(settings, zone)
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_stats(result, zone))


def _stats_from_store(settings: Settings, zone: ZoneInfo) -> dict[str, Any]:
    from tracker.stats import compute_stats

    try:
        store: UserStore | None = UserStore(settings.store, readonly=True)
    except StoreNotFoundError:
        click.echo(f"note: no store exists yet at {settings.store}; showing zeros", err=True)
        store = None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    with store if store is not None else contextlib.nullcontext():
        return compute_stats(store if store is not None else (), now=_now(), tz=zone)


# ----------------------------------------------------------------- export


@cli.command()
@click.argument("target", metavar="PATH|-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "ndjson"]),
    default="csv",
    show_default=True,
    help="csv for spreadsheets; json (an array) or ndjson (one object per line) with every field.",
)
@click.option("--excel", is_flag=True, help="CSV for spreadsheet programs: UTF-8 BOM and CRLF line ends.")
@click.option(
    "--raw",
    is_flag=True,
    help="Do not neutralise CSV cells starting with = + - @ tab or CR (formula injection).",
)
@filter_options
@click.pass_context
def export(ctx: click.Context, /, target: str, fmt: str, excel: bool, raw: bool, **kwargs: Any) -> None:
    """Write users to PATH (or - for standard output), atomically.

    CSV columns: id, username, first_name, last_name, language_code, is_bot,
    is_premium, first_seen, last_seen, messages, source, blocked. Cells a
    spreadsheet would run as a formula get a leading ' unless --raw.
    """

    if excel and fmt != "csv":
        raise click.UsageError("--excel only applies to --format csv")
    filters = _filters(kwargs)
    settings = _settings(ctx)
    # SIGTERM normally ends the process without unwinding: turn it into an
    # exit so the temp file is removed and the target stays untouched.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    count = None
    if fmt == "csv" and filters.is_empty:
        count = _export_csv_from_columns(settings, target, excel=excel, safe=not raw)
    if count is None:
        count = _export_from_store(settings, target, filters, fmt=fmt, excel=excel, safe=not raw)
    if target != "-":
        click.echo(f"exported {count:,} users to {target}", err=True)


def _export_csv_from_columns(settings: Settings, target: str, *, excel: bool, safe: bool) -> int | None:
    """The fast path of a plain CSV export; None when the column file cannot serve it."""
    from tracker import export as export_mod

    columns = load_columns(settings.store, export_mod.CSV_COLUMNS)
    if columns is None:
        return None
    try:
        lines = export_mod.csv_lines_from_columns(columns, safe=safe)
    except (KeyError, TypeError):  # odd values (a hand-edited store): go record by record
        return None
    total = len(columns["id"])
    show_bar = target != "-" and sys.stderr.isatty() and total >= PROGRESS_MIN_ROWS
    with _errors(), _progress(total if show_bar else 0) as progress:
        return export_mod.export_csv_lines(lines, target, excel=excel, progress=progress)


def _export_from_store(
    settings: Settings, target: str, filters: Filters, *, fmt: str, excel: bool, safe: bool
) -> int:
    from tracker import export as export_mod

    with _open_reader(settings) as store:
        records = filters.apply(store, now=_now(), tz=settings.tz)
        show_bar = target != "-" and sys.stderr.isatty() and len(store) >= PROGRESS_MIN_ROWS
        with _errors(), _progress(len(store) if show_bar else 0) as progress:
            return export_mod.export(records, target, fmt=fmt, excel=excel, safe=safe, progress=progress)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    if total <= 0:
        yield None
        return
    with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
        yield bar.update


# ------------------------------------------------------------------ users

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _cell(value: Any, width: int) -> str:
    """A table cell: no control or direction characters, cut to ``width``."""
    text = "" if value is None else str(value)
    text = _CONTROL_CHARS.sub("?", text)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width)


def _name(rec: Record) -> str:
    return " ".join(p for p in (rec.get("first_name"), rec.get("last_name")) if p)


_COLUMNS: tuple[tuple[str, int, Callable[[Record], Any]], ...] = (
    ("ID", 12, lambda r: r.get("id")),
    ("USERNAME", 20, lambda r: f"@{r['username']}" if r.get("username") else ""),
    ("NAME", 24, _name),
    ("LANG", 5, lambda r: r.get("language_code")),
    ("MSGS", 6, lambda r: r.get("messages")),
    ("FIRST SEEN", 20, lambda r: r.get("first_seen")),
    ("LAST SEEN", 20, lambda r: r.get("last_seen")),
    ("BLOCKED", 7, lambda r: "yes" if r.get("blocked") is True else ""),
)


def render_table(records: Iterable[Record]) -> str:
    """The ``users`` table: one line per record under a header."""
    lines = ["  ".join(_cell(title, width) for title, width, _ in _COLUMNS).rstrip()]
    for rec in records:
        lines.append("  ".join(_cell(get(rec), width) for _, width, get in _COLUMNS).rstrip())
    return "\n".join(lines)


def _sort_key(field: str) -> Callable[[Record], Any]:
    if field == "messages":
        return lambda r: (r.get("messages") if isinstance(r.get("messages"), int) else 0, r.get("id", 0))
    return lambda r: (r.get(field) or "", r.get("id", 0))


@cli.command()
@filter_options
@click.option(
    "--sort",
    type=click.Choice(SORT_KEYS),
    default="last_seen",
    show_default=True,
    help="Order, largest/newest first.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most N users (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the matching records as a JSON array.")
@click.pass_context
def users(ctx: click.Context, /, sort: str, limit: int, as_json: bool, **kwargs: Any) -> None:
    """List users as a table, with search and filters."""
    filters = _filters(kwargs)
    settings = _settings(ctx)
    with _open_reader(settings) as store:
        matching = list(filters.apply(store, now=_now(), tz=settings.tz))
        key = _sort_key(sort)
        shown = (
            nlargest(limit, matching, key=key) if limit and limit < len(matching)
            else sorted(matching, key=key, reverse=True)
        )
        if as_json:
            click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
            return
        click.echo(render_table(shown))
        click.echo(f"{len(shown):,} of {len(matching):,} matching users ({len(store):,} in total)")


# ------------------------------------------------------------------- show


def _lookup(store: UserStore, who: str) -> Record | None:
    text = who.strip()
    if text.lstrip("-").isdigit():
        return store.get(int(text))
    return store.find_username(text)


def _show_value(value: Any) -> str:
    if isinstance(value, str):
        return _CONTROL_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return orjson.dumps(value).decode()


@cli.command()
@click.argument("who", metavar="ID|@username")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
def show(ctx: click.Context, who: str, as_json: bool) -> None:
    """Show every field of one user."""
    settings = _settings(ctx)
    with _open_reader(settings) as store:
        record = _lookup(store, who)
    if record is None:
        raise click.ClickException(f"no user {who} in {settings.store}")
    if as_json:
        click.echo(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
        return
    width = max(map(len, record))
    for field, value in record.items():
        click.echo(f"{field.ljust(width)}  {_show_value(value)}")


# ----------------------------------------------------------------- forget


@cli.command()
@click.argument("user_id", metavar="ID", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def forget(ctx: click.Context, user_id: int, yes: bool) -> None:
    """Erase one user's record.

    While the bot runs this goes through its control channel; otherwise the
    store is opened for writing.
    """
    settings = _settings(ctx)
    with _open_reader(settings) as store:
        record = store.get(user_id)
    if record is None:
        raise click.ClickException(f"no user {user_id} in {settings.store}")
    if not yes:
        handle = f"@{record['username']}" if record.get("username") else ""
        who = " ".join(x for x in (_name(record), handle) if x)
        click.confirm(f"Erase user {user_id} ({_cell(who, 60).rstrip() or 'no name'})?", abort=True)
    if _forget_through_bot(settings, user_id):
        click.echo(f"erased user {user_id} (through the running bot)")
        return
    try:
        with UserStore(settings.store) as writer:
            erased = writer.forget(user_id)
    except StoreLockedError as exc:
        raise click.ClickException(
            f"{exc}; the bot's control channel did not answer, so the user was not erased"
        ) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not erased:
        raise click.ClickException(f"no user {user_id} in {settings.store}")
    click.echo(f"erased user {user_id}")


def _forget_through_bot(settings: Settings, user_id: int) -> bool:
    """Ask the running bot to forget; False when no bot listens."""
    from tracker import control

    try:
        reply = control.request(
            control.socket_path_for(settings.store), {"cmd": "forget", "user_id": user_id}
        )
    except control.BotNotRunning:
        return False
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from None
    if not reply.get("ok"):
        raise click.ClickException(str(reply.get("error") or "the bot refused without saying why"))
    if reply.get("forgotten") is False:
        raise click.ClickException(f"no user {user_id} in {settings.store}")
    return True


# ------------------------------------------------------------ refresh-bio


@cli.command("refresh-bio")
@click.option("--dry-run", is_flag=True, help="Only show the text that would be set, and its length.")
@click.option("--force", is_flag=True, help="Update now, even inside bio_interval.")
@click.pass_context
def refresh_bio(ctx: click.Context, dry_run: bool, force: bool) -> None:
    """Update the profile text (bio / bot description) with the user count.

    Goes through the running bot if there is one, else logs in with the
    CLI's own session.
    """
    settings = _settings(ctx)
    from tracker import bio  # pyrogram: only this command pays for importing it

    try:
        text = bio.refresh_command(settings, dry_run=dry_run, force=force)
    except bio.BioError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text)


# ------------------------------------------------------------------- run


@cli.command(context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("bot_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, bot_args: tuple[str, ...]) -> None:
    """Start the bot: track every user who interacts with it.

    The same as python bot.py, with the same options (tracker run --help).
    """
    from tracker.bot import main  # here, not at the top: pyrogram makes every other command slower

    gc.enable()  # the group turned it off for one-shot commands; the bot runs for months
    state = ctx.find_object(_State)
    args = list(bot_args)
    if state is not None and state.config and "--config" not in args:
        args[:0] = ["--config", state.config]
    if state is not None and state.store:
        # The bot has no --store: the environment override means the same (absolute, as given here).
        os.environ[config_mod.env_name("store")] = str(Path(state.store).resolve())
    main(args, prog="tracker run")


from tracker.cli_history import COMMANDS as _HISTORY_COMMANDS  # noqa: E402  (history, retention, sources, report)

for _command in _HISTORY_COMMANDS:
    cli.add_command(_command)
