"""Change capture on both sides: the change logs, the triggers that fill them, and the applied positions.

SQLite (blue) keeps its own objects in tables prefixed `_cockpit_`:
  `_cockpit_changes(seq, tbl, op, pk, ts)`           one row per inserted, updated or deleted row; `seq` is the
                                                     rowid: SQLite has one writer, so it follows commit order.
                                                     `pk` is the key: the value itself when the key has one column
                                                     (`pk` has no declared type, so it keeps the value's own type),
                                                     a JSON array of the values when it has several (see
                                                     `_cockpit_raw_keys`); `ts` is the Julian day of the change
                                                     (`julianday()`, read as epoch seconds with `sqlite_epoch`).
                                                     Both are the cheapest forms for the triggers to write: the
                                                     readers convert. `install_sqlite` rebuilds a log of the
                                                     older form (`pk TEXT` holding JSON arrays, `ts` in epoch
                                                     seconds) into this one, rows and `seq`s kept.
                                                     Pruning always keeps the last applied row, so `max(seq)` never
                                                     goes back and a `seq` is never handed out twice (cheaper than
                                                     AUTOINCREMENT, which updates `sqlite_sequence` on every write).
                                                     A log made by an older cockpit also has `origin` (always
                                                     'blue', its default): nothing reads it;
  `_cockpit_context`                                 a row exists only inside the applier's own transactions, for
                                                     triggers installed by an older cockpit, which skip writes
                                                     while it is there; today's triggers skip the writes of a
                                                     connection inside `sqlite_applying` (see there: reading a
                                                     table on every app write cost 5 % of the insert rate);
  `_cockpit_raw_keys(tbl)`                           the tables whose log rows carry the bare key value (one
                                                     key column); every other table's keyed rows hold JSON arrays;
  `_cockpit_state(key, value)`                       `green_to_blue` = the PostgreSQL position applied to SQLite,
                                                     written in the same transaction as the data.
PostgreSQL (green) keeps them in schema `cockpit`:
  `cockpit.changes(seq, txid, tbl, op, pk, ts, origin)`  filled by one plpgsql function, `cockpit.capture()`, from
                                                     row-level triggers named `_cockpit_capture`; the applier sets
                                                     `cockpit.applying` with `SET LOCAL` (transaction scope only, so
                                                     it works through a transaction pooler) and the triggers'
                                                     WHEN clause skips its writes; a statement-level
                                                     `BEFORE TRUNCATE` trigger per table, `_cockpit_truncate`
                                                     (function `cockpit.capture_truncate()`, same WHEN clause),
                                                     logs one delete per row the TRUNCATE is about to remove;
  `cockpit.positions(direction, position)`           `blue_to_green` = the SQLite `seq` applied to PostgreSQL,
                                                     written in the same transaction as the data.

An update that changes the primary key is logged as a delete of the old key and an upsert of the new one.
A keyless table (no primary key, no `sync.row_keys` entry) logs row images instead of keys: op `+` (a row added)
and `-` (a row removed), `pk` holding every column (SQLite: a tagged `json_array`, see `decode_image`; PostgreSQL:
`to_jsonb(row)`); an update is `-` old, `+` new. The applier replays these in order as multiset deltas.
SQLite has no TRUNCATE: its `DELETE FROM t` without WHERE skips per-row work only when no trigger is on the table,
so with capture installed it fires the delete trigger for every row. PostgreSQL's TRUNCATE fires no row trigger,
hence the statement-level one; it refuses to run under REPEATABLE READ or SERIALIZABLE (see `_PG_TRUNCATE_FUNCTION`).
PostgreSQL sequence numbers are handed out before commit, so they do not follow commit order: the green log is read
in `(txid, seq)` order and only below the oldest transaction still running that may write to it (see
`cockpit.drivers.sync.apply.HORIZON_SQL`), which makes `(txid, seq)` a position that no later commit can land behind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from cockpit.core.errors import EXIT_USAGE, CockpitError
from cockpit.drivers.sync import conflicts

SQLITE_LOG = "_cockpit_changes"
SQLITE_CONTEXT = "_cockpit_context"
SQLITE_STATE = "_cockpit_state"
SQLITE_PREFIX = "_cockpit_"
SQLITE_TOUCHED = (
    "_cockpit_touched"  # every key the sync has carried either way (the rollback checks these rows)
)
PG_SCHEMA = "cockpit"
PG_TRIGGER = "_cockpit_capture"
PG_TRUNCATE_TRIGGER = "_cockpit_truncate"
PG_TRIGGERS = (PG_TRIGGER, PG_TRUNCATE_TRIGGER)
# the applier's writes carry `cockpit.applying = on` (SET LOCAL): no capture trigger fires for them
PG_NOT_APPLYING = "current_setting('cockpit.applying', true) IS DISTINCT FROM 'on'"
BLUE_TO_GREEN = "blue_to_green"
GREEN_TO_BLUE = "green_to_blue"

SQLITE_RAW_KEYS = "_cockpit_raw_keys"

# the time of a change as the triggers store it: the Julian day, millisecond precision (`julianday()` is 'now' without
# parsing the word). The conversion to epoch seconds is left to the readers (`sqlite_epoch`): on every captured write
# it cost about 3 % of the batched insert rate.
SQLITE_NOW = "julianday()"


def sqlite_epoch(expr: str) -> str:
    """SQL for the epoch seconds of a Julian day `ts` (or an aggregate of it) read from the SQLite log."""
    return f"(({expr} - 2440587.5) * 86400.0)"


# the applier's connection answers this to `sqlite_source_id()` while it applies (`sqlite_applying`)
SQLITE_APPLIER = "cockpit applier"
SQLITE_NOT_APPLYING = f"WHEN sqlite_source_id() IS NOT '{SQLITE_APPLIER}'"

MULTISET_OPS = "('+', '-')"  # a keyless table's changes: one row image added / removed

GreenPosition = tuple[int, int]  # (txid, seq) of the last PostgreSQL change applied to SQLite


class CaptureError(CockpitError):
    """Capture cannot be installed as asked (a table that does not exist, a named key column missing)."""

    exit_code = EXIT_USAGE


def qi(name: str) -> str:
    """A quoted SQL identifier (the same rule for SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    """A quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------------- SQLite


def is_cockpit_table(name: str) -> bool:
    return name.startswith(SQLITE_PREFIX) or name.startswith("sqlite_")


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """The app's tables (cockpit's own and SQLite's internal tables left out), in name order."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [r[0] for r in rows if not is_cockpit_table(r[0])]


def sqlite_primary_key(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    rows = conn.execute(f"PRAGMA table_info({qi(table)})").fetchall()
    if not rows:
        raise CaptureError(f"table {table!r} does not exist in the SQLite database")
    keyed = sorted((r[5], r[1]) for r in rows if r[5])
    return tuple(name for _, name in keyed)


def sqlite_keys(
    conn: sqlite3.Connection,
    tables: Iterable[str] | None = None,
    row_keys: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Key columns per table: the primary key, else the key the plan names (`sync.row_keys`), else `()`: a keyless
    table, whose rows are a multiset identified by all their columns."""
    names = list(tables) if tables is not None else sqlite_tables(conn)
    row_keys = row_keys or {}
    keys: dict[str, tuple[str, ...]] = {}
    for name in names:
        pk = sqlite_primary_key(conn, name)
        if not pk and row_keys.get(name):
            columns = sqlite_columns(conn, name)
            missing = [c for c in row_keys[name] if c not in columns]
            if missing:
                raise CaptureError(f"sync.row_keys.{name}: no such column in {name!r}: {', '.join(missing)}")
            pk = tuple(row_keys[name])
        keys[name] = pk
    return keys


def sqlite_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({qi(table)})")]


# `pk` has no declared type (no affinity: an integer key stays an integer, a text key text) and may be NULL (SQLite lets
# a one-column key other than INTEGER PRIMARY KEY hold NULL; the JSON form `[null]` never failed either)
def _sqlite_log_ddl(name: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ("
        " seq INTEGER PRIMARY KEY,"
        " tbl TEXT NOT NULL,"
        " op TEXT NOT NULL,"
        " pk,"
        f" ts REAL NOT NULL DEFAULT ({SQLITE_NOW}))"
    )


def _sqlite_upgrade_log(conn: sqlite3.Connection) -> list[str]:
    """Rebuild a log of the older form (`pk TEXT`: JSON arrays; `ts` in epoch seconds) into today's, in the caller's
    transaction: same rows, same `seq`s, `ts` as Julian days; every key stays a JSON array until `install_sqlite`
    turns those of one-column keys into bare values. The older triggers are dropped first (they write the older
    form); returns the tables that had them, which the caller must capture again."""
    if sqlite_log_is_current(conn):
        return []  # no log yet, or today's
    had = sqlite_installed(conn)
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
        (len(SQLITE_PREFIX), SQLITE_PREFIX),
    ).fetchall():
        conn.execute(f"DROP TRIGGER {qi(name)}")
    new = f"{SQLITE_LOG}_upgrade"
    conn.execute(_sqlite_log_ddl(new))
    conn.execute(
        f"INSERT INTO {new} (seq, tbl, op, pk, ts) SELECT seq, tbl, op, pk, ts / 86400.0 + 2440587.5 FROM {SQLITE_LOG}"
    )
    conn.execute(f"DROP TABLE {SQLITE_LOG}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {SQLITE_LOG}")
    return had


def _sqlite_key_form(conn: sqlite3.Connection, table: str, pk: tuple[str, ...]) -> None:
    """Make the logged keys of `table` the form its triggers write from now on: the bare value for a one-column key,
    a JSON array otherwise (a key that changed its number of columns between installs)."""
    raw = conn.execute(f"SELECT 1 FROM {SQLITE_RAW_KEYS} WHERE tbl = ?", (table,)).fetchone() is not None
    keyed = f"tbl = ? AND op NOT IN {MULTISET_OPS}"
    if len(pk) == 1 and not raw:
        conn.execute(f"UPDATE {SQLITE_LOG} SET pk = json_extract(pk, '$[0]') WHERE {keyed}", (table,))
        conn.execute(f"INSERT INTO {SQLITE_RAW_KEYS} (tbl) VALUES (?)", (table,))
    elif len(pk) != 1 and raw:
        conn.execute(f"UPDATE {SQLITE_LOG} SET pk = json_array({json_item('pk')}) WHERE {keyed}", (table,))
        conn.execute(f"DELETE FROM {SQLITE_RAW_KEYS} WHERE tbl = ?", (table,))


def _sqlite_bookkeeping(conn: sqlite3.Connection) -> list[str]:
    """The cockpit's tables (idempotent); returns the tables whose older triggers an upgrade of the log dropped."""
    had = _sqlite_upgrade_log(conn)
    conn.execute(_sqlite_log_ddl(SQLITE_LOG))
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SQLITE_RAW_KEYS} (tbl TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SQLITE_CONTEXT} (applier TEXT)")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {SQLITE_TOUCHED} (tbl TEXT NOT NULL, pk TEXT NOT NULL, "
        "PRIMARY KEY (tbl, pk)) WITHOUT ROWID"
    )
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SQLITE_STATE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(conflicts.SQLITE_DDL)
    return had


def _sqlite_trigger_names(table: str) -> dict[str, str]:
    return {op: f"{SQLITE_PREFIX}{table}_{op}" for op in ("ins", "upd", "del")}


def _sqlite_trigger_sql(table: str, pk: tuple[str, ...], columns: Sequence[str]) -> list[str]:
    if not pk:
        return _sqlite_multiset_trigger_sql(table, columns)
    names = _sqlite_trigger_names(table)
    when = SQLITE_NOT_APPLYING
    # one key column: the value itself (a `json_array` call on every write cost about 4 % of the batched insert rate)
    if len(pk) == 1:
        new_key, old_key = f"NEW.{qi(pk[0])}", f"OLD.{qi(pk[0])}"
    else:
        new_key = "json_array(" + ", ".join(f"NEW.{qi(c)}" for c in pk) + ")"
        old_key = "json_array(" + ", ".join(f"OLD.{qi(c)}" for c in pk) + ")"
    key_changed = " OR ".join(f"OLD.{qi(c)} IS NOT NEW.{qi(c)}" for c in pk)
    log = f"INSERT INTO {SQLITE_LOG} (tbl, op, pk, ts)"
    t = ql(table)

    return [
        f"CREATE TRIGGER {qi(names['ins'])} AFTER INSERT ON {qi(table)} {when} BEGIN"
        f" {log} VALUES ({t}, 'I', {new_key}, {SQLITE_NOW}); END",
        f"CREATE TRIGGER {qi(names['upd'])} AFTER UPDATE ON {qi(table)} {when} BEGIN"
        f" {log} SELECT {t}, 'D', {old_key}, {SQLITE_NOW} WHERE {key_changed};"
        f" {log} VALUES ({t}, 'U', {new_key}, {SQLITE_NOW}); END",
        f"CREATE TRIGGER {qi(names['del'])} AFTER DELETE ON {qi(table)} {when} BEGIN"
        f" {log} VALUES ({t}, 'D', {old_key}, {SQLITE_NOW}); END",
    ]


# A keyless table's change carries the whole row (its identity): `json_array` of every column, each value tagged so
# that it comes back exactly: integers as JSON numbers, NULL as null, text 't…', reals 'r…' with 17 significant
# digits (json_array itself keeps only 15), blobs 'b…' in hex (json_array refuses blobs). See `decode_image`.
def _sqlite_image(row: str, columns: Sequence[str]) -> str:
    def tagged(c: str) -> str:
        x = f"{row}.{qi(c)}"
        return (
            f"CASE typeof({x}) WHEN 'integer' THEN {x} WHEN 'real' THEN 'r' || printf('%!.17g', {x})"
            f" WHEN 'blob' THEN 'b' || hex({x}) WHEN 'text' THEN 't' || {x} END"
        )

    return "json_array(" + ", ".join(tagged(c) for c in columns) + ")"


def _sqlite_multiset_trigger_sql(table: str, columns: Sequence[str]) -> list[str]:
    """Triggers for a keyless table: `+` with the new row, `-` with the old one (an update is both)."""
    names = _sqlite_trigger_names(table)
    when = SQLITE_NOT_APPLYING
    log = f"INSERT INTO {SQLITE_LOG} (tbl, op, pk, ts)"
    t = ql(table)
    changed = " OR ".join(f"OLD.{qi(c)} IS NOT NEW.{qi(c)}" for c in columns)
    new, old = _sqlite_image("NEW", columns), _sqlite_image("OLD", columns)
    return [
        f"CREATE TRIGGER {qi(names['ins'])} AFTER INSERT ON {qi(table)} {when} BEGIN"
        f" {log} VALUES ({t}, '+', {new}, {SQLITE_NOW}); END",
        f"CREATE TRIGGER {qi(names['upd'])} AFTER UPDATE ON {qi(table)} {when} BEGIN"
        f" {log} SELECT {t}, '-', {old}, {SQLITE_NOW} WHERE {changed};"
        f" {log} SELECT {t}, '+', {new}, {SQLITE_NOW} WHERE {changed}; END",
        f"CREATE TRIGGER {qi(names['del'])} AFTER DELETE ON {qi(table)} {when} BEGIN"
        f" {log} VALUES ({t}, '-', {old}, {SQLITE_NOW}); END",
    ]


def decode_image(text: str) -> tuple[Any, ...]:
    """A keyless row image from the SQLite log back into SQLite's values (see `_sqlite_image`)."""
    out: list[Any] = []
    for v in json.loads(text):
        if not isinstance(v, str):
            out.append(v)
        elif v[0] == "t":
            out.append(v[1:])
        elif v[0] == "r":
            out.append(float(v[1:]))
        else:
            out.append(bytes.fromhex(v[1:]))
    return tuple(out)


class _Applying:
    """`sqlite_source_id()` on the applier's connection: the marker while it applies, else SQLite's own answer."""

    __slots__ = ("on", "source_id")

    def __init__(self, source_id: str) -> None:
        self.on = False
        self.source_id = source_id

    def __call__(self) -> str:
        return SQLITE_APPLIER if self.on else self.source_id


# by id(connection), checked on each use: a closed connection's id can be another's
_APPLYING: dict[int, _Applying] = {}


@contextmanager
def sqlite_applying(conn: sqlite3.Connection) -> Iterator[None]:
    """The applier's writes inside this block, in a transaction already begun on `conn`, are not captured.

    The triggers skip a write when `sqlite_source_id()` answers `SQLITE_APPLIER`. On this connection only, that
    built-in is replaced by an application-defined function of the same name (SQLite lets a connection override a
    built-in) which answers `SQLITE_APPLIER` inside the block and SQLite's own answer outside it; every other
    connection, the app's, keeps the built-in: a function call, no table read, on each of its writes. The first use
    on a connection registers it (no statement of the connection may be running then); later uses flip a flag,
    which goes off however the block ends. The block also writes a `_cockpit_context` row, which the triggers
    installed by an older cockpit skip writes for, and removes it on the way out; when the block raises, the
    caller's rollback removes it.
    """
    state = _APPLYING.get(id(conn))
    try:
        if state is not None:
            state.on = True
        if state is None or conn.execute("SELECT sqlite_source_id()").fetchone()[0] != SQLITE_APPLIER:
            # not registered on this connection (the entry, if any, was another connection's at the same id)
            if state is not None:
                state.on = False
            state = _Applying(conn.execute("SELECT sqlite_source_id()").fetchone()[0])
            # an application-defined function in a trigger needs a trusted schema; cockpit's triggers are the users
            conn.execute("PRAGMA trusted_schema = ON")
            conn.create_function("sqlite_source_id", 0, state)
            _APPLYING[id(conn)] = state
            state.on = True
        conn.execute(f"INSERT INTO {SQLITE_CONTEXT} (applier) VALUES ('cockpit')")
        yield
        conn.execute(f"DELETE FROM {SQLITE_CONTEXT}")
    finally:
        if state is not None:
            state.on = False


def install_sqlite(
    conn: sqlite3.Connection,
    tables: Iterable[str] | None = None,
    row_keys: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Create the change log and the capture triggers (idempotent: triggers are replaced). Returns the keys
    (`()` for a keyless table).

    Switches the database to WAL (the applier reads while the app writes). Runs in one write transaction.
    """
    keys = sqlite_keys(conn, tables, row_keys)
    if conn.in_transaction:
        conn.commit()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        had = _sqlite_bookkeeping(conn)
        # the tables an upgrade of the log left without triggers are captured again, in today's form
        others = [t for t in had if t not in keys and not is_cockpit_table(t)]
        for table, pk in {**sqlite_keys(conn, others, row_keys), **keys}.items():
            for name in _sqlite_trigger_names(table).values():
                conn.execute(f"DROP TRIGGER IF EXISTS {qi(name)}")
            _sqlite_key_form(conn, table, pk)
            for statement in _sqlite_trigger_sql(table, pk, sqlite_columns(conn, table)):
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return keys


def uninstall_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Drop every cockpit trigger and table from SQLite (idempotent). Returns what was dropped."""
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    dropped = []
    try:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'table') AND substr(name, 1, ?) = ?"
            " ORDER BY type DESC",
            (len(SQLITE_PREFIX), SQLITE_PREFIX),
        ).fetchall()
        for kind, name in rows:
            conn.execute(f"DROP {'TRIGGER' if kind == 'trigger' else 'TABLE'} IF EXISTS {qi(name)}")
            dropped.append(f"{kind} {name}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return dropped


def sqlite_installed(conn: sqlite3.Connection) -> list[str]:
    """The tables that carry cockpit capture triggers on SQLite."""
    rows = conn.execute(
        "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?"
        " ORDER BY tbl_name",
        (len(SQLITE_PREFIX), SQLITE_PREFIX),
    ).fetchall()
    return [r[0] for r in rows]


def _sqlite_has_log(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_LOG,)
    ).fetchone()
    return row is not None


