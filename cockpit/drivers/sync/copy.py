"""The initial copy: one consistent SQLite snapshot into PostgreSQL with COPY, tables in parallel.

Order of work:
1. SQLite: WAL (so the app keeps writing during the copy) and a busy timeout. `jobs` connections start their read
   transactions on ONE snapshot (`open_snapshots`: SQLite snapshots are per connection, so the write lock is held
   for the few milliseconds it takes to pin them all). The change-log position is read in that snapshot
   (`cockpit.drivers.sync.capture.sqlite_position`).
2. Types: chosen from the declared types and the first `SAMPLE_ROWS` rows of each table (`schema.read_source`).
   A problem seen there -> the whole source is examined; problems -> `SchemaRefused`, nothing written.
   Target tables that already exist -> `CopyError`, nothing written.
3. PostgreSQL: the tables in one transaction (DDL compiled by SQLAlchemy's PostgreSQL dialect, identities
   starting above the highest key and `sqlite_sequence`), without indexes; only a rowid-alias primary key
   (`INTEGER PRIMARY KEY`) comes with its table, since the load sends rows in its order (`_key_with_table`).
4. Data: `jobs` writer threads, each with its own SQLite reader and PostgreSQL session, take tables (large ones
   in rowid ranges) and run `COPY ... FROM STDIN`. SQLite itself renders each row as a line of COPY text
   (escaping, hex for blobs, 't'/'f' for booleans) and checks every value against the chosen type, so Python
   only moves bytes; kinds SQLite cannot render exactly (reals needing 17 digits, epoch and Julian dates, plan
   casts) call back into the same `to_pg` converters the sync uses. A value outside the chosen types (beyond the
   sample) stops the load: its tables are dropped, the whole source is examined in the same snapshot, and the
   copy is refused naming every problem, or done again with the types the full examination chose.
5. Primary keys, unique constraints and indexes of each table, started as soon as that table's data is in (while
   other tables still load; `jobs` at a time); then the table's translated CHECK constraints and expression,
   partial and NOCASE indexes (`cockpit.drivers.sync.constraints`), each in its own transaction: one that
   PostgreSQL rejects (a CHECK the copied rows do not all pass means its translation would refuse what SQLite
   accepted) is left out and named in the report's warnings, the carried ones in its notes. Then foreign keys
   `NOT VALID`, then each validated; a failed validation leaves it NOT VALID and the report names the orphan
   rows. Then the translated views (views over views in order); one PostgreSQL rejects is named.
6. `cockpit.drivers.sync.capture.record_copy_position` stores the position, so blue->green capture resumes exactly there.

The report's `notes` say how columns and constraints were carried (mixed ISO forms of instants as timestamp, each
CHECK, index and view translated); its `warnings` what was not carried and why. SQLAlchemy's own warnings never
reach the terminal (`schema.read_source`).

A failure in steps 3-6 drops every table the copy created (and the schema, if it created it): the target is left
as it was.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateSchema, CreateTable

from cockpit.core.errors import CockpitError
from cockpit.core.redact import redact
from cockpit.core.state import TableCopy
from cockpit.drivers.sync import chunk_check
from cockpit.drivers.sync import values as V
from cockpit.drivers.sync.chunk_check import IsoShape
from cockpit.drivers.sync.schema import SAMPLE_ROWS as SCHEMA_SAMPLE_ROWS
from cockpit.drivers.sync.schema import SchemaRefused, Source, SourceTable, pg_truncate, qi, ql, read_source

__all__ = ["CopyError", "CopyProgress", "CopyReport", "SchemaRefused", "TableReport", "copy_database"]

CHUNK_ROWS = 5000
SAMPLE_ROWS = SCHEMA_SAMPLE_ROWS
QUEUE_BLOCKS = 64
SPLIT_ROWS = 100_000  # a table this large is read in rowid ranges by several writers
BUSY_TIMEOUT_MS = 10_000
MAX_ORPHANS = 5
_PG = postgresql.dialect()


class CopyError(CockpitError):
    """The copy could not be done; whatever it had created in PostgreSQL was dropped again."""


# one table's progress, reported after every chunk: the very record the controller's snapshots carry
CopyProgress = TableCopy


@dataclass
class TableReport:
    name: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ForeignKeyIssue:
    table: str
    constraint: str
    references: str
    orphans: int
    examples: list[str]


@dataclass
class CopyReport:
    source: str
    target: str
    schema: str
    sqlite_position: int
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # what was not carried, and why
    not_valid: list[ForeignKeyIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how some columns and constraints were carried

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.rows
        data["rows_per_s"] = round(self.rows_per_s, 1)
        for t, d in zip(self.tables, data["tables"], strict=True):
            d["rows_per_s"] = round(t.rows_per_s, 1)
        return redact(data)

    def summary(self) -> str:
        lines = [
            f"copied {self.rows} rows in {len(self.tables)} tables from {self.source} to {self.target} "
            f"(schema {self.schema}) in {self.seconds:.2f}s ({self.rows_per_s:,.0f} rows/s); "
            f"change-log position {self.sqlite_position}",
        ]
        width = max((len(t.name) for t in self.tables), default=5)
        for t in sorted(self.tables, key=lambda t: t.name):
            lines.append(
                f"  {t.name:<{width}}  {t.rows:>10} rows  {t.seconds:7.2f}s  {t.rows_per_s:>12,.0f} rows/s"
            )
        for fk in self.not_valid:
            lines.append(
                f"  foreign key {fk.constraint} on {fk.table} -> {fk.references} left NOT VALID: {fk.orphans} "
                f"orphan row(s): " + "; ".join(fk.examples)
            )
        for n in self.notes:
            lines.append(f"  note: {n}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return redact("\n".join(lines))


# ------------------------------------------------------------------------------------------------ SQLite side


def _connect(sqlite_path: str) -> sqlite3.Connection:
    """An existing database only (never creates a file), autocommit mode, with the busy timeout."""
    uri = Path(sqlite_path).resolve().as_uri() + "?mode=rw"
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise CopyError(f"cannot open the SQLite database {sqlite_path}: {exc}") from exc
    return conn


def open_source(sqlite_path: str) -> tuple[sqlite3.Connection, list[str]]:
    """A connection for the copy's read transaction; the database is put in WAL mode if it is not."""
    notes: list[str] = []
    conn = _connect(sqlite_path)
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.Error as exc:
            mode = f"{mode} ({exc})"
        if str(mode).lower() == "wal":
            notes.append(
                "the SQLite database was switched to WAL mode (writers are not blocked by the copy's read)"
            )
        else:
            notes.append(
                f"the SQLite database could not be put in WAL mode ({mode}): writers wait while the copy reads"
            )
    return conn, notes


