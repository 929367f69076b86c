"""The plumbing every CLI command shares: settings, the store reader, errors, output, options.

Kept apart from :mod:`tracker.cli` so that module is the commands only. The
group class lets ``--config``/``--store`` follow the command name too, and
turns a standard output that cannot be written (a full disk, ``>&-``) into one
line and exit 1 for every command, including ones added later.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tracker.params import Duration, SourceName

# ``tracker --help`` imports this module: what only a running command needs
# (the config parser, the store, the exporter, zoneinfo) is imported inside the
# functions that use it, so help and usage errors never pay for it.
if TYPE_CHECKING:
    from tracker.config import Settings
    from tracker.filters import Filters
    from tracker.store import StoreReader

__all__ = [
    "State",
    "TrackerGroup",
    "echo",
    "errors",
    "filter_options",
    "filters_of",
    "open_reader",
    "progress_for",
    "settings_of",
    "source_option",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Exports larger than this show a progress bar (when stderr is a terminal).
PROGRESS_MIN_ROWS = 50_000


# ---------------------------------------------------------------- context


class State:
    """What the group's options said; settings are loaded when a command asks."""

    __slots__ = ("config", "store")

    def __init__(self, config: str | None, store: str | None) -> None:
        self.config = config
        self.store = store

    def settings(self) -> Settings:
        """The config file's settings, with ``--store`` applied."""
        import dataclasses
        from pathlib import Path

        from tracker import config as config_mod

        settings = config_mod.load(self.config)
        if self.store:
            settings = dataclasses.replace(settings, store=Path(self.store))
        return settings


def now() -> datetime:
    """The moment every command counts from (UTC): "today", "3 h ago", rolling windows.

    One clock for all commands, looked up at call time, so tests can fix it
    (``monkeypatch.setattr(tracker.cli_support, "now", ...)``).
    """
    return datetime.now(UTC)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn expected failures into one-line Click errors (exit 1, no traceback)."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        if isinstance(exc, _domain_errors()):
            raise click.ClickException(str(exc)) from None
        raise


def _domain_errors() -> tuple[type[Exception], ...]:
    """The errors whose message is meant for the user (imported only once one was raised)."""
    from tracker.config import ConfigError
    from tracker.export_target import ExportError
    from tracker.store import StoreError

    return (StoreError, ConfigError, ExportError)


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this run (a bad config file: one line, exit 1)."""
    with errors():
        return ctx.find_object(State).settings()  # type: ignore[union-attr]


def open_reader(settings: Settings) -> StoreReader:
    """The store's reader (no store there: one line naming the path, exit 1; nothing created)."""
    from tracker.store import StoreReader

    with errors():
        return StoreReader(settings.store)


def echo(text: str) -> None:
    """Print to standard output; a closed one is an error, not silence."""
    if sys.stdout is None:
        raise click.ClickException("cannot write to standard output: it is closed")
    click.echo(text)


@contextlib.contextmanager
def progress_for(target: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar's ``update`` for writing ``total`` rows to ``target``, or None (no bar).

    Only for large exports to a file, and only when standard error is a terminal.
    """
    if target == "-" or total < PROGRESS_MIN_ROWS or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
        yield bar.update


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.find_object(State), name, value)

    return callback


class TrackerGroup(click.Group):
    """A group whose commands also take ``--config``/``--store`` after their name.

    It also turns a failing standard output (a full disk, ``>&-``) into one
    line and exit 1 for every command, and a reader that left (``| head``)
    into a quiet exit. Commands of other modules can be registered by name
    (:meth:`add_lazy_commands`): their module is imported only when one of
    them runs or the group lists every command (``--help``), so ``stats`` or
    ``--version`` never pay for it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Command name -> the module whose ``COMMANDS`` define it, not imported yet.
        self.lazy_commands: dict[str, str] = {}

    def add_lazy_commands(self, module: str, names: Iterable[str]) -> None:
        """Register the commands ``names`` of ``module.COMMANDS`` without importing ``module`` yet."""
        for name in names:
            self.lazy_commands[name] = module

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if module is not None:
            self._load(module)
        return super().get_command(ctx, cmd_name)

    def _load(self, module_name: str) -> None:
        """Import ``module_name`` and add its ``COMMANDS`` (each must have been registered by name)."""
        import importlib

        for cmd in importlib.import_module(module_name).COMMANDS:
            self.add_command(cmd)
        promised = [name for name, module in self.lazy_commands.items() if module == module_name]
        for name in promised:
            del self.lazy_commands[name]
        missing = [name for name in promised if name not in self.commands]
        if missing:  # a programming error: the names given to add_lazy_commands are wrong
            raise LookupError(f"{module_name}.COMMANDS has no command {', '.join(missing)}")

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        names = {opt for param in cmd.params for opt in getattr(param, "opts", ())}
        for option, what in (("--config", "Config file"), ("--store", "User store file")):
            if option not in names:
                cmd.params.append(click.Option(
                    [option], type=click.Path(dir_okay=False), expose_value=False,
                    callback=_remember(option[2:]), help=f"{what} (as before the command).",
                ))
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            if sys.stdout is not None:
                sys.stdout.flush()
            return result
        except OSError as exc:
            from tracker.export_target import STDOUT_FAILURES, silence_stdout

            if exc.errno not in STDOUT_FAILURES or exc.filename is not None:
                raise
            silence_stdout()
            if isinstance(exc, BrokenPipeError):
                return None
            raise click.ClickException(f"cannot write to standard output: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- filters

source_option = click.option(
    "--source", "sources", type=SourceName(), multiple=True, metavar="S",
    help="Only users who came through deep link S (exact; repeatable; 'none': without one).",
)


def filter_options(func: F) -> F:
    """The record filters shared by ``users`` and ``export``."""
    options = [
        click.option("--search", metavar="TEXT",
                     help="Only users whose name, @username, id or source contains TEXT "
                          "(accents and case ignored)."),
        click.option("--lang", metavar="CODE", help="Only users with this language code (e.g. en, pt-br)."),
        click.option("--active-within", type=Duration(), metavar="SPAN",
                     help="Only users seen within SPAN, e.g. 24h, 7d, 2w."),
        click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
                     help="Only users first seen on or after this day (in the configured time zone)."),
        click.option("--blocked", is_flag=True, help="Only users who blocked the bot."),
        source_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def filters_of(kwargs: dict[str, Any]) -> Filters:
    """The :class:`~tracker.filters.Filters` that :func:`filter_options` put in ``kwargs`` (taken out)."""
    from tracker.filters import Filters

    return Filters(
        search=kwargs.pop("search"),
        lang=kwargs.pop("lang"),
        active_within=kwargs.pop("active_within"),
        since=kwargs.pop("since"),
        blocked=kwargs.pop("blocked"),
        sources=tuple(kwargs.pop("sources")),
    )
