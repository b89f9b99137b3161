"""The flight recorder: one SQLite file (WAL) per plan, mode 0600.

It holds the events (time, kind, actor, action, payload), the metric samples, the command queue that lets a second
process ask the running controller to act, and the current state. Readers never block the writer (WAL). Every
payload is redacted before it is written.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core.redact import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    action_id TEXT,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_action ON events(action_id) WHERE action_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS samples (
    ts REAL NOT NULL,
    name TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS samples_name_ts ON samples(name, ts);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    verb TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    taken_ts REAL,
    done_ts REAL,
    result TEXT
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    ts REAL NOT NULL
);
"""


def current_actor() -> str:
    """`user@host`, or $COCKPIT_ACTOR (CI pipelines name themselves)."""
    actor = os.environ.get("COCKPIT_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Event:
    id: int
    ts: float
    kind: str
    actor: str
    action_id: str | None
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "kind": self.kind,
            "actor": self.actor,
            "action_id": self.action_id,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class Command:
    id: int
    ts: float
    actor: str
    verb: str
    args: dict[str, Any]
    status: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # ok | failed | skipped | running
    duration_s: float | None
    detail: str = ""


@dataclass(frozen=True)
class ActionRecord:
    """One action read back from the journal: intent, steps, outcome."""

    action_id: str
    verb: str
    actor: str
    reason: str
    started: float
    args: dict[str, Any]
    steps: tuple[Step, ...] = ()
    outcome: str | None = None  # ok | failed | refused | preempted | reconciled ... ; None while open
    ended: float | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


class Journal:
    """Append-only journal. Thread-safe for one writer process; any number of reader processes."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no journal at {self.path} (no controller has run this plan yet)")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._lock:
                self._conn.executescript(_SCHEMA)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.chmod(side, 0o600)
        else:
            self._conn.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------
    def event(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        actor: str | None = None,
        action_id: str | None = None,
    ) -> int:
        body = json.dumps(redact(payload or {}), default=str, sort_keys=True)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO events(ts, kind, actor, action_id, payload) VALUES (?, ?, ?, ?, ?)",
                (time.time(), kind, actor or current_actor(), action_id, body),
            )
            return int(cur.lastrowid or 0)

    def samples(self, metrics: dict[str, float | None], ts: float | None = None) -> None:
        when = time.time() if ts is None else ts
        rows = [(when, k, v) for k, v in metrics.items() if v is None or isinstance(v, (int, float))]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO samples(ts, name, value) VALUES (?, ?, ?)", rows)
            self._conn.execute("COMMIT")

    def prune_samples(self, older_than: float) -> int:
        """Drop metric samples taken before `older_than` (epoch s); events are never dropped."""
        with self._lock:
            return self._conn.execute("DELETE FROM samples WHERE ts < ?", (older_than,)).rowcount

    def set_state(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(redact(value), default=str, sort_keys=True)
        with self._lock:
            self._conn.execute(
                "INSERT INTO state(key, value, ts) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, ts = excluded.ts",
                (key, body, time.time()),
            )

    # -- the command queue --------------------------------------------------------------------------------
    def enqueue(self, verb: str, args: dict[str, Any], actor: str | None = None) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO commands(ts, actor, verb, args) VALUES (?, ?, ?, ?)",
                (time.time(), actor or current_actor(), verb, json.dumps(redact(args), default=str)),
            )
            return int(cur.lastrowid or 0)

    def take_commands(self) -> list[Command]:
        """Claim every queued command (the controller calls this once a tick)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._conn.execute(
                    "SELECT id, ts, actor, verb, args, status, result FROM commands WHERE status = 'queued' ORDER BY id"
                ).fetchall()
                self._conn.executemany(
                    "UPDATE commands SET status = 'taken', taken_ts = ? WHERE id = ?",
                    [(time.time(), r[0]) for r in rows],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return [_command(r[:5] + ("taken", r[6])) for r in rows]

    def finish_command(self, command_id: int, status: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE commands SET status = ?, done_ts = ?, result = ? WHERE id = ?",
                (status, time.time(), json.dumps(redact(result), default=str), command_id),
            )

    def cancel_command(self, command_id: int, why: str) -> bool:
        """Withdraw a command nobody took (the asking process gave up waiting). False if already taken."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE commands SET status = 'cancelled', done_ts = ?, result = ? WHERE id = ? AND status = 'queued'",
                (time.time(), json.dumps({"outcome": "cancelled", "ok": False, "message": why}), command_id),
            )
            return cur.rowcount == 1

    def command(self, command_id: int) -> Command | None:
        row = self._query_one(
            "SELECT id, ts, actor, verb, args, status, result FROM commands WHERE id = ?", (command_id,)
        )
        return _command(row) if row else None

    def taken_commands(self) -> list[Command]:
        """Commands a controller took and never answered (it stopped or crashed before)."""
        rows = self._query(
            "SELECT id, ts, actor, verb, args, status, result FROM commands WHERE status = 'taken' ORDER BY id",
            (),
        )
        return [_command(r) for r in rows]

    def action_of_command(self, command_id: int) -> ActionRecord | None:
        """The action a queued command started (its intent names the command), or None."""
        row = self._query_one(
            "SELECT action_id FROM events WHERE kind = 'action.intent' "
            "AND json_extract(payload, '$.args.command') = ? ORDER BY id DESC LIMIT 1",
            (command_id,),
        )
        if row is None:
            return None
        found = _fold_actions(self.events(action_id=row[0]))
        return found[0] if found else None

    # -- reading ------------------------------------------------------------------------------------------
    def get_state(self, key: str) -> dict[str, Any] | None:
        row = self._query_one("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(row[0]) if row else None

    def events(
        self,
        since_id: int = 0,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
        action_id: str | None = None,
    ) -> list[Event]:
        sql = "SELECT id, ts, kind, actor, action_id, payload FROM events WHERE id > ?"
        params: list[Any] = [since_id]
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += kinds
        if action_id is not None:
            sql += " AND action_id = ?"
            params.append(action_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY id', 'ORDER BY id DESC')} LIMIT {int(limit)}) ORDER BY id"
        return [_event(r) for r in self._query(sql, params)]

    def events_between(self, since: float | None = None, until: float | None = None) -> list[Event]:
        """Every event in a time window (epoch s), oldest first."""
        rows = self._query(
            "SELECT id, ts, kind, actor, action_id, payload FROM events WHERE ts >= ? AND ts <= ? ORDER BY id",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")),
        )
        return [_event(r) for r in rows]

    def sample_series(
        self, name: str, since: float | None = None, until: float | None = None
    ) -> list[tuple[float, float | None]]:
        """One metric's samples in a time window, oldest first (served by the (name, ts) index)."""
        rows = self._query(
            "SELECT ts, value FROM samples WHERE name = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (
                name,
                since if since is not None else float("-inf"),
                until if until is not None else float("inf"),
            ),
        )
        return [(float(r[0]), None if r[1] is None else float(r[1])) for r in rows]

    def sample_names(self) -> list[str]:
        return [str(r[0]) for r in self._query("SELECT DISTINCT name FROM samples ORDER BY name", ())]

    def last_event_id(self) -> int:
        row = self._query_one("SELECT COALESCE(MAX(id), 0) FROM events", ())
        return int(row[0]) if row else 0

    def actions(self, limit: int = 10) -> list[ActionRecord]:
        """The last `limit` actions, newest last, each with its steps and outcome."""
        ids = [
            r[0]
            for r in self._query(
                "SELECT action_id FROM events WHERE kind = 'action.intent' ORDER BY id DESC LIMIT ?", (limit,)
            )
        ]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT id, ts, kind, actor, action_id, payload FROM events WHERE action_id IN ({marks}) ORDER BY id",
            ids,
        )
        return _fold_actions([_event(r) for r in rows])

    def open_actions(self) -> list[ActionRecord]:
        """Actions with an intent and no outcome: what a crash cut short."""
        rows = self._query(
            "SELECT action_id FROM events WHERE kind = 'action.intent' AND action_id NOT IN "
            "(SELECT action_id FROM events WHERE kind = 'action.outcome' AND action_id IS NOT NULL) ORDER BY id",
            (),
        )
        out: list[ActionRecord] = []
        for (action_id,) in rows:
            out += _fold_actions(self.events(action_id=action_id))
        return out

    def timeline(self, since_id: int = 0, limit: int | None = None) -> Iterator[str]:
        """The journal as lines a person reads: time, actor, what happened."""
        for e in self.events(since_id=since_id, limit=limit):
            yield format_event(e)

    def _query(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _query_one(self, sql: str, params: Iterable[Any]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, tuple(params)).fetchone()
            return row


def _event(r: tuple[Any, ...]) -> Event:
    return Event(id=r[0], ts=r[1], kind=r[2], actor=r[3], action_id=r[4], payload=json.loads(r[5] or "{}"))


def _command(r: tuple[Any, ...]) -> Command:
    return Command(
        id=r[0],
        ts=r[1],
        actor=r[2],
        verb=r[3],
        args=json.loads(r[4] or "{}"),
        status=r[5],
        result=json.loads(r[6]) if r[6] else None,
    )


def _fold_actions(events: list[Event]) -> list[ActionRecord]:
    records: dict[str, ActionRecord] = {}
    steps: dict[str, dict[str, Step]] = {}
    for e in events:
        aid = e.action_id
        if aid is None:
            continue
        p = e.payload
        if e.kind == "action.intent":
            records[aid] = ActionRecord(
                action_id=aid,
                verb=p.get("verb", "?"),
                actor=e.actor,
                reason=p.get("reason", ""),
                started=e.ts,
                args=p.get("args", {}),
            )
            steps[aid] = {}
        elif aid in records and e.kind == "action.step":
            steps[aid][p["step"]] = Step(
                p["step"], p.get("status", "?"), p.get("duration_s"), p.get("detail", "")
            )
        elif aid in records and e.kind == "action.outcome":
            r = records[aid]
            records[aid] = ActionRecord(
                **{
                    **r.__dict__,
                    "outcome": p.get("outcome"),
                    "ended": e.ts,
                    "message": p.get("message", ""),
                    "extra": p.get("extra", {}),
                }
            )
    return [
        ActionRecord(**{**r.__dict__, "steps": tuple(steps.get(aid, {}).values())})
        for aid, r in records.items()
    ]


# payload keys kept for machines, not for reading: the plan a controller started with (the replay draws it)
UNSHOWN = frozenset({"plan"})


def format_event(e: Event) -> str:
    """One line of the timeline: when, who, [action], what."""
    tag = f" [{e.action_id}]" if e.action_id else ""
    return f"{format_when(e.ts)} {e.actor}{tag} {describe_event(e)}"


def format_when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def describe_event(e: Event) -> str:
    """What happened, in words (steps indented under their action)."""
    p = e.payload
    if e.kind == "action.intent":
        what = f"{p.get('verb')} requested" + (f": {p['reason']}" if p.get("reason") else "")
        if p.get("args"):
            what += " " + " ".join(f"{k}={v}" for k, v in p["args"].items() if v not in (None, "", False))
    elif e.kind == "action.step":
        dur = p.get("duration_s")
        what = f"  step {p.get('step')}: {p.get('status')}" + (f" in {dur:.3f}s" if dur is not None else "")
        if p.get("detail"):
            what += f" ({p['detail']})"
    elif e.kind == "action.outcome":
        dur = p.get("duration_s")
        what = f"{p.get('verb', 'action')} {p.get('outcome')}" + (
            f" in {dur:.3f}s" if dur is not None else ""
        )
        if p.get("message"):
            what += f": {p['message']}"
    else:
        shown = {k: v for k, v in p.items() if k not in UNSHOWN}
        what = e.kind + (" " + json.dumps(shown, sort_keys=True, default=str) if shown else "")
    return what
