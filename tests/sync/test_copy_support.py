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

from cockpit.drivers.sync.schema import TableMap, pg_truncate, qi, read_mapping


def _canon(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def source_rows(conn: sqlite3.Connection, table: TableMap) -> list[tuple[Any, ...]]:
    fields = ", ".join(f"{qi(c.name)}, typeof({qi(c.name)})" for c in table.columns)
    return _canon(conn.execute(f"SELECT {fields} FROM {qi(table.name)}").fetchall())


def copied_rows(pg_url: str, table: TableMap, schema: str = "public") -> list[tuple[Any, ...]]:
    cols = sql.SQL(", ").join(sql.Identifier(pg_truncate(c.name)) for c in table.columns)
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute(
            sql.SQL("SELECT {} FROM {}.{}").format(
                cols, sql.Identifier(schema), sql.Identifier(pg_truncate(table.name))
            )
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


def assert_copied_exactly(
    sqlite_path: str,
    pg_url: str,
    casts: list | None = None,
    schema: str = "public",
    skip: dict[str, set[int]] | None = None,
) -> dict[str, TableMap]:
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


PITFALLS_SQL = r"""
CREATE TABLE "user" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    "references" TEXT NOT NULL,
    "select" TEXT DEFAULT 'abc',
    "MixedCase" INTEGER DEFAULT 42,
    active BOOLEAN NOT NULL DEFAULT 0,
    flag BOOL,
    created DATETIME DEFAULT (datetime('now')),
    stamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    ms TIMESTAMP DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    born DATE,
    score REAL DEFAULT 1.5,
    price NUMERIC(10,2),
    ratio NUMERIC(10,2),
    data BLOB,
    anything
);
CREATE TABLE "Mixed Table" ("Id" INTEGER PRIMARY KEY, "Name" TEXT UNIQUE, owner INTEGER REFERENCES "user"(id));
CREATE TABLE events (
    seen_iso_tz DATETIME, seen_py DATETIME, seen_julian DATETIME, seen_epoch TIMESTAMP, seen_epoch_ms TIMESTAMP
);
CREATE TABLE pairs (a TEXT NOT NULL, b INTEGER NOT NULL, note TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES "user"(id), code TEXT);
CREATE UNIQUE INDEX "Orders_Code" ON orders (code);
CREATE INDEX orders_user ON orders (user_id);
"""


def make_pitfalls(path: str) -> None:
    """A SQLite database holding every pitfall the copy must carry exactly."""
    conn = sqlite3.connect(path)
    conn.executescript(PITFALLS_SQL)
    users = [
        (
            1,
            "tab\there",
            "new\nline",
            1,
            1,
            "true",
            "2024-01-31 10:20:30",
            "2024-02-29 23:59:59",
            "2024-01-01 00:00:00.125",
            "1999-12-31",
            0.1 + 0.2,
            1.98,
            0.30000000000000004,
            bytes(range(256)),
            7,
        ),
        (
            2,
            "back\\slash \\N and \r",
            "",
            0,
            0,
            "false",
            "1970-01-01 00:00:00",
            "2000-01-01 00:00:00",
            "2000-01-01 12:00:00.000",
            "0001-01-01",
            -2.5,
            2,
            1,
            b"",
            "text here",
        ),
        (3, "ünïcødé ✓ 🎉", None, None, 1, None, None, None, None, None, 1e-300, None, None, None, None),
        (
            5,
            "'quoted' \"double\"",
            "x",
            -9223372036854775808,
            0,
            "true",
            "9999-12-31 23:59:59",
            "2024-06-01 08:00:00",
            "2024-06-01 08:00:00.999",
            "2024-02-29",
            1.7976931348623157e308,
            99999999.99,
            123.456,
            b"\x00\x01",
            3.25,
        ),
    ]
    conn.executemany(
        'INSERT INTO "user" (id, "references", "select", "MixedCase", active, flag, created, stamp, ms, born, '
        "score, price, ratio, data, anything) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        users,
    )
    conn.execute('UPDATE "user" SET anything = NULL WHERE id IN (2, 3, 5)')
    conn.execute('INSERT INTO "user" (id, "references") VALUES (9, \'deleted soon\')')
    conn.execute('DELETE FROM "user" WHERE id = 9')  # AUTOINCREMENT: the next key is 10, not 6
    conn.executemany(
        'INSERT INTO "Mixed Table" VALUES (?, ?, ?)', [(1, "a", 1), (2, "b", None), (3, None, 2)]
    )
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
        [
            ("2024-01-02T03:04:05Z", "2024-01-02 03:04:05", 2460311.6278356481, 1704164645, 1704164645123),
            ("1999-12-31T23:59:59Z", "2024-01-02 03:04:05.123456", 2451545.0, 0, 1704164645000),
            (None, None, None, None, None),
        ],
    )
    conn.executemany("INSERT INTO pairs VALUES (?, ?, ?)", [("a", 1, "x"), ("a", 2, None), ("B", 1, "é")])
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(1, 1, "A1"), (2, 77, "A2"), (3, 88, None), (4, None, None)]
    )
    conn.commit()
    conn.close()
