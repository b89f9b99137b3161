"""Schema changes during the migration: seen on either side within a pass, so the sync can hold the changed tables.

SQLite (blue): `PRAGMA schema_version` moves on every schema change; when it has moved since the last look, each
synced table's definition (its `sqlite_master` rows: table, indexes, the app's triggers; the cockpit's own left out)
is compared with the fingerprint recorded at install (`_cockpit_state` key `schema`). A change elsewhere (another
table, the cockpit's own objects) changes nothing.

PostgreSQL (green): an event trigger, `cockpit_ddl` (`ddl_command_end` and `sql_drop`, function `cockpit.note_ddl()`),
records every DDL command outside the cockpit's own sessions (those run with `cockpit.applying` on) into
`cockpit.ddl(seq, ts, tag, object_type, identity, tbl)`, `tbl` being the table it touches when it can be told (an
index's table, a column's table). `cockpit.positions` direction `ddl` holds the last one acknowledged (at install, and
when a table is re-seeded). Creating an event trigger needs a superuser; where that is refused the install falls back
to a fingerprint of each synced table in the catalog (columns, constraints, indexes), compared every pass.

`changes` answers both: {table: what changed}. Never imports the applier or the runner.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import psycopg

from cockpit.drivers.sync.capture import PG_SCHEMA, SQLITE_PREFIX, SQLITE_STATE, one, pg_has, qi

STATE_KEY = "schema"  # SQLite: {"version": n, "tables": {table: fingerprint}}
PG_ACK = "ddl"  # cockpit.positions: the last cockpit.ddl seq acknowledged
PG_PRINTS = (
    "ddl_prints"  # cockpit.positions is numeric: the fallback's fingerprints live in cockpit.ddl_prints
)
IGNORED_TAGS = ("COMMENT", "GRANT", "REVOKE", "SECURITY LABEL", "ANALYZE")

_PG_DDL = f"""
CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.ddl (
    seq bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(), tag text, object_type text,
    identity text, tbl text);
CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.ddl_prints (tbl text PRIMARY KEY, print text NOT NULL);
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    IF current_setting('cockpit.applying', true) = 'on' THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'sql_drop' THEN
        FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
            CONTINUE WHEN r.schema_name IS NULL OR r.schema_name = '{PG_SCHEMA}' OR r.schema_name LIKE 'pg_temp%'
                OR r.object_type NOT IN ('table', 'table column', 'table constraint', 'trigger', 'index');
            INSERT INTO {PG_SCHEMA}.ddl (tag, object_type, identity, tbl)
            VALUES (TG_TAG, r.object_type, r.object_identity,
                    CASE WHEN r.object_type = 'index' THEN NULL ELSE r.address_names[2] END);
        END LOOP;
        RETURN;
    END IF;
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        CONTINUE WHEN r.schema_name IS NULL OR r.schema_name = '{PG_SCHEMA}' OR r.schema_name LIKE 'pg_temp%'
            OR r.in_extension OR r.command_tag = ANY(%(ignored)s);
        INSERT INTO {PG_SCHEMA}.ddl (tag, object_type, identity, tbl)
        VALUES (r.command_tag, r.object_type, r.object_identity,
                CASE
                    WHEN r.classid = 'pg_class'::regclass THEN
                        (SELECT coalesce(t.relname, c.relname) FROM pg_class c
                           LEFT JOIN pg_index i ON i.indexrelid = c.oid
                           LEFT JOIN pg_class t ON t.oid = i.indrelid WHERE c.oid = r.objid)
                    WHEN r.classid = 'pg_trigger'::regclass THEN
                        (SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE g.oid = r.objid)
                    WHEN r.classid = 'pg_constraint'::regclass THEN
                        (SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                          WHERE k.oid = r.objid)
                END);
    END LOOP;
END
$fn$;
"""

_PG_PRINT = """
SELECT c.relname, md5(
    coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
                                || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY a.attnum)
                FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
    || '|' || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
                          FROM pg_constraint k WHERE k.conrelid = c.oid), '')
    || '|' || coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY 1)
                          FROM pg_index i WHERE i.indrelid = c.oid), ''))