def _pin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read pins the snapshot


def open_snapshots(sqlite_path: str, main: sqlite3.Connection, extra: int) -> list[sqlite3.Connection]:
    """Pin `main` and `extra` more connections on ONE snapshot.

    SQLite snapshots belong to a connection. To give several readers the same one, the write lock is held
    (`BEGIN IMMEDIATE` on a side connection) while each reader starts its read transaction: no commit can land in
    between. The app's writers wait for those few milliseconds (their busy timeout covers it); if the lock cannot
    be had within the copy's busy timeout, the copy reads through `main` alone.
    """
    if extra <= 0:
        _pin(main)
        return []
    lock = _connect(sqlite_path)
    readers: list[sqlite3.Connection] = []
    try:
        try:
            lock.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            _pin(main)
            return []
        try:
            _pin(main)
            for _ in range(extra):
                conn = _connect(sqlite_path)
                readers.append(conn)
                _pin(conn)
        finally:
            lock.execute("ROLLBACK")
    except BaseException:
        for conn in readers:
            conn.close()
        raise
    finally:
        lock.close()
    return readers


def _position(conn: sqlite3.Connection, notes: list[str]) -> int:
    try:
        from cockpit.drivers.sync.capture import sqlite_position
    except ImportError:  # pragma: no cover - the capture module is part of the package
        notes.append("change capture is not available: position 0 recorded")
        return 0
    return int(sqlite_position(conn))


