"""Green's rights for the sync, and its keys: what `cockpit sync copy` / `sync install` will need from the user in
green's URL, asked of the catalog (`has_*_privilege`, `rolsuper`) instead of found out half-way through an install.

- tables: on each synced table already on green, SELECT, INSERT, UPDATE, DELETE (the applier) and TRIGGER
  (capture; the owner has it); before the copy, CREATE on the schema the copy writes into;
- schema: CREATE on the database for the `cockpit` schema (its change log, positions, conflicts), or, once it
  exists, USAGE and CREATE on it;
- event trigger: creating one needs a superuser (PostgreSQL up to 17; on Neon, `neon_superuser` may). Without it
  the install falls back to comparing green's catalog every pass (cockpit.drivers.sync.ddl): a warning;
- keys left: per table whose keys count down (cockpit.drivers.sync.keys), the new keys left against the plan's
  `sync.key_alarm` (fewer: a warning; fewer than a tenth: a failure).
"""

from __future__ import annotations

import psycopg

from cockpit.control.preflight import Context, read_blue
from cockpit.core.checks import FAIL, PASS, WARN, Check, counted
from cockpit.core.redact import redact_text
from cockpit.drivers.sync.capture import PG_SCHEMA, sqlite_tables
from cockpit.drivers.sync.runner import SyncRunner

WRITES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRIGGER")


def rights(ctx: Context, conn: psycopg.Connection) -> list[Check]:
    user, database, schema, superuser = conn.execute(
        "SELECT current_user, current_database(), current_schema(),"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    ).fetchone() or ("?", "?", "public", False)
    names = _synced(ctx)
    return [
        _tables(conn, str(user), names, str(schema or "public")),
        _schema(conn, str(user), str(database)),
        _event_trigger(conn, str(user), bool(superuser)),
    ]


def _synced(ctx: Context) -> list[str]:
    tables = ctx.plan.sync.tables
    if isinstance(tables, list):
        return list(tables)
    blue = read_blue(ctx)
    try:
        return sqlite_tables(blue)
    finally:
        blue.close()


def _tables(conn: psycopg.Connection, user: str, names: list[str], schema: str) -> Check:
    present, missing_rights = [], []
    for t in names:
        if not _yes(conn, "SELECT to_regclass(quote_ident(%s)) IS NOT NULL", (t,)):
            continue
        present.append(t)
        lacks = [
            p for p in WRITES if not _yes(conn, "SELECT has_table_privilege(quote_ident(%s), %s)", (t, p))
        ]
        if lacks:
            missing_rights.append((t, lacks))
    absent = len(names) - len(present)
    if missing_rights:
        shown = "; ".join(f"{t}: no {', '.join(p)}" for t, p in missing_rights[:3])
        more = f" (+{counted(len(missing_rights) - 3, 'table')})" if len(missing_rights) > 3 else ""
        first = missing_rights[0]
        return Check(
            "green",
            "table rights",
            FAIL,
            f"{user}: {shown}{more}",
            f"make {user} the tables' owner, or GRANT {', '.join(WRITES)} ON {first[0]} (and the others) TO {user}",
        )
    if absent:
        if not _yes(conn, "SELECT has_schema_privilege(%s, 'CREATE')", (schema,)):
            return Check(
                "green",
                "table rights",
                FAIL,
                f"{counted(absent, 'synced table')} not on green yet and {user} cannot CREATE in schema {schema}",
                f"GRANT CREATE ON SCHEMA {schema} TO {user} (the copy creates them)",
            )
        return Check(
            "green",
            "table rights",
            PASS,
            f"{user} can create the {counted(absent, 'table')} not copied yet in {schema}"
            + (f"; {', '.join(WRITES)} on the other {len(present)}" if present else ""),
        )
    return Check(
        "green", "table rights", PASS, f"{user}: {', '.join(WRITES)} on {counted(len(present), 'table')}"
    )


def _schema(conn: psycopg.Connection, user: str, database: str) -> Check:
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (PG_SCHEMA,)).fetchone()
    if exists:
        if _yes(
            conn,
            "SELECT has_schema_privilege(%s, 'USAGE') AND has_schema_privilege(%s, 'CREATE')",
            (PG_SCHEMA, PG_SCHEMA),
        ):
            return Check("green", "cockpit schema", PASS, f"schema {PG_SCHEMA} exists, {user} may use it")
        return Check(
            "green",
            "cockpit schema",
            FAIL,
            f"schema {PG_SCHEMA} exists but {user} lacks USAGE or CREATE on it",
            f"connect as the user that installed it, or GRANT USAGE, CREATE ON SCHEMA {PG_SCHEMA} TO {user}",
        )
    if _yes(conn, "SELECT has_database_privilege(current_database(), 'CREATE')"):
        return Check("green", "cockpit schema", PASS, f"{user} can create schema {PG_SCHEMA} in {database}")
    return Check(
        "green",
        "cockpit schema",
        FAIL,
        f"{user} cannot create schema {PG_SCHEMA} in {database}",
        f"GRANT CREATE ON DATABASE {database} TO {user}",
    )


def _event_trigger(conn: psycopg.Connection, user: str, superuser: bool) -> Check:
    installed = conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = 'cockpit_ddl'").fetchone()
    if installed:
        return Check("green", "event trigger", PASS, "cockpit_ddl is installed: DDL on green is recorded")
    if superuser:
        return Check("green", "event trigger", PASS, f"{user} is a superuser: the install can create it")
    return Check(
        "green",
        "event trigger",
        WARN,
        f"{user} is not a superuser: no event trigger for DDL",
        "the sync compares green's catalog every pass instead (slower to notice a change); "
        "for the event trigger, run cockpit sync install once as a superuser (on Neon: neon_superuser)",
    )


def _yes(conn: psycopg.Connection, query: str, args: tuple[object, ...] = ()) -> bool:
    row = conn.execute(query, args).fetchone()
    return bool(row and row[0])


def keys_left(ctx: Context) -> list[Check]:
    """One check over the tables whose keys count down; none before the disjoint-key setup exists."""
    runner = SyncRunner.from_plan(ctx.plan, on_event=lambda kind, payload: None)
    runner.connect_timeout = ctx.timeout
    try:
        left = runner.keys_left()
    except psycopg.Error as exc:  # e.g. no right to read a sequence: say so, keep green's other checks
        return [
            Check(
                "green",
                "keys left",
                FAIL,
                redact_text(str(exc).strip().splitlines()[0]),
                "give green's user the rights above (the sequences come with the tables)",
            )
        ]
    finally:
        runner.close()
    if not left:
        return []
    alarm = int(ctx.plan.sync.key_alarm)
    table, fewest = min(left.items(), key=lambda kv: kv[1])
    found = f"fewest {fewest:,} on {table} ({counted(len(left), 'table')} counting down; alarm {alarm:,})"
    do = "cockpit sync keys; finish the migration, or set a higher sync.key_ceiling with cockpit sync install"
    if fewest < alarm // 10:
        return [Check("green", "keys left", FAIL, found, do)]
    if fewest < alarm:
        return [Check("green", "keys left", WARN, found, do)]
    return [Check("green", "keys left", PASS, found)]
