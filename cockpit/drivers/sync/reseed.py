"""Re-seeding tables during the migration: green's copy of a table replaced by blue's while the sync goes on.

For a table whose schema changed (the sync holds it) or that drifted: `cockpit sync copy --tables T`
(`SyncRunner.initial_copy(tables=...)`) comes here when capture is already installed.
1. `prepare`, one PostgreSQL transaction with the blue→green position row locked (no applier runs meanwhile):
   green's changes to the tables not yet on blue are parked whole (kind `reseed`: nothing acknowledged is dropped)
   and taken out of green's log; the foreign keys of other tables that reference them and the views that read them
   are noted; the tables are dropped; the blue→green position is kept as the marker (`cockpit.positions`
   direction `reseed`, with the noted definitions in `cockpit.reseed`).
2. The ordinary initial copy of those tables (`copy_database(tables=...)`), which records its snapshot's position.
3. `finish`: blue's log entries for those tables up to the snapshot are retagged so the applier skips them (the copy
   holds them; deleting them could move `max(seq)` back); then, in one PostgreSQL transaction, the blue→green
   position goes back to the marker's (the other tables' changes since are applied again: harmless, they are
   state-based; keyless tables' deltas were not applied yet), the noted foreign keys (NOT VALID, then validated
   where the data allows) and views are created again, and the marker removed.
While the marker is there every applier refuses to run (`Applier._begin_pg`); a re-seed cut short is finished by
running the same command again, which resumes from the marker's position.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import psycopg
from psycopg import sql

from cockpit.drivers.sync import conflicts
from cockpit.drivers.sync.capture import (
    BLUE_TO_GREEN,
    PG_SCHEMA,
    SQLITE_LOG,
    json_key,
    one,
    pg_has,
    pg_primary_key,
    read_green_position,
)

MARKER = "reseed"
SKIPPED = "_cockpit_reseeded"  # the table name blue's retagged log entries carry (not synced: skipped)

_DDL = f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.reseed (kind text NOT NULL, name text NOT NULL, definition text NOT NULL)"


def in_progress(pg: psycopg.Connection) -> bool:
    if not pg_has(pg, f"{PG_SCHEMA}.positions"):
        return False
    return (
        pg.execute(f"SELECT 1 FROM {PG_SCHEMA}.positions WHERE direction = %s", (MARKER,)).fetchone()
        is not None
    )


def prepare(
    blue: sqlite3.Connection, pg: psycopg.Connection, tables: Sequence[str]
) -> list[conflicts.Parked]:
    """Step 1 (see the module docstring). Returns the parked versions. Commits."""
    parked: list[conflicts.Parked] = []
    green_pos = read_green_position(blue)
    pg.rollback()
    with pg.transaction():
        pg.execute("SELECT set_config('cockpit.applying', 'on', true)")
        pg.execute(_DDL)
        row = pg.execute(
            f"SELECT direction, position FROM {PG_SCHEMA}.positions WHERE direction IN (%s, %s) FOR UPDATE",
            (BLUE_TO_GREEN, MARKER),
        ).fetchall()
        have: dict[str, int] = dict(row)
        if MARKER not in have:  # a first attempt (a second one keeps the first one's position and notes)
            pg.execute(
                f"INSERT INTO {PG_SCHEMA}.positions (direction, position) VALUES (%s, %s)",
                (MARKER, int(have.get(BLUE_TO_GREEN, 0))),
            )
        for table in tables:
            exists = pg_has(pg, _qi(table))
            if exists:
                pg.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
                parked.extend(_park_pending(pg, table, green_pos))
                _note_dependents(pg, table)
            pg.execute(
                f"DELETE FROM {PG_SCHEMA}.changes WHERE tbl = %s AND (txid, seq) > (%s::text::xid8, %s)",
                (table, str(green_pos[0]), green_pos[1]),
            )
            pg.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        conflicts.park_pg(pg, parked)
    pg.commit()
    return parked


def _park_pending(pg: psycopg.Connection, table: str, green_pos: tuple[int, int]) -> list[conflicts.Parked]:
    """Green's changes to `table` that blue has not seen, as parked records (green's rows as JSON shows them)."""
    after = (table, str(green_pos[0]), green_pos[1])
    where = "tbl = %s AND (txid, seq) > (%s::text::xid8, %s)"
    out = []
    message = "green's change had not reached blue when the table was re-seeded from blue"
    key = pg_primary_key(pg, table)
    if not key:  # keyless, or a key the plan names: the changes themselves (row images or keys)
        for op, pk in pg.execute(
            f"SELECT op, pk FROM {PG_SCHEMA}.changes WHERE {where} ORDER BY txid, seq", after
        ):
            image = pk if isinstance(pk, dict) else None
            out.append(
                conflicts.Parked(
                    kind="reseed",
                    table=table,
                    key=tuple(image.values()) if image else tuple(pk),
                    parked="green",
                    kept="blue",
                    blue=None,
                    green=image,
                    message=message,
                    op=op if op in ("+", "-") else None,
                )
            )
        return out
    cols = sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in key)
    rows = pg.execute(
        sql.SQL(
            "SELECT c.pk, to_jsonb(t) FROM (SELECT DISTINCT pk FROM {schema}.changes WHERE " + where + ") c"
            " LEFT JOIN {table} t ON jsonb_build_array({cols}) = c.pk"
        ).format(schema=sql.Identifier(PG_SCHEMA), table=sql.Identifier(table), cols=cols),
        after,
    ).fetchall()
    for pk, row in rows:
        out.append(
            conflicts.Parked(
                kind="reseed",
                table=table,
                key=tuple(pk),
                parked="green",
                kept="blue",
                blue=None,
                green=row,
                message=message,
            )
        )
    return out


def _note_dependents(pg: psycopg.Connection, table: str) -> None:
    """Foreign keys of other tables that reference `table`, and views that read it: noted to be made again."""
    for child, name, definition in pg.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND confrelid = %s::regclass AND conrelid <> confrelid",
        (_qi(table),),
    ).fetchall():
        pg.execute(
            f"INSERT INTO {PG_SCHEMA}.reseed (kind, name, definition) VALUES ('fk', %s, %s)",
            (json.dumps([child, name]), definition),
        )
    for view, definition in pg.execute(
        "SELECT DISTINCT v.oid::regclass::text, pg_get_viewdef(v.oid) FROM pg_depend d"
        " JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class"
        " WHERE d.refobjid = %s::regclass AND v.oid <> d.refobjid AND v.relkind = 'v'",
        (_qi(table),),
    ).fetchall():
        pg.execute(
            f"INSERT INTO {PG_SCHEMA}.reseed (kind, name, definition) VALUES ('view', %s, %s)",
            (view, definition),
        )


def finish(
    blue: sqlite3.Connection, pg: psycopg.Connection, tables: Sequence[str], snapshot: int
) -> list[str]:
    """Step 3 (see the module docstring). Returns notes (a foreign key left NOT VALID, a view not made again)."""
    marks = ", ".join("?" for _ in tables)
    blue.execute("BEGIN IMMEDIATE")
    try:
        blue.execute(
            # the keys in the JSON form too: the log holds bare keys only for the tables in `_cockpit_raw_keys`
            f"UPDATE {SQLITE_LOG} SET tbl = ?, pk = {json_key(blue)} WHERE seq <= ? AND tbl IN ({marks})",
            (SKIPPED, snapshot, *tables),
        )
        blue.execute("COMMIT")
    except BaseException:
        blue.execute("ROLLBACK")
        raise
    notes = []
    pg.rollback()
    with pg.transaction():
        pg.execute("SELECT set_config('cockpit.applying', 'on', true)")
        pg.execute(_DDL)
        (position,) = one(
            pg.execute(
                f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s FOR UPDATE", (MARKER,)
            )
        )
        pg.execute(
            f"UPDATE {PG_SCHEMA}.positions SET position = %s, updated_at = clock_timestamp() WHERE direction = %s",
            (position, BLUE_TO_GREEN),
        )
        for kind, name, definition in pg.execute(
            f"SELECT kind, name, definition FROM {PG_SCHEMA}.reseed"
        ).fetchall():
            try:
                with pg.transaction():
                    if kind == "fk":
                        child, constraint = json.loads(name)
                        pg.execute(
                            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                                sql.SQL(child), sql.Identifier(constraint), sql.SQL(definition)
                            )
                        )
                    else:
                        pg.execute(sql.SQL("CREATE VIEW {} AS {}").format(sql.SQL(name), sql.SQL(definition)))
            except psycopg.Error as exc:
                notes.append(f"{kind} {name} not made again: {exc.diag.message_primary or exc}")
                continue
            if kind == "fk":
                try:
                    with pg.transaction():
                        pg.execute(
                            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                                sql.SQL(child), sql.Identifier(constraint)
                            )
                        )
                except psycopg.Error as exc:
                    notes.append(
                        f"foreign key {constraint} on {child} left NOT VALID: {exc.diag.message_primary}"
                    )
        pg.execute(f"DELETE FROM {PG_SCHEMA}.reseed")
        pg.execute(f"DELETE FROM {PG_SCHEMA}.positions WHERE direction = %s", (MARKER,))
    pg.commit()
    return notes


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
