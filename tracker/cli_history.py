"""The audience commands: ``history``, ``retention``, ``sources`` and ``report``.

Registered on the ``tracker`` group by one line at the end of ``tracker/cli.py``.
Each command opens the store read-only, makes one query (:mod:`tracker.audience`)
and prints a table, JSON (``--json``) or CSV (``--csv``: the JSON keys as headers,
``active`` as ``active_0, active_1, …``, ``commands`` as JSON text).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tracker import cli_support
from tracker.cli_support import echo, open_reader, settings_of

if TYPE_CHECKING:  # the commands import these when they run: ``tracker --help`` stays cheap
    from tracker.audience import AudienceSource, CsvRows, HistoryReport, RetentionReport
    from tracker.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

#: ``--by`` values (tracker.periods.Grain's, spelled out so that --help imports no calendar code).
GRAINS = ["day", "week", "month"]


# ------------------------------------------------------------------ store access


def _context(ctx: click.Context) -> tuple[AudienceSource, Settings]:
    """The store's reader and the settings (no store: one line naming the path, exit 1)."""
    settings = settings_of(ctx)
    return open_reader(settings), settings


def _query(run: Callable[[], Any]) -> Any:
    """Run a query; a malformed aggregate table is a one-line error, not a traceback."""
    try:
        return run()
    except ValueError as exc:
        raise click.ClickException(f"the store's history tables are malformed: {exc}") from None


# ------------------------------------------------------------------ output


def output_options(func: F) -> F:
    """``--json`` / ``--csv`` (mutually exclusive; the default is a table)."""
    func = click.option("--csv", "as_csv", is_flag=True, help="Print CSV (the JSON keys as headers).")(func)
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")(func)


def _emit(result: Any, as_json: bool, as_csv: bool, table: Callable[[], str]) -> None:
    import orjson

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are mutually exclusive")
    if as_json:
        echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    elif as_csv:
        _write_csv(result.csv_rows())
    else:
        echo(table())


