"""Helpers shared by the two-way sync tests: a SQLite file and a PostgreSQL database with the same tables.

The PostgreSQL side is built by the real initial copy (`copy_database`) when it is available, by hand otherwise.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from cockpit.drivers.sync.capture import install_pg, install_sqlite, record_copy_position, sqlite_position
from cockpit.drivers.sync.runner import SyncRunner, connect_sqlite

SQLITE_DDL = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, data BLOB)",
    'CREATE TABLE "Pairs" (a TEXT NOT NULL, b INTEGER NOT NULL, "value" TEXT, PRIMARY KEY (a, b))',
]
PG_DDL = [
    "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty bigint, price double precision, data bytea)",
    'CREATE TABLE "Pairs" (a text NOT NULL, b bigint NOT NULL, "value" text, PRIMARY KEY (a, b))',
]
TABLES = ("items", "Pairs")


def make_blue(path: Path) -> None:
    conn = sqlite3.connect(path)
    for ddl in SQLITE_DDL:
        conn.execute(ddl)
    conn.commit()
    conn.close()


def make_pair(tmp_path: Path, pg_url: str, install: bool = True) -> Path:
    """A SQLite file and a PostgreSQL database with the test tables (empty), capture installed on both."""
    db = tmp_path / "blue.db"
    make_blue(db)
    with psycopg.connect(pg_url) as pg:
        for ddl in PG_DDL:
            pg.execute(ddl)
        pg.commit()
        if install:
            blue = connect_sqlite(db)
            keys = install_sqlite(blue, TABLES)
            record_copy_position(pg, sqlite_position(blue))
            pg.commit()
            install_pg(pg, keys)
            blue.close()
    return db


def blue_rows(db: Path | sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    conn = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(db)
    try:
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        order = ", ".join(f'"{c}"' for c in cols)
        return [_norm(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}')]
    finally:
        if conn is not db:
            conn.close()


def green_rows(pg_url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as pg:
        cols = [
            r[0]
            for r in pg.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
                " AND NOT attisdropped ORDER BY attnum",
                (f'"{table}"',),
            )
        ]
        order = ", ".join(f'"{c}"' for c in cols)
        return [_norm(r) for r in pg.execute(f'SELECT * FROM "{table}" ORDER BY {order}')]


def _norm(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(bytes(v) if isinstance(v, memoryview | bytearray) else v for v in row)


def assert_same(db: Path, pg_url: str, tables: Sequence[str] = TABLES) -> None:
    for table in tables:
        blue, green = blue_rows(db, table), green_rows(pg_url, table)
        assert blue == green, (
            f"{table}: blue {len(blue)} rows, green {len(green)} rows; first differences: "
            + str([(b, g) for b, g in zip(blue, green, strict=False) if b != g][:3])
        )


def pg_exec(pg_url: str, statement: str, params: Sequence[Any] = ()) -> None:
    with psycopg.connect(pg_url) as pg:
        pg.execute(statement, params)
        pg.commit()


def blue_exec(db: Path, statement: str, params: Sequence[Any] = ()) -> None:
    conn = sqlite3.connect(db, timeout=30)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def runner(db: Path, pg_url: str, **kwargs: Any) -> SyncRunner:
    """A SyncRunner on the test pair (the real schema reader when present, identity mappings until then)."""
    kwargs.setdefault("tables", list(TABLES))
    try:
        import cockpit.drivers.sync.schema  # noqa: F401
    except ImportError:
        kwargs.setdefault("mappings", _identity_mappings())
    return SyncRunner(db, pg_url, **kwargs)


def _identity_mappings() -> dict[str, Any]:
    from types import SimpleNamespace

    def same(value: Any) -> Any:
        return value

    def table(name: str, cols: Sequence[str], pk: tuple[str, ...]) -> Any:
        columns = tuple(SimpleNamespace(name=c, to_pg=same, to_sqlite=same) for c in cols)
        return SimpleNamespace(name=name, columns=columns, primary_key=pk)

    return {
        "items": table("items", ["id", "name", "qty", "price", "data"], ("id",)),
        "Pairs": table("Pairs", ["a", "b", "value"], ("a", "b")),
    }


class Events:
    """Collects `on_event` calls (thread-safe)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.items.append((kind, payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for k, p in self.items if k == kind]


def write_sync_plan(tmp_path: Path, db: Path, sync: str, extra: str = "") -> Path:
    """A plan over the pair from make_pair; green's URL comes from $COCKPIT_TEST_GREEN_URL. `sync` is the body of
    its `sync:` section (one `key: value` a line), `extra` more top-level YAML."""
    body = "\n".join(f"  {line.strip()}" for line in sync.strip().splitlines())
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: t\n"
        f"blue:\n  database: {{engine: sqlite, path: {db.name}}}\n"
        'green:\n  database: {engine: postgresql, url: "${COCKPIT_TEST_GREEN_URL}"}\n'
        f"sync:\n{body}\n"
        "phases:\n  - {name: p, green: 100}\n" + extra
    )
    return plan


def make_copied(tmp_path: Path, pg_url: str, ddl: Sequence[str], **kwargs: Any) -> tuple[Path, SyncRunner]:
    """A SQLite file made by `ddl`, copied into PostgreSQL by the real initial copy (capture and keys installed);
    the runner that did it (pass `tables=`, `conflict_policy=`, ...)."""
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    for statement in ddl:
        conn.execute(statement)
    conn.commit()
    conn.close()
    r = SyncRunner(db, pg_url, **kwargs)
    r.initial_copy(jobs=1)
    return db, r


def store_rows(db: Path, pg_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The conflicts store on each side: (blue's records, green's records)."""
    from cockpit.drivers.sync import conflicts

    conn = sqlite3.connect(db)
    try:
        blue = conflicts.sqlite_records(conn)
    finally:
        conn.close()
    with psycopg.connect(pg_url) as pg:
        green = conflicts.pg_records(pg)
    return blue, green
