"""The end of the migration, on the databases: what of the cockpit is left on each side, and dropping green's copy
when the migration is abandoned.

`SyncRunner.uninstall` removes capture (triggers, schema `cockpit` with its tables and functions, which takes the
DDL watch's event triggers with it); `pg_leftovers` and `sqlite_leftovers` list whatever is still there, so that
`cockpit finalize` can say green is clean, not hope so.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from psycopg import sql

from cockpit.core.errors import EXIT_USAGE, CockpitError
from cockpit.drivers.sync.capture import PG_SCHEMA, PG_TRIGGERS, SQLITE_PREFIX


class EndingError(CockpitError):
    """Green's copy cannot be dropped as asked (the name does not match, the server refuses)."""

    exit_code = EXIT_USAGE


def pg_leftovers(url: str, connect_timeout: float = 10.0) -> list[str]:
    """Every cockpit object on green: the schema, capture triggers, event triggers, functions named for it."""
    with psycopg.connect(url, connect_timeout=int(connect_timeout), autocommit=True) as pg:
        found = [
            f"schema {r[0]}"
            for r in pg.execute("SELECT nspname FROM pg_namespace WHERE nspname = %s", (PG_SCHEMA,))
        ]
        found += [
            f"trigger {r[0]} on {r[1]}"
            for r in pg.execute(
                "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE t.tgname = ANY(%s) OR t.tgname LIKE '\\_cockpit%%'",
                (list(PG_TRIGGERS),),
            )
        ]
        found += [
            f"event trigger {r[0]}"
            for r in pg.execute("SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'cockpit%%'")
        ]
        found += [
            f"function {r[0]}.{r[1]}"
            for r in pg.execute(
                "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %s OR p.proname LIKE '\\_cockpit%%'",
                (PG_SCHEMA,),
            )
        ]
        return found


def sqlite_leftovers(path: str | Path) -> list[str]:
    """Every cockpit trigger and table left in blue's SQLite file."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE substr(name, 1, ?) = ? ORDER BY type, name",
            (len(SQLITE_PREFIX), SQLITE_PREFIX),
        ).fetchall()
        return [f"{kind} {name}" for kind, name in rows]
    finally:
        conn.close()


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names."""
    return str(psycopg.conninfo.conninfo_to_dict(url).get("dbname") or "")


def drop_database(url: str, typed: str, connect_timeout: float = 10.0) -> str:
    """Drop the database `url` names, once `typed` (what the lead typed to confirm) is that name; connects to the
    server's `postgres` database to do it. Idempotent: a database already gone is reported, not an error."""
    name = database_name(url)
    if not name or typed != name:
        raise EndingError(
            f"--drop-green {typed!r} does not match green's database {name!r}: nothing was dropped"
        )
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = "postgres"
    admin = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    with psycopg.connect(admin, connect_timeout=int(connect_timeout), autocommit=True) as pg:
        if pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return f"database {name} was already gone"
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return f"database {name} dropped"