class _Guards:
    """The Python side of the row SQL: exact fallbacks, and the record of values outside the chosen types."""

    def __init__(self, source: Source):
        self.columns: list[tuple[str, str, Callable[[Any], Any]]] = []
        self.index: dict[tuple[str, str], int] = {}
        self.rejected: list[str] = []
        for table in source.tables.values():
            for col in table.columns:
                self.index[(table.name, col.map.name)] = len(self.columns)
                self.columns.append((table.name, col.map.name, col.map.to_pg))

    def install(self, conn: sqlite3.Connection) -> None:
        conn.create_function("cockpit_copy_field", 2, self.field, deterministic=True)
        conn.create_function("cockpit_copy_reject", 2, self.reject, deterministic=True)
        conn.create_function("cockpit_copy_text", 2, self.text_field, deterministic=True)

    def field(self, i: int, value: Any) -> str:
        try:
            return V.copy_text(self.columns[i][2](value))
        except (ValueError, OverflowError, ArithmeticError) as exc:
            self.rejected.append(f"{self.columns[i][0]}.{self.columns[i][1]}: {exc}")
            raise

    def text_field(self, i: int, raw: bytes) -> str:
        """A text value sent as its bytes: decoded when it is UTF-8, else handed over as bytes (a cast's
        converter then converts or refuses it)."""
        try:
            value: Any = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw
        return self.field(i, value)

    def reject(self, i: int, value: Any) -> str:
        self.rejected.append(
            f"{self.columns[i][0]}.{self.columns[i][1]}: {value!r} is outside the chosen type"
        )
        raise ValueError("value outside the chosen type")

    def select_sql(self, table: SourceTable, ranged: bool, fast: bool = False) -> str:
        """The table's rows as COPY text lines; `ranged`: one chunk of a rowid range as ONE value.

        A chunk is `(text, last rowid, rows)` for `rowid > ? AND rowid <= ?` limited to `?` rows: SQLite builds
        it in one step, without the GIL, so several writer threads read in parallel.

        `fast` (ranged only): text columns go unescaped and fixed-width ISO instants unchecked; the chunk carries,
        after `rows`, each text column's values concatenated and then, when the table has such ISO columns, each
        row's ISO values concatenated (`_fast_isos`), for the checks of `chunk_check`; a chunk that fails them is
        rendered again through the exact SQL (`_chunks`). Escaping costs five `instr` per text value per row
        (about 11 % of SQLite's rendering time for the benchmark's table), a date check a date parse per value
        (about 22 % for its three date columns); the checks cost a `group_concat` and a few C passes per chunk.
        """
        fields, raw = [], []
        isos = _fast_isos(table) if fast else ()
        for col in table.columns:
            c = qi(col.map.name)
            i = self.index[(table.name, col.map.name)]
            expr = col.copy_sql
            if fast and col.copy_sql_raw is not None:
                expr = col.copy_sql_raw
                if col.kind == "text":
                    raw.append(c)
            fields.append(
                expr.replace("{fn}", f"cockpit_copy_field({i}, {c})")
                .replace("{fn_text}", f"cockpit_copy_text({i}, CAST({c} AS BLOB))")
                .replace("{bad}", f"cockpit_copy_reject({i}, {c})")
            )
        if len(fields) < 100:  # one printf() allocates once; a chain of || copies the line at every step
            line = "printf('" + "\t".join(["%s"] * len(fields)) + "\n', " + ", ".join(fields) + ")"
        else:  # SQLite functions take at most 127 arguments
            line = " || char(9) || ".join(fields) + " || char(10)"
        if not ranged:
            return f"SELECT {line} FROM {qi(table.name)}"
        inner = "".join(f", {c} AS _t{k}" for k, c in enumerate(raw))
        outer = "".join(f", group_concat(_t{k}, '')" for k in range(len(raw)))
        if isos:
            row = " || ".join(f"ifnull({qi(name)}, {ql(shape.placeholder)})" for name, shape in isos)
            inner += f", {row} AS _iso"
            outer += ", group_concat(_iso, '')"
        return (
            f"SELECT group_concat(line, ''), max(rid), count(*){outer} FROM (SELECT rowid AS rid, {line} AS line"
            f"{inner} FROM {qi(table.name)} WHERE rowid >= ? AND rowid <= ? ORDER BY rowid LIMIT ?)"
        )


def _fast_isos(table: SourceTable) -> tuple[tuple[str, IsoShape], ...]:
    """The table's ISO columns that the fast path sends unchecked, in order, with their shapes."""
    out = []
    for col in table.columns:
        shape = chunk_check.iso_shape(col.fmt) if col.kind == "iso" and col.copy_sql_raw is not None else None
        if shape is not None:
            out.append((col.map.name, shape))
    return tuple(out)


def _fast_ok(extra: list[bytes | None], isos: tuple[IsoShape, ...], rows: int) -> bool:
    """The fast path's checks of one chunk: `extra` is what `select_sql(fast=True)` returns after `rows`."""
    texts = extra[: len(extra) - 1] if isos else extra
    if chunk_check.needs_escaping(tuple(texts)):
        return False
    return not isos or chunk_check.isos_ok(isos, extra[-1], rows)


@dataclass
class _Unit:
    """A piece of the load: a table, or a rowid range of a large one."""

    table: SourceTable
    lo: int | None = None
    hi: int | None = None


