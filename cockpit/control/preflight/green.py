"""Green (PostgreSQL / Neon): the direct host, TLS, the server and its version, the cold start, connections; the
sync's rights and the keys left (cockpit.control.preflight.green_rights)."""

from __future__ import annotations

import time

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cockpit.control.preflight import Context, green_rights
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.core.redact import redact_text
from cockpit.drivers.sync.runner import pooler_warning

LOOPBACK = ("127.0.0.1", "localhost", "::1", "")
SYNC_CONNECTIONS = 4  # the sync's own connections besides the copy's jobs


def checks(ctx: Context) -> list[Check]:
    db = ctx.plan.green.database
    if db.engine != "postgresql":
        return [
            Check("green", "engine", WARN, f"green is {db.engine}", "preflight checks a PostgreSQL green")
        ]
    out = [_direct(db.url)]
    try:
        info = conninfo_to_dict(db.url)
    except psycopg.ProgrammingError as exc:
        return [*out, Check("green", "url", FAIL, redact_text(str(exc)), "fix green.database.url")]
    host = str(info.get("host") or "")
    sslmode = str(info.get("sslmode") or "")
    if sslmode in ("require", "verify-ca", "verify-full"):
        out.append(Check("green", "tls", PASS, f"sslmode={sslmode}"))
    elif host in LOOPBACK or host.startswith("/"):
        out.append(
            Check(
                "green",
                "tls",
                WARN,
                f"loopback {host or 'socket'}, sslmode={sslmode or 'unset'}",
                "fine on one machine; add ?sslmode=require for a remote server",
            )
        )
    else:
        out.append(
            Check(
                "green",
                "tls",
                FAIL,
                f"sslmode={sslmode or 'unset'} to {host}",
                "add ?sslmode=require to green.database.url",
            )
        )
    # the sync's rights and keys need a SQLite blue to sync from (a missing file: the blue area says so)
    blue = ctx.plan.blue.database
    syncs = blue.engine == "sqlite" and ctx.plan.path(blue.path).is_file()
    started = time.monotonic()
    try:
        conn = psycopg.connect(db.url, connect_timeout=max(1, int(ctx.timeout)), autocommit=True)
    except psycopg.Error as exc:
        return [
            *out,
            Check(
                "green",
                "server answers",
                FAIL,
                redact_text(str(exc).strip()),
                "check the host, port, user and password in green.database.url",
            ),
        ]
    try:
        connected = time.monotonic()
        conn.execute("SELECT 1").fetchone()
        first = time.monotonic()
        version = conn.execute("SHOW server_version").fetchone()
        out.append(Check("green", "server answers", PASS, f"PostgreSQL {version[0] if version else '?'}"))
        out.append(
            Check(
                "green",
                "cold start",
                PASS,
                f"connect {1000 * (connected - started):.0f} ms, first query {1000 * (first - connected):.0f} ms",
            )
        )
        out.append(_connections(ctx, conn))
        if syncs:
            out += green_rights.rights(ctx, conn)
    finally:
        conn.close()
    if syncs:
        out += green_rights.keys_left(ctx)
    return out


def _direct(url: str) -> Check:
    why = pooler_warning(url)
    if why:
        return Check("green", "direct host", FAIL, why, "use the direct host for the copy and the sync")
    return Check("green", "direct host", PASS, "not a -pooler endpoint")


def _connections(ctx: Context, conn: psycopg.Connection) -> Check:
    row = conn.execute(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
    ).fetchone()
    available = int(row[0]) if row else 0
    svc = ctx.plan.green.services
    pools = svc.pool_size * len(svc.units)
    need = pools + SYNC_CONNECTIONS + ctx.plan.sync.copy_jobs
    found = (
        f"{available} usable, {need} needed ({pools} by the services' pools, {need - pools} by the cockpit)"
    )
    if need > available:
        return Check("green", "max_connections", FAIL, found, "raise max_connections or shrink the pools")
    if not pools:
        return Check(
            "green", "max_connections", WARN, found, "set green.services.pool_size to weigh the pools"
        )
    return Check("green", "max_connections", PASS, found)
