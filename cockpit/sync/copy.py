"""The initial copy: one consistent SQLite snapshot into PostgreSQL with COPY, tables in parallel.

Order of work:
1. SQLite: WAL (so the app keeps writing during the copy), a busy timeout, `BEGIN` and a first read: that pins the
   snapshot. Inside it: the schema and every column's stored values are examined (`schema.read_source`) and the
   change-log position is read (`cockpit.sync.capture.sqlite_position`). Any problem -> `SchemaRefused`, nothing
   written. Target tables that already exist -> `CopyError`, nothing written.
2. PostgreSQL: the tables, without keys or indexes, in one transaction (DDL compiled by SQLAlchemy's PostgreSQL
   dialect, identities starting above the highest key).
3. Data: ONE reader thread owns the SQLite connection (SQLite snapshots are per connection, so one connection is the
   simple way to give every table the same instant) and serves chunks on request; `jobs` writer threads each own a
   PostgreSQL connection and run one `COPY ... FROM STDIN` per table, keeping one chunk request in flight ahead.
   SQLite itself renders each row as a line of COPY text (escaping, hex for blobs, 't'/'f' for booleans), so the
   Python side only moves bytes; kinds SQLite cannot render exactly (reals needing 17 digits, epoch and Julian
   dates, plan casts) call back into the same `to_pg` converters the sync uses.
4. Primary keys, unique constraints and indexes (in parallel per table), then foreign keys `NOT VALID`, then each
   validated; a failed validation leaves it NOT VALID and the report names the orphan rows.
5. `cockpit.sync.capture.record_copy_position` stores the position, so blue->green capture resumes exactly there.

A failure in steps 2-4 drops every table the copy created: the target is left as it was.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateSchema, CreateTable

from cockpit.plan import Cast
from cockpit.redact import redact
from cockpit.sync import values as V
from cockpit.sync.schema import SchemaRefused, Source, SourceTable, pg_truncate, qi, read_source

__all__ = ["CopyError", "CopyProgress", "CopyReport", "SchemaRefused", "TableReport", "copy_database"]

CHUNK_ROWS = 5000
BUSY_TIMEOUT_MS = 10_000
MAX_ORPHANS = 5
_PG = postgresql.dialect()


class CopyError(Exception):
    """The copy could not be done; whatever it had created in PostgreSQL was dropped again."""


@dataclass(frozen=True)
class CopyProgress:
    table: str
    rows_done: int
    rows_total: int
    rows_per_s: float
    eta_s: float | None  # None until a rate is known


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
    warnings: list[str] = field(default_factory=list)
    not_valid: list[ForeignKeyIssue] = field(default_factory=list)

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
            lines.append(f"  {t.name:<{width}}  {t.rows:>10} rows  {t.seconds:7.2f}s  {t.rows_per_s:>12,.0f} rows/s")
        for fk in self.not_valid:
            lines.append(
                f"  foreign key {fk.constraint} on {fk.table} -> {fk.references} left NOT VALID: {fk.orphans} "
                f"orphan row(s): " + "; ".join(fk.examples)
            )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return redact("\n".join(lines))


# ------------------------------------------------------------------------------------------------ SQLite side


def open_source(sqlite_path: str) -> tuple[sqlite3.Connection, list[str]]:
    """A connection for the copy's read transaction; the database is put in WAL mode if it is not."""
    notes: list[str] = []
    conn = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.Error as exc:
            mode = f"{mode} ({exc})"
        if str(mode).lower() == "wal":
            notes.append("the SQLite database was switched to WAL mode (writers are not blocked by the copy's read)")
        else:
            notes.append(f"the SQLite database could not be put in WAL mode ({mode}): writers wait while the copy reads")
    return conn, notes


def _position(conn: sqlite3.Connection, notes: list[str]) -> int:
    try:
        from cockpit.sync.capture import sqlite_position
    except ImportError:  # pragma: no cover - the capture module is part of the package
        notes.append("change capture is not available: position 0 recorded")
        return 0
    return int(sqlite_position(conn))


