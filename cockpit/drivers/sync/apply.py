"""The applier: moves batches of captured changes from one side to the other, once each.

Each step is state-based: for every key changed in the batch it reads the row as it is *now* on the source side
(several changes of one key coalesce into its latest state) and upserts it on the target, or deletes it there when
the source no longer has it. A keyless table's changes are multiset deltas instead (`+`/`-` with the whole row),
replayed in order. The applied position is written in the same target transaction as the data, so a kill at any
instant neither loses nor repeats a change. The applier's own writes are tagged (`SET LOCAL cockpit.applying` on
PostgreSQL, `capture.sqlite_applying` on SQLite) and the capture triggers skip them.

Nothing acknowledged is dropped; what does not go into a table is parked whole in the conflicts store
(`cockpit.drivers.sync.conflicts`), in the target's apply transaction, and reported through
`on_event('sync.conflict', payload)`:
- the same key changed on both sides since the last sync (`conflict`): the policy (`newest` by change time,
  `blue-wins`, `green-wins`) keeps one version, the other is parked;
- the same unique value arriving from both sides under different keys (`unique`), found before writing by one query
  per unique index and batch (the target rows outside the batch that hold an incoming value): the policy keeps one
  row; the other is parked and its key set back, on its own side, to what the other side has for it (usually: no
  row). A holder with no change pending on the target is either about to change on the source (its newer state is
  carried in the same batch) or a row the source's own constraints let through: then the incoming change is a
  violation;
- a change the target refuses (unique, foreign key, check, type, ...: `violation`): a batch that fails is tried
  again in halves (bisection, `_isolated`) until the one failing change is found; it is parked with the database's
  message, the position moves past it and the sync goes on.
A parked incoming version still sits on its own side: the transaction that mirrors the record there (the other
direction's next step) sets that row back to the target's version, unless it has changed again since.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from cockpit.drivers.sync import conflicts as store
from cockpit.drivers.sync.capture import (
    BLUE_TO_GREEN,
    PG_SCHEMA,
    SQLITE_LOG,
    SQLITE_STATE,
    GreenPosition,
    decode_image,
    one,
    prune_sqlite,
    qi,
    read_green_position,
    sqlite_applying,
    touch_sqlite,
    write_green_position,
)
from cockpit.drivers.sync.conflicts import Parked
from cockpit.drivers.sync.tables import (
    ApplyError,
    ValueRefused,
    _convert,
    _parents_first,
    _pg_column_types,
    _pg_references,
    _Table,
    _table_plan,
    pg_unique_exprs,
    pg_uniques,
    sqlite_uniques,
)

if TYPE_CHECKING:
    from cockpit.drivers.sync.schema import TableMap

__all__ = ["POLICIES", "Applier", "ApplyError", "EventSink", "StepResult", "ValueRefused", "settle"]

Policy = Literal["newest", "blue-wins", "green-wins"]
POLICIES: tuple[str, ...] = ("newest", "blue-wins", "green-wins")
EventSink = Callable[[str, dict[str, Any]], None]
# a statement of the applier that waits longer (a row locked by a long app transaction) is cancelled and the batch
# retried on the next pass; transaction-scoped (`set_config(..., true)`), so no session state is left behind
STATEMENT_TIMEOUT = "15s"

# what a change can be refused for on each side (the change's fault: isolate it and park it); anything else
# (connection lost, timeout, deadlock, a missing table) is the moment's or the setup's fault and stops the step
PG_REFUSALS: tuple[type[BaseException], ...] = (
    psycopg.errors.IntegrityError,
    psycopg.errors.DataError,
    psycopg.errors.RaiseException,
    ValueRefused,
)
SQLITE_REFUSALS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    ValueRefused,
)


@dataclass
class StepResult:
    """What one step in one direction did."""

    changes: int = 0  # log entries consumed
    rows: int = 0  # distinct keys written (upserts + deletes)
    upserts: int = 0
    deletes: int = 0
    conflicts: list[Parked] = field(default_factory=list)  # every version parked by this step
    position: Any = None
    small_step: bool = False  # a batch was refused as a whole: a smaller one was applied
    held: str | None = None  # the next change is for a table whose schema changed: the direction waits there

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "rows": self.rows,
            "upserts": self.upserts,
            "deletes": self.deletes,
            "conflicts": len(self.conflicts),
            "small_steps": self.small_step,
            "held": self.held,
            "position": list(self.position) if isinstance(self.position, tuple) else self.position,
        }


def json_safe(value: Any) -> Any:
    """A value as JSON can carry it (bytes as hex, dates ISO, decimals as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def settle(policy: str, blue_time: float, green_time: float) -> Literal["blue", "green"]:
    """The side whose version wins a conflict (`newest`: the later change; a tie goes to blue)."""
    if policy == "blue-wins":
        return "blue"
    if policy == "green-wins":
        return "green"
    return "green" if green_time > blue_time else "blue"


def refusal(exc: BaseException) -> tuple[str | None, str]:
    """(constraint, message) of a refused change, from PostgreSQL's diagnostics or SQLite's message."""
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        message = " ".join(p for p in (diag.message_primary, diag.message_detail) if p) or str(exc)
        return diag.constraint_name, message
    text = str(exc)
    if isinstance(exc, ValueRefused):
        return "type", text
    if "constraint failed: " in text:
        return text.split("constraint failed: ", 1)[1], text
    return None, text


# The green log is read below a horizon: the oldest transaction still running that might write to it. Every
# transaction id below the horizon is finished, so no change can later commit behind a position taken there. Running
# transactions that pg_stat_activity shows in *another* database are left out (they cannot write this log; on a
# shared server they would hold the sync back); any running transaction not positively placed elsewhere counts.
# Runs as the first statement of a REPEATABLE READ transaction: the snapshot is taken before pg_stat_activity is read,
# so a transaction that ends in between is not found there and (conservatively) counts.
HORIZON_SQL = """
SELECT coalesce(
    (SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
      WHERE (x::text::bigint % 4294967296) NOT IN (
          SELECT backend_xid::text::bigint FROM pg_stat_activity
           WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())),
    pg_snapshot_xmax(pg_current_snapshot()))::text::bigint
"""


# ------------------------------------------------------------------------------------------------- batches


@dataclass
class _Entry:
    """A key changed on the source in this batch: its state there now (`row` in the source's form)."""

    key: tuple[Any, ...]  # source's form
    ts: float
    present: bool
    row: tuple[Any, ...]


@dataclass
class _Batch:
    upper: Any  # the position after this batch
    count: int  # log entries
    keyed: dict[str, list[_Entry]]
    deltas: dict[str, list[tuple[str, tuple[Any, ...]]]]  # keyless tables: (op, row in the source's form)

    def tables(self) -> list[str]:
        return [*self.keyed, *(t for t in self.deltas if t not in self.keyed)]


@dataclass
class _Plan:
    """What one table's part of a batch does on the target: key -> row (target's form), None to delete."""

    ops: dict[tuple[Any, ...], tuple[Any, ...] | None] = field(default_factory=dict)
    deltas: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def first(self, key: tuple[Any, ...], row: tuple[Any, ...] | None) -> None:
        """Write `key` before the rest: a holder must give up its unique value before the newcomer takes it."""
        self.ops = {key: row, **{k: v for k, v in self.ops.items() if k != key}}

    def deletes(self) -> list[tuple[Any, ...]]:
        return [k for k, v in self.ops.items() if v is None]

    def upserts(self) -> list[tuple[Any, ...]]:
        return [v for v in self.ops.values() if v is not None]


# ---------------------------------------------------------------------------------------------------- ends


class _End(ABC):
    """One direction's target and source, as the planner sees them (see below for keyless deltas).

    Keyless deltas: when a removal arrives while the target's log still holds a removal of an equal row on its way
    to the source, both sides removed that row: the two removals cancel (the target's is dropped from its log, in
    the same transaction, and nothing is removed here). Applied one after the other instead, each would take a
    second copy on the other side, or find none there and be lost, and the sides would drift apart.

    Keys and rows are in the target's form unless named `_o` (the source's form); the store keeps SQLite's form."""

    target: str
    origin: str

    def __init__(self, applier: Applier, blue: sqlite3.Connection, pg: psycopg.Connection):
        self.a = applier
        self.blue = blue
        self.pg = pg

    # conversions
    @abstractmethod
    def key_in(self, t: _Table, key_o: Sequence[Any]) -> tuple[Any, ...]: ...
    @abstractmethod
    def row_in(self, t: _Table, key: Sequence[Any], row_o: Sequence[Any]) -> tuple[Any, ...]: ...
    @abstractmethod
    def stored_o(self, t: _Table, row_o: Sequence[Any] | None) -> dict[str, Any] | None: ...
    @abstractmethod
    def stored(self, t: _Table, row: Sequence[Any] | None) -> dict[str, Any] | None: ...
    @abstractmethod
    def stored_key(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]: ...
    @abstractmethod
    def from_store(self, t: _Table, row: Mapping[str, Any]) -> tuple[Any, ...]: ...
    @abstractmethod
    def key_from_store(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]: ...

    # reads
    @abstractmethod
    def lock(self, t: _Table, keys: list[tuple[Any, ...]]) -> None: ...
    @abstractmethod
    def pending(self, t: _Table, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], float]: ...
    @abstractmethod
    def rows(self, t: _Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]: ...
    @abstractmethod
    def uniques(self, t: _Table) -> list[tuple[str, tuple[str, ...]]]: ...
    @abstractmethod
    def holders(
        self, t: _Table, cols: tuple[str, ...], values: list[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]: ...
    def expr_clashes(
        self, t: _Table, rows: dict[tuple[Any, ...], tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
        """(incoming key, holder key, index) for unique indexes over expressions or partial ones."""
        return []

    @abstractmethod
    def later(self, t: _Table, keys: list[tuple[Any, ...]], upper: Any) -> set[tuple[Any, ...]]: ...
    @abstractmethod
    def origin_rows(
        self, t: _Table, keys: list[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]: ...

    # writes
    @abstractmethod
    def write(self, t: _Table, deletes: list[tuple[Any, ...]], upserts: list[tuple[Any, ...]]) -> None: ...
    @abstractmethod
    def write_deltas(self, t: _Table, deltas: list[tuple[str, tuple[Any, ...]]]) -> None: ...
    @abstractmethod
    def park(self, records: list[Parked]) -> None: ...
    @abstractmethod
    def savepoint(self) -> Any: ...
    @abstractmethod
    def resolved(self, uid: str) -> bool: ...

    @abstractmethod
    def pending_removals(self, t: _Table) -> dict[tuple[Any, ...], list[Any]]: ...
    @abstractmethod
    def drop_removal(self, t: _Table, seq: Any) -> None: ...

    def _cancelled(self, t: _Table, row: tuple[Any, ...]) -> bool:
        """Does the target's log still hold a removal of an equal row for the source? Then the two removals
        cancel: that one is dropped, and nothing is removed here."""
        cache = self.__dict__.setdefault("_removals", {})
        if t.name not in cache:
            cache[t.name] = self.pending_removals(t)
        seqs = cache[t.name].get(tuple(row))
        if not seqs:
            return False
        self.drop_removal(t, seqs.pop(0))
        return True

    def versions(self, incoming: Any, existing: Any) -> dict[str, Any]:
        """{'blue': ..., 'green': ...} from the source's and the target's value."""
        return {self.origin: incoming, self.target: existing}


class _ToGreen(_End):
    """blue → green: SQLite is the source, PostgreSQL the target."""

    target, origin = "green", "blue"

    def __init__(
        self, applier: Applier, blue: sqlite3.Connection, pg: psycopg.Connection, green_pos: GreenPosition
    ):
        super().__init__(applier, blue, pg)
        self.green_pos = green_pos

    def key_in(self, t: _Table, key_o: Sequence[Any]) -> tuple[Any, ...]:
        return _convert(t, "PostgreSQL", key_o, t.key_to_pg, key_o)

    def row_in(self, t: _Table, key: Sequence[Any], row_o: Sequence[Any]) -> tuple[Any, ...]:
        return _convert(t, "PostgreSQL", key, t.row_to_pg, row_o)

    def stored_o(self, t: _Table, row_o: Sequence[Any] | None) -> dict[str, Any] | None:
        return t.as_dict(row_o)

    def stored(self, t: _Table, row: Sequence[Any] | None) -> dict[str, Any] | None:
        return _to_store(t, row)

    def stored_key(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(t.key_to_sqlite(key))

    def from_store(self, t: _Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return t.row_to_pg([row[c] for c in t.columns])

    def key_from_store(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]:
        return t.key_to_pg(key)

    def lock(self, t: _Table, keys: list[tuple[Any, ...]]) -> None:
        if keys:
            self.pg.execute(t.pg_lock(), _columns(keys))

    def pending(self, t: _Table, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], float]:
        if not keys:
            return {}
        rows = self.pg.execute(
            t.pg_pending(), [t.name, str(self.green_pos[0]), self.green_pos[1], *_columns(keys)]
        )
        return {tuple(r[:-1]): float(r[-1]) for r in rows}

    def rows(self, t: _Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        if not keys:
            return {}
        n = len(t.pk)
        return {tuple(r[:n]): tuple(r[n:]) for r in self.pg.execute(t.pg_select_rows(), _columns(keys))}

    def uniques(self, t: _Table) -> list[tuple[str, tuple[str, ...]]]:
        return t.uniques_pg

    def holders(
        self, t: _Table, cols: tuple[str, ...], values: list[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        n = len(t.pk)
        rows = self.pg.execute(t.pg_holders(cols), _columns(values)).fetchall()
        return [(tuple(r[:n]), tuple(r[n:])) for r in rows]

    def expr_clashes(
        self, t: _Table, rows: dict[tuple[Any, ...], tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
        out: list[tuple[tuple[Any, ...], tuple[Any, ...], str]] = []
        keys = list(rows)
        columns = _columns(list(rows.values()))
        for name, exprs, predicate in t.unique_exprs_pg:
            found = self.pg.execute(t.pg_expr_holders(exprs, predicate), [*columns, list(range(len(keys)))])
            out.extend((keys[r[0]], tuple(r[1:]), name) for r in found)
        return out

    def later(self, t: _Table, keys: list[tuple[Any, ...]], upper: Any) -> set[tuple[Any, ...]]:
        out = set()
        for key in keys:
            if self.blue.execute(t.sqlite_later(), (t.name, upper, *t.key_to_sqlite(key))).fetchone():
                out.add(key)
        return out

    def origin_rows(self, t: _Table, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        out = {}
        for key in keys:
            row = self.blue.execute(t.sqlite_select_row(), t.key_to_sqlite(key)).fetchone()
            if row is not None:
                out[key] = tuple(row)
        return out

    def write(self, t: _Table, deletes: list[tuple[Any, ...]], upserts: list[tuple[Any, ...]]) -> None:
        self.a._delete_pg(self.pg, t, deletes)
        self.a._upsert_pg(self.pg, t, upserts)

    def write_deltas(self, t: _Table, deltas: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self.pg.cursor() as cur:
            for op, rows in _runs(deltas):
                if op == "+":
                    cur.executemany(t.pg_insert(), rows)
                    continue
                for row in rows:
                    if not self._cancelled(t, row):
                        cur.execute(t.pg_delete_one(), row)

    def pending_removals(self, t: _Table) -> dict[tuple[Any, ...], list[Any]]:
        out: dict[tuple[Any, ...], list[Any]] = {}
        for seq, *row in self.pg.execute(
            t.pg_pending_removals(), (t.name, str(self.green_pos[0]), self.green_pos[1])
        ):
            out.setdefault(tuple(row), []).append(seq)
        return out

    def drop_removal(self, t: _Table, seq: Any) -> None:
        self.pg.execute(f"DELETE FROM {PG_SCHEMA}.changes WHERE seq = %s", (seq,))

    def park(self, records: list[Parked]) -> None:
        store.park_pg(self.pg, records)

    def savepoint(self) -> Any:
        return self.pg.transaction()

    def resolved(self, uid: str) -> bool:
        row = self.pg.execute(f"SELECT status FROM {store.PG_STORE} WHERE uid = %s", (uid,)).fetchone()
        return bool(row and row[0] != "waiting")


class _ToBlue(_End):
    """green → blue: PostgreSQL is the source, SQLite the target."""

    target, origin = "blue", "green"

    def __init__(
        self, applier: Applier, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int
    ):
        super().__init__(applier, blue, pg)
        self.blue_position = blue_position
        self._pending: dict[str, dict[tuple[Any, ...], float]] = {}

    def key_in(self, t: _Table, key_o: Sequence[Any]) -> tuple[Any, ...]:
        return _convert(t, "SQLite", key_o, t.key_to_sqlite, key_o)

    def row_in(self, t: _Table, key: Sequence[Any], row_o: Sequence[Any]) -> tuple[Any, ...]:
        return _convert(t, "SQLite", key, t.row_to_sqlite, row_o)

    def stored_o(self, t: _Table, row_o: Sequence[Any] | None) -> dict[str, Any] | None:
        return _to_store(t, row_o)

    def stored(self, t: _Table, row: Sequence[Any] | None) -> dict[str, Any] | None:
        return t.as_dict(row)

    def stored_key(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(key)

    def from_store(self, t: _Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c] for c in t.columns)

    def key_from_store(self, t: _Table, key: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(key)

    def lock(self, t: _Table, keys: list[tuple[Any, ...]]) -> None:
        pass  # the SQLite write transaction holds the whole database

    def pending(self, t: _Table, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], float]:
        if t.name not in self._pending:  # one read per table and step: the keys pending on blue
            self._pending[t.name] = {
                t.sqlite_key(pk): float(ts)
                for pk, ts in self.blue.execute(t.sqlite_pending(), (self.blue_position, t.name))
            }
        have = self._pending[t.name]
        return {k: have[k] for k in keys if k in have}

    def rows(self, t: _Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        out = {}
        for key in keys:
            row = self.blue.execute(t.sqlite_select_row(), key).fetchone()
            if row is not None:
                out[tuple(key)] = tuple(row)
        return out

    def uniques(self, t: _Table) -> list[tuple[str, tuple[str, ...]]]:
        return t.uniques_sqlite

    def holders(
        self, t: _Table, cols: tuple[str, ...], values: list[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        n = len(t.pk)
        out = []
        for i in range(0, len(values), 200):  # well under SQLite's limit of bound parameters
            chunk = values[i : i + 200]
            params = [v for tup in chunk for v in tup]
            for r in self.blue.execute(t.sqlite_holders(cols, len(chunk)), params):
                out.append((tuple(r[:n]), tuple(r[n:])))
        return out

    def later(self, t: _Table, keys: list[tuple[Any, ...]], upper: Any) -> set[tuple[Any, ...]]:
        if not keys:
            return set()
        pg_keys = {tuple(t.key_to_pg(k)): k for k in keys}
        rows = self.pg.execute(t.pg_pending(), [t.name, str(upper[0]), upper[1], *_columns(list(pg_keys))])
        return {pg_keys[tuple(r[:-1])] for r in rows if tuple(r[:-1]) in pg_keys}

    def origin_rows(self, t: _Table, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        out = {}
        for key in keys:
            row = self.pg.execute(t.pg_select_row(), t.key_to_pg(key)).fetchone()
            if row is not None:
                out[key] = tuple(row)
        return out

    def write(self, t: _Table, deletes: list[tuple[Any, ...]], upserts: list[tuple[Any, ...]]) -> None:
        if deletes:
            self.blue.executemany(t.sqlite_delete(), deletes)
        if upserts and t.replace_sqlite:
            self.blue.executemany(t.sqlite_delete(), [tuple(r[i] for i in t.pk_index) for r in upserts])
            self.blue.executemany(t.sqlite_insert(), upserts)
        elif upserts:
            self.blue.executemany(t.sqlite_upsert(), upserts)
        touch_sqlite(self.blue, t.name, [*deletes, *(tuple(r[i] for i in t.pk_index) for r in upserts)])

    def write_deltas(self, t: _Table, deltas: list[tuple[str, tuple[Any, ...]]]) -> None:
        for op, rows in _runs(deltas):
            if op == "+":
                self.blue.executemany(t.sqlite_insert(), rows)
                continue
            for row in rows:
                if not self._cancelled(t, row):
                    self.blue.execute(t.sqlite_delete_one(), row)

    def pending_removals(self, t: _Table) -> dict[tuple[Any, ...], list[Any]]:
        out: dict[tuple[Any, ...], list[Any]] = {}
        for seq, image in self.blue.execute(
            f"SELECT seq, pk FROM {SQLITE_LOG} WHERE tbl = ? AND op = '-' AND seq > ? ORDER BY seq",
            (t.name, self.blue_position),
        ):
            out.setdefault(decode_image(image), []).append(seq)
        return out

    def drop_removal(self, t: _Table, seq: Any) -> None:
        self.blue.execute(f"DELETE FROM {SQLITE_LOG} WHERE seq = ?", (seq,))

    def park(self, records: list[Parked]) -> None:
        for record in records:
            store.park_sqlite(self.blue, record)

    def savepoint(self) -> Any:
        return _SqliteSavepoint(self.blue)

    def resolved(self, uid: str) -> bool:
        row = self.blue.execute(f"SELECT status FROM {store.SQLITE_STORE} WHERE uid = ?", (uid,)).fetchone()
        return bool(row and row[0] != "waiting")


class _SqliteSavepoint:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("SAVEPOINT cockpit_revert")

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:  # an error goes on up
        if kind is not None:
            self.conn.execute("ROLLBACK TO cockpit_revert")
        self.conn.execute("RELEASE cockpit_revert")


def _columns(keys: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of values as one list per column (for `unnest(%s::type[], ...)`)."""
    return [list(col) for col in zip(*keys, strict=True)]


def _runs(deltas: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive deltas of the same kind together, order kept."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for op, row in deltas:
        if out and out[-1][0] == op:
            out[-1][1].append(row)
        else:
            out.append((op, [row]))
    return out


def _to_store(t: _Table, row: Sequence[Any] | None) -> dict[str, Any] | None:
    """A PostgreSQL row in SQLite's form for the store (a value that does not convert: as JSON shows it)."""
    if row is None:
        return None
    out = {}
    for c, f, v in zip(t.columns, t.to_sqlite, row, strict=True):
        try:
            out[c] = f(v)
        except (ValueError, TypeError, OverflowError, ArithmeticError):
            out[c] = json_safe(v)
    return out


def _index_parts(end: _End, t: _Table, index: str) -> tuple[str, ...]:
    """The columns (or expressions) of a unique index, by name."""
    parts = {n: c for n, c in end.uniques(t)}
    parts.update({n: e for n, e, _ in t.unique_exprs_pg})
    return parts.get(index, (index,))


def _fold(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.casefold() if isinstance(v, str) else v for v in values)


# ----------------------------------------------------------------------------------------------------- applier


class Applier:
    """Applies batches in each direction between one SQLite file and one PostgreSQL database.

    Connections are handed in per call (the runner owns them and reconnects). The SQLite connection must be in
    autocommit mode (`isolation_level=None`); the PostgreSQL connection must not be (`autocommit=False`).
    `row_keys`: keys the plan names for tables without a primary key (`sync.row_keys`); the other keyless tables
    sync as multisets. `held`: tables whose schema changed; a direction stops before their next change.
    """

    def __init__(
        self,
        tables: Mapping[str, TableMap],
        policy: str = "newest",
        batch_size: int = 1000,
        on_event: EventSink | None = None,
        row_keys: Mapping[str, Sequence[str]] | None = None,
    ):
        if policy not in POLICIES:
            raise ValueError(f"conflict policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.policy = policy
        self.batch_size = batch_size
        self.on_event = on_event
        row_keys = row_keys or {}
        self.tables: dict[str, _Table] = {
            name: _table_plan(m, row_keys.get(name)) for name, m in tables.items()
        }
        self.held: set[str] = set()
        self.mismatched: dict[str, str] = {}  # table -> why its columns do not match PostgreSQL's (held)
        self._pg_ready = False
        self._blue_ready = False
        self._order: list[str] = list(self.tables)  # parents before children (foreign keys on PostgreSQL)
        self._narrow: dict[str, tuple[Any, int]] = {}  # direction -> (position, batch size) while isolating
        self._attempt: tuple[Any, int] | None = None  # (upper, count) of the batch being tried

    #: from this many upserts of one table in a batch on, they go through COPY into a temporary table (faster for
    #: a backlog); below it, a pipelined executemany (no temporary table churn in the steady state)
    copy_threshold: int = 64

    def prepare(self, pg: psycopg.Connection) -> None:
        """Read the PostgreSQL column types and unique indexes of every synced table (once). A table missing
        there, or missing columns, is held (`mismatched`): its changes wait, the other tables' flow."""
        if self._pg_ready:
            return
        for t in self.tables.values():
            types = _pg_column_types(pg, t.name)
            if not types:
                self.mismatched[t.name] = "missing on green (PostgreSQL)"
                continue
            missing = [c for c in t.columns if c not in types]
            if missing:
                self.mismatched[t.name] = f"columns missing on green (PostgreSQL): {', '.join(missing)}"
                continue
            t.pg_types = types
            if len(t.pk) == 1 and types.get(t.pk[0]) in ("bigint", "integer", "smallint"):
                row = pg.execute("SELECT pg_get_serial_sequence(%s, %s)", (qi(t.name), t.pk[0])).fetchone()
                t.sequence = row[0] if row else None
            uniques = pg_uniques(pg, t.name)
            t.uniques_pg = [(n, c) for n, c, primary in uniques if not primary and set(c) != set(t.pk)]
            t.unique_exprs_pg = pg_unique_exprs(pg, t.name) if t.pk else []
            t.replace_pg = bool(t.pk) and not any(set(c) == set(t.pk) for _, c, _ in uniques)
        self.held |= set(self.mismatched)
        self._order = _parents_first(list(self.tables), _pg_references(pg, list(self.tables)))
        pg.rollback()
        self._pg_ready = True

    def _prepare_blue(self, blue: sqlite3.Connection) -> None:
        if self._blue_ready:
            return
        for t in self.tables.values():
            uniques = sqlite_uniques(blue, t.name)
            t.uniques_sqlite = [(n, c) for n, c, primary in uniques if not primary and set(c) != set(t.pk)]
            t.replace_sqlite = bool(t.pk) and not any(set(c) == set(t.pk) for _, c, _ in uniques)
        self._blue_ready = True

    def _report(self, record: Parked) -> None:
        if self.on_event is not None:
            self.on_event("sync.conflict", record.payload())

    # ------------------------------------------------------------------------------------------- isolation

    def _isolated(
        self,
        direction: str,
        refusals: tuple[type[BaseException], ...],
        attempt: Callable[[int], StepResult],
        park_alone: Callable[[BaseException], StepResult],
    ) -> StepResult:
        """Apply the next batch; when the target refuses it, try again with half as many changes (from the same
        position) until the batch goes in, or the one change it refuses is found: that one is parked.

        While a refused batch's range is not yet passed, later calls keep the smaller size (`_narrow`), so finding
        one bad change among n costs about log2(n) refused attempts."""
        narrow = self._narrow.get(direction)
        size = narrow[1] if narrow else self.batch_size
        while True:
            self._attempt = None
            try:
                result = attempt(size)
            except refusals as exc:
                tried = self._attempt
                if tried is None:
                    raise  # refused before a batch was read: not a change's fault
                if tried[1] > 1:
                    size = max(1, min(size, tried[1]) // 2)
                    self._narrow[direction] = (tried[0], size)
                    continue
                self._narrow.pop(direction, None)
                result = park_alone(exc)
                result.small_step = True
                return result
            if narrow is not None or size < self.batch_size:
                result.small_step = True
                here = self._narrow.get(direction)
                if here is not None and result.position is not None and result.position >= here[0]:
                    self._narrow.pop(direction, None)
            return result

    # ------------------------------------------------------------------------------------------- blue → green

    def blue_to_green(self, blue: sqlite3.Connection, pg: psycopg.Connection) -> StepResult:
        """Apply the next batch of SQLite changes to PostgreSQL; one PostgreSQL transaction holds data, parked
        versions and position. A change PostgreSQL refuses is isolated and parked (see `_isolated`)."""
        self.prepare(pg)
        self._prepare_blue(blue)
        return self._isolated(
            BLUE_TO_GREEN,
            PG_REFUSALS,
            lambda size: self._blue_to_green(blue, pg, size),
            lambda exc: self._park_blue_alone(blue, pg, exc),
        )

    def _begin_pg(self, pg: psycopg.Connection) -> int:
        """In a new PostgreSQL transaction: tag the applier's writes, lock and return the blue→green position."""
        pg.execute(
            "SELECT set_config('cockpit.applying', 'on', true), set_config('statement_timeout', %s, true)",
            (STATEMENT_TIMEOUT,),
        )
        pg.execute(
            f"INSERT INTO {PG_SCHEMA}.positions (direction, position) VALUES (%s, 0), (%s, 0)"
            " ON CONFLICT (direction) DO NOTHING",
            (BLUE_TO_GREEN, store.FROM_BLUE),
        )
        # the row lock also keeps a second applier from applying the same batch
        rows: dict[str, int] = dict(
            pg.execute(
                f"SELECT direction, position FROM {PG_SCHEMA}.positions WHERE direction IN (%s, 'reseed') FOR UPDATE",
                (BLUE_TO_GREEN,),
            ).fetchall()
        )
        if "reseed" in rows:
            raise ApplyError(
                "a re-seed of some tables was cut short (`cockpit sync copy --tables ...`): run the same command "
                "again to finish it; the sync waits until then"
            )
        return int(rows.get(BLUE_TO_GREEN, 0))

    def _set_pg_position(self, pg: psycopg.Connection, direction: str, position: int) -> None:
        pg.execute(
            f"UPDATE {PG_SCHEMA}.positions SET position = %s, updated_at = clock_timestamp() WHERE direction = %s",
            (position, direction),
        )

    def _blue_to_green(self, blue: sqlite3.Connection, pg: psycopg.Connection, batch_size: int) -> StepResult:
        result = StepResult()
        pg.rollback()  # no implicit transaction left open: `transaction()` below must be the real one, not a savepoint
        with pg.transaction():
            start = self._begin_pg(pg)
            mirrored = int(
                one(
                    pg.execute(
                        f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s", (store.FROM_BLUE,)
                    )
                )[0]
            )
            batch, green_pos, records = self._read_blue(blue, start, batch_size, mirrored, result)
            end = _ToGreen(self, blue, pg, green_pos)
            if records:
                self._mirror(end, records)
                self._set_pg_position(pg, store.FROM_BLUE, int(records[-1][0]))
            # prune what green→blue has already applied (kept small: lag and conflict checks read it)
            pg.execute(
                f"DELETE FROM {PG_SCHEMA}.changes WHERE (txid, seq) <= (%s::text::xid8, %s)",
                (str(green_pos[0]), green_pos[1]),
            )
            if batch is None:
                result.position = start
                return result
            self._attempt = (batch.upper, batch.count)
            result.changes = batch.count
            result.position = batch.upper
            self._apply(end, batch, result)
            self._set_pg_position(pg, BLUE_TO_GREEN, batch.upper)
        for c in result.conflicts:
            self._report(c)
        return result

    def _read_blue(
        self, blue: sqlite3.Connection, start: int, batch_size: int, mirrored: int | None, result: StepResult
    ) -> tuple[_Batch | None, GreenPosition, list[tuple[Any, ...]]]:
        """One consistent read of SQLite: the batch after `start` (cut before a held table's change), the
        current rows of its keys, and the conflict records made on blue after `mirrored`."""
        blue.execute("BEGIN")
        try:
            green_pos = read_green_position(blue)
            records = store.unmirrored_sqlite(blue, mirrored) if mirrored is not None else []
            head = blue.execute(
                f"SELECT max(seq), count(*) FROM (SELECT seq FROM {SQLITE_LOG} WHERE seq > ? ORDER BY seq LIMIT ?)",
                (start, batch_size),
            ).fetchone()
            if not head or head[0] is None:
                last = blue.execute(f"SELECT max(seq) FROM {SQLITE_LOG}").fetchone()[0] or 0
                if last < start:
                    raise ApplyError(
                        f"the SQLite change log ends at {last} but PostgreSQL has applied up to {start}: capture was "
                        "reinstalled on blue alone; changes made meanwhile are unknown. Run `cockpit sync copy` into "
                        "an empty database again (or `cockpit sync uninstall` then `install` to accept the gap)"
                    )
                return None, green_pos, records
            upper, count = int(head[0]), int(head[1])
            if self.held:
                marks = ", ".join("?" for _ in self.held)
                cut = blue.execute(
                    f"SELECT seq, tbl FROM {SQLITE_LOG} WHERE seq > ? AND seq <= ? AND tbl IN ({marks})"
                    " ORDER BY seq LIMIT 1",
                    (start, upper, *sorted(self.held)),
                ).fetchone()
                if cut is not None:
                    result.held = cut[1]
                    upper = int(cut[0]) - 1
                    if upper <= start:
                        return None, green_pos, records
                    count = blue.execute(
                        f"SELECT count(*) FROM {SQLITE_LOG} WHERE seq > ? AND seq <= ?", (start, upper)
                    ).fetchone()[0]
            names = [
                r[0]
                for r in blue.execute(
                    f"SELECT tbl FROM {SQLITE_LOG} WHERE seq > ? AND seq <= ? GROUP BY tbl ORDER BY min(seq)",
                    (start, upper),
                )
            ]
            batch = _Batch(upper, count, {}, {})
            for name in names:
                t = self.tables.get(name)
                if t is None:
                    continue  # captured but not synced: skipped
                if t.keyless:
                    batch.deltas[name] = [
                        (op, decode_image(image))
                        for op, image in blue.execute(t.sqlite_deltas(), (start, upper, name))
                    ]
                    continue
                batch.keyed[name] = [
                    _Entry(t.sqlite_key(pk), float(ts), bool(present), tuple(values))
                    for pk, ts, present, *values in blue.execute(
                        t.sqlite_changed_rows(), (start, upper, name)
                    )
                ]
            return batch, green_pos, records
        finally:
            blue.execute("COMMIT")

    def _park_blue_alone(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, exc: BaseException
    ) -> StepResult:
        """Park the one SQLite change PostgreSQL refuses and move the position past it (one transaction)."""
        result = StepResult()
        pg.rollback()
        with pg.transaction():
            start = self._begin_pg(pg)
            batch, green_pos, _ = self._read_blue(blue, start, 1, None, result)
            if batch is None:
                result.position = start
                return result
            end = _ToGreen(self, blue, pg, green_pos)
            self._park_refused(end, batch, exc, result)
            result.changes = batch.count
            result.position = batch.upper
            self._set_pg_position(pg, BLUE_TO_GREEN, batch.upper)
        for c in result.conflicts:
            self._report(c)
        return result

    # ------------------------------------------------------------------------------------------- green → blue

    def green_to_blue(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int | None = None
    ) -> StepResult:
        """Apply the next batch of PostgreSQL changes to SQLite; one SQLite transaction holds data, parked versions
        and position.

        `blue_position` is the blue→green position committed on PostgreSQL (read from there when not given): the
        SQLite changes after it are still pending and make conflicts. A change SQLite refuses is isolated and
        parked, as for blue→green.
        """
        self.prepare(pg)
        self._prepare_blue(blue)
        if blue_position is None:
            row = pg.execute(
                f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s", (BLUE_TO_GREEN,)
            ).fetchone()
            blue_position = int(row[0]) if row else 0
            pg.rollback()
        position = blue_position
        try:
            return self._isolated(
                "green_to_blue",
                SQLITE_REFUSALS,
                lambda size: self._green_to_blue(blue, pg, position, size),
                lambda exc: self._park_green_alone(blue, pg, position, exc),
            )
        finally:
            if not pg.closed and not pg.broken:
                pg.rollback()  # reads of green rows during the step: no transaction left open

    def _green_to_blue(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int, batch_size: int
    ) -> StepResult:
        result = StepResult()
        start = read_green_position(blue)
        mirrored = _read_state_int(blue, store.FROM_GREEN)
        batch, records = self._read_green(pg, start, batch_size, mirrored, result)
        result.position = start
        if (
            batch is None
            and not records
            and not blue.execute(
                f"SELECT EXISTS (SELECT 1 FROM {SQLITE_LOG} WHERE seq < ?)", (blue_position,)
            ).fetchone()[0]
        ):
            return result  # nothing to apply, mirror or prune: no write lock taken
        blue.execute("BEGIN IMMEDIATE")
        try:
            with sqlite_applying(blue):
                # what blue→green has applied is no longer needed on this side
                prune_sqlite(blue, blue_position)
                if read_green_position(blue) == start and _read_state_int(blue, store.FROM_GREEN) == mirrored:
                    end = _ToBlue(self, blue, pg, blue_position)
                    if records:
                        self._mirror(end, records)
                        _write_state(blue, store.FROM_GREEN, int(records[-1][0]))
                    if batch is not None:
                        self._attempt = (batch.upper, batch.count)
                        result.changes = batch.count
                        result.position = batch.upper
                        self._apply(end, batch, result)
                        write_green_position(blue, batch.upper)
            blue.execute("COMMIT")
        except BaseException:
            blue.execute("ROLLBACK")
            raise
        for c in result.conflicts:
            self._report(c)
        return result

    def _read_green(
        self,
        pg: psycopg.Connection,
        start: GreenPosition,
        batch_size: int,
        mirrored: int | None,
        result: StepResult,
    ) -> tuple[_Batch | None, list[tuple[Any, ...]]]:
        """One consistent read of PostgreSQL (REPEATABLE READ): the batch after `start` below the oldest running
        transaction (cut before a held table's change), the current rows of its keys, and the conflict records
        made on green after `mirrored`."""
        pg.rollback()
        try:
            # first statement of the transaction psycopg opens: one snapshot for the whole read
            pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pg.execute("SELECT set_config('statement_timeout', %s, true)", (STATEMENT_TIMEOUT,))
            horizon = one(pg.execute(HORIZON_SQL))[0]
            records = store.unmirrored_pg(pg, mirrored) if mirrored is not None else []
            changes = pg.execute(
                f"SELECT txid::text::bigint, seq, tbl FROM {PG_SCHEMA}.changes"
                " WHERE (txid, seq) > (%s::text::xid8, %s) AND txid < %s::text::xid8"
                " ORDER BY txid, seq LIMIT %s",
                (str(start[0]), start[1], str(horizon), batch_size),
            ).fetchall()
            for i, (_, _, tbl) in enumerate(changes):
                if tbl in self.held:
                    result.held = tbl
                    changes = changes[:i]
                    break
            if not changes:
                return None, records
            upper = (int(changes[-1][0]), int(changes[-1][1]))
            seqs: dict[str, list[int]] = {}
            for _, seq, tbl in changes:
                seqs.setdefault(tbl, []).append(seq)
            batch = _Batch(upper, len(changes), {}, {})
            for name, table_seqs in seqs.items():
                t = self.tables.get(name)
                if t is None:
                    continue
                if t.keyless:
                    batch.deltas[name] = [
                        (r[0], tuple(r[1:])) for r in pg.execute(t.pg_deltas(), (name, table_seqs))
                    ]
                    continue
                n = len(t.pk)
                batch.keyed[name] = [
                    _Entry(tuple(r[:n]), float(r[n]), bool(r[n + 1]), tuple(r[n + 2 :]))
                    for r in pg.execute(t.pg_changed_rows(), (name, table_seqs))
                ]
            return batch, records
        finally:
            pg.rollback()

    def _park_green_alone(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int, exc: BaseException
    ) -> StepResult:
        """Park the one PostgreSQL change SQLite refuses and move the position past it (one transaction)."""
        result = StepResult()
        start = read_green_position(blue)
        batch, _ = self._read_green(pg, start, 1, None, result)
        result.position = start
        if batch is None:
            return result
        blue.execute("BEGIN IMMEDIATE")
        try:
            if read_green_position(blue) == start:
                end = _ToBlue(self, blue, pg, blue_position)
                self._park_refused(end, batch, exc, result)
                result.changes = batch.count
                result.position = batch.upper
                write_green_position(blue, batch.upper)
            blue.execute("COMMIT")
        except BaseException:
            blue.execute("ROLLBACK")
            raise
        for c in result.conflicts:
            self._report(c)
        return result

    # -------------------------------------------------------------------------------------------- planning

    def _apply(self, end: _End, batch: _Batch, result: StepResult) -> None:
        """Settle and write one batch on the target (inside the caller's transaction)."""
        plans: dict[str, _Plan] = {}
        for name, entries in batch.keyed.items():
            plans[name] = self._plan_keyed(end, self.tables[name], entries, batch.upper, result)
        for name, deltas in batch.deltas.items():
            t = self.tables[name]
            plans[name] = _Plan(deltas=[(op, end.row_in(t, row, row)) for op, row in deltas])
        if isinstance(end, _ToGreen):
            # foreign keys: deferred where PostgreSQL allows it; otherwise children's deletes before their
            # parents', parents' upserts before their children's
            end.pg.execute("SET CONSTRAINTS ALL DEFERRED")
        order = [name for name in self._order if name in plans]
        for name in reversed(order):
            end.write(self.tables[name], plans[name].deletes(), [])
        for name in order:
            t, plan = self.tables[name], plans[name]
            if t.keyless:
                end.write_deltas(t, plan.deltas)
                result.upserts += sum(1 for op, _ in plan.deltas if op == "+")
                result.deletes += sum(1 for op, _ in plan.deltas if op == "-")
                continue
            end.write(t, [], plan.upserts())
            result.deletes += len(plan.deletes())
            result.upserts += len(plan.upserts())
        result.rows = result.upserts + result.deletes
        end.park(result.conflicts)

    def _plan_keyed(
        self, end: _End, t: _Table, entries: list[_Entry], upper: Any, result: StepResult
    ) -> _Plan:
        """The target's writes for one table's keys, with same-key conflicts and unique collisions settled."""
        plan = _Plan()
        keyed = [(end.key_in(t, e.key), e) for e in entries]
        keys = [k for k, _ in keyed]
        # locked first, so a write on the target to these rows either shows below as pending or waits for us
        end.lock(t, keys)
        pending = end.pending(t, keys)
        existing = end.rows(t, [k for k in keys if k in pending])
        for key, e in keyed:
            if key in pending:
                times = end.versions(e.ts, pending[key])
                kept = settle(self.policy, times["blue"], times["green"])
                parked = end.origin if kept == end.target else end.target
                versions = end.versions(
                    end.stored_o(t, e.row) if e.present else None, end.stored(t, existing.get(key))
                )
                if versions["blue"] == versions["green"]:
                    continue  # both sides made the same change (or both deleted): nothing to settle or park
                result.conflicts.append(
                    Parked(
                        kind="conflict",
                        table=t.name,
                        key=end.stored_key(t, key),
                        kept_key=end.stored_key(t, key),
                        parked=parked,
                        kept=kept,
                        policy=self.policy,
                        blue=versions["blue"],
                        green=versions["green"],
                        blue_time=times["blue"],
                        green_time=times["green"],
                    )
                )
                if kept == end.target:
                    continue  # the target's change travels back and overwrites the source's version
            plan.ops[key] = end.row_in(t, key, e.row) if e.present else None
        if any(v is not None for v in plan.ops.values()) and (end.uniques(t) or t.unique_exprs_pg):
            self._unique_clashes(end, t, dict(keyed), upper, plan, result)
        return plan

    def _unique_clashes(
        self,
        end: _End,
        t: _Table,
        incoming: dict[tuple[Any, ...], _Entry],
        upper: Any,
        plan: _Plan,
        result: StepResult,
    ) -> None:
        """Target rows outside the batch that hold a unique value an incoming row brings: one query per unique
        index. Settled as in the module docstring."""
        clashes: list[tuple[tuple[Any, ...], tuple[Any, ...], str]] = []  # (incoming key, holder key, index)
        for name, cols in end.uniques(t):
            idx = [t.columns.index(c) for c in cols]
            wanted: dict[tuple[Any, ...], tuple[Any, ...]] = {}
            folded: dict[tuple[Any, ...], tuple[Any, ...]] = {}
            for key, row in plan.ops.items():
                if row is None:
                    continue
                u = tuple(row[i] for i in idx)
                if any(v is None for v in u):
                    continue  # NULLs never collide
                wanted.setdefault(u, key)  # the same value twice in the batch: left to the database
                folded.setdefault(_fold(u), key)
            if not wanted:
                continue
            for holder, u in end.holders(t, cols, list(wanted)):
                if holder in plan.ops:
                    continue  # written by this batch anyway
                # _fold: a case-insensitive index (COLLATE NOCASE) returns the holder's own spelling
                incoming_key = wanted.get(u) or folded.get(_fold(u))
                if incoming_key is not None:
                    clashes.append((incoming_key, holder, name))
        upserts = {k: v for k, v in plan.ops.items() if v is not None}
        if upserts:
            clashes.extend((k, h, name) for k, h, name in end.expr_clashes(t, upserts) if h not in plan.ops)
        if not clashes:
            return
        holders = list(dict.fromkeys(h for _, h, _ in clashes))
        end.lock(t, holders)
        pending = end.pending(t, holders)
        # the holders' rows, and the target's version of each incoming key (what its source gets back if parked)
        holder_rows = own = end.rows(t, list(dict.fromkeys([*holders, *(k for k, _, _ in clashes)])))
        calm = [h for h in holders if h not in pending]
        later = end.later(t, calm, upper) if calm else set()
        for key, holder, index in clashes:
            row = plan.ops.get(key)
            if row is None or holder in plan.ops:
                continue  # settled by an earlier clash
            e = incoming[key]
            if holder in later:
                # the source changed the holder after this batch: carry its state now (its later changes re-apply it)
                now = end.origin_rows(t, [holder]).get(holder)
                plan.first(holder, None if now is None else end.row_in(t, holder, now))
                continue
            kept: str
            if holder in pending:
                times = end.versions(e.ts, pending[holder])
                kept = settle(self.policy, times["blue"], times["green"])
            else:
                times, kept = end.versions(e.ts, None), end.target
            stored_in = end.stored_o(t, e.row)
            stored_holder = end.stored(t, holder_rows.get(holder))
            if kept == end.origin:
                # the holder's version is parked; its key gets what the source has for it (usually: no row)
                versions = end.versions(stored_in, stored_holder)
                result.conflicts.append(
                    Parked(
                        kind="unique",
                        table=t.name,
                        key=end.stored_key(t, holder),
                        kept_key=end.stored_key(t, key),
                        parked=end.target,
                        kept=kept,
                        policy=self.policy,
                        constraint=index,
                        blue=versions["blue"],
                        green=versions["green"],
                        blue_time=times["blue"],
                        green_time=times["green"],
                    )
                )
                back = end.origin_rows(t, [holder]).get(holder)
                plan.first(holder, None if back is None else end.row_in(t, holder, back))
                continue
            # the incoming version is parked; the source gets the target's version of its key back
            versions = end.versions(stored_in, stored_holder)
            unique = holder in pending
            result.conflicts.append(
                Parked(
                    kind="unique" if unique else "violation",
                    table=t.name,
                    key=end.stored_key(t, key),
                    kept_key=end.stored_key(t, holder),
                    parked=end.origin,
                    kept=end.target,
                    policy=self.policy if unique else None,
                    constraint=index,
                    message=None
                    if unique
                    else f"the value of ({', '.join(_index_parts(end, t, index))}) is already held by key "
                    f"{list(end.stored_key(t, holder))} on {end.target}, with no change pending there",
                    blue=versions["blue"],
                    green=versions["green"],
                    blue_time=times["blue"],
                    green_time=times["green"],
                    revert=True,
                    restore=end.stored(t, own.get(key)),
                )
            )
            del plan.ops[key]

    def _park_refused(self, end: _End, batch: _Batch, exc: BaseException, result: StepResult) -> None:
        """Park the single change of `batch` that the target refused (inside the caller's transaction)."""
        constraint, message = refusal(exc)
        for name, entries in batch.keyed.items():
            t = self.tables[name]
            for e in entries:
                try:
                    key = end.key_in(t, e.key)
                    existing = end.stored(t, end.rows(t, [key]).get(key))
                    stored_key = end.stored_key(t, key)
                except ValueRefused:  # the key itself does not convert: nothing of it can be on the target
                    existing = None
                    stored_key = tuple(e.key) if end.origin == "blue" else tuple(json_safe(v) for v in e.key)
                versions = end.versions(end.stored_o(t, e.row) if e.present else None, existing)
                result.conflicts.append(
                    Parked(
                        kind="violation",
                        table=t.name,
                        key=stored_key,
                        kept_key=stored_key,
                        parked=end.origin,
                        kept=end.target,
                        constraint=constraint,
                        message=message,
                        blue=versions["blue"],
                        green=versions["green"],
                        revert=True,
                        restore=existing,
                        blue_time=e.ts if end.origin == "blue" else None,
                        green_time=e.ts if end.origin == "green" else None,
                    )
                )
        for name, deltas in batch.deltas.items():
            t = self.tables[name]
            for op, row in deltas:
                image = end.stored_o(t, row)
                versions = end.versions(image, None)
                result.conflicts.append(
                    Parked(
                        kind="violation",
                        table=t.name,
                        key=tuple((image or {}).values()),
                        parked=end.origin,
                        kept=end.target,
                        constraint=constraint,
                        message=message,
                        blue=versions["blue"],
                        green=versions["green"],
                        revert=True,
                        op=op,
                    )
                )
        end.park(result.conflicts)

    # ------------------------------------------------------------------------------------------- mirroring

    def _mirror(self, end: _End, records: list[tuple[Any, ...]]) -> None:
        """Copy the other side's new conflict records into the target's store, and set back the rows whose
        incoming version the other side parked (each in a savepoint: a row that cannot be set back is reported,
        never a reason to stop the sync)."""
        if isinstance(end, _ToGreen):
            store.copy_into_pg(end.pg, records)
        else:
            store.copy_into_sqlite(end.blue, records)
        for raw in records:
            rec = store.record_from_row(raw)
            if not rec["revert"] or rec["parked"] != end.target or end.resolved(rec["uid"]):
                continue  # resolved before it got here: the lead's choice stands
            t = self.tables.get(rec["tbl"])
            if t is None:
                continue
            try:
                with end.savepoint():
                    self._revert(end, t, rec)
                    if isinstance(end, _ToGreen):
                        end.pg.execute("SET CONSTRAINTS ALL IMMEDIATE")
            except (*PG_REFUSALS, *SQLITE_REFUSALS) as exc:
                if self.on_event is not None:
                    self.on_event(
                        "sync.revert_failed",
                        {
                            "uid": rec["uid"],
                            "table": t.name,
                            "key": list(rec["pk"]),
                            "error": refusal(exc)[1],
                        },
                    )

    def _revert(self, end: _End, t: _Table, rec: dict[str, Any]) -> None:
        parked = rec[rec["parked"]]
        if rec["op"]:  # a keyless change: undo the delta
            if parked is not None:
                row = end.from_store(t, parked)
                end.write_deltas(t, [("-" if rec["op"] == "+" else "+", row)])
            return
        key = end.key_from_store(t, rec["pk"])
        now = end.rows(t, [key]).get(key)
        if end.stored(t, now) != parked:
            return  # changed again since it was parked: that newer change travels on its own
        restore = rec["restore"]
        if restore is None:
            end.write(t, [key] if now is not None else [], [])
        else:
            end.write(t, [], [end.from_store(t, restore)])

    # ------------------------------------------------------------------------------------------- PostgreSQL

    def _delete_pg(self, pg: psycopg.Connection, t: _Table, deletes: list[tuple[Any, ...]]) -> None:
        if deletes:
            pg.execute(t.pg_delete(), _columns(deletes))

    def _upsert_pg(self, pg: psycopg.Connection, t: _Table, upserts: list[tuple[Any, ...]]) -> None:
        if not upserts:
            return
        if t.replace_pg:  # no unique index on the plan's key: delete + insert
            self._delete_pg(pg, t, [tuple(r[i] for i in t.pk_index) for r in upserts])
        if len(upserts) >= self.copy_threshold:  # many rows: COPY into a temporary table, then one merge
            stage = f"_cockpit_stage_{t.name}"[:63]
            with pg.cursor() as cur:
                cur.execute(t.pg_stage(stage))
                with cur.copy(t.pg_copy_stage(stage)) as copy:
                    for values in upserts:
                        copy.write_row(values)
                merge = t.pg_merge_stage(stage)
                if t.replace_pg:
                    merge = sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                        sql.Identifier(t.name), sql.Identifier(stage)
                    )
                cur.execute(merge)
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
        else:
            with pg.cursor() as cur:
                cur.executemany(t.pg_insert() if t.replace_pg else t.pg_upsert(), upserts)
        if t.sequence:
            top = max((v[t.pk_index[0]] for v in upserts if isinstance(v[t.pk_index[0]], int)), default=None)
            if top is not None:
                pg.execute(t.pg_bump_sequence(), (t.sequence, top, t.sequence, top))


def _read_state_int(blue: sqlite3.Connection, key: str) -> int:
    row = blue.execute(f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _write_state(blue: sqlite3.Connection, key: str, value: Any) -> None:
    blue.execute(
        f"INSERT INTO {SQLITE_STATE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )
