"""Disjoint keys while both sides take writes: green's database-chosen keys count down, blue's keep counting up.

Scope: every synced table whose key is one integer column that both databases assign: on SQLite a rowid alias
(`INTEGER PRIMARY KEY`, with or without AUTOINCREMENT), on PostgreSQL an identity or serial column (a sequence).
SQLite always hands out max(key)+1 (with AUTOINCREMENT: one above the largest ever, kept in `sqlite_sequence`, which
an explicit insert of a larger key also raises), so blue keeps counting up. Green's sequence is turned around: it
counts DOWN from a ceiling set well above the highest key on either side (INCREMENT BY -1, START = MAXVALUE =
ceiling, MINVALUE = that highest key + 1). Once green's first rows reach blue, blue's highest key is near the ceiling,
so its next key jumps above it and keeps rising while green keeps falling: they never meet. Until then blue rises
from its old highest key toward green's falling keys; the gap between them is what `keys_left` reports (and, once
blue has jumped, the room left above it). A table green never writes keeps that gap: by default half the key space.

Defaults: the ceiling lies halfway between the highest key and the limit, the limit being 2**53 - 1 (JavaScript
clients stay exact) or the key type's own maximum when smaller (`integer`: 2**31 - 1). The plan can set the ceiling
(`sync.key_ceiling`); the install is refused when fewer than `sync.key_headroom` keys lie between the highest key and
the ceiling. Tables named in `sync.disjoint_keys` (UUIDs, a side bit: keys that are disjoint already) are left alone.

`install` is idempotent: a sequence already counting down is left where it is (restarting it would hand out keys
again). The applier never moves a descending sequence (see `tables._Table.pg_bump_sequence`). `restore` ends it:
green counts up again from above the highest key of both sides (for the end of the migration, once blue no longer
takes writes: from then on both sides would count up into the same keys).

Every change to a sequence runs with `cockpit.applying` on (the DDL watch ignores the cockpit's own changes) and
is noted in `cockpit.keys(tbl, col, seq, ceiling, floor, state, updated_at)` on PostgreSQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from cockpit.core.errors import EXIT_USAGE, CockpitError
from cockpit.drivers.sync.capture import PG_SCHEMA, one, qi

JS_SAFE = 2**53 - 1
TYPE_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
DEFAULT_HEADROOM = 1_000_000


class KeysError(CockpitError):
    """Disjoint keys cannot be set as asked (too little headroom, a ceiling beyond the key type)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class KeyTable:
    """A table whose key both databases choose."""

    table: str
    column: str
    sequence: str  # as pg_get_serial_sequence names it (quoted where needed)
    autoincrement: bool  # SQLite: AUTOINCREMENT (sqlite_sequence)
    limit: int  # the highest key allowed: 2**53 - 1 or the type's maximum


@dataclass
class KeyState:
    """Where one table's keys stand (what `cockpit sync keys` shows)."""

    table: str
    column: str
    state: str  # 'down' (disjoint: green counts down), 'up' (green counts up: not disjoint, or restored)
    green_next: int | None  # the key green hands out next
    blue_next: int  # the key blue hands out next
    ceiling: int | None  # green's highest key (its sequence's MAXVALUE) while counting down
    floor: int | None  # green's lowest key (MINVALUE) while counting down
    limit: int
    keys_left: int  # new keys either side can still take before they could meet (or reach the limit)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)

KEYS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.keys (tbl text PRIMARY KEY, col text NOT NULL, seq text NOT NULL,"
    " ceiling bigint, floor bigint, state text NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
)