def _units(source: Source, conn: sqlite3.Connection, parts: int) -> list[_Unit]:
    units: list[_Unit] = []
    for st in sorted(source.tables.values(), key=lambda t: -t.rows):
        lo, hi = (
            conn.execute(f"SELECT min(rowid), max(rowid) FROM {qi(st.name)}").fetchone()
            if st.rowid
            else (None, None)
        )
        if lo is None:
            units.append(_Unit(st))  # WITHOUT ROWID, or empty
            continue
        n = min(parts, max(1, st.rows // (SPLIT_ROWS // 2))) if st.rows >= SPLIT_ROWS else 1
        step = (hi - lo + n) // n
        units.extend(_Unit(st, lo + k * step, min(hi, lo + (k + 1) * step - 1)) for k in range(n))
    return units


# ---------------------------------------------------------------------------------------------- PostgreSQL side


@dataclass
class _Ddl:
    metadata: sa.MetaData
    tables: dict[str, sa.Table]


def _build_tables(source: Source, schema: str) -> _Ddl:
    md = sa.MetaData(schema=schema)
    tables: dict[str, sa.Table] = {}
    for st in source.tables.values():
        cols = []
        for sc in st.columns:
            args: list[Any] = []
            if sc.identity_start is not None:
                args.append(sa.Identity(start=sc.identity_start))
            cols.append(
                sa.Column(
                    pg_truncate(sc.map.name),
                    sc.sa_type,
                    *args,
                    nullable=sc.map.nullable and sc.identity_start is None,
                    server_default=sa.text(sc.default_sql) if sc.default_sql else None,
                )
            )
        table = sa.Table(pg_truncate(st.name), md, *cols)
        if _key_with_table(st):
            table.append_constraint(_primary_key(st, table))
        tables[st.name] = table
    return _Ddl(md, tables)


def _key_with_table(st: SourceTable) -> bool:
    """A rowid-alias primary key (`INTEGER PRIMARY KEY`) is created with its table, before the data.

    The load sends rows in rowid order, which is that key's order, so PostgreSQL appends every key at the right
    edge of the index while it parses COPY, on the core the SQLite renderer leaves idle; building it after the
    load was a serial step (0.2 s per million rows here). SQLite guarantees those keys unique and not NULL, so
    this cannot make a load fail. Other keys and indexes (arbitrary order) are still built after the data.
    """
    return bool(st.primary_key) and any(c.identity_start is not None for c in st.columns)


def _primary_key(st: SourceTable, table: sa.Table) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(
        *[table.c[pg_truncate(k)] for k in st.primary_key],
        name=pg_truncate(st.pk_name) if st.pk_name else None,
    )


def _ddl(element: Any) -> str:
    return str(element.compile(dialect=_PG))


def _key_statements(st: SourceTable, table: sa.Table, warnings: list[str]) -> list[str]:
    """Primary key, unique constraints and indexes of one table (built after its data)."""
    out: list[str] = []
    c = table.c
    if st.primary_key and not _key_with_table(st):
        pk = _primary_key(st, table)
        table.append_constraint(pk)
        out.append(_ddl(AddConstraint(pk)))
    for u in st.uniques:
        uc = sa.UniqueConstraint(*[c[pg_truncate(k)] for k in u.columns], name=pg_truncate(u.name))
        table.append_constraint(uc)
        out.append(_ddl(AddConstraint(uc)))
    covered = {tuple(st.primary_key)} | {u.columns for u in st.uniques}
    for ix in st.indexes:
        if ix.unique and ix.columns in covered and ix.name.startswith("sqlite_autoindex"):
            continue
        index = sa.Index(pg_truncate(ix.name), *[c[pg_truncate(k)] for k in ix.columns], unique=ix.unique)
        out.append(_ddl(CreateIndex(index)))
    return out


def _fk_constraints(
    source: Source, ddl: _Ddl, warnings: list[str]
) -> list[tuple[str, sa.ForeignKeyConstraint]]:
    out = []
    used: dict[str, set[str]] = {}
    for st in source.tables.values():
        for fk in st.foreign_keys:
            target = ddl.tables.get(fk.ref_table)
            if target is None:
                warnings.append(
                    f'foreign key of "{st.name}" ({", ".join(fk.columns)}) refers to "{fk.ref_table}", '
                    "which is not copied; not carried"
                )
                continue
            ref_cols = fk.ref_columns
            if not ref_cols or len(ref_cols) != len(fk.columns):
                warnings.append(
                    f'foreign key of "{st.name}" ({", ".join(fk.columns)}) has no usable referenced '
                    f'columns in "{fk.ref_table}"; not carried'
                )
                continue
            table = ddl.tables[st.name]
            name = pg_truncate(fk.name or f"{st.name}_{'_'.join(fk.columns)}_fkey")
            while name in used.setdefault(st.name, set()):
                name = pg_truncate(name + "_")
            used[st.name].add(name)
            try:
                cons = sa.ForeignKeyConstraint(
                    [table.c[pg_truncate(k)] for k in fk.columns],
                    [target.c[pg_truncate(k)] for k in ref_cols],
                    name=name,
                    ondelete=fk.ondelete,
                    onupdate=fk.onupdate,
                    postgresql_not_valid=True,
                )
            except KeyError as exc:
                warnings.append(f'foreign key of "{st.name}" names a missing column {exc}; not carried')
                continue
            table.append_constraint(cons)
            out.append((st.name, cons))
    return out


def _table_ident(schema: str, name: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(pg_truncate(name)))


def _existing(conn: psycopg.Connection, schema: str, names: list[str]) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (schema, [pg_truncate(n) for n in names]),
    ).fetchall()
    return sorted(r[0] for r in rows)


class _Retry(CopyError):
    """The load met a value outside the types chosen from a sample; nothing was committed."""


@dataclass
class _Tracker:
    """Rows, start and end per table across the writers, and the progress callbacks."""

    source: Source
    progress: Callable[[CopyProgress], None] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: dict[str, int] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)  # units not finished, per table

    def start(self, table: str) -> None:
        with self.lock:
            self.started.setdefault(table, time.monotonic())
            self.done.setdefault(table, 0)

    def rows(self, table: str, n: int) -> None:
        with self.lock:
            self.done[table] += n
            self._emit(table, final=False)

    def end(self, table: str) -> bool:
        """One unit of `table` is loaded; True when it was the table's last."""
        with self.lock:
            self.ended[table] = time.monotonic()
            self.remaining[table] -= 1
            if self.remaining[table] == 0:
                self._emit(table, final=True)
                return True
            return False

    def _emit(self, table: str, final: bool) -> None:
        if self.progress is None:
            return
        done = self.done[table]
        total = done if final else max(self.source.tables[table].rows, done)
        rate = done / max(time.monotonic() - self.started[table], 1e-6)
        eta = (total - done) / rate if rate > 0 else None
        self.progress(CopyProgress(table, done, total, rate, 0.0 if final else eta, final))


