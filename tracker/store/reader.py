"""Reading a store: the store file (or its column cache) paired with its journal.

Readers take no lock. A writer may replace the store file and compact the
journal between a reader's two reads; :func:`read_consistent` pairs them by
generation and retries, and every reader (and the writer's own open) goes
through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from tracker.files import read_regular
from tracker.models import Record
from tracker.store.columns import ColumnCache, Columns, apply_to_columns, rebuild
from tracker.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFileKindError,
    StoreNotFoundError,
    file_error,
    os_reason,
)
from tracker.store.journal import (
    Effect,
    apply_to_records,
    apply_to_tables,
    committed_changes,
    first_generation,
    fold,
)
from tracker.store.side_file import StaleSideFileError

# What reading the store file itself needs (its format, the writer's table) and
# the history side file are imported by the functions that use them: ``stats``
# reads the column cache and never pays for them.
if TYPE_CHECKING:
    from tracker.store.format import Snapshot
    from tracker.store.history_cache import HistoryCache, HistoryTables
    from tracker.store.table import UserTable

READ_RETRIES = 20

Base = TypeVar("Base")
Cached = TypeVar("Cached")


def journal_path_of(store_path: Path) -> Path:
    """Where the journal of the store at ``store_path`` lives."""
    return store_path.with_name(store_path.name + ".journal")


def read_journal(path: Path) -> bytes:
    """The journal's bytes (``b""`` when there is none)."""
    try:
        data = read_regular(path)
    except OSError as exc:
        raise file_error("read journal", path, exc) from None
    return data if data is not None else b""


def read_consistent(
    load_base: Callable[[], tuple[Base, int]], store_path: Path, journal_path: Path
) -> tuple[Base, int, bytes]:
    """A base (a snapshot or columns) and the journal that continues it: ``(base, gen, journal)``.

    ``load_base`` reads the base and says which generation it covers. A
    snapshot may replace the store file and compact the journal between our
    two reads: the journal then starts at a generation newer than the base we
    read. The writer replaces the file before it compacts the journal, so the
    base on disk now is at least that new; if it is exactly that generation it
    pairs with the journal we hold. Otherwise yet another snapshot landed:
    start over. A base that did not move at all means the journal is not its
    own (the store file was replaced by hand).
    """
    for _ in range(READ_RETRIES):
        base, gen = load_base()
        journal = read_journal(journal_path)
        journal_gen = first_generation(journal)
        if journal_gen is not None and journal_gen > gen:
            newer, newer_gen = load_base()
            if newer_gen == gen:
                raise StoreCorruptError(
                    f"journal {journal_path} is newer than store {store_path}; "
                    f"the store file was replaced by hand?"
                )
            if newer_gen != journal_gen:
                continue
            base, gen = newer, newer_gen
        return base, gen, journal
    raise StoreError(f"store {store_path} kept changing while being read; try again")


def merge_meta(stored: dict[str, Any], journaled: dict[str, Any] | None) -> dict[str, Any]:
    """The meta document after a journal: the journal's fields, but the store's own keys."""
    if journaled is None:
        return stored
    from tracker.store.format import OWN_META_KEYS

    own = {key: stored[key] for key in OWN_META_KEYS if key in stored}
    return {**{k: v for k, v in journaled.items() if k not in OWN_META_KEYS}, **own}


def read_store(path: Path, *, compact: bool) -> Snapshot:
    """The store file parsed (:func:`tracker.store.format.read_store`, that module imported on first use)."""
    from tracker.store.format import read_store as parse

    return parse(path, compact=compact)


class StoreState(NamedTuple):
    """A store as of now: its snapshot with the journal applied."""

    records: dict[int, Record]
    meta: dict[str, Any]
    other_tables: dict[str, Any]
    gen: int  # the generation of the snapshot read
    size: int  # the store file's size


def load_state(store_path: Path, *, compact: bool = False) -> StoreState:
    """Read the store file and its journal as one consistent state."""
    from tracker.store.format import store_id_of

    journal_path = journal_path_of(store_path)

    def load_snapshot() -> tuple[Snapshot, int]:
        snapshot = read_store(store_path, compact=compact)
        return snapshot, snapshot.gen

    snapshot, gen, journal = read_consistent(load_snapshot, store_path, journal_path)
    effect = effect_of(journal, gen, journal_path, store_id_of(snapshot.meta))
    apply_to_records(effect, snapshot.records)
    apply_to_tables(effect, snapshot.other_tables)
    meta = merge_meta(snapshot.meta, effect.meta)
    return StoreState(snapshot.records, meta, snapshot.other_tables, gen, snapshot.size)


class TableState(NamedTuple):
    """A store as the writer holds it: its users as a table, journal applied."""

    table: UserTable
    meta: dict[str, Any]
    other_tables: dict[str, Any]
    gen: int
    size: int
    #: The store file is in this code's layout and the journal changed nothing: no need to rewrite it.
    clean: bool


def load_table(store_path: Path) -> TableState:
    """Read the store file (chunk by chunk when it is ours) and its journal into a :class:`UserTable`."""
    from tracker.store.format import read_store_table, store_id_of

    journal_path = journal_path_of(store_path)

    def load_snapshot() -> tuple[tuple[Snapshot, UserTable, bool], int]:
        snapshot, table, ours = read_store_table(store_path)
        return (snapshot, table, ours), snapshot.gen

    (snapshot, table, ours), gen, journal = read_consistent(load_snapshot, store_path, journal_path)
    effect = effect_of(journal, gen, journal_path, store_id_of(snapshot.meta))
    table.apply(effect)
    apply_to_tables(effect, snapshot.other_tables)
    meta = merge_meta(snapshot.meta, effect.meta)
    changed = bool(effect.records or effect.touches or effect.history) or effect.meta is not None
    return TableState(table, meta, snapshot.other_tables, gen, snapshot.size, ours and not changed)


