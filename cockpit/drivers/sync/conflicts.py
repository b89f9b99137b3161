"""The conflicts store: every version the sync did not leave in a table, kept whole on both sides.

SQLite keeps it in `_cockpit_conflicts`, PostgreSQL in `cockpit.conflicts`, with the same columns:
  id              local order (rowid / bigserial); records are never deleted
  uid             `blue:N` or `green:N`, N the record's id on the side that made it; unique on each side
  made_on         the side whose applier wrote it, inside its apply transaction (atomic with the position)
  kind            `conflict`  the same key changed on both sides; the policy kept one version
                  `unique`    the same unique value arrived from both sides under different keys
                  `violation` the target refused one change (unique, foreign key, check, type): that change alone
                              was parked and the sync went on
  tbl, pk         the table and the parked version's key (JSON array, SQLite's form of the values)
  kept_pk         the key of the version left in the table (differs from `pk` for `unique`)
  parked, kept    `blue` | `green`: whose version was parked, whose was kept
  policy, constraint_name, message, ts (epoch seconds)
  blue, green     each side's version, all columns (JSON object in SQLite's form; bytes as {"$b": hex}; null: no row)
  revert          1: the parked version came in from the other side, which still holds it; the transaction that
                  mirrors this record into that side sets its row back to `restore` (the target's version, null: no
                  row), unless that row has changed again since (its newer change then travels on its own)
  restore         see `revert`
  op              `+` / `-` for a keyless table's change (a multiset delta), else null
  status          `waiting` | `resolved`; resolution, resolved_at
Mirroring: the records made on one side are copied into the other inside the other direction's apply transaction,
in id order after a mirrored position (`_cockpit_state` key `conflicts_from_green` on SQLite, `cockpit.positions`
direction `conflicts_from_blue` on PostgreSQL), so each lands exactly once. A record resolved on either side counts
as resolved (`resolve` writes both, `merged` reads both).

Never imports the applier (the applier imports this).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cockpit.core.errors import EXIT_USAGE, CockpitError

SQLITE_STORE = "_cockpit_conflicts"
PG_STORE = "cockpit.conflicts"
FROM_GREEN = "conflicts_from_green"  # on SQLite: the last green record mirrored there
FROM_BLUE = "conflicts_from_blue"  # on PostgreSQL: the last blue record mirrored there

COLUMNS = (
    "uid",
    "made_on",
    "kind",
    "tbl",
    "pk",
    "kept_pk",
    "parked",
    "kept",
    "policy",
    "constraint_name",
    "message",
    "ts",
    "blue",
    "green",
    "revert",
    "restore",
    "op",
    "status",
    "resolution",
    "resolved_at",
)

SQLITE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SQLITE_STORE} ("
    " id INTEGER PRIMARY KEY, uid TEXT UNIQUE, made_on TEXT NOT NULL, kind TEXT NOT NULL, tbl TEXT NOT NULL,"
    " pk TEXT NOT NULL, kept_pk TEXT, parked TEXT NOT NULL, kept TEXT, policy TEXT, constraint_name TEXT,"
    " message TEXT, ts REAL NOT NULL, blue TEXT, green TEXT, revert INTEGER NOT NULL DEFAULT 0, restore TEXT,"
    " op TEXT, status TEXT NOT NULL DEFAULT 'waiting', resolution TEXT, resolved_at REAL)"
)
PG_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PG_STORE} ("
    " id bigserial PRIMARY KEY, uid text UNIQUE, made_on text NOT NULL, kind text NOT NULL, tbl text NOT NULL,"
    " pk text NOT NULL, kept_pk text, parked text NOT NULL, kept text, policy text, constraint_name text,"
    " message text, ts double precision NOT NULL, blue text, green text, revert integer NOT NULL DEFAULT 0,"
    " restore text, op text, status text NOT NULL DEFAULT 'waiting', resolution text, resolved_at double precision)"
)


# ------------------------------------------------------------------------------------------------ row values


def encode_row(row: Mapping[str, Any] | None) -> str | None:
    """A row (SQLite's forms: int, float, str, bytes, None) as JSON that decodes to exactly the same values."""
    if row is None:
        return None
    return json.dumps({k: _encode(v) for k, v in row.items()})


def decode_row(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {k: _decode(v) for k, v in json.loads(text).items()}


def encode_key(key: Sequence[Any]) -> str:
    return json.dumps([_encode(v) for v in key])


def decode_key(text: str | None) -> tuple[Any, ...] | None:
    return None if text is None else tuple(_decode(v) for v in json.loads(text))


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": bytes(value).hex()}
    if value is None or isinstance(value, bool | int | float | str):
        return value  # json keeps floats exact (repr) and writes inf/nan as Infinity/NaN
    return str(value)  # a value a converter could not bring into SQLite's form: shown as text


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$b"}:
        return bytes.fromhex(value["$b"])
    return value


def shown(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A decoded row as JSON shows it (bytes as `\\x` hex)."""
    if row is None:
        return None
    return {k: ("\\x" + v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}


# ----------------------------------------------------------------------------------------------- the record


@dataclass
class Parked:
    """One parked version and why (see the module docstring for the fields)."""

    kind: str
    table: str
    key: tuple[Any, ...]
    parked: str  # 'blue' | 'green'
    kept: str | None
    blue: dict[str, Any] | None
    green: dict[str, Any] | None
    policy: str | None = None
    kept_key: tuple[Any, ...] | None = None
    constraint: str | None = None
    message: str | None = None
    revert: bool = False
    restore: dict[str, Any] | None = None
    op: str | None = None
    blue_time: float | None = None
    green_time: float | None = None
    ts: float = field(default_factory=time.time)
    uid: str | None = None  # set when stored

    def values(self) -> tuple[Any, ...]:
        """The store's columns after `uid`, `made_on`, in COLUMNS order."""
        return (
            self.kind,
            self.table,
            encode_key(self.key),
            None if self.kept_key is None else encode_key(self.kept_key),
            self.parked,
            self.kept,
            self.policy,
            self.constraint,
            self.message,
            self.ts,
            encode_row(self.blue),
            encode_row(self.green),
            int(self.revert),
            encode_row(self.restore),
            self.op,
        )

    def payload(self) -> dict[str, Any]:
        """What `on_event('sync.conflict', ...)` carries: every value of both versions."""
        return {
            "uid": self.uid,
            "kind": self.kind,
            "table": self.table,
            "key": list(shown_key(self.key)),
            "kept_key": None if self.kept_key is None else list(shown_key(self.kept_key)),
            "policy": self.policy,
            "winner": self.kept,
            "parked": self.parked,
            "constraint": self.constraint,
            "message": self.message,
            "blue": shown(self.blue),
            "green": shown(self.green),
            "blue_time": self.blue_time,
            "green_time": self.green_time,
        }


def shown_key(key: Sequence[Any]) -> list[Any]:
    return [("\\x" + v.hex() if isinstance(v, bytes) else v) for v in key]


_PARK_COLS = COLUMNS[2:17]  # kind .. op: what the applier writes
_INSERT_COLS = ", ".join(_PARK_COLS)


def park_sqlite(conn: sqlite3.Connection, record: Parked) -> str:
    """Store a record made on blue (inside the caller's transaction); its uid."""
    marks = ", ".join("?" for _ in _PARK_COLS)
    cur = conn.execute(
        f"INSERT INTO {SQLITE_STORE} (made_on, {_INSERT_COLS}) VALUES ('blue', {marks})",
        record.values(),
    )
    uid = f"blue:{cur.lastrowid}"
    conn.execute(f"UPDATE {SQLITE_STORE} SET uid = ? WHERE id = ?", (uid, cur.lastrowid))
    record.uid = uid
    return uid


def park_pg(conn: psycopg.Connection, records: list[Parked]) -> None:
    """Store records made on green (inside the caller's transaction): their ids in one query, the rows pipelined."""
    if not records:
        return
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (PG_STORE, len(records)),
        )
    ]
    marks = ", ".join("%s" for _ in _PARK_COLS)
    for record, id_ in zip(records, ids, strict=True):
        record.uid = f"green:{id_}"
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {PG_STORE} (id, uid, made_on, {_INSERT_COLS}) VALUES (%s, %s, 'green', {marks})",
            [(id_, r.uid, *r.values()) for r, id_ in zip(records, ids, strict=True)],
        )