def sqlite_position(conn: sqlite3.Connection) -> int:
    """The current end of the SQLite change log (the last `seq` handed out), 0 when capture is not installed.

    Read inside the copy's read transaction it names exactly the changes the copy already holds. Pruning keeps
    the last applied change, so it stays right after applied changes are pruned from the log.
    """
    if not _sqlite_has_log(conn):
        return 0
    row = conn.execute(f"SELECT max(seq) FROM {SQLITE_LOG}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def sqlite_log_is_current(conn: sqlite3.Connection) -> bool:
    """Whether the SQLite log is absent or of today's form (else `install_sqlite` upgrades it)."""
    declared = {r[1]: str(r[2]).upper() for r in conn.execute(f"PRAGMA table_info({SQLITE_LOG})")}
    return declared.get("pk") != "TEXT"


def json_key(conn: sqlite3.Connection) -> str:
    """SQL for a logged key in the touched set's form, a JSON array, whichever form the log holds it in."""
    if not sqlite_log_is_current(conn):
        return "pk"  # a log of the older form, not upgraded yet: every key is a JSON array
    return f"iif(tbl IN (SELECT tbl FROM {SQLITE_RAW_KEYS}), json_array({json_item('pk')}), pk)"


def json_item(x: str) -> str:
    """SQL for one key value as a JSON array item: a blob (which JSON cannot hold) as `{"$b": hex}`, the form
    `conflicts.decode_key` reads back."""
    return f"iif(typeof({x}) = 'blob', json_object('$b', lower(hex({x}))), {x})"


def prune_sqlite(conn: sqlite3.Connection, applied: int) -> None:
    """Drop the changes applied to PostgreSQL, except the last one (it holds `max(seq)` in place); their keys
    stay in the touched set."""
    conn.execute(
        f"INSERT OR IGNORE INTO {SQLITE_TOUCHED} (tbl, pk) SELECT tbl, {json_key(conn)} FROM {SQLITE_LOG}"
        f" WHERE seq < ? AND op NOT IN {MULTISET_OPS}",
        (applied,),
    )
    conn.execute(f"DELETE FROM {SQLITE_LOG} WHERE seq < ?", (applied,))


def touch_sqlite(conn: sqlite3.Connection, table: str, keys: Sequence[Sequence[Any]]) -> None:
    """Remember the keys the applier wrote on blue (green→blue), in the triggers' `json_array` form. The applier
    does it, not a trigger: a trigger's WHEN on every app write halved the inserts/s of batched writes."""
    if keys:
        marks = ", ".join(json_item(f"?{i + 2}") for i in range(len(keys[0])))
        conn.executemany(
            f"INSERT OR IGNORE INTO {SQLITE_TOUCHED} (tbl, pk) VALUES (?1, json_array({marks}))",
            [(table, *key) for key in keys],
        )


def touched_keys(conn: sqlite3.Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Per table, the keys of every row the sync has carried or still has to carry, either way, since capture
    was installed (blue's forms). The rollback's integrity step compares these rows, not the whole database.
    Keyless tables' changes (row images, not keys) are left out."""
    rows = conn.execute(
        f"SELECT tbl, pk FROM {SQLITE_TOUCHED}"
        f" UNION SELECT tbl, {json_key(conn)} FROM {SQLITE_LOG} WHERE op NOT IN {MULTISET_OPS}"
    ).fetchall()
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table, pk in rows:
        out.setdefault(table, set()).add(conflicts.decode_key(pk) or ())
    return out


def read_green_position(conn: sqlite3.Connection) -> GreenPosition:
    """The last PostgreSQL change applied to SQLite, `(0, 0)` before the first."""
    if not _sqlite_has_log(conn):
        return (0, 0)
    row = conn.execute(f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (GREEN_TO_BLUE,)).fetchone()
    if not row:
        return (0, 0)
    txid, seq = json.loads(row[0])
    return (int(txid), int(seq))


def write_green_position(conn: sqlite3.Connection, position: GreenPosition) -> None:
    """Store the green→blue position; call inside the transaction that applies the data."""
    conn.execute(
        f"INSERT INTO {SQLITE_STATE} (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (GREEN_TO_BLUE, json.dumps([int(position[0]), int(position[1])])),
    )


# --------------------------------------------------------------------------------------------------- PostgreSQL

# The key: `to_jsonb(row) -> column` for each key column named in TG_ARGV, in order, as a JSON array. Built with
# simple expressions in a loop (plpgsql evaluates those without the executor): a `jsonb_agg` over `unnest(TG_ARGV)`
# gave the same array at 0.72x this one's insert rate (server-side inserts of 1,000 rows per transaction).
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.capture() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    j jsonb;
    new_key jsonb;
    old_key jsonb;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        j := to_jsonb(NEW);
        new_key := jsonb_build_array(j -> TG_ARGV[0]);
        FOR i IN 1 .. TG_NARGS - 1 LOOP
            new_key := new_key || jsonb_build_array(j -> TG_ARGV[i]);
        END LOOP;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        j := to_jsonb(OLD);
        old_key := jsonb_build_array(j -> TG_ARGV[0]);
        FOR i IN 1 .. TG_NARGS - 1 LOOP
            old_key := old_key || jsonb_build_array(j -> TG_ARGV[i]);
        END LOOP;
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND old_key IS DISTINCT FROM new_key) THEN
        INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk) VALUES (TG_TABLE_NAME, 'D', old_key);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk)
        VALUES (TG_TABLE_NAME, CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END, new_key);
    END IF;
    RETURN NULL;
