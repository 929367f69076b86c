"""The ``tracker`` command line: ``tracker --help``.

Every command opens a :class:`~tracker.store.StoreReader`, makes one call and
turns the domain errors (:class:`~tracker.store.StoreError`,
:class:`~tracker.config.ConfigError`, ...) into :class:`click.ClickException`:
one line on stderr and exit status 1; Click's usage errors exit with 2.
Readers take no lock, so all of this is safe while the bot runs. Which file
answers a read (the column cache or the store) is the reader's business, never
this module's. Tables and times are drawn by :mod:`tracker.table`, filters live
in :mod:`tracker.filters`, parameter types in :mod:`tracker.params`, the
plumbing every command shares (settings, reader, errors, output, the group
class) in :mod:`tracker.cli_support`, where an export may go in
:mod:`tracker.export_target`, and what ``forget`` erases in :mod:`tracker.cli_forget`.

Start-up time matters: ``tracker --help`` should cost little more than
importing Click, and ``stats`` is meant to answer at once. So this module (and
:mod:`tracker.cli_support`, :mod:`tracker.params`) imports only Click at the
top; each command imports what it needs (the store, orjson, zoneinfo, the
table renderer, pyrogram for ``refresh-bio``) when it runs. ``python -m bench
startup`` measures it; tests/test_cli_startup.py checks what ``--help`` loads.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import click

from tracker import __version__, cli_support
from tracker.cli_support import (
    State,
    TrackerGroup,
    echo,
    errors,
    filter_options,
    filters_of,
    open_reader,
    progress_for,
    settings_of,
    source_option,
)
from tracker.params import TimeZone, UserRefType

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from tracker.filters import Filters
    from tracker.models import Record
    from tracker.params import UserRef
    from tracker.store import StoreReader

SORT_KEYS = ("last_seen", "first_seen", "messages")

OUTPUT_FORMATS = ("table", "csv", "json", "ndjson")

#: The fields the ``users`` table shows (and sorts by).
TABLE_FIELDS = ("id", "username", "first_name", "last_name", "language_code", "messages", "first_seen",
                "last_seen", "source", "blocked")


# ---------------------------------------------------------------- group


@click.group(cls=TrackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tracker", message="%(prog)s %(version)s")
@click.option("--config", type=click.Path(dir_okay=False),
              help="Config file [default: $TRACKER_CONFIG or ./config.ini].")
@click.option("--store", type=click.Path(dir_okay=False),
              help="User store file, overriding the config's [tracker] store.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, store: str | None) -> None:
    """Inspect and export the users recorded by the Telegram user tracker.

    Reads the same store as the bot, safely while it runs.
    """
    # A CLI run builds up to millions of values and frees nothing until exit:
    # the cyclic GC would only rescan them over and over. Restored at the end,
    # for callers that run the CLI in-process (tests, scripts).
    if gc.isenabled():
        gc.disable()
        ctx.call_on_close(gc.enable)
    ctx.obj = State(config=config, store=store)


def _matching(
    reader: StoreReader, fields: tuple[str, ...], filters: Filters, tz: ZoneInfo
) -> tuple[dict[str, list[Any]], int]:
    """The ``fields`` columns of the users that pass ``filters``, and how many users there are."""
    with errors():
        columns = reader.columns(tuple(dict.fromkeys((*fields, *filters.fields))))
    return filters.select(columns, now=cli_support.now(), tz=tz), len(columns["id"])


# ------------------------------------------------------------------ stats


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of the table.")
@click.option("--tz", "tz", type=TimeZone(), help="Time zone of 'today' [default: the config's timezone].")
@source_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool, tz: ZoneInfo | None, sources: tuple[str | None, ...]) -> None:
    """Totals, activity, languages, sources and new users per day."""
    from tracker.cli_stats import stats_text  # also what tracker.cli_main answers without Click

    settings = settings_of(ctx)
    reader = open_reader(settings)
    with errors():
        text = stats_text(reader, zone=tz or settings.tz, sources=sources, as_json=as_json,
                          now=cli_support.now)
    echo(text)


# ----------------------------------------------------------------- export


@cli.command()
@click.argument("target", metavar="PATH|-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "ndjson"]),
              help="csv for spreadsheets; json (an array) or ndjson (one object per line) with every field "
                   "[default: from PATH's ending (.csv, .json, .ndjson, .jsonl); csv for -].")
@click.option("--excel", is_flag=True, help="CSV for spreadsheet programs: UTF-8 BOM and CRLF line ends.")
@click.option("--raw", is_flag=True,
              help="Do not neutralise CSV cells a spreadsheet would run as a formula.")
@filter_options
@click.pass_context
def export(
    ctx: click.Context, /, target: str, fmt: str | None, excel: bool, raw: bool, **kwargs: Any
) -> None:
    """Write users to PATH (or - for standard output), atomically.

    CSV columns: id, username, first_name, last_name, language_code, is_bot,
    is_premium, first_seen, last_seen, messages, source, blocked. Cells a
    spreadsheet would run as a formula get a leading ' unless --raw.
    """
    from tracker import export as export_mod
    from tracker.export_target import protected_paths, refuse_protected

    try:
        fmt = export_mod.format_for(target, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if excel and fmt != "csv":
        raise click.UsageError("--excel only applies to CSV")
    filters = filters_of(kwargs)
    settings = settings_of(ctx)
    with errors():
        refuse_protected(target, protected_paths(settings))
    reader = open_reader(settings)
    with errors():
        if fmt == "csv":
            columns, _ = _matching(reader, export_mod.CSV_COLUMNS, filters, settings.tz)
            with progress_for(target, len(columns["id"])) as progress:
                count = export_mod.export_columns(
                    columns, target, excel=excel, safe=not raw, progress=progress
                )
        else:
            # JSON carries every stored field, so it streams whole records; the
            # filters pick their ids from the columns first.
            ids, total = _matching(reader, ("id",), filters, settings.tz)
            wanted = None if filters.is_empty else set(ids["id"])
            records = (r for r in reader.records() if wanted is None or r.get("id") in wanted)
            with progress_for(target, total if wanted is None else len(wanted)) as progress:
                count = export_mod.export(records, target, fmt=fmt, progress=progress)
    if target != "-":
        click.echo(f"exported {count:,} users to {target}", err=True)



# ------------------------------------------------------------------ users


@cli.command()
@filter_options
@click.option("--sort", type=click.Choice(SORT_KEYS), default="last_seen", show_default=True,
              help="Order, largest/newest first.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show at most N users (0: all).")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
              help="table for people; csv, json (an array) or ndjson for programs (times in UTC).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_context
def users(ctx: click.Context, /, sort: str, limit: int, fmt: str, as_json: bool, **kwargs: Any) -> None:
    """List users as a table that fits the terminal, with search and filters."""
    from tracker import table
    from tracker.filters import top_rows
    from tracker.models import RECORD_FIELDS

    filters = filters_of(kwargs)
    settings = settings_of(ctx)
    reader = open_reader(settings)
    fmt = "json" if as_json else fmt
    # The table shows fewer fields than the programs' formats carry: read only those.
    fields = TABLE_FIELDS if fmt == "table" else RECORD_FIELDS
    columns, total = _matching(reader, fields, filters, settings.tz)
    rows = top_rows(columns, sort, limit)
    if fmt == "table":
        echo(table.render_users(rows, width=table.terminal_width(), tz=settings.tz, now=cli_support.now()))
    else:
        echo(_serialise(rows, fmt))
    click.echo(f"{len(rows):,} of {len(columns['id']):,} matching users ({total:,} in total)", err=True)


def _serialise(rows: list[Record], fmt: str) -> str:
    import orjson

    if fmt == "json":
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    if fmt == "ndjson":
        lines = [orjson.dumps(row).decode() for row in rows]
        return "\n".join(lines)
    import io

    from tracker.export import write_csv

    buffer = io.StringIO(newline="")
    write_csv(rows, buffer)
    return buffer.getvalue().rstrip("\n")


# ------------------------------------------------------------------- show


def _lookup(reader: StoreReader, who: UserRef) -> Record:
    """The record of ``who``, rebuilt from the columns (no dict per user is ever made)."""
    from tracker.filters import find_row
    from tracker.models import RECORD_FIELDS

    with errors():
        columns = reader.columns(RECORD_FIELDS)
    found = find_row(columns, user_id=who.user_id, username=who.username)
    if found is None:
        raise click.ClickException(f"no user {who} in {reader.path}")
    return {name: column[found] for name, column in columns.items()}


@cli.command()
@click.argument("who", metavar="ID|@username", type=UserRefType())
@click.option("--json", "as_json", is_flag=True, help="Print the record as stored (times in UTC) as JSON.")
@click.pass_context
def show(ctx: click.Context, who: UserRef, as_json: bool) -> None:
    """Show every field of one user (times in the configured zone)."""
    import orjson

    from tracker.table import render_record

    settings = settings_of(ctx)
    record = _lookup(open_reader(settings), who)
    if as_json:
        echo(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    else:
        echo(render_record(record, tz=settings.tz, now=cli_support.now()))


# ----------------------------------------------------------------- forget


@cli.command()
@click.argument("who", metavar="ID|@username", type=UserRefType())
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def forget(ctx: click.Context, who: UserRef, yes: bool) -> None:
    """Erase one user: the record and the sessions' cached peer.

    While the bot runs this goes through its control channel; otherwise the
    store is opened for writing.
    """
    from tracker.cli_forget import erase_user
    from tracker.table import fit, printable

    settings = settings_of(ctx)
    record = _lookup(open_reader(settings), who)
    user_id = int(record["id"])
    if not yes:
        handle = f"@{record['username']}" if record.get("username") else ""
        name = " ".join(str(p) for p in (record.get("first_name"), record.get("last_name"), handle) if p)
        shown = fit(printable(name), 60).rstrip() or "no name"
        click.confirm(f"Erase user {user_id} ({shown})?", abort=True)
    through_bot = erase_user(settings, user_id)
    echo(f"erased user {user_id}" + (" (through the running bot)" if through_bot else ""))


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
    settings = settings_of(ctx)
    open_reader(settings)  # no store there: one line, exit 1, before any login
    from tracker import bio  # pyrogram: only this command pays for importing it

    try:
        text = bio.refresh_command(settings, dry_run=dry_run, force=force)
    except bio.BioError as exc:
        raise click.ClickException(str(exc)) from None
    echo(text)


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
    state = ctx.find_object(State)
    args = list(bot_args)
    if state is not None and state.config and "--config" not in args:
        args[:0] = ["--config", state.config]
    if state is not None and state.store and "--store" not in args:
        args[:0] = ["--store", state.store]
    main(args, prog="tracker run")


# The audience commands live in tracker.cli_history, imported only when one of
# them runs or --help lists every command (its queries are not cheap to import).
cli.add_lazy_commands("tracker.cli_history", ("history", "retention", "sources", "report"))