# ---------------------------------------------------------------------------------------------- mirroring

_ALL = ", ".join(COLUMNS)


def unmirrored_sqlite(conn: sqlite3.Connection, after: int) -> list[tuple[Any, ...]]:
    """Records made on blue after id `after`: (id, *COLUMNS)."""
    return conn.execute(
        f"SELECT id, {_ALL} FROM {SQLITE_STORE} WHERE made_on = 'blue' AND id > ? ORDER BY id", (after,)
    ).fetchall()


def unmirrored_pg(conn: psycopg.Connection, after: int) -> list[tuple[Any, ...]]:
    """Records made on green after id `after`: (id, *COLUMNS)."""
    return conn.execute(
        f"SELECT id, {_ALL} FROM {PG_STORE} WHERE made_on = 'green' AND id > %s ORDER BY id", (after,)
    ).fetchall()


def copy_into_sqlite(conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    marks = ", ".join("?" for _ in COLUMNS)
    conn.executemany(
        f"INSERT INTO {SQLITE_STORE} ({_ALL}) VALUES ({marks}) ON CONFLICT (uid) DO NOTHING",
        [tuple(r[1:]) for r in rows],
    )


def copy_into_pg(conn: psycopg.Connection, rows: Iterable[Sequence[Any]]) -> None:
    marks = ", ".join("%s" for _ in COLUMNS)
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {PG_STORE} ({_ALL}) VALUES ({marks}) ON CONFLICT (uid) DO NOTHING",
            [tuple(r[1:]) for r in rows],
        )