def _write_csv(rows: CsvRows) -> None:
    import csv

    headers, body = rows
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(body)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned table that fits the terminal: numbers right, text left.

    Text is made :func:`~tracker.table.printable` (a source or command name is
    user input: no escape sequence reaches the terminal) and measured in
    display columns; when the table is too wide, the text columns are cut
    with ``…``, widest first, never the numbers.
    """
    from tracker.table import display_width, fit, printable, terminal_width

    cells = [[printable(h) for h in headers]] + [
        ["-" if v is None else f"{v:,}" if type(v) is int else printable(v) for v in row] for row in rows
    ]
    columns = range(len(headers))
    numeric = [bool(rows) and all(type(row[i]) is int for row in rows) for i in columns]
    widths = [max(display_width(row[i]) for row in cells) for i in columns]
    _shrink_text_columns(widths, numeric, terminal_width() - 2 * (len(headers) - 1))
    return "\n".join(
        "  ".join(fit(c, w, right=n) for c, w, n in zip(row, widths, numeric, strict=True)).rstrip()
        for row in cells
    )


def _shrink_text_columns(widths: list[int], numeric: list[bool], room: int, floor: int = 6) -> None:
    """Narrow the widest text column, one column at a time, until ``widths`` fit ``room``."""
    while sum(widths) > room:
        text = [i for i, n in enumerate(numeric) if not n and widths[i] > floor]
        if not text:
            return  # only numbers left to cut: let the terminal wrap rather than lie
        widest = max(text, key=widths.__getitem__)
        widths[widest] = max(floor, widths[widest] - (sum(widths) - room))


def _top_commands(commands: Mapping[str, int], limit: int = 3) -> str:
    return " ".join(f"{name}:{count}" for name, count in list(commands.items())[:limit])


# ------------------------------------------------------------------ commands


def by_option(default: str, help_text: str) -> Callable[[F], F]:
    """``--by day|week|month``."""
    return click.option("--by", type=click.Choice(GRAINS), default=default, show_default=True, help=help_text)


def count_option(name: str, default: int, limit: int, help_text: str) -> Callable[[F], F]:
    """A bounded positive count such as ``--days N`` (a huge value is a usage error, not a hang)."""
    return click.option(
        name, type=click.IntRange(min=1, max=limit), default=default, show_default=True, help=help_text
    )


def period_command(
    query: str, by: tuple[str, str], count: tuple[str, int, int, str]
) -> Callable[[Callable[[Any], str]], click.Command]:
    """The command ``query``: ``audience.<query>(reader, --by, <count>, now, tz)``, printed.

    ``history`` and ``retention`` differ only in the query, the defaults of
    ``--by`` and of their count option, and the table: the decorated function
    draws the table from the report (and its docstring is the command's help);
    ``--json`` and ``--csv`` come from the report itself.
    """

    def decorate(table: Callable[[Any], str]) -> click.Command:
        @click.command(name=query, help=table.__doc__)
        @by_option(*by)
        @count_option(*count)
        @output_options
        @click.pass_context
        def command(ctx: click.Context, /, by: str, as_json: bool, as_csv: bool, **counted: int) -> None:
            from tracker import audience
            from tracker.periods import Grain

            source, settings = _context(ctx)
            (periods,) = counted.values()
            run = getattr(audience, query)
            report = _query(lambda: run(source, Grain(by), periods, cli_support.now(), settings.tz))
            _emit(report, as_json, as_csv, lambda: table(report))

        return command

    return decorate


@period_command("history", by=("day", "Period length."),
                count=("--days", 30, 36600, "Periods overlapping the last N days (today included)."))
def history(report: HistoryReport) -> str:
    """New and active users, messages and commands per day, week or month."""
    since = report.since.isoformat() if report.since else "not yet recorded"
    rows = [
        [r.period.isoformat(), r.new, r.active, r.messages, r.total, r.buttons, _top_commands(r.commands)]
        for r in report.periods
    ]
    body = render_table(["PERIOD", "NEW", "ACTIVE", "MESSAGES", "TOTAL", "BUTTONS", "COMMANDS"], rows)
    return f"history by {report.by.value} in {report.timezone}; activity recorded since {since}\n{body}"


@period_command("retention", by=("week", "Cohort period length."),
                count=("--periods", 12, 1000, "How many cohorts (the current one included)."))
def retention(report: RetentionReport) -> str:
    """Cohorts by first-seen period, and how many came back in later periods."""
    width = max((len(c.active) for c in report.cohorts), default=1)
    rows = [
        [
            c.cohort.isoformat(),
            c.users,
            *(_percent(n, c.users) for n in c.active),
            *([""] * (width - len(c.active))),
        ]
        for c in report.cohorts
    ]
    headers = ["COHORT", "USERS", *(f"+{k}" for k in range(width))]
    return (
        f"retention by {report.by.value} in {report.timezone} (% of the cohort active)\n"
        + render_table(headers, rows)
    )


def _percent(count: int, users: int) -> str:
    return f"{100 * count / users:.0f}%" if users else "-"


@click.command()
@output_options
@click.pass_context
def sources(ctx: click.Context, as_json: bool, as_csv: bool) -> None:
    """Users per deep-link source: activity, blocks, who stayed 1/7/30 days."""
    from tracker import audience

    source, _settings = _context(ctx)
    report = audience.sources(source.columns(audience.SOURCES_FIELDS), cli_support.now())

    def table() -> str:
        rows = [
            [
                r.source if r.source is not None else "(none)",
                *(getattr(r, k) for k in audience.SOURCES_KEYS[1:]),
            ]
            for r in report.rows
        ]
        # Short headers: the JSON keys spelled out would take 85 columns before any data.
        headers = ["SOURCE", "USERS", "ACT 7D", "ACT 30D", "BLOCKED", "RET 1D", "RET 7D", "RET 30D"]
        return render_table(headers, rows)

    _emit(report, as_json, as_csv, table)


@click.command()
@click.argument("path", metavar="PATH.html", type=click.Path(dir_okay=False, path_type=Path))
@count_option("--days", 30, 3660, "Days covered by the per-day charts.")
@click.pass_context
def report(ctx: click.Context, path: Path, days: int) -> None:
    """Write a self-contained HTML report (charts, retention, sources, languages)."""
    from tracker import report as report_mod
    from tracker.cli_support import errors
    from tracker.export_target import protected_paths, refuse_protected
    from tracker.files import atomic_write

    if path.suffix.lower() not in (".html", ".htm"):
        raise click.UsageError(f"{path}: the report is an HTML file; name it PATH.html")
    source, settings = _context(ctx)
    with errors():  # never over the store or one of its side files, however the path is spelled
        refuse_protected(str(path), protected_paths(settings))
    page = _query(lambda: report_mod.render(source, days=days, now=cli_support.now(), tz=settings.tz))
    try:
        with atomic_write(path, mode=0o600) as out:
            out.write(page.encode())
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path}", err=True)


COMMANDS = (history, retention, sources, report)