class _QueuedWriter(QueuedLibpqWriter):
    """psycopg's queued COPY writer (a thread sends while this one reads SQLite), with a bounded queue."""

    def __init__(self, cursor: psycopg.Cursor):
        super().__init__(cursor)
        self._queue = queue.Queue(maxsize=QUEUE_BLOCKS)  # type: ignore[assignment]  # ~128 KiB blocks, bounded


def _chunks(
    reader: sqlite3.Connection, selects: dict[tuple[str, str], str], unit: _Unit, chunk_rows: int
) -> Iterator[tuple[bytes, int]]:
    """The unit's COPY text in chunks of `chunk_rows` rows: through the fast SQL where the table has one, each
    chunk checked and, when a value needed escaping, rendered again (same rows: one snapshot) exactly."""
    name = unit.table.name
    if unit.lo is None:
        cur = reader.execute(selects[(name, "all")])
        try:
            while rows := cur.fetchmany(chunk_rows):
                yield b"".join([r[0] for r in rows]), len(rows)
        finally:
            cur.close()
        return
    first, exact = unit.lo, selects[(name, "ranged")]
    fast = selects.get((name, "fast"))
    isos = tuple(shape for _name, shape in _fast_isos(unit.table))
    while True:
        if fast is None:
            data, top, n = reader.execute(exact, (first, unit.hi, chunk_rows)).fetchone()
        else:
            data, top, n, *extra = reader.execute(fast, (first, unit.hi, chunk_rows)).fetchone()
            if n and not _fast_ok(extra, isos, n):
                data, top, n = reader.execute(exact, (first, top, chunk_rows)).fetchone()
        if not n:
            return
        yield data, n
        if top >= unit.hi:
            return
        first = top + 1


def _writer(
    pg_url: str,
    schema: str,
    reader: sqlite3.Connection,
    todo: queue.Queue,
    selects: dict[tuple[str, str], str],
    chunk_rows: int,
    abort: threading.Event,
    track: _Tracker,
    loaded: Callable[[str], None],
) -> None:
    """One writer thread: its own SQLite reader (same snapshot as the others) and its own PostgreSQL session.

    `loaded(table)` is called once the last unit of a table is committed.
    """
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET synchronous_commit = off")
        while not abort.is_set():
            try:
                unit: _Unit = todo.get_nowait()
            except queue.Empty:
                return
            st = unit.table
            track.start(st.name)
            cols = sql.SQL(", ").join(sql.Identifier(pg_truncate(c.map.name)) for c in st.columns)
            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(_table_ident(schema, st.name), cols)
            with conn.cursor() as pg_cur, pg_cur.copy(stmt, writer=_QueuedWriter(pg_cur)) as copy:
                for data, n in _chunks(reader, selects, unit, chunk_rows):
                    if abort.is_set():
                        raise CopyError("stopped: another table failed")
                    copy.write(data)
                    track.rows(st.name, n)
            conn.commit()
            if track.end(st.name):
                loaded(st.name)


@dataclass
class _TableDdl:
    """What one table gets once its data is in: keys (a failure fails the copy), then the translated CHECK
    constraints and indexes (`constraints`), each on its own: one PostgreSQL rejects is named and left out."""

    keys: list[str]
    translated: list[tuple[str, sql.Composable]] = field(default_factory=list)  # (what, statement)

    def __bool__(self) -> bool:
        return bool(self.keys or self.translated)