def key_tables(
    blue: sqlite3.Connection, pg: psycopg.Connection, tables: Iterable[str], disjoint: Iterable[str] = ()
) -> list[KeyTable]:
    """The synced tables whose one integer key both databases assign (less the plan's `disjoint_keys`)."""
    skip = set(disjoint)
    out = []
    for table in tables:
        if table in skip:
            continue
        row = blue.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if not row or _WITHOUT_ROWID.search(row[0] or ""):
            continue
        pk = [r for r in blue.execute(f"PRAGMA table_info({qi(table)})") if r[5]]
        if len(pk) != 1 or (pk[0][2] or "").strip().upper() != "INTEGER":
            continue  # not a rowid alias: the app chooses blue's keys
        column = pk[0][1]
        found = pg.execute(
            "SELECT pg_get_serial_sequence(%s, %s), format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s",
            (qi(table), column, qi(table), column),
        ).fetchone()
        if not found or not found[0] or found[1] not in TYPE_MAX:
            continue  # green's key is not database-chosen
        out.append(
            KeyTable(
                table, column, found[0], bool(_AUTOINCREMENT.search(row[0])), min(JS_SAFE, TYPE_MAX[found[1]])
            )
        )
    return out


def _sequence(pg: psycopg.Connection, kt: KeyTable) -> tuple[int, int, int, int, bool]:
    """(increment, min, max, last_value, is_called) of the table's sequence."""
    inc, low, high = one(
        pg.execute(
            "SELECT increment_by, min_value, max_value FROM pg_sequences"
            " WHERE format('%%I.%%I', schemaname, sequencename)::regclass = %s::regclass",
            (kt.sequence,),
        )
    )
    last, called = one(
        pg.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(kt.sequence)))
    )
    return int(inc), int(low), int(high), int(last), bool(called)


def _blue_next(blue: sqlite3.Connection, kt: KeyTable) -> int:
    top = blue.execute(f"SELECT max({qi(kt.column)}) FROM {qi(kt.table)}").fetchone()[0] or 0
    if (
        kt.autoincrement
        and blue.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        ).fetchone()
    ):
        row = blue.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (kt.table,)).fetchone()
        top = max(top, int(row[0]) if row and row[0] is not None else 0)
    return int(top) + 1


def _green_max(pg: psycopg.Connection, kt: KeyTable) -> int:
    q = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(kt.column), sql.Identifier(kt.table))
    return int(one(pg.execute(q))[0] or 0)


def _tagged(pg: psycopg.Connection) -> None:
    pg.execute("SELECT set_config('cockpit.applying', 'on', true)")
    pg.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    pg.execute(KEYS_DDL)


def _note(pg: psycopg.Connection, kt: KeyTable, ceiling: int | None, floor: int | None, state: str) -> None:
    pg.execute(
        f"INSERT INTO {PG_SCHEMA}.keys (tbl, col, seq, ceiling, floor, state) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tbl) DO UPDATE SET col = excluded.col, seq = excluded.seq, ceiling = excluded.ceiling,"
        " floor = excluded.floor, state = excluded.state, updated_at = clock_timestamp()",
        (kt.table, kt.column, kt.sequence, ceiling, floor, state),
    )


def install(
    blue: sqlite3.Connection,
    pg: psycopg.Connection,
    tables: Iterable[str],
    ceiling: int | None = None,
    headroom: int = DEFAULT_HEADROOM,
    disjoint: Iterable[str] = (),
) -> list[KeyState]:
    """Turn green's sequences around (idempotent; one transaction, all tables or none). Refused, with nothing
    changed, when a table has less than `headroom` keys between its highest key and the ceiling."""
    found = key_tables(blue, pg, tables, disjoint)
    pg.rollback()
    plans = []
    with pg.transaction():
        _tagged(pg)
        for kt in found:
            # writes to the table wait for the few milliseconds this takes: no key is handed out meanwhile
            pg.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(kt.table)))
            inc, *_ = _sequence(pg, kt)
            if inc < 0:
                continue  # already counting down: left where it is
            top = max(_blue_next(blue, kt) - 1, _green_max(pg, kt), 0)
            ceil = ceiling if ceiling is not None else top + (kt.limit - top) // 2
            if ceil > kt.limit:
                raise KeysError(
                    f"table {kt.table!r}: key ceiling {ceil} is above the highest key allowed ({kt.limit}); "
                    "lower sync.key_ceiling"
                )
            if ceil - top < headroom:
                raise KeysError(
                    f"table {kt.table!r}: only {max(0, ceil - top)} keys between the highest key ({top}) and the "
                    f"ceiling ({ceil}), fewer than sync.key_headroom ({headroom}); raise sync.key_ceiling or lower "
                    "sync.key_headroom"
                )
            plans.append((kt, top, ceil))
        for kt, top, ceil in plans:
            pg.execute(
                sql.SQL(
                    "ALTER SEQUENCE {} INCREMENT BY -1 MINVALUE {} MAXVALUE {} START WITH {} RESTART WITH {}"
                ).format(sql.SQL(kt.sequence), *(sql.Literal(v) for v in (top + 1, ceil, ceil, ceil)))
            )
            _note(pg, kt, ceil, top + 1, "down")
    if not pg.autocommit:
        pg.commit()
    return states(blue, pg, found)