class StoreReader:
    """Read-only, lock-free view of a store (journal applied); each call reads the files as they are then."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Check there is a store at ``path`` (:class:`StoreNotFoundError` if not); creates nothing."""
        self.path = Path(path)
        self.journal_path = journal_path_of(self.path)
        self._columns = ColumnCache(self.path)
        self._history: HistoryCache | None = None  # made on first use (history_cache imports the format)
        try:
            os.stat(self.path)
        except FileNotFoundError:
            raise StoreNotFoundError(f"no store at {self.path} yet") from None
        except OSError as exc:
            raise StoreError(f"cannot read store {self.path}: {os_reason(exc)}") from None

    def state(self) -> StoreState:
        """The whole store as it is now."""
        return load_state(self.path)

    def cached_columns(self, fields: Sequence[str]) -> Columns | None:
        """``fields`` (and ``id``) from the column cache and the journal; None when it cannot be trusted."""
        wanted = {"id", *fields}
        return self._from_side_file(lambda: self._columns.read(wanted), apply_to_columns)

    def columns(self, fields: Sequence[str]) -> Columns:
        """One list per field, in the order asked (``id`` first, always included).

        From the column cache if it is fresh, else from the store file.
        """
        names = list(dict.fromkeys(("id", *fields)))
        cached = self.cached_columns(fields)
        if cached is None and rebuild(self.path):  # stale (e.g. a copied data folder): rebuilt once
            cached = self.cached_columns(fields)
        if cached is not None:
            return {name: cached[name] for name in names}
        records = list(self.state().records.values())
        return {name: [record.get(name) for record in records] for name in names}

    def records(self) -> Iterator[Record]:
        """Every record (dict), current."""
        yield from self.state().records.values()

    def get(self, user_id: int) -> Record | None:
        """The record of ``user_id``, or None."""
        return self.state().records.get(user_id)

    def find_username(self, name: str) -> Record | None:
        """The record whose username is ``name`` (case-insensitive, ``@`` optional), or None."""
        return find_username(self.state().records.values(), name)

    def meta(self) -> dict[str, Any]:
        """The meta document (``schema``, bio state, ...)."""
        return self.state().meta

    def count(self) -> int:
        """How many users the store holds."""
        return len(self.columns(["id"])["id"])

    def table(self, name: str) -> dict[str, Any]:
        """Any TinyDB table (``{doc_id: doc}``), journal applied; ``{}`` when absent.

        The audience-history tables come from the history side file when it is
        fresh (a few kilobytes instead of the whole store file).
        """
        from tracker.history_tables import TABLES as HISTORY_TABLES  # here: zones and periods, for this only

        if name in HISTORY_TABLES:
            cached = self.cached_history()
            if cached is not None:
                table = cached.get(name, {})
                return table if isinstance(table, dict) else {}
        table = self.document().get(name, {})
        return table if isinstance(table, dict) else {}

    def cached_history(self) -> HistoryTables | None:
        """Every history table from the side file and the journal; None when it cannot be trusted."""
        if self._history is None:
            from tracker.store.history_cache import HistoryCache

            self._history = HistoryCache(self.path)
        return self._from_side_file(self._history.read, apply_to_tables)

    def _from_side_file(
        self,
        read: Callable[[], tuple[tuple[Cached, str | None], int]],
        apply: Callable[[Effect, Cached], None],
    ) -> Cached | None:
        """What a side file holds (``read``), paired with the journal and brought up to date (``apply``).

        None when the side file cannot be trusted (the caller falls back to the
        store file); a store file of the wrong kind is still an error.
        """
        try:
            (cached, store_id), gen, journal = read_consistent(read, self.path, self.journal_path)
            apply(effect_of(journal, gen, self.journal_path, store_id), cached)
        except StoreFileKindError:
            raise
        except (StaleSideFileError, StoreError, OSError):
            return None
        return cached

    def document(self) -> dict[str, dict[str, Any]]:
        """The whole TinyDB document (every table), journal applied."""
        from tracker.store.format import META_DOC_ID, META_TABLE, USERS_TABLE

        state = self.state()
        return {
            USERS_TABLE: {str(user_id): record for user_id, record in state.records.items()},
            META_TABLE: {META_DOC_ID: state.meta},
            **state.other_tables,
        }


def find_username(records: Iterable[Record], name: str) -> Record | None:
    """The first record whose username is ``name`` (case-insensitive, ``@`` optional)."""
    # A scan (~0.1 s at 1M users) rather than an index: lookups by name are
    # rare (CLI, admin commands) and an index would cost memory per user and
    # time on every update.
    wanted = name.lstrip("@").lower()
    if not wanted:
        return None
    for record in records:
        username = record["username"]
        if username and username.lower() == wanted:
            return record
    return None


def effect_of(journal: bytes, gen: int, journal_path: Path, store_id: str | None) -> Effect:
    """The net effect of a journal's committed batches of generation >= ``gen``."""
    return fold(committed_changes(journal, gen, journal_path, store_id))


def load_columns(store_path: str | os.PathLike[str], fields: Sequence[str]) -> Columns | None:
    """``fields`` of every user from the column cache and journal; None when the cache cannot be trusted.

    A thin wrapper over :meth:`StoreReader.cached_columns` kept for the CLI
    until it reads through :class:`StoreReader` (whose ``columns`` falls back
    to the store file itself).
    """
    try:
        return StoreReader(store_path).cached_columns(fields)
    except StoreError:
        return None