END
$fn$
"""


# A keyless table's rows are a multiset: `+` with the new row, `-` with the old one, the whole row as JSON (to_jsonb
# keeps float8 exact, bytea as \x hex; `jsonb_populate_record` types it back). An update is both.
_PG_MULTISET_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.capture_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD IS DISTINCT FROM NEW) THEN
        INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk) VALUES (TG_TABLE_NAME, '-', to_jsonb(OLD));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD IS DISTINCT FROM NEW) THEN
        INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk) VALUES (TG_TABLE_NAME, '+', to_jsonb(NEW));
    END IF;
    RETURN NULL;
END
$fn$
"""


# TRUNCATE removes rows without firing row triggers, so this statement-level trigger logs a delete for every row
# first, keys in the row trigger's format (`jsonb_build_array` converts each value as `to_jsonb(OLD) -> col` does),
# in the truncating transaction (same txid, seqs in commit order like any delete). It runs after TRUNCATE has taken
# its ACCESS EXCLUSIVE locks (on every table it reaches, CASCADE included) and before it removes anything: no other
# transaction can write to the table meanwhile, and under READ COMMITTED the SELECT's fresh snapshot sees every row
# that TRUNCATE removes. Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot misses rows committed after
# it was taken, which TRUNCATE (not MVCC-safe) removes all the same: their deletes would never reach blue, so it is
# refused there, naming the ways that work.
_PG_TRUNCATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.capture_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    key_list text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'cockpit: TRUNCATE of synced table %.% refused in a % transaction',
                quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Its snapshot can miss rows committed since it began; TRUNCATE removes them anyway and '
                           'their deletes would never reach blue (SQLite).',
                  HINT = format('Run the TRUNCATE in a READ COMMITTED transaction, or use DELETE FROM %I.%I.',
                                TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    IF TG_NARGS = 0 THEN  -- a keyless table: one `-` with the whole row for each row
        EXECUTE format('INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk) SELECT %L, %L, to_jsonb(r) FROM %I.%I r',
                       TG_TABLE_NAME, '-', TG_TABLE_SCHEMA, TG_TABLE_NAME);
        RETURN NULL;
    END IF;
    SELECT string_agg(format('%I', k.col), ', ' ORDER BY k.ord) INTO key_list
      FROM unnest(TG_ARGV) WITH ORDINALITY AS k(col, ord);
    EXECUTE format('INSERT INTO {PG_SCHEMA}.changes (tbl, op, pk) SELECT %L, %L, jsonb_build_array(%s) FROM %I.%I',
                   TG_TABLE_NAME, 'D', key_list, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    RETURN NULL;
END
$fn$
"""


def pg_bookkeeping(conn: psycopg.Connection) -> None:
    """Schema `cockpit` with the change log, the positions and the capture functions (idempotent)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.changes ("
        " seq bigserial PRIMARY KEY,"
        " txid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
        " tbl text NOT NULL,"
        " op text NOT NULL,"
        " pk jsonb NOT NULL,"
        " ts timestamptz NOT NULL DEFAULT clock_timestamp(),"
        " origin text NOT NULL DEFAULT 'green')"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS changes_txid_seq ON {PG_SCHEMA}.changes (txid, seq)")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.positions ("
        " direction text PRIMARY KEY,"
        " position bigint NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    conn.execute(_PG_FUNCTION)
    conn.execute(_PG_MULTISET_FUNCTION)
    conn.execute(_PG_TRUNCATE_FUNCTION)
    conn.execute(conflicts.PG_DDL)


def pg_has(conn: psycopg.Connection, relation: str) -> bool:
    """Whether `relation` (a table, possibly schema-qualified and quoted) exists on PostgreSQL."""
    row = conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()
    return bool(row and row[0] is not None)


def one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, a sequence): typed as such."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.ProgrammingError("the query returned no row")
    return row


def pg_primary_key(conn: psycopg.Connection, table: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
        " WHERE i.indrelid = to_regclass(%s) AND i.indisprimary"
        " ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (qi(table),),
    ).fetchall()
    return tuple(r[0] for r in rows)


def install_pg(conn: psycopg.Connection, keys: Mapping[str, tuple[str, ...]]) -> None:
    """Create schema `cockpit`, the row capture trigger and the TRUNCATE trigger on each table (idempotent:
    triggers are replaced).

    `keys` maps table -> key columns (as on SQLite; `()`: keyless). Runs in one transaction; commits it.
    """
    missing = [t for t in keys if not pg_has(conn, qi(t))]
    if missing:
        conn.rollback()
        raise CaptureError(
            "tables missing on PostgreSQL (run `cockpit sync copy` first): " + ", ".join(missing)
        )
    with conn.transaction():
        # tagged like the applier's writes: the DDL watch (cockpit.drivers.sync.ddl) skips the cockpit's own DDL
        conn.execute("SELECT set_config('cockpit.applying', 'on', true)")
        pg_bookkeeping(conn)
        for table, pk in keys.items():
            for name in PG_TRIGGERS:
                conn.execute(
                    sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(name), sql.Identifier(table)
                    )
                )
            args = sql.SQL(", ").join(sql.Literal(c) for c in pk)
            function = sql.SQL("capture" if pk else "capture_rows")
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW"
                    f" WHEN ({PG_NOT_APPLYING})"
                    " EXECUTE FUNCTION {}.{}({})"
                ).format(
                    sql.Identifier(PG_TRIGGER),
                    sql.Identifier(table),
                    sql.Identifier(PG_SCHEMA),
                    function,
                    args,
                )
            )
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT"
                    f" WHEN ({PG_NOT_APPLYING})"
                    " EXECUTE FUNCTION {}.capture_truncate({})"
                ).format(
                    sql.Identifier(PG_TRUNCATE_TRIGGER),
                    sql.Identifier(table),
                    sql.Identifier(PG_SCHEMA),
                    args,
                )
            )
    if not conn.autocommit:
        conn.commit()


