"""The applier: moves batches of captured changes from one side to the other, once each.

Each step is state-based: for every key changed in the batch it reads the row as it is *now* on the source side
(several changes of one key coalesce into its latest state) and upserts it on the target, or deletes it there when
the source no longer has it. The applied position is written in the same target transaction as the data, so a kill
at any instant neither loses nor repeats a change. The applier's own writes are tagged (`SET LOCAL
cockpit.applying` on PostgreSQL, a `_cockpit_context` row on SQLite) and the capture triggers skip them.

A conflict is a key changed on both sides since the last sync. The policy settles it: `newest` (by change time),
`blue-wins`, `green-wins`; each conflict is reported through `on_event('sync.conflict', payload)` with both
versions of the row (None for a deleted row).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from cockpit.drivers.sync.capture import (
    BLUE_TO_GREEN,
    PG_SCHEMA,
    SQLITE_CONTEXT,
    SQLITE_LOG,
    GreenPosition,
    prune_sqlite,
    qi,
    read_green_position,
    touch_sqlite,
    write_green_position,
)
from cockpit.drivers.sync.tables import (
    ApplyError,
    _convert,
    _parents_first,
    _pg_column_types,
    _pg_references,
    _Table,
    _table_plan,
)

if TYPE_CHECKING:
    from cockpit.drivers.sync.schema import TableMap

Policy = Literal["newest", "blue-wins", "green-wins"]
POLICIES: tuple[str, ...] = ("newest", "blue-wins", "green-wins")
EventSink = Callable[[str, dict[str, Any]], None]
# a statement of the applier that waits longer (a row locked by a long app transaction) is cancelled and the batch
# retried on the next pass; transaction-scoped (`set_config(..., true)`), so no session state is left behind
STATEMENT_TIMEOUT = "15s"


@dataclass(frozen=True)
class Conflict:
    """One key changed on both sides since the last sync, and how it was settled."""

    table: str
    key: tuple[Any, ...]
    blue: dict[str, Any] | None  # the SQLite row now (None: deleted there)
    green: dict[str, Any] | None  # the PostgreSQL row now (None: deleted there)
    blue_time: float  # epoch seconds of the latest change on each side
    green_time: float
    policy: str
    winner: Literal["blue", "green"]

    def payload(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": [json_safe(v) for v in self.key],
            "policy": self.policy,
            "winner": self.winner,
            "blue": _json_row(self.blue),
            "green": _json_row(self.green),
            "blue_time": self.blue_time,
            "green_time": self.green_time,
        }


@dataclass
class StepResult:
    """What one step in one direction did."""

    changes: int = 0  # log entries consumed
    rows: int = 0  # distinct keys written (upserts + deletes)
    upserts: int = 0
    deletes: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    position: Any = None
    small_step: bool = False  # the batch broke a constraint as a whole: one change was applied alone

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "rows": self.rows,
            "upserts": self.upserts,
            "deletes": self.deletes,
            "conflicts": len(self.conflicts),
            "small_steps": self.small_step,
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


def _json_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: json_safe(v) for k, v in row.items()}


def settle(policy: str, blue_time: float, green_time: float) -> Literal["blue", "green"]:
    """The side whose version wins a conflict (`newest`: the later change; a tie goes to blue)."""
    if policy == "blue-wins":
        return "blue"
    if policy == "green-wins":
        return "green"
    return "green" if green_time > blue_time else "blue"


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


# ----------------------------------------------------------------------------------------------------- applier


class Applier:
    """Applies batches in each direction between one SQLite file and one PostgreSQL database.

    Connections are handed in per call (the runner owns them and reconnects). The SQLite connection must be in
    autocommit mode (`isolation_level=None`); the PostgreSQL connection must not be (`autocommit=False`).
    """

    def __init__(
        self,
        tables: Mapping[str, TableMap],
        policy: str = "newest",
        batch_size: int = 1000,
        on_event: EventSink | None = None,
    ):
        if policy not in POLICIES:
            raise ValueError(f"conflict policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.policy = policy
        self.batch_size = batch_size
        self.on_event = on_event
        self.tables: dict[str, _Table] = {name: _table_plan(m) for name, m in tables.items()}
        self._pg_ready = False
        self._order: list[str] = list(self.tables)  # parents before children (foreign keys on PostgreSQL)

    #: from this many upserts of one table in a batch on, they go through COPY into a temporary table (faster for
    #: a backlog); below it, a pipelined executemany (no temporary table churn in the steady state)
    copy_threshold: int = 64

    def prepare(self, pg: psycopg.Connection) -> None:
        """Read the PostgreSQL column types of every synced table (once); refuse missing tables or columns."""
        if self._pg_ready:
            return
        problems = []
        for t in self.tables.values():
            types = _pg_column_types(pg, t.name)
            if not types:
                problems.append(f"table {t.name!r} is missing on PostgreSQL")
                continue
            missing = [c for c in t.columns if c not in types]
            if missing:
                problems.append(f"table {t.name!r}: columns missing on PostgreSQL: {', '.join(missing)}")
            t.pg_types = types
            if len(t.pk) == 1 and types.get(t.pk[0]) in ("bigint", "integer", "smallint"):
                row = pg.execute("SELECT pg_get_serial_sequence(%s, %s)", (qi(t.name), t.pk[0])).fetchone()
                t.sequence = row[0] if row else None
        if problems:
            pg.rollback()
            raise ApplyError("; ".join(problems))
        self._order = _parents_first(list(self.tables), _pg_references(pg, list(self.tables)))
        pg.rollback()
        self._pg_ready = True

    def _report(self, conflict: Conflict) -> None:
        if self.on_event is not None:
            self.on_event("sync.conflict", conflict.payload())

    # ------------------------------------------------------------------------------------------- blue → green

    def blue_to_green(self, blue: sqlite3.Connection, pg: psycopg.Connection) -> StepResult:
        """Apply the next batch of SQLite changes to PostgreSQL; one PostgreSQL transaction holds data + position.

        A batch that breaks a constraint on PostgreSQL as a whole (a unique key reused, a foreign key that is not
        deferrable) is rolled back and the next change is applied alone, in the app's order; a change that fails
        alone stops the step with PostgreSQL's message (it stays in the log).
        """
        self.prepare(pg)
        try:
            return self._blue_to_green(blue, pg, self.batch_size)
        except psycopg.errors.IntegrityError:
            if self.batch_size == 1 or pg.broken:
                raise
        result = self._blue_to_green(blue, pg, 1)
        result.small_step = True
        return result

    def _blue_to_green(self, blue: sqlite3.Connection, pg: psycopg.Connection, batch_size: int) -> StepResult:
        result = StepResult()
        pg.rollback()  # no implicit transaction left open: `transaction()` below must be the real one, not a savepoint
        with pg.transaction():
            pg.execute(
                "SELECT set_config('cockpit.applying', 'on', true), set_config('statement_timeout', %s, true)",
                (STATEMENT_TIMEOUT,),
            )
            pg.execute(
                f"INSERT INTO {PG_SCHEMA}.positions (direction, position) VALUES (%s, 0)"
                " ON CONFLICT (direction) DO NOTHING",
                (BLUE_TO_GREEN,),
            )
            # the row lock also keeps a second applier from applying the same batch
            row = pg.execute(
                f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s FOR UPDATE",
                (BLUE_TO_GREEN,),
            ).fetchone()
            start = int(row[0]) if row else 0
            batch, green_pos = self._read_blue(blue, start, batch_size)
            # prune what green→blue has already applied (kept small: lag and conflict checks read it)
            pg.execute(
                f"DELETE FROM {PG_SCHEMA}.changes WHERE (txid, seq) <= (%s::text::xid8, %s)",
                (str(green_pos[0]), green_pos[1]),
            )
            if batch is None:
                result.position = start
                return result
            upper, count, per_table = batch
            result.changes = count
            result.position = upper
            planned = {
                name: self._plan_pg(pg, self.tables[name], rows, green_pos, result)
                for name, rows in per_table.items()
            }
            # foreign keys: deferred where PostgreSQL allows it; otherwise children's deletes before their parents',
            # parents' upserts before their children's
            pg.execute("SET CONSTRAINTS ALL DEFERRED")
            order = [name for name in self._order if name in planned]
            for name in reversed(order):
                self._delete_pg(pg, self.tables[name], planned[name][0])
            for name in order:
                self._upsert_pg(pg, self.tables[name], planned[name][1])
            for deletes, upserts in planned.values():
                result.deletes += len(deletes)
                result.upserts += len(upserts)
                result.rows += len(deletes) + len(upserts)
            pg.execute(
                f"UPDATE {PG_SCHEMA}.positions SET position = %s, updated_at = clock_timestamp()"
                " WHERE direction = %s",
                (upper, BLUE_TO_GREEN),
            )
        for c in result.conflicts:
            self._report(c)
        return result

    def _read_blue(
        self, blue: sqlite3.Connection, start: int, batch_size: int
    ) -> tuple[tuple[int, int, dict[str, list[tuple[Any, ...]]]] | None, GreenPosition]:
        """One consistent read of SQLite: the batch after `start`, the current rows of its keys."""
        blue.execute("BEGIN")
        try:
            green_pos = read_green_position(blue)
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
                return None, green_pos
            upper, count = int(head[0]), int(head[1])
            names = [
                r[0]
                for r in blue.execute(
                    f"SELECT tbl FROM {SQLITE_LOG} WHERE seq > ? AND seq <= ? GROUP BY tbl ORDER BY min(seq)",
                    (start, upper),
                )
            ]
            per_table: dict[str, list[tuple[Any, ...]]] = {}
            for name in names:
                table = self.tables.get(name)
                if table is None:
                    continue  # captured but not synced: skipped
                per_table[name] = blue.execute(table.sqlite_changed_rows(), (start, upper, name)).fetchall()
            return (upper, count, per_table), green_pos
        finally:
            blue.execute("COMMIT")

    def _plan_pg(
        self,
        pg: psycopg.Connection,
        t: _Table,
        rows: list[tuple[Any, ...]],
        green_pos: GreenPosition,
        result: StepResult,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Lock the batch's rows on PostgreSQL, settle conflicts; the keys to delete and the rows to upsert."""
        # rows: (pk json, ts, present, *columns)
        entries = []
        for pk_json, ts, present, *values in rows:
            key = _convert(t, "PostgreSQL", json.loads(pk_json), t.key_to_pg, json.loads(pk_json))
            entries.append((key, float(ts), bool(present), values))
        key_arrays = [list(col) for col in zip(*(e[0] for e in entries), strict=True)]
        # locked first, so a green write to these rows either shows below as pending or waits for this commit
        pg.execute(t.pg_lock(), key_arrays)
        pending = {
            tuple(r[:-1]): float(r[-1])
            for r in pg.execute(t.pg_pending(), [t.name, str(green_pos[0]), green_pos[1], *key_arrays])
        }
        deletes: list[tuple[Any, ...]] = []
        upserts: list[tuple[Any, ...]] = []
        for key, ts, present, values in entries:
            if key in pending:
                green_row = pg.execute(t.pg_select_row(), key).fetchone()
                conflict = Conflict(
                    table=t.name,
                    key=key,
                    blue=t.as_dict(values) if present else None,
                    green=t.as_dict(green_row),
                    blue_time=ts,
                    green_time=pending[key],
                    policy=self.policy,
                    winner=settle(self.policy, ts, pending[key]),
                )
                result.conflicts.append(conflict)
                if conflict.winner == "green":
                    continue
            if present:
                upserts.append(_convert(t, "PostgreSQL", key, t.row_to_pg, values))
            else:
                deletes.append(key)
        return deletes, upserts

    def _delete_pg(self, pg: psycopg.Connection, t: _Table, deletes: list[tuple[Any, ...]]) -> None:
        if deletes:
            pg.execute(t.pg_delete(), [list(col) for col in zip(*deletes, strict=True)])

    def _upsert_pg(self, pg: psycopg.Connection, t: _Table, upserts: list[tuple[Any, ...]]) -> None:
        if len(upserts) >= self.copy_threshold:  # many rows: COPY into a temporary table, then one merge
            stage = f"_cockpit_stage_{t.name}"[:63]
            with pg.cursor() as cur:
                cur.execute(t.pg_stage(stage))
                with cur.copy(t.pg_copy_stage(stage)) as copy:
                    for values in upserts:
                        copy.write_row(values)
                cur.execute(t.pg_merge_stage(stage))
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
        elif upserts:
            with pg.cursor() as cur:
                cur.executemany(t.pg_upsert(), upserts)
        if upserts and t.sequence:
            top = max((v[t.pk_index[0]] for v in upserts if isinstance(v[t.pk_index[0]], int)), default=None)
            if top is not None:
                pg.execute(t.pg_bump_sequence(), (t.sequence, top, t.sequence, top))

    # ------------------------------------------------------------------------------------------- green → blue

    def green_to_blue(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int | None = None
    ) -> StepResult:
        """Apply the next batch of PostgreSQL changes to SQLite; one SQLite transaction holds data + position.

        `blue_position` is the blue→green position committed on PostgreSQL (read from there when not given): the
        SQLite changes after it are still pending and make conflicts. A batch that breaks a unique key on SQLite
        as a whole is rolled back and the next change applied alone, as for blue→green.
        """
        self.prepare(pg)
        try:
            return self._green_to_blue(blue, pg, blue_position, self.batch_size)
        except sqlite3.IntegrityError:
            if self.batch_size == 1:
                raise
        result = self._green_to_blue(blue, pg, blue_position, 1)
        result.small_step = True
        return result

    def _green_to_blue(
        self, blue: sqlite3.Connection, pg: psycopg.Connection, blue_position: int | None, batch_size: int
    ) -> StepResult:
        result = StepResult()
        start = read_green_position(blue)
        if blue_position is None:
            row = pg.execute(
                f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s", (BLUE_TO_GREEN,)
            ).fetchone()
            blue_position = int(row[0]) if row else 0
        batch = self._read_green(pg, start, batch_size)
        result.position = start
        if (
            batch is None
            and not blue.execute(
                f"SELECT EXISTS (SELECT 1 FROM {SQLITE_LOG} WHERE seq < ?)", (blue_position,)
            ).fetchone()[0]
        ):
            return result  # nothing to apply, nothing to prune: no write lock taken
        blue.execute("BEGIN IMMEDIATE")
        try:
            blue.execute(f"INSERT INTO {SQLITE_CONTEXT} (applier) VALUES ('cockpit')")
            # what blue→green has applied is no longer needed on this side
            prune_sqlite(blue, blue_position)
            if batch is not None and read_green_position(blue) == start:
                upper, count, per_table = batch
                result.changes = count
                result.position = upper
                for name, rows in per_table.items():
                    self._apply_to_sqlite(blue, self.tables[name], rows, blue_position, result)
                write_green_position(blue, upper)
            blue.execute(f"DELETE FROM {SQLITE_CONTEXT}")
            blue.execute("COMMIT")
        except BaseException:
            blue.execute("ROLLBACK")
            raise
        for c in result.conflicts:
            self._report(c)
        return result

    def _read_green(
        self, pg: psycopg.Connection, start: GreenPosition, batch_size: int
    ) -> tuple[GreenPosition, int, dict[str, list[tuple[Any, ...]]]] | None:
        """One consistent read of PostgreSQL (REPEATABLE READ): the batch after `start` below the oldest running
        transaction, and the current rows of its keys."""
        pg.rollback()
        try:
            # first statement of the transaction psycopg opens: one snapshot for the whole read
            pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pg.execute("SELECT set_config('statement_timeout', %s, true)", (STATEMENT_TIMEOUT,))
            horizon = pg.execute(HORIZON_SQL).fetchone()[0]
            changes = pg.execute(
                f"SELECT txid::text::bigint, seq, tbl FROM {PG_SCHEMA}.changes"
                " WHERE (txid, seq) > (%s::text::xid8, %s) AND txid < %s::text::xid8"
                " ORDER BY txid, seq LIMIT %s",
                (str(start[0]), start[1], str(horizon), batch_size),
            ).fetchall()
            if not changes:
                return None
            upper = (int(changes[-1][0]), int(changes[-1][1]))
            seqs: dict[str, list[int]] = {}
            for _, seq, tbl in changes:
                seqs.setdefault(tbl, []).append(seq)
            per_table = {}
            for name, table_seqs in seqs.items():
                table = self.tables.get(name)
                if table is None:
                    continue
                per_table[name] = pg.execute(table.pg_changed_rows(), (name, table_seqs)).fetchall()
            return upper, len(changes), per_table
        finally:
            pg.rollback()

    def _apply_to_sqlite(
        self,
        blue: sqlite3.Connection,
        t: _Table,
        rows: list[tuple[Any, ...]],
        blue_position: int,
        result: StepResult,
    ) -> None:
        n = len(t.pk)
        pending: dict[tuple[Any, ...], float] = {}
        for pk_json, ts in blue.execute(
            f"SELECT pk, max(ts) FROM {SQLITE_LOG} WHERE seq > ? AND tbl = ? GROUP BY pk",
            (blue_position, t.name),
        ):
            pending[tuple(json.loads(pk_json))] = float(ts)
        deletes: list[tuple[Any, ...]] = []
        upserts: list[tuple[Any, ...]] = []
        for row in rows:
            key_pg, ts, present, values = row[:n], float(row[n]), bool(row[n + 1]), row[n + 2 :]
            key = _convert(t, "SQLite", key_pg, t.key_to_sqlite, key_pg)
            if key in pending:
                blue_row = blue.execute(t.sqlite_select_row(), key).fetchone()
                conflict = Conflict(
                    table=t.name,
                    key=key,
                    blue=t.as_dict(blue_row),
                    green=t.as_dict(values) if present else None,
                    blue_time=pending[key],
                    green_time=ts,
                    policy=self.policy,
                    winner=settle(self.policy, pending[key], ts),
                )
                result.conflicts.append(conflict)
                if conflict.winner == "blue":
                    continue
            if present:
                upserts.append(_convert(t, "SQLite", key, t.row_to_sqlite, values))
            else:
                deletes.append(key)
        if deletes:
            blue.executemany(t.sqlite_delete(), deletes)
        if upserts:
            blue.executemany(t.sqlite_upsert(), upserts)
        touch_sqlite(blue, t.name, [*deletes, *(tuple(row[i] for i in t.pk_index) for row in upserts)])
        result.deletes += len(deletes)
        result.upserts += len(upserts)
        result.rows += len(deletes) + len(upserts)