class _Feeder:
    """The one thread that reads SQLite: serves chunks of COPY text per table, in request order."""

    def __init__(self, conn: sqlite3.Connection, selects: dict[str, str], chunk_rows: int):
        self.conn = conn
        self.selects = selects
        self.chunk_rows = chunk_rows
        self.requests: queue.Queue[tuple[str, queue.Queue] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="cockpit-copy-reader", daemon=True)
        self.thread.start()

    def request(self, table: str) -> queue.Queue:
        reply: queue.Queue = queue.Queue(maxsize=1)
        self.requests.put((table, reply))
        return reply

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join()

    def _run(self) -> None:
        cursors: dict[str, sqlite3.Cursor] = {}
        while True:
            item = self.requests.get()
            if item is None:
                break
            table, reply = item
            try:
                cur = cursors.get(table)
                if cur is None:
                    cur = cursors[table] = self.conn.execute(self.selects[table])
                rows = cur.fetchmany(self.chunk_rows)
                if rows:
                    reply.put((b"".join([r[0] for r in rows]), len(rows)))
                else:
                    cursors.pop(table).close()
                    reply.put((None, 0))
            except BaseException as exc:  # noqa: BLE001 - handed to the writer that asked
                reply.put(exc)
        for cur in cursors.values():
            cur.close()


def _select_sql(table: SourceTable, fn_index: dict[tuple[str, str], int]) -> str:
    fields = []
    for col in table.columns:
        idx = fn_index.get((table.name, col.map.name))
        fn = f"cockpit_copy_field({idx}, {qi(col.map.name)})" if idx is not None else "NULL"
        fields.append(col.copy_sql.replace("{fn}", fn))
    return "SELECT " + " || char(9) || ".join(fields) + f" || char(10) FROM {qi(table.name)}"


def _register_fallbacks(conn: sqlite3.Connection, source: Source) -> dict[tuple[str, str], int]:
    funcs: list[Callable[[Any], str]] = []
    index: dict[tuple[str, str], int] = {}
    for table in source.tables.values():
        for col in table.columns:
            if "{fn}" in col.copy_sql:
                index[(table.name, col.map.name)] = len(funcs)
                to_pg = col.map.to_pg
                funcs.append(lambda v, to_pg=to_pg: V.copy_text(to_pg(v)))

    def field_text(i: int, value: Any) -> str:
        return funcs[i](value)

    conn.create_function("cockpit_copy_field", 2, field_text, deterministic=True)
    return index


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
        tables[st.name] = sa.Table(pg_truncate(st.name), md, *cols)
    return _Ddl(md, tables)


def _ddl(element: Any) -> str:
    return str(element.compile(dialect=_PG))


def _key_statements(st: SourceTable, table: sa.Table, warnings: list[str]) -> list[str]:
    """Primary key, unique constraints and indexes of one table (built after its data)."""
    out: list[str] = []
    c = table.c
    if st.primary_key:
        pk = sa.PrimaryKeyConstraint(*[c[pg_truncate(k)] for k in st.primary_key],
                                     name=pg_truncate(st.pk_name) if st.pk_name else None)
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


def _fk_constraints(source: Source, ddl: _Ddl, warnings: list[str]) -> list[tuple[str, sa.ForeignKeyConstraint]]:
    out = []
    used: dict[str, set[str]] = {}
    for st in source.tables.values():
        for fk in st.foreign_keys:
            target = ddl.tables.get(fk.ref_table)
            if target is None:
                warnings.append(f'foreign key of "{st.name}" ({", ".join(fk.columns)}) refers to "{fk.ref_table}", '
                                "which is not copied; not carried")
                continue
            ref_cols = fk.ref_columns
            if not ref_cols or len(ref_cols) != len(fk.columns):
                warnings.append(f'foreign key of "{st.name}" ({", ".join(fk.columns)}) has no usable referenced '
                                f'columns in "{fk.ref_table}"; not carried')
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