def pg_installed(conn: psycopg.Connection) -> list[str]:
    """The tables that carry both cockpit capture triggers (rows and TRUNCATE) on PostgreSQL.

    A table with only the row trigger (installed by an older cockpit) is left out: a TRUNCATE there would be lost,
    so it counts as not installed until `cockpit sync install` runs again.
    """
    rows = conn.execute(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = ANY(%s)"
        " GROUP BY c.relname HAVING count(DISTINCT t.tgname) = %s ORDER BY c.relname",
        (list(PG_TRIGGERS), len(PG_TRIGGERS)),
    ).fetchall()
    return [r[0] for r in rows]


def uninstall_pg(conn: psycopg.Connection) -> list[str]:
    """Drop every cockpit trigger and schema `cockpit` from PostgreSQL (idempotent). Returns what was dropped."""
    dropped = []
    labels = {PG_TRIGGER: "trigger", PG_TRUNCATE_TRIGGER: "truncate trigger"}
    with conn.transaction():
        conn.execute("SELECT set_config('cockpit.applying', 'on', true)")
        rows = conn.execute(
            "SELECT t.tgname, n.nspname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = ANY(%s)",
            (list(PG_TRIGGERS),),
        ).fetchall()
        for name, schema, table in rows:
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}.{}").format(
                    sql.Identifier(name), sql.Identifier(schema), sql.Identifier(table)
                )
            )
            dropped.append(f"{labels[name]} {table}")
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (PG_SCHEMA,)).fetchone():
            conn.execute(f"DROP SCHEMA {PG_SCHEMA} CASCADE")
            dropped.append(f"schema {PG_SCHEMA}")
    if not conn.autocommit:
        conn.commit()
    return dropped