def _translated(st: SourceTable, schema: str) -> list[tuple[str, sql.Composable]]:
    out: list[tuple[str, sql.Composable]] = []
    table = _table_ident(schema, st.name)
    for check in st.checks:
        named = (
            sql.SQL("CONSTRAINT {} ").format(sql.Identifier(pg_truncate(check.name)))
            if check.name
            else sql.SQL("")
        )
        what = f'CHECK constraint{f" {check.name!r}" if check.name else ""} on table "{st.name}" ({check.source})'
        out.append(
            (what, sql.SQL("ALTER TABLE {} ADD {}CHECK ({})").format(table, named, sql.SQL(check.sql)))
        )
    for ix in st.expr_indexes:
        stmt = sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
            sql.SQL("UNIQUE " if ix.unique else ""),
            sql.Identifier(pg_truncate(ix.name)),
            table,
            sql.SQL(", ").join(sql.SQL(c) for c in ix.columns),
        )
        if ix.where:
            stmt = stmt + sql.SQL(" WHERE {}").format(sql.SQL(ix.where))
        kind = "unique index" if ix.unique else "index"
        out.append((f'{kind} "{ix.name}" on table "{st.name}" ({ix.why})', stmt))
    return out


def _run_keys(pg_url: str, ddl: _TableDdl, report: CopyReport) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for stmt in ddl.keys:
            conn.execute(stmt)
        conn.commit()
        for what, stmt in ddl.translated:  # type: ignore[assignment]
            try:
                with conn.transaction():
                    conn.execute(stmt)
            except psycopg.Error as exc:
                error = str(exc).strip().splitlines()[0]
                report.warnings.append(f"{what} not carried: PostgreSQL refused its translation ({error})")
            else:
                report.notes.append(f"carried: {what}")


def _validate(
    conn: psycopg.Connection,
    schema: str,
    source: Source,
    fks: list[tuple[str, sa.ForeignKeyConstraint]],
    report: CopyReport,
) -> None:
    rows = conn.execute(
        "SELECT con.conname, cl.relname FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
        "JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = %s AND con.contype = 'f' "
        "AND NOT con.convalidated",
        (schema,),
    ).fetchall()
    by_table: dict[str, list[str]] = {}
    for conname, relname in rows:
        by_table.setdefault(relname, []).append(conname)
    for table_name, cons in fks:
        st = source.tables[table_name]
        conname = str(cons.name)
        if conname not in by_table.get(pg_truncate(table_name), []):
            continue  # already valid (PostgreSQL validates at once when the child table is empty)
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                        _table_ident(schema, table_name), sql.Identifier(conname)
                    )
                )
        except psycopg.Error:
            report.not_valid.append(_orphans(conn, schema, st, cons, conname))


def _orphans(
    conn: psycopg.Connection, schema: str, st: SourceTable, cons: sa.ForeignKeyConstraint, conname: str
) -> ForeignKeyIssue:
    child = [sql.Identifier(c.name) for c in cons.columns]
    parent = [sql.Identifier(e.column.name) for e in cons.elements]
    ref_table = cons.elements[0].column.table.name
    key = [sql.Identifier(pg_truncate(k)) for k in st.primary_key] or child
    cond = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(c) for c in child)
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(p, c) for p, c in zip(parent, child, strict=True)
    )
    base = sql.SQL("FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
        _table_ident(schema, st.name), cond, _table_ident(schema, ref_table), match
    )
    (count,) = conn.execute(sql.SQL("SELECT count(*) ") + base).fetchone()  # type: ignore[misc]
    sel = sql.SQL("SELECT {}, {} ").format(
        sql.SQL(", ").join(sql.SQL("c.{}").format(k) for k in key),
        sql.SQL(", ").join(sql.SQL("c.{}").format(c) for c in child),
    )
    examples = []
    keynames = st.primary_key or tuple(c.name for c in cons.columns)
    for row in conn.execute(sel + base + sql.SQL(f" LIMIT {MAX_ORPHANS}")).fetchall():
        k, v = row[: len(key)], row[len(key) :]
        examples.append(
            "key "
            + ", ".join(f"{n}={x!r}" for n, x in zip(keynames, k, strict=False))
            + " -> missing "
            + ", ".join(f"{e.column.name}={x!r}" for e, x in zip(cons.elements, v, strict=True))
        )
    return ForeignKeyIssue(st.name, conname, ref_table, count, examples)


def _create_views(conn: psycopg.Connection, schema: str, source: Source, report: CopyReport) -> None:
    """The translated views, after the tables; a view over another is retried once that one exists."""
    todo = list(source.views)
    errors: dict[str, str] = {}
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    try:
        while todo:
            left = []
            for view in todo:
                try:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL("CREATE VIEW {} AS {}").format(
                                _table_ident(schema, view.name), sql.SQL(view.select)
                            )
                        )
                except psycopg.Error as exc:
                    errors[view.name] = str(exc).strip().splitlines()[0]
                    left.append(view)
                else:
                    report.notes.append(f'carried: view "{view.name}"')
            if len(left) == len(todo):
                break
            todo = left
    finally:
        conn.execute("RESET search_path")
    for view in todo:
        report.warnings.append(
            f'view "{view.name}" not carried: PostgreSQL refused its translation ({errors[view.name]})'
        )