FROM pg_class c WHERE c.oid = ANY(%s::regclass[])
"""


# ---------------------------------------------------------------------------------------------------- SQLite


def _sqlite_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA schema_version").fetchone()[0])


def sqlite_prints(conn: sqlite3.Connection, tables: Iterable[str]) -> dict[str, str]:
    """A fingerprint of each table's definition: its sqlite_master rows, the cockpit's own triggers left out."""
    out = {}
    for table in tables:
        rows = conn.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE tbl_name = ? AND substr(name, 1, ?) <> ?"
            " ORDER BY type, name",
            (table, len(SQLITE_PREFIX), SQLITE_PREFIX),
        ).fetchall()
        text = "\n".join(f"{t} {n} {' '.join(s.split())}" for t, n, s in rows)
        out[table] = hashlib.sha256(text.encode()).hexdigest()
    return out


def record_sqlite(conn: sqlite3.Connection, tables: Iterable[str]) -> None:
    """Note these tables' definitions on blue as they are now (at install, after the cockpit's own objects are in
    place; after a re-seed, for the re-seeded tables); the others keep theirs."""
    row = conn.execute(f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (STATE_KEY,)).fetchone()
    prints = json.loads(row[0])["tables"] if row else {}
    prints.update(sqlite_prints(conn, tables))
    value = json.dumps({"version": _sqlite_version(conn), "tables": prints})
    conn.execute(
        f"INSERT INTO {SQLITE_STATE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (STATE_KEY, value),
    )


def sqlite_changes(conn: sqlite3.Connection, tables: Iterable[str], cache: dict[str, Any]) -> dict[str, str]:
    """The synced tables whose definition on blue differs from the one recorded at install. `cache` keeps the
    last schema version seen, so an unchanged schema costs one PRAGMA; a moved one, one fingerprint per table."""
    version = _sqlite_version(conn)
    if cache.get("version") == version:
        return cache.get("changed", {})
    row = conn.execute(f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (STATE_KEY,)).fetchone()
    recorded = json.loads(row[0]) if row else None
    changed: dict[str, str] = {}
    if recorded is not None:
        now = sqlite_prints(conn, tables)
        for table, print_ in now.items():
            before = recorded["tables"].get(table)
            if before is not None and before != print_:
                changed[table] = "its definition changed on blue (SQLite)"
    cache.update(version=version, changed=changed)
    return changed


# ------------------------------------------------------------------------------------------------ PostgreSQL


def install_pg(pg: psycopg.Connection, tables: Iterable[str]) -> str | None:
    """The DDL watch on green (idempotent). Returns None, or why the event trigger could not be created (then the
    catalog fingerprints stand in). Commits."""
    names = list(tables)
    pg.rollback()
    with pg.transaction():
        pg.execute("SELECT set_config('cockpit.applying', 'on', true)")
        pg.execute(_PG_DDL.replace("%(ignored)s", "ARRAY[" + ", ".join(f"'{t}'" for t in IGNORED_TAGS) + "]"))
        pg.execute(
            f"INSERT INTO {PG_SCHEMA}.positions (direction, position)"
            f" SELECT %s, coalesce(max(seq), 0) FROM {PG_SCHEMA}.ddl"
            " ON CONFLICT (direction) DO UPDATE SET position = excluded.position, updated_at = clock_timestamp()",
            (PG_ACK,),
        )
        _record_prints(pg, names)
    refused = None
    try:
        with pg.transaction():
            pg.execute("SELECT set_config('cockpit.applying', 'on', true)")
            pg.execute("DROP EVENT TRIGGER IF EXISTS cockpit_ddl")
            pg.execute("DROP EVENT TRIGGER IF EXISTS cockpit_ddl_drop")
            pg.execute(
                f"CREATE EVENT TRIGGER cockpit_ddl ON ddl_command_end EXECUTE FUNCTION {PG_SCHEMA}.note_ddl()"
            )
            pg.execute(
                f"CREATE EVENT TRIGGER cockpit_ddl_drop ON sql_drop EXECUTE FUNCTION {PG_SCHEMA}.note_ddl()"
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        refused = f"event triggers need a superuser ({exc.diag.message_primary}): green's tables are compared instead"
    if not pg.autocommit:
        pg.commit()
    return refused


def _record_prints(pg: psycopg.Connection, tables: list[str]) -> None:
    for table, print_ in pg_prints(pg, tables).items():
        pg.execute(
            f"INSERT INTO {PG_SCHEMA}.ddl_prints (tbl, print) VALUES (%s, %s)"
            " ON CONFLICT (tbl) DO UPDATE SET print = excluded.print",
            (table, print_),
        )


def pg_prints(pg: psycopg.Connection, tables: list[str]) -> dict[str, str]:
    present = [t for t in tables if pg_has(pg, qi(t))]
    if not present:
        return {}
    return {r[0]: r[1] for r in pg.execute(_PG_PRINT, ([qi(t) for t in present],))}


def acknowledge_pg(pg: psycopg.Connection, tables: Iterable[str]) -> None:
    """After a re-seed: the DDL recorded for these tables is acknowledged (the others' stays) and their
    fingerprints taken again (inside the caller's transaction)."""
    names = list(tables)
    pg.execute(f"DELETE FROM {PG_SCHEMA}.ddl WHERE tbl = ANY(%s)", (names,))
    _record_prints(pg, names)


def pg_watching(pg: psycopg.Connection) -> bool:
    return pg.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = 'cockpit_ddl'").fetchone() is not None


def pg_changes(
    pg: psycopg.Connection, tables: Iterable[str], cache: dict[str, Any] | None = None
) -> dict[str, str]:
    """The synced tables changed on green since the last acknowledged DDL (or, without the event trigger, whose
    catalog fingerprint moved). Read-only. With a `cache` (kept by the caller between calls), a green watched by
    the event trigger and unchanged costs one query."""
    names = set(tables)
    cache = {} if cache is None else cache
    if cache.get("watching"):
        top = one(pg.execute(f"SELECT coalesce(max(seq), 0) FROM {PG_SCHEMA}.ddl"))[0]
        if top == cache.get("top"):
            return cache.get("changed", {})
    elif not pg_has(pg, f"{PG_SCHEMA}.ddl"):
        return {}
    changed: dict[str, str] = {}
    if pg_watching(pg):
        cache["watching"] = True
        cache["top"] = one(pg.execute(f"SELECT coalesce(max(seq), 0) FROM {PG_SCHEMA}.ddl"))[0]
        rows = pg.execute(
            f"SELECT tbl, string_agg(DISTINCT tag, ', ') FROM {PG_SCHEMA}.ddl"
            f" WHERE seq > (SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s) AND tbl IS NOT NULL"
            " GROUP BY tbl",
            (PG_ACK,),
        ).fetchall()
        for table, tags in rows:
            if table in names:
                changed[table] = f"{tags} on green (PostgreSQL)"
        cache["changed"] = changed
        return changed
    recorded: dict[str, str] = dict(pg.execute(f"SELECT tbl, print FROM {PG_SCHEMA}.ddl_prints").fetchall())
    for table, print_ in pg_prints(pg, sorted(names)).items():
        if table in recorded and recorded[table] != print_:
            changed[table] = "its definition changed on green (PostgreSQL)"
    for table in names:
        if table in recorded and not pg_has(pg, qi(table)):
            changed[table] = "dropped on green (PostgreSQL)"
    return changed