def record_copy_position(pg_conn: psycopg.Connection, position: int) -> None:
    """Store on PostgreSQL that blue→green apply resumes after SQLite change `position`.

    Runs in the connection's current transaction (commit it together with the copied data when you can); with an
    autocommit connection it is committed at once. Creates the bookkeeping schema if needed.
    """
    pg_bookkeeping(pg_conn)
    write_blue_position(pg_conn, position)


def write_blue_position(conn: psycopg.Connection, position: int) -> None:
    """Store the blue→green position; call inside the transaction that applies the data."""
    conn.execute(
        f"INSERT INTO {PG_SCHEMA}.positions (direction, position) VALUES (%s, %s)"
        " ON CONFLICT (direction) DO UPDATE SET position = excluded.position, updated_at = clock_timestamp()",
        (BLUE_TO_GREEN, int(position)),
    )


def read_blue_position(conn: psycopg.Connection) -> int:
    """The last SQLite change applied to PostgreSQL, 0 before the first."""
    if not pg_has(conn, f"{PG_SCHEMA}.positions"):
        return 0
    row = conn.execute(
        f"SELECT position FROM {PG_SCHEMA}.positions WHERE direction = %s", (BLUE_TO_GREEN,)
    ).fetchone()
    return int(row[0]) if row else 0
