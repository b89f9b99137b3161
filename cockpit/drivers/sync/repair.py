"""Rows that differ after the sync drained (changed behind its back), brought back in line through the sync.

Nothing is written across by hand: each differing row is put into the preferred side's change log, as its own
capture would have logged it, and the applier carries it over with everything it knows (types, keys, conflicts,
the tag that keeps it from looping back). A row the preferred side holds is logged by a no-op update of that row
(its capture trigger writes the change exactly as for an app's write); a row it lacks is logged as a delete of
that key, so the applier deletes it on the other side. Keyless tables are not repaired (a row has no identity to
log): re-seed them (`cockpit sync copy --tables T`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cockpit.drivers.integrity.report import RowDiff
from cockpit.drivers.sync.capture import PG_SCHEMA, SQLITE_LOG, SQLITE_NOW, qi
from cockpit.drivers.sync.schema import TableMap

SIDES = ("blue", "green")


def mark(
    blue: sqlite3.Connection,
    pg: psycopg.Connection,
    mappings: Mapping[str, TableMap],
    prefer: str,
    diffs: Mapping[str, Sequence[RowDiff]],
) -> dict[str, Any]:
    """Log every row of `diffs` (per table, keys in blue's form) in `prefer`'s change log. Returns per table the
    rows logged, and the tables skipped with why. One transaction per side."""
    if prefer not in SIDES:
        raise ValueError(f"prefer must be blue or green, not {prefer!r}")
    logged: dict[str, int] = {}
    skipped: dict[str, str] = {}
    blue.execute("BEGIN IMMEDIATE")
    try:
        with pg.transaction():
            for table, rows in diffs.items():
                tm = mappings.get(table)
                if tm is None or not tm.primary_key:
                    skipped[table] = (
                        "no key: re-seed it from blue (`cockpit sync copy --tables " + table + "`)"
                    )
                    continue
                for d in rows:
                    if prefer == "blue":
                        _mark_blue(blue, tm, d)
                    else:
                        _mark_green(pg, tm, d)
                logged[table] = len(rows)
        blue.execute("COMMIT")
    except BaseException:
        blue.execute("ROLLBACK")
        raise
    return {"logged": logged, "skipped": skipped}


def _mark_blue(blue: sqlite3.Connection, tm: TableMap, d: RowDiff) -> None:
    where = " AND ".join(f"{qi(c)} = ?" for c in tm.primary_key)
    if d.kind == "missing_on_blue":
        marks = ", ".join("?" for _ in tm.primary_key)
        key = "?" if len(tm.primary_key) == 1 else f"json_array({marks})"  # the triggers' form (see capture)
        blue.execute(
            f"INSERT INTO {SQLITE_LOG} (tbl, op, pk, ts) VALUES (?, 'D', {key}, {SQLITE_NOW})",
            (tm.name, *d.key),
        )
        return
    first = qi(tm.primary_key[0])
    blue.execute(f"UPDATE {qi(tm.name)} SET {first} = {first} WHERE {where}", d.key)


def _mark_green(pg: psycopg.Connection, tm: TableMap, d: RowDiff) -> None:
    cols = [tm.column(c) for c in tm.primary_key]
    key = [c.to_pg(v) for c, v in zip(cols, d.key, strict=True)]
    if d.kind == "missing_on_green":
        values = sql.SQL(", ").join(
            sql.SQL("CAST({} AS {})").format(sql.Placeholder(), sql.SQL(c.pg_type)) for c in cols
        )
        pg.execute(
            sql.SQL("INSERT INTO {}.changes (tbl, op, pk) VALUES ({}, 'D', jsonb_build_array({}))").format(
                sql.Identifier(PG_SCHEMA), sql.Literal(tm.name), values
            ),
            key,
        )
        return
    first = sql.Identifier(cols[0].name)
    where = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c.name), sql.Placeholder()) for c in cols
    )
    pg.execute(
        sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(sql.Identifier(tm.name), first, first, where), key
    )
