"""Read-back comparison shared by the copy tests (no tests here).

A copied table is equal to its source when every PostgreSQL value, turned back by the column's `to_sqlite` and
stored into a SQLite column of the same declared type (so SQLite's affinity applies, as it would for a write
coming back through the sync), reads back with the same value and the same storage class as the source row.
Rows are compared as sorted lists, so tables without a key compare too.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from psycopg import sql

from cockpit.sync.schema import TableMap, pg_truncate, qi, read_mapping


def _canon(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def source_rows(conn: sqlite3.Connection, table: TableMap) -> list[tuple[Any, ...]]:
    fields = ", ".join(f"{qi(c.name)}, typeof({qi(c.name)})" for c in table.columns)
    return _canon(conn.execute(f"SELECT {fields} FROM {qi(table.name)}").fetchall())


def copied_rows(pg_url: str, table: TableMap, schema: str = "public") -> list[tuple[Any, ...]]:
    cols = sql.SQL(", ").join(sql.Identifier(pg_truncate(c.name)) for c in table.columns)
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute(
            sql.SQL("SELECT {} FROM {}.{}").format(cols, sql.Identifier(schema), sql.Identifier(pg_truncate(table.name)))
        ).fetchall()
    mem = sqlite3.connect(":memory:")
    decls = ", ".join(f"{qi(c.name)} {c.sqlite_decl}" for c in table.columns)
    mem.execute(f"CREATE TABLE t ({decls})")
    marks = ", ".join("?" for _ in table.columns)
    mem.executemany(
        f"INSERT INTO t VALUES ({marks})",
        [tuple(c.to_sqlite(v) for c, v in zip(table.columns, row, strict=True)) for row in rows],
    )
    fields = ", ".join(f"{qi(c.name)}, typeof({qi(c.name)})" for c in table.columns)
    return _canon(mem.execute(f"SELECT {fields} FROM t").fetchall())


def assert_copied_exactly(sqlite_path: str, pg_url: str, casts: list | None = None, schema: str = "public",
                          skip: dict[str, set[int]] | None = None) -> dict[str, TableMap]:
    """Every table of `sqlite_path` equals its PostgreSQL copy, row by row and value by value."""
    conn = sqlite3.connect(sqlite_path)
    try:
        mapping = read_mapping(conn, casts=casts)
        for name, table in mapping.items():
            want = source_rows(conn, table)
            got = copied_rows(pg_url, table, schema)
            assert len(got) == len(want), f"{name}: {len(got)} rows copied, {len(want)} in SQLite"
            for a, b in zip(want, got, strict=True):
                assert a == b, f"{name}: SQLite row {a!r} came back as {b!r}"
    finally:
        conn.close()
    return mapping