def record_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (`id`, *COLUMNS) as a dict with its versions decoded."""
    rec = dict(zip(("id", *COLUMNS), row, strict=True))
    rec["pk"] = decode_key(rec["pk"])
    rec["kept_pk"] = decode_key(rec["kept_pk"])
    for side in ("blue", "green", "restore"):
        rec[side] = decode_row(rec[side])
    return rec


# ------------------------------------------------------------------------------------------------ reading


def _has_sqlite_store(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_STORE,)
        ).fetchone()
        is not None
    )


def _has_pg_store(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (PG_STORE,)).fetchone()  # capture imports this module
    return bool(row and row[0] is not None)


def sqlite_records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    if not _has_sqlite_store(conn):
        return []
    return [record_from_row(r) for r in conn.execute(f"SELECT id, {_ALL} FROM {SQLITE_STORE} ORDER BY id")]


def pg_records(conn: psycopg.Connection) -> list[dict[str, Any]]:
    if not _has_pg_store(conn):
        return []
    return [record_from_row(r) for r in conn.execute(f"SELECT id, {_ALL} FROM {PG_STORE} ORDER BY id")]


def merged(blue: list[dict[str, Any]], green: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Both sides' records, one per uid (resolved on either side: resolved), oldest first."""
    out: dict[str, dict[str, Any]] = {}
    for rec in [*blue, *(green or [])]:
        have = out.get(rec["uid"])
        if have is None:
            out[rec["uid"]] = {k: v for k, v in rec.items() if k != "id"}
        elif rec["status"] == "resolved" and have["status"] != "resolved":
            have.update(status="resolved", resolution=rec["resolution"], resolved_at=rec["resolved_at"])
    return sorted(out.values(), key=lambda r: (r["ts"], r["uid"]))