def restore(
    blue: sqlite3.Connection, pg: psycopg.Connection, tables: Iterable[str], disjoint: Iterable[str] = ()
) -> list[KeyState]:
    """Green counts up again, from above the highest key on both sides (the end of the migration)."""
    found = key_tables(blue, pg, tables, disjoint)
    pg.rollback()
    with pg.transaction():
        _tagged(pg)
        for kt in found:
            pg.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(kt.table)))
            inc, *_ = _sequence(pg, kt)
            if inc > 0:
                continue
            start = max(_blue_next(blue, kt), _green_max(pg, kt) + 1)
            type_max = one(
                pg.execute(
                    "SELECT data_type::text FROM pg_sequences"
                    " WHERE format('%%I.%%I', schemaname, sequencename)::regclass = %s::regclass",
                    (kt.sequence,),
                )
            )[0]
            pg.execute(
                sql.SQL(
                    "ALTER SEQUENCE {} INCREMENT BY 1 MINVALUE 1 MAXVALUE {} START WITH {} RESTART WITH {}"
                ).format(sql.SQL(kt.sequence), *(sql.Literal(v) for v in (TYPE_MAX[type_max], start, start)))
            )
            _note(pg, kt, None, None, "up")
    if not pg.autocommit:
        pg.commit()
    return states(blue, pg, found)


def states(blue: sqlite3.Connection, pg: psycopg.Connection, found: Iterable[KeyTable]) -> list[KeyState]:
    """Where each table's keys stand now (read-only)."""
    out = []
    try:
        for kt in found:
            inc, low, high, last, called = _sequence(pg, kt)
            green_next = last + inc if called else last
            blue_next = _blue_next(blue, kt)
            if inc > 0:
                left = kt.limit - max(blue_next, green_next) + 1
                out.append(
                    KeyState(kt.table, kt.column, "up", green_next, blue_next, None, None, kt.limit, left)
                )
                continue
            # green takes green_next, green_next - 1, ... down to the highest key in use below it (or its floor)
            below_sql = f"SELECT max({qi(kt.column)}) FROM {qi(kt.table)} WHERE {qi(kt.column)} < ?"
            below = blue.execute(below_sql, (green_next,)).fetchone()[0]
            q = sql.SQL("SELECT max({c}) FROM {t} WHERE {c} < %s").format(
                c=sql.Identifier(kt.column), t=sql.Identifier(kt.table)
            )
            below_g = one(pg.execute(q, (green_next,)))[0]
            lowest = max(int(below or 0), int(below_g or 0), low - 1)
            left = max(0, green_next - lowest)
            if blue_next > high:  # blue has jumped above the ceiling: its own room is what is left above it
                left = min(left, max(0, kt.limit - blue_next + 1))
            out.append(
                KeyState(kt.table, kt.column, "down", green_next, blue_next, high, low, kt.limit, left)
            )
    finally:
        if not pg.autocommit:
            pg.rollback()
        if blue.in_transaction:
            blue.execute("COMMIT")
    return out