def _load_table(pg_url: str, schema: str, st: SourceTable, feeder: _Feeder, abort: threading.Event,
                on_rows: Callable[[str, int, float], None]) -> TableReport:
    started = time.monotonic()
    cols = sql.SQL(", ").join(sql.Identifier(pg_truncate(c.map.name)) for c in st.columns)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(_table_ident(schema, st.name), cols)
    done = 0
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            pending = feeder.request(st.name)
            while True:
                item = pending.get()
                if isinstance(item, BaseException):
                    raise item
                data, n = item
                if data is None:
                    break
                if abort.is_set():
                    raise CopyError("stopped: another table failed")
                pending = feeder.request(st.name)
                copy.write(data)
                done += n
                on_rows(st.name, done, started)
        conn.commit()
    return TableReport(st.name, done, time.monotonic() - started)


def _run_keys(pg_url: str, statements: list[str]) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for stmt in statements:
            conn.execute(stmt)
        conn.commit()


def _validate(conn: psycopg.Connection, schema: str, source: Source, fks: list[tuple[str, sa.ForeignKeyConstraint]],
              report: CopyReport) -> None:
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
                conn.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                    _table_ident(schema, table_name), sql.Identifier(conname)))
        except psycopg.Error:
            report.not_valid.append(_orphans(conn, schema, st, cons, conname))


def _orphans(conn: psycopg.Connection, schema: str, st: SourceTable, cons: sa.ForeignKeyConstraint,
             conname: str) -> ForeignKeyIssue:
    child = [sql.Identifier(c.name) for c in cons.columns]
    parent = [sql.Identifier(e.column.name) for e in cons.elements]
    ref_table = cons.elements[0].column.table.name
    key = [sql.Identifier(pg_truncate(k)) for k in st.primary_key] or child
    cond = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(c) for c in child)
    match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(p, c) for p, c in zip(parent, child, strict=True))
    base = sql.SQL("FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
        _table_ident(schema, st.name), cond, _table_ident(schema, ref_table), match)
    (count,) = conn.execute(sql.SQL("SELECT count(*) ") + base).fetchone()
    sel = sql.SQL("SELECT {}, {} ").format(sql.SQL(", ").join(sql.SQL("c.{}").format(k) for k in key),
                                           sql.SQL(", ").join(sql.SQL("c.{}").format(c) for c in child))
    examples = []
    keynames = st.primary_key or tuple(c.name for c in cons.columns)
    for row in conn.execute(sel + base + sql.SQL(f" LIMIT {MAX_ORPHANS}")).fetchall():
        k, v = row[: len(key)], row[len(key):]
        examples.append(
            "key " + ", ".join(f"{n}={x!r}" for n, x in zip(keynames, k, strict=False))
            + " -> missing " + ", ".join(f"{e.column.name}={x!r}" for e, x in zip(cons.elements, v, strict=True))
        )
    return ForeignKeyIssue(st.name, conname, ref_table, count, examples)


def _drop(pg_url: str, schema: str, names: list[str]) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(_table_ident(schema, name)))


# ------------------------------------------------------------------------------------------------ entry point


def copy_database(
    sqlite_path: str,
    pg_url: str,
    tables: list[str] | None = None,
    jobs: int = 4,
    casts: list[Cast] | None = None,
    progress: Callable[[CopyProgress], None] | None = None,
    schema: str = "public",
    chunk_rows: int = CHUNK_ROWS,
) -> CopyReport:
    """Copy `sqlite_path` (all app tables, or `tables`) into `schema` of `pg_url`.

    Raises `SchemaRefused` (values that cannot be carried exactly; nothing written) or `CopyError` (target tables
    already there, or a PostgreSQL failure, after which the created tables are dropped again). `progress` is called
    from the writer threads (serialised by a lock) after every chunk.
    """
    started = time.monotonic()
    conn, notes = open_source(sqlite_path)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # pins the snapshot
        position = _position(conn, notes)
        source = read_source(conn, tables, casts)
        if source.problems:
            raise SchemaRefused(source.problems)
        report = CopyReport(str(sqlite_path), redact(pg_url), schema, position, warnings=notes + source.warnings)
        _copy(conn, source, pg_url, schema, max(1, jobs), chunk_rows, progress, report)
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()
    report.seconds = time.monotonic() - started
    return report