def _drop(pg_url: str, schema: str, names: list[str]) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(_table_ident(schema, name)))


# ------------------------------------------------------------------------------------------------ entry point


def _readers(jobs: int) -> int:
    """SQLite reader threads: `jobs`, but at most half the CPUs (PostgreSQL needs the rest).

    Measured on 2 shared cores: two SQLite threads in one process were slower than one (SQLite's global
    allocator mutex and the GIL), so small machines read through one connection. Reader processes (rowid halves,
    each with its own COPY session) were measured too: with fork, 1.7-1.9 s instead of 2.1 s for 1M rows on a
    quiet machine and no gain under load; with spawn (fork is unsafe in a threaded caller) the start of an
    interpreter and the imports (~0.35 s) ate all of it. SQLite rendering plus PostgreSQL's COPY parse already
    keep both cores busy.
    """
    return max(1, min(jobs, (os.cpu_count() or 2) // 2))


def copy_database(
    sqlite_path: str,
    pg_url: str,
    tables: list[str] | None = None,
    jobs: int = 4,
    casts: list[Any] | None = None,
    progress: Callable[[CopyProgress], None] | None = None,
    schema: str = "public",
    chunk_rows: int = CHUNK_ROWS,
    sample_rows: int | None = SAMPLE_ROWS,
) -> CopyReport:
    """Copy `sqlite_path` (all app tables, or `tables`) into `schema` of `pg_url`.

    `casts`: the plan's `Cast`s, and its timestamp policy (`schema.plan_casts`).

    Raises `SchemaRefused` (values that cannot be carried exactly, each with its way through; nothing written) or
    `CopyError` (target tables
    already there, or a PostgreSQL failure, after which the created tables are dropped again). `progress` is called
    from the writer threads (serialised by a lock) after every chunk, and once more when a table is done.

    By default the types are chosen from the first `sample_rows` rows of each table, and the row SQL checks every
    value against them during the load. A value outside them stops the load and drops the new tables; the whole
    source is then examined in the same snapshot, and the copy is refused with every problem named, or loaded
    again with the types the full examination chose. With `sample_rows=None` every value is examined before
    anything is written at all (one more pass over the data).
    """
    started = time.monotonic()
    conn, notes = open_source(sqlite_path)
    extra: list[sqlite3.Connection] = []
    try:
        extra = open_snapshots(sqlite_path, conn, _readers(jobs) - 1)
        readers = [conn, *extra]
        if _readers(jobs) > 1 and not extra:
            notes.append("the SQLite write lock stayed busy: the copy read through one connection")
        position = _position(conn, notes)
        source = read_source(conn, tables, casts, sample=sample_rows)
        if source.problems:
            source = read_source(conn, tables, casts)
        if source.problems:
            raise source.refused()
        report = CopyReport(
            str(sqlite_path),
            redact(pg_url),
            schema,
            position,
            warnings=notes + source.warnings,
            notes=list(source.notes),
        )
        try:
            _copy(readers, source, pg_url, schema, max(1, jobs), chunk_rows, progress, report)
        except _Retry as retry:
            if not source.sampled:
                raise CopyError(str(retry)) from retry.__cause__
            source = read_source(conn, tables, casts)
            if source.problems:
                raise source.refused() from None
            report.tables.clear()
            report.warnings = notes + source.warnings
            report.notes = list(source.notes)
            try:
                _copy(readers, source, pg_url, schema, max(1, jobs), chunk_rows, progress, report)
            except _Retry as again:
                raise CopyError(str(again)) from again.__cause__
    finally:
        for c in [conn, *extra]:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
            c.close()
    report.seconds = time.monotonic() - started
    return report


def _copy(
    readers: list[sqlite3.Connection],
    source: Source,
    pg_url: str,
    schema: str,
    jobs: int,
    chunk_rows: int,
    progress: Callable[[CopyProgress], None] | None,
    report: CopyReport,
) -> None:
    names = list(source.tables)
    ddl = _build_tables(source, schema)
    with psycopg.connect(pg_url) as pg:
        there = _existing(pg, schema, names)
        if there:
            raise CopyError(
                f"table(s) already in schema {schema!r} of the target: {', '.join(there)}; "
                "the copy writes into new tables only (drop them or choose another schema)"
            )
        made_schema = not pg.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        try:
            with pg.transaction():
                if made_schema:
                    pg.execute(_ddl(CreateSchema(schema)))
                for name in names:
                    pg.execute(_ddl(CreateTable(ddl.tables[name])))
        except psycopg.Error as exc:
            raise CopyError(f"creating the tables failed: {exc}") from exc
    try:
        key_sql = {
            name: _TableDdl(
                _key_statements(source.tables[name], ddl.tables[name], report.warnings),
                _translated(source.tables[name], schema),
            )
            for name in names
        }
        fks = _fk_constraints(source, ddl, report.warnings)
        _load_and_key(readers, source, pg_url, schema, jobs, chunk_rows, progress, report, key_sql)
        with psycopg.connect(pg_url, autocommit=True) as pg:
            for _table, cons in fks:
                pg.execute(_ddl(AddConstraint(cons)))
            _validate(pg, schema, source, fks, report)
            _create_views(pg, schema, source, report)
            _record_position(pg, report)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            _drop(pg_url, schema, names)
            if made_schema:
                with psycopg.connect(pg_url, autocommit=True) as pg:
                    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if isinstance(exc, psycopg.Error) and not isinstance(exc, CopyError):
            raise CopyError(f"the copy failed and its tables were dropped: {exc}") from exc
        raise


def _load_and_key(
    readers: list[sqlite3.Connection],
    source: Source,
    pg_url: str,
    schema: str,
    jobs: int,
    chunk_rows: int,
    progress: Callable[[CopyProgress], None] | None,
    report: CopyReport,
    key_sql: dict[str, _TableDdl],
) -> None:
    """The load, with each table's keys and indexes built as soon as its data is in, while other tables load.

    A failed key build is raised once the load is over; a failed load cancels the key builds not yet started and
    waits for the running ones (the caller then drops the tables).
    """
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="cockpit-keys") as pool:
        futures: list[Future[None]] = []

        def loaded(table: str) -> None:
            if key_sql.get(table):
                futures.append(pool.submit(_run_keys, pg_url, key_sql[table], report))

        try:
            _load(readers, source, pg_url, schema, chunk_rows, progress, report, loaded)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        for fut in futures:
            fut.result()


def _record_position(pg: psycopg.Connection, report: CopyReport) -> None:
    try:
        from cockpit.drivers.sync.capture import record_copy_position
    except ImportError:  # pragma: no cover
        report.warnings.append("change capture is not available: the copy position was not recorded")
        return
    record_copy_position(pg, report.sqlite_position)


def _load(
    readers: list[sqlite3.Connection],
    source: Source,
    pg_url: str,
    schema: str,
    chunk_rows: int,
    progress: Callable[[CopyProgress], None] | None,
    report: CopyReport,
    loaded: Callable[[str], None] = lambda table: None,
) -> None:
    """COPY every table; `readers` are SQLite connections on one snapshot, one per writer thread.

    `loaded(table)` is called (from a writer thread) as soon as a table's data is all committed.
    """
    guards = _Guards(source)
    selects: dict[tuple[str, str], str] = {}
    for name, st in source.tables.items():
        selects[(name, "all")] = guards.select_sql(st, ranged=False)
        selects[(name, "ranged")] = guards.select_sql(st, ranged=True)
        if any(c.copy_sql_raw is not None for c in st.columns):
            selects[(name, "fast")] = guards.select_sql(st, ranged=True, fast=True)
    for r in readers:
        guards.install(r)
        r.text_factory = bytes
    abort = threading.Event()
    track = _Tracker(source, progress)
    todo: queue.Queue[_Unit] = queue.Queue()
    for u in _units(source, readers[0], len(readers)):
        track.remaining[u.table.name] = track.remaining.get(u.table.name, 0) + 1
        todo.put(u)
    load_started = time.monotonic()
    errors: list[BaseException] = []
    try:
        with ThreadPoolExecutor(max_workers=len(readers), thread_name_prefix="cockpit-copy") as pool:
            futures = [
                pool.submit(_writer, pg_url, schema, r, todo, selects, chunk_rows, abort, track, loaded)
                for r in readers
            ]
            for fut in futures:
                try:
                    fut.result()
                except BaseException as exc:  # noqa: BLE001 - the first error is raised below
                    abort.set()
                    errors.append(exc)
    finally:
        for r in readers:
            r.text_factory = str
    if errors:
        first = next((e for e in errors if not isinstance(e, CopyError)), errors[0])
        if guards.rejected or isinstance(first, psycopg.errors.DataError):
            why = guards.rejected[0] if guards.rejected else str(first).strip()
            raise _Retry(f"a value does not fit the chosen type ({why})") from first
        raise first
    report.tables.extend(
        TableReport(
            n, track.done.get(n, 0), track.ended.get(n, load_started) - track.started.get(n, load_started)
        )
        for n in source.tables
    )
    report.load_seconds = time.monotonic() - load_started
