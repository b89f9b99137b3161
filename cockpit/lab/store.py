"""The demo services' data access: the same operations on SQLite (blue) and PostgreSQL (green)."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from cockpit.core.errors import CockpitError
from cockpit.lab.domain import KEY_MODES, TABLES, Table, new_key, now_text


class Unavailable(CockpitError, RuntimeError):
    """The database cannot be reached or is busy beyond the timeout (answered with 503)."""


class Conflict(CockpitError, RuntimeError):
    """A unique or foreign key constraint refused the write (answered with 409)."""


class Pool:
    """A small pool of connections (ThreadingHTTPServer runs a thread per connection: no per-thread connections)."""

    def __init__(self, connect: Callable[[], Any], size: int = 6, timeout: float = 5.0):
        self._connect = connect
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise Unavailable("no database connection free within the timeout")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        except Unavailable:
            if conn is not None:  # a broken connection is not reused
                _close(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


class Store:
    """Rows of the four tables. Subclasses give the connection and the engine's placeholders and errors."""

    placeholder = "?"

    def __init__(self, side: str, pool_size: int = 6, keys: str = "database"):
        if keys not in KEY_MODES:
            raise ValueError(f"keys must be one of {', '.join(KEY_MODES)}, not {keys!r}")
        self.side = side
        self.keys = keys
        self.pool = Pool(self._connect, size=pool_size)

    # -- engine specifics --------------------------------------------------------------------------------
    def _connect(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, sql: str, params: list[Any], fetch: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adapt(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        return values

    # -- operations --------------------------------------------------------------------------------------
    def ping(self) -> None:
        self._run("SELECT 1", [], "one")

    def counts(self) -> dict[str, int]:
        return {name: self._run(f'SELECT count(*) FROM "{name}"', [], "one")[0] for name in TABLES}

    def list(self, table: Table, limit: int, offset: int, descending: bool) -> list[dict[str, Any]]:
        order = "DESC" if descending else "ASC"
        sql = f'SELECT {self._cols(table)} FROM "{table.name}" ORDER BY id {order} LIMIT {int(limit)} OFFSET {int(offset)}'
        return [dict(zip(table.columns, r, strict=True)) for r in self._run(sql, [], "all")]

    def get(self, table: Table, key: int) -> dict[str, Any] | None:
        row = self._run(
            f'SELECT {self._cols(table)} FROM "{table.name}" WHERE id = {self.placeholder}', [key], "one"
        )
        return dict(zip(table.columns, row, strict=True)) if row else None

    def create(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        """A new row. By default the database chooses its key, as the strategy's app lets it (SQLite max+1, green's
        identity); with keys='side-bit' the service chooses one that cannot meet the other side's (new_key)."""
        stamp = now_text()
        values = {**self._adapt(table, values), "created_at": stamp, "updated_at": stamp}
        if self.keys == "database":
            return self._insert(table, values)
        for attempt in range(5):
            key = new_key(self.side)
            try:
                return self._insert(table, {"id": key, **values})
            except Conflict:
                if (
                    attempt < 4 and self.get(table, key) is not None
                ):  # two instances met on one key: take another
                    continue
                raise
        raise Conflict("could not allocate a key")  # pragma: no cover - five collisions in a row

    def _insert(self, table: Table, row: dict[str, Any]) -> dict[str, Any]:
        names = ", ".join(f'"{n}"' for n in row)
        marks = ", ".join([self.placeholder] * len(row))
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}) RETURNING {self._cols(table)}'
        out = self._run(sql, list(row.values()), "one")
        return dict(zip(table.columns, out, strict=True))

    def update(self, table: Table, key: int, values: dict[str, Any]) -> dict[str, Any] | None:
        values = {**self._adapt(table, values), "updated_at": now_text()}
        sets = ", ".join(f'"{n}" = {self.placeholder}' for n in values)
        sql = f'UPDATE "{table.name}" SET {sets} WHERE id = {self.placeholder} RETURNING {self._cols(table)}'
        row = self._run(sql, [*values.values(), key], "one")
        return dict(zip(table.columns, row, strict=True)) if row else None

    def delete(self, table: Table, key: int) -> bool:
        sql = f'DELETE FROM "{table.name}" WHERE id = {self.placeholder} RETURNING id'
        return self._run(sql, [key], "one") is not None

    def close(self) -> None:
        self.pool.close()

    @staticmethod
    def _cols(table: Table) -> str:
        return ", ".join(f'"{c}"' for c in table.columns)


class SqliteStore(Store):
    placeholder = "?"

    def __init__(
        self, side: str, path: str, pool_size: int = 6, busy_timeout: float = 5.0, keys: str = "database"
    ):
        self.path = path
        self.busy_timeout = busy_timeout
        super().__init__(side, pool_size, keys)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise Unavailable(f"SQLite: {exc}") from exc
        return conn

    def _run(self, sql: str, params: list[Any], fetch: str) -> Any:
        values = [int(v) if isinstance(v, bool) else v for v in params]
        with self.pool.connection() as conn:
            try:
                cur = conn.execute(sql, values)
                return cur.fetchone() if fetch == "one" else cur.fetchall()
            except sqlite3.IntegrityError as exc:
                raise Conflict(str(exc)) from exc
            except sqlite3.OperationalError as exc:  # locked beyond the busy timeout, disk, file gone
                raise Unavailable(f"SQLite: {exc}") from exc


class PostgresStore(Store):
    placeholder = "%s"

    def __init__(
        self, side: str, url: str, pool_size: int = 6, connect_timeout: int = 5, keys: str = "database"
    ):
        self.url = url
        self.connect_timeout = connect_timeout
        self._types: dict[str, dict[str, str]] = {}
        self._types_lock = threading.Lock()
        super().__init__(side, pool_size, keys)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                application_name=f"cockpit-lab-{self.side}",
            )
        except psycopg.Error as exc:
            raise Unavailable(f"PostgreSQL: {_first_line(exc)}") from exc

    def _run(self, sql: str, params: list[Any], fetch: str) -> Any:
        with self.pool.connection() as conn:
            try:
                cur = conn.execute(sql, params)
                return cur.fetchone() if fetch == "one" else cur.fetchall()
            except psycopg.errors.IntegrityError as exc:
                raise Conflict(_first_line(exc)) from exc
            except psycopg.OperationalError as exc:
                raise Unavailable(f"PostgreSQL: {_first_line(exc)}") from exc

    def _adapt(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        """Booleans go in as the column's real type (the copy may keep 0/1 integers or make them boolean)."""
        types = self._column_types(table.name)
        out = dict(values)
        for name, value in values.items():
            if isinstance(value, bool) and types.get(name) != "boolean":
                out[name] = int(value)
        return out

    def _column_types(self, table: str) -> dict[str, str]:
        with self._types_lock:
            if table not in self._types:
                rows = self._run(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s",
                    [table],
                    "all",
                )
                self._types[table] = dict(rows)
            return self._types[table]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