def waiting_uids_sqlite(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """(waiting, resolved) uids on SQLite."""
    if not _has_sqlite_store(conn):
        return set(), set()
    rows = conn.execute(f"SELECT uid, status FROM {SQLITE_STORE}").fetchall()
    return {u for u, s in rows if s == "waiting"}, {u for u, s in rows if s != "waiting"}


def waiting_uids_pg(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    if not _has_pg_store(conn):
        return set(), set()
    rows = conn.execute(f"SELECT uid, status FROM {PG_STORE}").fetchall()
    return {u for u, s in rows if s == "waiting"}, {u for u, s in rows if s != "waiting"}


def mark_resolved_sqlite(conn: sqlite3.Connection, rec: Mapping[str, Any], resolution: str) -> None:
    """Mark a record resolved on SQLite, storing it there first if it has not been mirrored yet."""
    values = _stored_values(rec)
    marks = ", ".join("?" for _ in COLUMNS)
    conn.execute(
        f"INSERT INTO {SQLITE_STORE} ({_ALL}) VALUES ({marks}) ON CONFLICT (uid) DO UPDATE SET"
        " status = 'resolved', resolution = excluded.resolution, resolved_at = excluded.resolved_at",
        _resolved(values, resolution),
    )


def mark_resolved_pg(conn: psycopg.Connection, rec: Mapping[str, Any], resolution: str) -> None:
    values = _stored_values(rec)
    marks = ", ".join("%s" for _ in COLUMNS)
    conn.execute(
        f"INSERT INTO {PG_STORE} ({_ALL}) VALUES ({marks}) ON CONFLICT (uid) DO UPDATE SET"
        " status = 'resolved', resolution = excluded.resolution, resolved_at = excluded.resolved_at",
        _resolved(values, resolution),
    )


def _stored_values(rec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    out["pk"] = encode_key(rec["pk"])
    out["kept_pk"] = None if rec["kept_pk"] is None else encode_key(rec["kept_pk"])
    for side in ("blue", "green", "restore"):
        out[side] = encode_row(rec[side])
    return out


def _resolved(values: dict[str, Any], resolution: str) -> tuple[Any, ...]:
    values = {**values, "status": "resolved", "resolution": resolution, "resolved_at": time.time()}
    return tuple(values[c] for c in COLUMNS)


# ------------------------------------------------------------------------------------------------ resolving

KEEP = ("blue", "green", "both")


class ResolveError(CockpitError):
    """A record cannot be resolved as asked (unknown, already resolved, no database-chosen key for `both`)."""

    exit_code = EXIT_USAGE


class ResolveRefused(ResolveError):
    """Blue's table refuses the chosen version as it stands (a unique value taken, ...): nothing was written."""


def find(records: list[dict[str, Any]], uid: str) -> dict[str, Any]:
    """The record `uid` (`blue:3`, `green:7`), or the only one whose number is `uid`."""
    exact = [r for r in records if r["uid"] == uid]
    if not exact and uid.isdigit():
        exact = [r for r in records if r["uid"].split(":")[1] == uid]
    if len(exact) != 1:
        known = ", ".join(r["uid"] for r in records if r["status"] == "waiting") or "none waiting"
        raise ResolveError(
            f"no single conflict {uid!r} (waiting: {known}); `cockpit sync conflicts` lists them"
        )
    return exact[0]


def apply_choice(
    blue: sqlite3.Connection, rec: Mapping[str, Any], keep: str, key_columns: Sequence[str], rowid_key: bool
) -> str:
    """Write the lead's choice into blue's table as an ordinary (captured) write, so the sync carries it to green.
    Returns what was done. Runs in one SQLite transaction; nothing is written when it fails."""
    if keep not in KEEP:
        raise ResolveError(f"--keep must be one of {', '.join(KEEP)}")
    if rec["status"] != "waiting":
        raise ResolveError(f"conflict {rec['uid']} is already resolved ({rec['resolution']})")
    parked, table = rec["parked"], rec["tbl"]
    version = rec[parked]
    if keep == rec["kept"]:
        return f"kept {keep}'s version, as the sync had; the parked {parked} version stays in the store"
    t = '"' + table.replace('"', '""') + '"'
    q = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
    blue.execute("BEGIN IMMEDIATE")
    try:
        if keep == "both":
            if version is None:
                raise ResolveError(
                    f"conflict {rec['uid']}: the parked version is a delete; keep blue or green"
                )
            row = dict(version)
            if rec["op"] is None:
                if not rowid_key:
                    raise ResolveError(
                        f"conflict {rec['uid']}: {table!r} has no key the database chooses, so the parked row cannot "
                        "be added under a new one; keep blue or green, or insert it yourself with a new key"
                    )
                for c in key_columns:
                    row.pop(c, None)
            cols = list(row)
            cur = blue.execute(
                f"INSERT INTO {t} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
            done = f"added the parked {parked} row" + (
                "" if rec["op"] else f" under the new key {cur.lastrowid}"
            )
        elif rec["op"] is not None:  # a keyless change: redo the parked delta
            row = dict(version or {})
            cols = list(row)
            if rec["op"] == "+":
                blue.execute(
                    f"INSERT INTO {t} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [row[c] for c in cols],
                )
            else:
                where = " AND ".join(f"{q(c)} IS ?" for c in cols)
                blue.execute(
                    f"DELETE FROM {t} WHERE rowid = (SELECT rowid FROM {t} WHERE {where} LIMIT 1)",
                    [row[c] for c in cols],
                )
            done = f"applied the parked {parked} change ({rec['op']}) again"
        else:
            where = " AND ".join(f"{q(c)} = ?" for c in key_columns)
            if rec["kind"] == "unique" and rec["kept_pk"] is not None:
                blue.execute(f"DELETE FROM {t} WHERE {where}", list(rec["kept_pk"]))  # the row kept instead
            blue.execute(f"DELETE FROM {t} WHERE {where}", list(rec["pk"]))
            if version is not None:
                cols = list(version)
                blue.execute(
                    f"INSERT INTO {t} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [version[c] for c in cols],
                )
            done = f"put the parked {parked} version back" + (
                f" (and removed the row kept instead, key {list(rec['kept_pk'])})"
                if rec["kind"] == "unique"
                else ""
            )
        blue.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        blue.execute("ROLLBACK")
        raise ResolveRefused(
            f"conflict {rec['uid']}: blue refuses the row ({exc}); change or remove the row in its way, then resolve "
            "again"
        ) from exc
    except BaseException:
        blue.execute("ROLLBACK")
        raise
    return done
