"""The write ledger: every write the lab's users saw acknowledged, and the check that each one survived.

The load appends one JSON line per acknowledged write to the ledger (`Ledger.record`): a create answered 201
(table, key the database chose, natural key such as a CNPJ or an e-mail, side that served, time) and a delete
answered 200 (so a row its own user deleted is not counted missing). `check` compares the ledger with the side
that serves after settling: every acknowledged create whose row was not deleted afterwards must be there, or be
kept in the conflicts store (parked), else it is reported missing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    op: str  # "create" or "delete"
    table: str
    key: int
    side: str
    at: float
    natural: str = ""


class Ledger:
    """Appends entries to a JSON-lines file (thread-safe; one line per write, flushed at once)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def record(self, op: str, table: str, key: int, side: str, natural: str = "") -> None:
        line = json.dumps(
            {"op": op, "table": table, "key": key, "side": side, "at": time.time(), "natural": natural}
        )
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_ledger(path: Path) -> list[Entry]:
    """The entries of a ledger file (a torn last line, from a load killed mid-write, is skipped)."""
    out: list[Entry] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            d: dict[str, Any] = json.loads(line)
            out.append(
                Entry(
                    op=str(d["op"]),
                    table=str(d["table"]),
                    key=int(d["key"]),
                    side=str(d.get("side", "")),
                    at=float(d["at"]),
                    natural=str(d.get("natural", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


@dataclass
class LedgerCheck:
    acknowledged: int = 0  # creates acknowledged with 201
    deleted: int = 0  # of those, deleted afterwards by their own user (200)
    kept_in_conflicts: int = 0  # absent from the serving side but parked in the conflicts store
    missing: list[Entry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing


def check(
    entries: Iterable[Entry],
    present: Callable[[str, list[int]], dict[int, str]],
    parked: set[tuple[str, int]] | None = None,
) -> LedgerCheck:
    """Every acknowledged create, not deleted since, is on the serving side or parked in the conflicts store
    (`parked`: (table, key) pairs); the rest are missing. `present(table, keys)` answers the keys it holds with
    each row's natural key ("" for a table without one): a key the database handed out again after its first row
    went (SQLite reuses the highest free key) is another row, and does not stand for the first."""
    parked = parked or set()
    creates: list[Entry] = []
    deletes: dict[tuple[str, int], list[float]] = {}
    result = LedgerCheck()
    for e in entries:
        if e.op == "create":
            creates.append(e)
        elif e.op == "delete":
            deletes.setdefault((e.table, e.key), []).append(e.at)
    result.acknowledged = len(creates)
    alive = []
    for e in creates:  # a delete of its key answered after it was created: its user deleted it
        if any(at >= e.at for at in deletes.get((e.table, e.key), ())):
            result.deleted += 1
        else:
            alive.append(e)
    wanted: dict[str, list[int]] = {}
    for e in alive:
        wanted.setdefault(e.table, []).append(e.key)
    have = {table: present(table, sorted(set(keys))) for table, keys in sorted(wanted.items())}
    for e in alive:
        found = have[e.table].get(e.key)
        if found is not None and (not e.natural or not found or found == e.natural):
            continue
        if (e.table, e.key) in parked:
            result.kept_in_conflicts += 1
        else:
            result.missing.append(e)
    return result


# the lab's natural keys (what the load records as `natural`): a row is the one acknowledged if both match
NATURAL = {"companies": "cnpj", "users": "email"}


def _select(table: str) -> str:
    natural = NATURAL.get(table)
    return f'SELECT id, {natural or "NULL"} FROM "{table}"'


def sqlite_present(path: Path) -> Callable[[str, list[int]], dict[int, str]]:
    """`present` for a SQLite side (the lab's blue)."""
    import sqlite3

    def present(table: str, keys: list[int]) -> dict[int, str]:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            have: dict[int, str] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = con.execute(f"{_select(table)} WHERE id IN ({marks})", chunk)
                have.update((int(k), "" if n is None else str(n)) for k, n in rows)
            return have
        finally:
            con.close()

    return present


def postgres_present(url: str) -> Callable[[str, list[int]], dict[int, str]]:
    """`present` for a PostgreSQL side (the lab's green)."""
    import psycopg

    def present(table: str, keys: list[int]) -> dict[int, str]:
        with psycopg.connect(url, connect_timeout=10) as con:
            rows = con.execute(f"{_select(table)} WHERE id = ANY(%s)", (keys,)).fetchall()
            return {int(k): "" if n is None else str(n) for k, n in rows}

    return present
