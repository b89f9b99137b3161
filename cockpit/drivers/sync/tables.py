"""What the applier knows of one synced table: its columns, key, converters and the SQL for both sides.

Built once per table from the schema reader's `TableMap` (`_table_plan`), completed with the PostgreSQL column types
by `Applier.prepare`. Also the foreign-key order of tables on PostgreSQL (`_parents_first`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from cockpit.core.errors import EXIT_USAGE, CockpitError
from cockpit.drivers.sync.capture import PG_SCHEMA, SQLITE_LOG, qi, sqlite_epoch

if TYPE_CHECKING:
    from cockpit.drivers.sync.schema import TableMap


class ApplyError(CockpitError):
    """The two sides cannot be synced as they are (a table or column missing on PostgreSQL)."""

    exit_code = EXIT_USAGE


@dataclass
class _Table:
    """One synced table: its columns, key, converters and the SQL for both sides, built once."""

    name: str
    columns: tuple[str, ...]
    pk: tuple[str, ...]
    to_pg: tuple[Callable[[Any], Any], ...]
    to_sqlite: tuple[Callable[[Any], Any], ...]
    pk_index: tuple[int, ...]
    pg_types: dict[str, str] = field(default_factory=dict)
    sequence: str | None = None  # the identity/serial sequence behind a one-column integer key on PostgreSQL
    # no key: every column together is the row's identity; its changes are multiset deltas (`+`/`-`), in order
    keyless: bool = False
    # the key is one the plan names and no unique index backs it on that side: an upsert is delete + insert
    replace_pg: bool = False
    replace_sqlite: bool = False
    # unique indexes over plain columns, other than the key: (name, columns); read by `prepare`
    uniques_pg: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    uniques_sqlite: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # PostgreSQL's other unique indexes, over expressions (lower(email)) or partial: (name, expressions, predicate)
    unique_exprs_pg: list[tuple[str, tuple[str, ...], str | None]] = field(default_factory=list)

    # ---- SQLite
    @property
    def raw_key(self) -> bool:
        """The SQLite log holds this table's keys as the bare value (one key column), not a JSON array."""
        return len(self.pk) == 1

    def sqlite_key(self, logged: Any) -> tuple[Any, ...]:
        """A key as the SQLite log holds it (`sqlite_changed_rows`, `sqlite_pending`) as a tuple of values."""
        return (logged,) if self.raw_key else tuple(json.loads(logged))

    def sqlite_changed_rows(self) -> str:
        cols = ", ".join(f"t.{qi(c)}" for c in self.columns)
        if self.raw_key:
            join = f"t.{qi(self.pk[0])} = c.pk"
        else:
            join = " AND ".join(f"t.{qi(c)} = json_extract(c.pk, '$[{i}]')" for i, c in enumerate(self.pk))
        return (
            f"SELECT c.pk, {sqlite_epoch('c.ts')}, t.{qi(self.pk[0])} IS NOT NULL, {cols}"
            f" FROM (SELECT pk, max(seq) AS s, max(ts) AS ts FROM {SQLITE_LOG}"
            "       WHERE seq > ? AND seq <= ? AND tbl = ? GROUP BY pk) AS c"
            f" LEFT JOIN {qi(self.name)} AS t ON {join} ORDER BY c.s"
        )

    def sqlite_select_row(self) -> str:
        cols = ", ".join(qi(c) for c in self.columns)
        where = " AND ".join(f"{qi(c)} IS ?" for c in self.pk)
        return f"SELECT {cols} FROM {qi(self.name)} WHERE {where}"

    def sqlite_upsert(self) -> str:
        cols = ", ".join(qi(c) for c in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        rest = [c for c in self.columns if c not in self.pk]
        action = (
            "DO UPDATE SET " + ", ".join(f"{qi(c)} = excluded.{qi(c)}" for c in rest)
            if rest
            else "DO NOTHING"
        )
        keys = ", ".join(qi(c) for c in self.pk)
        return f"INSERT INTO {qi(self.name)} ({cols}) VALUES ({marks}) ON CONFLICT ({keys}) {action}"

    def sqlite_delete(self) -> str:
        where = " AND ".join(f"{qi(c)} = ?" for c in self.pk)
        return f"DELETE FROM {qi(self.name)} WHERE {where}"

    def sqlite_pending(self) -> str:
        """Keys of this table changed on SQLite after a blue→green position, with their latest change time."""
        return f"SELECT pk, {sqlite_epoch('max(ts)')} FROM {SQLITE_LOG} WHERE seq > ? AND tbl = ? GROUP BY pk"

    def sqlite_later(self) -> str:
        """Does the SQLite log hold a change of this key after a position? (the key's values as parameters)"""
        marks = ", ".join("?" for _ in self.pk)
        key = "?" if self.raw_key else f"json_array({marks})"
        return f"SELECT 1 FROM {SQLITE_LOG} WHERE tbl = ? AND seq > ? AND pk = {key} LIMIT 1"

    def sqlite_holders(self, cols: Sequence[str], n: int) -> str:
        """The rows holding any of `n` values of the unique columns `cols`: key, then those columns."""
        keys = ", ".join(qi(c) for c in self.pk)
        u = ", ".join(qi(c) for c in cols)
        if len(cols) == 1:
            where = f"{u} IN ({', '.join('?' for _ in range(n))})"
        else:
            one = "(" + ", ".join("?" for _ in cols) + ")"
            where = f"({u}) IN (VALUES {', '.join(one for _ in range(n))})"
        return f"SELECT {keys}, {u} FROM {qi(self.name)} WHERE {where}"

    def sqlite_deltas(self) -> str:
        """A keyless table's changes in a range of the SQLite log, in order: (op, row image)."""
        return f"SELECT op, pk FROM {SQLITE_LOG} WHERE seq > ? AND seq <= ? AND tbl = ? ORDER BY seq"

    def sqlite_insert(self) -> str:
        cols = ", ".join(qi(c) for c in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        return f"INSERT INTO {qi(self.name)} ({cols}) VALUES ({marks})"

    def sqlite_delete_one(self) -> str:
        """Delete one row equal to the given values in every column (a multiset delete)."""
        where = " AND ".join(f"{qi(c)} IS ?" for c in self.columns)
        return f"DELETE FROM {qi(self.name)} WHERE rowid = (SELECT rowid FROM {qi(self.name)} WHERE {where} LIMIT 1)"

    # ---- PostgreSQL
    def _key_cast(self, i: int) -> sql.Composable:
        return sql.SQL("(pk->>{})::{}").format(sql.Literal(i), sql.SQL(self.pg_types[self.pk[i]]))

    def _unnest_keys(self) -> sql.Composable:
        arrays = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(self.pg_types[c])) for c in self.pk)
        return sql.SQL("SELECT * FROM unnest({})").format(arrays)

    def _pk_tuple(self, prefix: str = "") -> sql.Composable:
        p = sql.SQL(prefix)
        return sql.SQL("({})").format(sql.SQL(", ").join(p + sql.Identifier(c) for c in self.pk))

    def pg_changed_rows(self) -> sql.Composed:
        keys = sql.SQL(", ").join(self._key_cast(i) + sql.SQL(f" AS k{i}") for i in range(len(self.pk)))
        group = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(self.pk)))
        join = sql.SQL(" AND ").join(
            sql.SQL("t.{} = k.{}").format(sql.Identifier(c), sql.Identifier(f"k{i}"))
            for i, c in enumerate(self.pk)
        )
        cols = sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in self.columns)
        knames = sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(self.pk)))
        return sql.SQL(
            "SELECT {knames}, k.ts, t.{first} IS NOT NULL, {cols}"
            " FROM (SELECT {keys}, extract(epoch FROM max(ts))::float8 AS ts, max(seq) AS s"
            "       FROM {schema}.changes WHERE tbl = %s AND seq = ANY(%s) GROUP BY {group}) AS k"
            " LEFT JOIN {table} AS t ON {join} ORDER BY k.s"
        ).format(
            knames=knames,
            first=sql.Identifier(self.pk[0]),
            cols=cols,
            keys=keys,
            group=group,
            schema=sql.Identifier(PG_SCHEMA),
            table=sql.Identifier(self.name),
            join=join,
        )

    def pg_lock(self) -> sql.Composed:
        return sql.SQL("SELECT 1 FROM {} WHERE {} IN ({}) FOR UPDATE").format(
            sql.Identifier(self.name), self._pk_tuple(), self._unnest_keys()
        )

    def pg_pending(self) -> sql.Composed:
        keys = sql.SQL(", ").join(self._key_cast(i) for i in range(len(self.pk)))
        group = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(self.pk)))
        return sql.SQL(
            "SELECT {keys}, extract(epoch FROM max(ts))::float8 FROM {schema}.changes"
            " WHERE tbl = %s AND (txid, seq) > (%s::text::xid8, %s) AND ({keys}) IN ({unnest}) GROUP BY {group}"
        ).format(keys=keys, schema=sql.Identifier(PG_SCHEMA), unnest=self._unnest_keys(), group=group)

    def pg_holders(self, cols: Sequence[str]) -> sql.Composed:
        """The rows holding any of the given values of the unique columns `cols`: key, then those columns."""
        arrays = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(self.pg_types[c])) for c in cols)
        u = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        return sql.SQL("SELECT {}, {} FROM {} WHERE ({}) IN (SELECT * FROM unnest({}))").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in self.pk), u, sql.Identifier(self.name), u, arrays
        )

    def pg_expr_holders(self, exprs: Sequence[str], predicate: str | None) -> sql.Composed:
        """For an expression or partial unique index: which incoming rows (numbered by `_cockpit_ord`) share the
        index's values with a row of the table, and that row's key. Parameters: one array per column, then the
        rows' numbers. The index's own SQL (from the catalog) is evaluated on the incoming rows and, through the
        index, looked up in the table."""
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(self.pg_types[c])) for c in self.columns
        )
        names = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        xs = [sql.Identifier(f"_cockpit_x{i}") for i in range(len(exprs))]
        computed = sql.SQL(", ").join(
            sql.SQL("({}) AS {}").format(sql.SQL(e), x) for e, x in zip(exprs, xs, strict=True)
        )
        where = sql.SQL(predicate) if predicate else sql.SQL("true")
        return sql.SQL(
            "WITH i AS MATERIALIZED (SELECT u._cockpit_ord, {computed} FROM unnest({arrays}, %s::int[])"
            " AS u({names}, _cockpit_ord) WHERE {where})"
            " SELECT i._cockpit_ord, h.* FROM i CROSS JOIN LATERAL (SELECT {pk} FROM {table}"
            " WHERE ({exprs}) = ({ixs}) AND {where}) h"
        ).format(
            computed=computed,
            arrays=arrays,
            names=names,
            where=where,
            pk=sql.SQL(", ").join(sql.Identifier(c) for c in self.pk),
            table=sql.Identifier(self.name),
            exprs=sql.SQL(", ").join(sql.SQL("({})").format(sql.SQL(e)) for e in exprs),
            ixs=sql.SQL(", ").join(sql.SQL("i.") + x for x in xs),
        )

    def pg_deltas(self) -> sql.Composed:
        """A keyless table's changes among some `seq`s of the PostgreSQL log, in commit order: (op, *columns),
        the row image typed back by `jsonb_populate_record`."""
        cols = sql.SQL(", ").join(sql.SQL("r.") + sql.Identifier(c) for c in self.columns)
        return sql.SQL(
            "SELECT c.op, {cols} FROM {schema}.changes c CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, c.pk) r"
            " WHERE c.tbl = %s AND c.seq = ANY(%s) ORDER BY c.txid, c.seq"
        ).format(cols=cols, schema=sql.Identifier(PG_SCHEMA), table=sql.Identifier(self.name))

    def pg_insert(self) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in self.columns)
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(sql.Identifier(self.name), cols, marks)

    def pg_delete_one(self) -> sql.Composed:
        """Delete one row equal to the given values in every column (a multiset delete)."""
        where = sql.SQL(" AND ").join(
            sql.SQL("{} IS NOT DISTINCT FROM %s::{}").format(sql.Identifier(c), sql.SQL(self.pg_types[c]))
            for c in self.columns
        )
        return sql.SQL("DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} WHERE {w} LIMIT 1)").format(
            t=sql.Identifier(self.name), w=where
        )

    def pg_pending_removals(self) -> sql.Composed:
        """The removals green's log still holds for blue, for this keyless table: (seq, *columns) typed back.
        Parameters: table name, green→blue position (txid, seq)."""
        cols = sql.SQL(", ").join(sql.SQL("r.") + sql.Identifier(c) for c in self.columns)
        return sql.SQL(
            "SELECT c.seq, {cols} FROM {schema}.changes c CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, c.pk) r"
            " WHERE c.tbl = %s AND c.op = '-' AND (c.txid, c.seq) > (%s::text::xid8, %s) ORDER BY c.txid, c.seq"
        ).format(cols=cols, schema=sql.Identifier(PG_SCHEMA), table=sql.Identifier(self.name))

    def pg_select_rows(self) -> sql.Composed:
        """The rows of several keys (one list of values per key column), key first then every column."""
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        return sql.SQL("SELECT {}, {} FROM {} WHERE {} IN ({})").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in self.pk),
            cols,
            sql.Identifier(self.name),
            self._pk_tuple(),
            self._unnest_keys(),
        )

    def pg_select_row(self) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in self.pk)
        return sql.SQL("SELECT {} FROM {} WHERE {}").format(cols, sql.Identifier(self.name), where)

    def pg_delete(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE {} IN ({})").format(
            sql.Identifier(self.name), self._pk_tuple(), self._unnest_keys()
        )

    def pg_upsert(self) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in self.columns)
        return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT {} {}").format(
            sql.Identifier(self.name), cols, marks, self._pk_tuple(), self._conflict_action()
        )

    def _conflict_action(self) -> sql.Composable:
        rest = [c for c in self.columns if c not in self.pk]
        if not rest:
            return sql.SQL("DO NOTHING")
        return sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in rest
        )

    def pg_stage(self, stage: str) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        return sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(stage), cols, sql.Identifier(self.name)
        )

    def pg_copy_stage(self, stage: str) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage), cols)

    def pg_merge_stage(self, stage: str) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT {} {}").format(
            sql.Identifier(self.name),
            cols,
            cols,
            sql.Identifier(stage),
            self._pk_tuple(),
            self._conflict_action(),
        )

    def pg_bump_sequence(self) -> sql.SQL:
        """Move an ascending key sequence past the highest key applied, so green's next insert does not collide.
        A descending one (disjoint keys, `cockpit.drivers.sync.keys`) is never moved: blue's keys are above it."""
        return sql.SQL(
            "SELECT setval(%s::regclass, %s) FROM pg_sequences"
            " WHERE format('%%I.%%I', schemaname, sequencename)::regclass = %s::regclass"
            " AND increment_by > 0 AND coalesce(last_value, 0) < %s"
        )

    # ---- values
    def row_to_pg(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(f(v) for f, v in zip(self.to_pg, row, strict=True))

    def row_to_sqlite(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(f(v) for f, v in zip(self.to_sqlite, row, strict=True))

    def key_to_pg(self, key: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(self.to_pg[i](v) for i, v in zip(self.pk_index, key, strict=True))

    def key_to_sqlite(self, key: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(self.to_sqlite[i](v) for i, v in zip(self.pk_index, key, strict=True))

    def as_dict(self, row: Sequence[Any] | None) -> dict[str, Any] | None:
        return None if row is None else dict(zip(self.columns, row, strict=True))


def _table_plan(mapping: TableMap, key: Sequence[str] | None = None) -> _Table:
    """The plan of one table; `key` (the plan's `sync.row_keys`) replaces a missing primary key. With neither,
    the table is keyless: its rows are a multiset."""
    columns = tuple(c.name for c in mapping.columns)
    pk = tuple(mapping.primary_key) or tuple(key or ())
    missing = [c for c in pk if c not in columns]
    if missing:
        raise ApplyError(f"table {mapping.name!r}: key columns not in the table: {', '.join(missing)}")
    return _Table(
        name=mapping.name,
        columns=columns,
        pk=pk,
        to_pg=tuple(c.to_pg for c in mapping.columns),
        to_sqlite=tuple(c.to_sqlite for c in mapping.columns),
        pk_index=tuple(columns.index(c) for c in pk),
        keyless=not pk,
    )


class ValueRefused(ApplyError):
    """A value that cannot be carried to the other side (a type violation): that change alone is parked."""


def _convert(t: _Table, target: str, key: Sequence[Any], convert: Callable[[Any], Any], values: Any) -> Any:
    """Run a converter; a value that does not fit is refused with the table and key named (the applier then
    isolates that change and parks it)."""
    try:
        return convert(values)
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        raise ValueRefused(
            f"table {t.name!r}, key {list(key)!r}: a value cannot be carried to {target}: {exc} "
            "(fix the row or add a cast to the plan)"
        ) from exc


def pg_uniques(pg: psycopg.Connection, table: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """Unique indexes over plain columns (no expression, no predicate) on PostgreSQL: (name, columns, primary)."""
    rows = pg.execute(
        "SELECT c.relname, array_agg(a.attname ORDER BY k.ord), i.indisprimary FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL"
        " AND k.ord <= i.indnkeyatts GROUP BY c.relname, i.indisprimary ORDER BY c.relname",
        (qi(table),),
    ).fetchall()
    return [(r[0], tuple(r[1]), bool(r[2])) for r in rows]


def pg_unique_exprs(pg: psycopg.Connection, table: str) -> list[tuple[str, tuple[str, ...], str | None]]:
    """Unique indexes over expressions or with a predicate on PostgreSQL: (name, key expressions as SQL,
    predicate as SQL or None), as the catalog prints them."""
    rows = pg.execute(
        "SELECT c.relname, array(SELECT pg_get_indexdef(i.indexrelid, k, true)"
        "                        FROM generate_series(1, i.indnkeyatts) k ORDER BY k),"
        " pg_get_expr(i.indpred, i.indrelid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND NOT i.indisprimary"
        " AND (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL) ORDER BY c.relname",
        (qi(table),),
    ).fetchall()
    return [(r[0], tuple(r[1]), r[2]) for r in rows]


def sqlite_uniques(conn: sqlite3.Connection, table: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """Unique indexes over plain columns (no expression, not partial) on SQLite: (name, columns, primary). A
    rowid-alias key has no index: it shows as ('rowid', (column,), True)."""
    out = []
    declared = [
        r[1] for r in sorted(conn.execute(f"PRAGMA table_info({qi(table)})"), key=lambda r: r[5]) if r[5]
    ]
    for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({qi(table)})").fetchall():
        if not unique or partial:
            continue
        info = conn.execute(f"PRAGMA index_info({qi(name)})").fetchall()
        if any(r[1] is None or r[1] < 0 for r in info):
            continue
        out.append((name, tuple(r[2] for r in sorted(info)), origin == "pk"))
    if declared and not any(primary for *_, primary in out):
        out.append(("rowid", tuple(declared), True))
    return out


def _pg_references(pg: psycopg.Connection, tables: list[str]) -> list[tuple[str, str]]:
    """(child, parent) for each foreign key between two of `tables` on PostgreSQL."""
    rows = pg.execute(
        "SELECT c.relname, p.relname FROM pg_constraint k"
        " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid"
        " WHERE k.contype = 'f' AND c.oid = ANY(%s::regclass[]) AND p.oid = ANY(%s::regclass[])",
        ([qi(t) for t in tables], [qi(t) for t in tables]),
    ).fetchall()
    return [(r[0], r[1]) for r in rows if r[0] != r[1]]


def _parents_first(tables: list[str], references: list[tuple[str, str]]) -> list[str]:
    """Tables ordered so that a referenced table comes before the tables that reference it (cycles: as listed)."""
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in references:
        if child in parents and parent in parents:
            parents[child].add(parent)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(tables):
        ready = [t for t in tables if t not in placed and parents[t] <= placed]
        if not ready:  # a cycle: take the first one left
            ready = [next(t for t in tables if t not in placed)]
        for t in ready:
            order.append(t)
            placed.add(t)
    return order


def _pg_column_types(pg: psycopg.Connection, table: str) -> dict[str, str]:
    rows = pg.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (qi(table),),
    ).fetchall()
    return {r[0]: r[1] for r in rows}