def _copy(conn: sqlite3.Connection, source: Source, pg_url: str, schema: str, jobs: int, chunk_rows: int,
          progress: Callable[[CopyProgress], None] | None, report: CopyReport) -> None:
    names = list(source.tables)
    ddl = _build_tables(source, schema)
    with psycopg.connect(pg_url) as pg:
        there = _existing(pg, schema, names)
        if there:
            raise CopyError(f"table(s) already in schema {schema!r} of the target: {', '.join(there)}; "
                            "the copy writes into new tables only (drop them or choose another schema)")
        has_schema = pg.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        try:
            with pg.transaction():
                if not has_schema:
                    pg.execute(_ddl(CreateSchema(schema)))
                for name in names:
                    pg.execute(_ddl(CreateTable(ddl.tables[name])))
        except psycopg.Error as exc:
            raise CopyError(f"creating the tables failed: {exc}") from exc
    try:
        _load(conn, source, pg_url, schema, jobs, chunk_rows, progress, report)
        key_sql = {name: _key_statements(source.tables[name], ddl.tables[name], report.warnings) for name in names}
        fks = _fk_constraints(source, ddl, report.warnings)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in [pool.submit(_run_keys, pg_url, stmts) for stmts in key_sql.values() if stmts]:
                fut.result()
        with psycopg.connect(pg_url, autocommit=True) as pg:
            for _table, cons in fks:
                pg.execute(_ddl(AddConstraint(cons)))
            _validate(pg, schema, source, fks, report)
            _record_position(pg, report)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            _drop(pg_url, schema, names)
        if isinstance(exc, psycopg.Error):
            raise CopyError(f"the copy failed and its tables were dropped: {exc}") from exc
        raise


def _record_position(pg: psycopg.Connection, report: CopyReport) -> None:
    try:
        from cockpit.sync.capture import record_copy_position
    except ImportError:  # pragma: no cover
        report.warnings.append("change capture is not available: the copy position was not recorded")
        return
    record_copy_position(pg, report.sqlite_position)


def _load(conn: sqlite3.Connection, source: Source, pg_url: str, schema: str, jobs: int, chunk_rows: int,
          progress: Callable[[CopyProgress], None] | None, report: CopyReport) -> None:
    fn_index = _register_fallbacks(conn, source)
    selects = {name: _select_sql(st, fn_index) for name, st in source.tables.items()}
    conn.text_factory = bytes
    feeder = _Feeder(conn, selects, chunk_rows)
    abort = threading.Event()
    lock = threading.Lock()

    def on_rows(table: str, done: int, start: float) -> None:
        if progress is None:
            return
        with lock:
            total = source.tables[table].rows
            elapsed = max(time.monotonic() - start, 1e-6)
            rate = done / elapsed
            eta = (total - done) / rate if rate > 0 else None
            progress(CopyProgress(table, done, total, rate, eta))

    order = sorted(source.tables.values(), key=lambda t: -t.rows)
    load_started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="cockpit-copy") as pool:
            futures = [pool.submit(_load_table, pg_url, schema, st, feeder, abort, on_rows) for st in order]
            errors = []
            for fut in futures:
                try:
                    report.tables.append(fut.result())
                except BaseException as exc:  # noqa: BLE001 - the first error is raised below
                    abort.set()
                    errors.append(exc)
            if errors:
                raise errors[0]
    finally:
        feeder.stop()
        conn.text_factory = str
    report.load_seconds = time.monotonic() - load_started
