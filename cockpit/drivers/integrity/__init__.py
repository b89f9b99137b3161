"""Are blue and green the same data? Counts per table, then checksums over primary-key segments, narrowed to the
exact rows that differ.

One canonical form on both sides: every green value is brought to the form blue stores (the sync's own
`ColumnMap.to_sqlite`), and each row becomes the repr of (type, value) pairs, so `1` and `1.0` or `'1'` differ as
they do in SQLite. Segments follow blue's primary key (keyset pagination, `segment_rows` keys each); each segment
is hashed on both sides; a segment whose hashes differ is compared key by key, which names the rows that are
missing on one side or differ. Rows still in flight in the sync are not divergence: a key that differs is checked
again after the sync has had time to carry it (`settle_s`), and only what still differs counts.

`score` (the `data_integrity_score` metric, %) is 100 x matching rows / rows compared. Output names rows by key
and masks personal data (e-mails, CPF, CNPJ) unless asked not to.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cockpit.drivers.sync.capture import qi
from cockpit.drivers.sync.schema import TableMap, pg_truncate
from cockpit.drivers.sync.values import identity

MAX_LISTED = 20
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_CNPJ = re.compile(r"\b\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?(\d{2})\b")
_CPF = re.compile(r"\b\d{3}\.?\d{3}\.?\d{3}-?(\d{2})\b")


def mask(text: str) -> str:
    """E-mails, CNPJs and CPFs in `text`, masked (LGPD): `a***@x.com`, `**.***.***/****-12`, `***.***.***-12`."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)
    text = _CNPJ.sub(lambda m: f"**.***.***/****-{m.group(1)}", text)
    return _CPF.sub(lambda m: f"***.***.***-{m.group(1)}", text)


@dataclass(frozen=True)
class RowDiff:
    key: tuple[Any, ...]
    kind: str  # missing_on_green | missing_on_blue | different
    columns: tuple[str, ...] = ()
    blue: tuple[Any, ...] | None = None
    green: tuple[Any, ...] | None = None

    def describe(self, unmask: bool = False) -> str:
        show = (lambda v: repr(v)) if unmask else (lambda v: mask(repr(v)))
        key = ", ".join(show(k) for k in self.key)
        if self.kind != "different":
            return f"({key}) {self.kind.replace('_', ' ')}"
        return f"({key}) differs in {', '.join(self.columns)}"


@dataclass(frozen=True)
class TableIntegrity:
    table: str
    blue_rows: int
    green_rows: int
    segments: int
    mismatched_segments: int
    diffs: tuple[RowDiff, ...] = ()
    compared: int = 0  # distinct keys compared
    note: str = ""

    @property
    def ok(self) -> bool:
        # With a key, the row-by-row comparison decides; the counts, read a moment apart while the app writes, are
        # only shown. Without a key, counts are all there is (a differing count sets `note`).
        return not self.diffs and not self.note


@dataclass(frozen=True)
class IntegrityReport:
    tables: tuple[TableIntegrity, ...]
    duration_s: float
    settled_keys: int = 0  # keys that differed at first and caught up (in flight in the sync)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def compared(self) -> int:
        return sum(t.compared for t in self.tables)

    def table(self, name: str) -> TableIntegrity:
        return next(t for t in self.tables if t.table == name)

    @property
    def score(self) -> float:
        """% of compared rows that match (100 when nothing could differ)."""
        bad = sum(len(t.diffs) for t in self.tables)
        total = self.compared
        return 100.0 if total == 0 else round(100.0 * (total - bad) / total, 4)

    def summary(self, unmask: bool = False) -> str:
        lines = []
        for t in self.tables:
            head = (
                f"{t.table}: blue {t.blue_rows} rows, green {t.green_rows} rows, "
                f"{t.segments} segments, {t.mismatched_segments} mismatched"
            )
            lines.append(("ok   " if t.ok else "DIFF ") + head + (f" ({t.note})" if t.note else ""))
            for d in t.diffs[:MAX_LISTED]:
                lines.append(f"       {d.describe(unmask)}")
            if len(t.diffs) > MAX_LISTED:
                lines.append(f"       ... and {len(t.diffs) - MAX_LISTED} more")
        lines.append(
            f"score {self.score:g}% over {self.compared} rows in {self.duration_s:.2f}s"
            + (
                f"; {self.settled_keys} rows caught up while checking (in flight)"
                if self.settled_keys
                else ""
            )
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self, unmask: bool = False) -> dict[str, Any]:
        show = (lambda v: v) if unmask else (lambda v: mask(str(v)) if isinstance(v, str) else v)
        return {
            "ok": self.ok,
            "score": self.score,
            "compared": self.compared,
            "duration_s": round(self.duration_s, 3),
            "settled_keys": self.settled_keys,
            "notes": list(self.notes),
            "tables": [
                {
                    "table": t.table,
                    "ok": t.ok,
                    "blue_rows": t.blue_rows,
                    "green_rows": t.green_rows,
                    "segments": t.segments,
                    "mismatched_segments": t.mismatched_segments,
                    "note": t.note or None,
                    "diffs": [
                        {"key": [show(k) for k in d.key], "kind": d.kind, "columns": list(d.columns)}
                        for d in t.diffs[:MAX_LISTED]
                    ],
                    "diff_count": len(t.diffs),
                }
                for t in self.tables
            ],
        }


def _canon_row(values: Sequence[Any]) -> str:
    return repr(tuple((type(v).__name__, v) for v in values))


class _Table:
    """Reads one table on both sides in blue's key order and in blue's value forms."""

    def __init__(self, tm: TableMap, blue: sqlite3.Connection, green: psycopg.Connection, schema: str):
        self.tm = tm
        self.blue = blue
        self.green = green
        self.pk = tm.primary_key
        names = [c.name for c in tm.columns]
        self.key_index = [names.index(k) for k in self.pk]
        self.cols = {c.name: c for c in tm.columns}
        self.s_cols = ", ".join(qi(n) for n in names)
        self.s_pk = ", ".join(qi(k) for k in self.pk)
        self.s_table = qi(tm.name)
        self.g_table = sql.Identifier(schema, pg_truncate(tm.name))
        self.g_cols = sql.SQL(", ").join(sql.Identifier(pg_truncate(n)) for n in names)
        text_key = [self.cols[k].pg_type == "text" for k in self.pk]
        self.g_pk = sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL('{} COLLATE "C"').format(sql.Identifier(pg_truncate(k)))
                if t
                else sql.Identifier(pg_truncate(k))
                for k, t in zip(self.pk, text_key, strict=True)
            )
        )
        self.g_order = sql.SQL(", ").join(
            sql.SQL('{} COLLATE "C"').format(sql.Identifier(pg_truncate(k)))
            if t
            else sql.Identifier(pg_truncate(k))
            for k, t in zip(self.pk, text_key, strict=True)
        )
        self.to_blue: list[Callable[[Any], Any]] = [c.to_sqlite or identity for c in tm.columns]
        # only the columns whose forms differ are converted (most are the same on both sides)
        self.convert = [(i, f) for i, f in enumerate(self.to_blue) if f is not identity]

    def counts(self) -> tuple[int, int]:
        b = self.blue.execute(f"SELECT count(*) FROM {self.s_table}").fetchone()[0]
        g = self.green.execute(sql.SQL("SELECT count(*) FROM {}").format(self.g_table)).fetchone()[0]
        return int(b), int(g)

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.key_index)

    def blue_segments(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        marks = ", ".join("?" for _ in self.pk)
        base = f"SELECT {self.s_cols} FROM {self.s_table}"
        rows = self.blue.execute(f"{base} ORDER BY {self.s_pk} LIMIT ?", (size,)).fetchall()
        while rows:
            yield rows
            last = self.key_of(rows[-1])
            rows = self.blue.execute(
                f"{base} WHERE ({self.s_pk}) > ({marks}) ORDER BY {self.s_pk} LIMIT ?", (*last, size)
            ).fetchall()

    def _pg_key(self, key: tuple[Any, ...]) -> list[Any]:
        return [self.cols[k].to_pg(v) for k, v in zip(self.pk, key, strict=True)]

    def green_rows(self, lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None) -> list[tuple[Any, ...]]:
        """Green rows with lo <= key <= hi (None: open), in blue's forms."""
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk))
        where, params = [], []
        if lo is not None:
            where.append(sql.SQL("{} >= {}").format(self.g_pk, marks))
            params += self._pg_key(lo)
        if hi is not None:
            where.append(sql.SQL("{} <= {}").format(self.g_pk, marks))
            params += self._pg_key(hi)
        query = sql.SQL("SELECT {} FROM {}").format(self.g_cols, self.g_table)
        if where:
            query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(where))
        rows = self.green.execute(sql.SQL("{} ORDER BY {}").format(query, self.g_order), params).fetchall()
        return self.in_blue_forms(rows)

    def in_blue_forms(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not self.convert:
            return rows
        out = []
        for r in rows:
            row = list(r)
            for i, f in self.convert:
                row[i] = f(row[i])
            out.append(tuple(row))
        return out

    def green_after(self, last: tuple[Any, ...], before: bool = False) -> list[tuple[Any, ...]]:
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk))
        op = sql.SQL("<" if before else ">")
        query = sql.SQL("SELECT {} FROM {} WHERE {} {} {}").format(
            self.g_cols, self.g_table, self.g_pk, op, marks
        )
        return self.in_blue_forms(self.green.execute(query, self._pg_key(last)).fetchall())

    KEYS_PER_QUERY = 500

    def fetch_keys(self, keys: Sequence[tuple[Any, ...]]) -> tuple[dict[tuple, tuple], dict[tuple, tuple]]:
        """The current rows of `keys` (blue's forms) on both sides, a few hundred keys a query."""
        blue: dict[tuple, tuple] = {}
        green: dict[tuple, tuple] = {}
        one = "(" + ", ".join("?" for _ in self.pk) + ")"
        for i in range(0, len(keys), self.KEYS_PER_QUERY):
            chunk = keys[i : i + self.KEYS_PER_QUERY]
            values = ", ".join([one] * len(chunk))
            rows = self.blue.execute(
                f"SELECT {self.s_cols} FROM {self.s_table} WHERE ({self.s_pk}) IN (VALUES {values})",
                [v for key in chunk for v in key],
            ).fetchall()
            blue.update((self.key_of(r), tuple(r)) for r in rows)
            marks = sql.SQL(", ").join(
                sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk)) for _ in chunk
            )
            query = sql.SQL("SELECT {} FROM {} WHERE {} IN (VALUES {})").format(
                self.g_cols,
                self.g_table,
                sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(pg_truncate(k)) for k in self.pk)),
                marks,
            )
            found = self.green.execute(query, [v for key in chunk for v in self._pg_key(key)]).fetchall()
            green.update((self.key_of(r), r) for r in self.in_blue_forms(found))
        return blue, green

    def diff(self, blue: dict[tuple, tuple], green: dict[tuple, tuple]) -> list[RowDiff]:
        out = []
        names = [c.name for c in self.tm.columns]
        for key in sorted(set(blue) | set(green), key=repr):
            b, g = blue.get(key), green.get(key)
            if g is None:
                out.append(RowDiff(key, "missing_on_green", blue=b))
            elif b is None:
                out.append(RowDiff(key, "missing_on_blue", green=g))
            elif _canon_row(b) != _canon_row(g):
                cols = tuple(
                    n for n, x, y in zip(names, b, g, strict=True) if _canon_row((x,)) != _canon_row((y,))
                )
                out.append(RowDiff(key, "different", cols, b, g))
        return out


def _digest(rows: list[tuple[Any, ...]]) -> bytes:
    """One segment's checksum: `repr` tells int, float, text, bytes, bool and None apart (as _canon_row's type
    names do), and one repr of the whole list is C code (a row at a time in Python was most of a check's time)."""
    return hashlib.blake2b(repr(rows).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def check(
    sqlite_path: str,
    pg_url: str,
    mappings: dict[str, TableMap],
    *,
    schema: str = "public",
    segment_rows: int = 1000,
    settle: Callable[[], object] | None = None,
    connect_timeout: float = 10.0,
    only: Mapping[str, Iterable[tuple[Any, ...]]] | None = None,
) -> IntegrityReport:
    """Compare every table of `mappings` on both sides. Blocking; bounded by the data size.

    `only`: per table, the keys (blue's forms) of the rows to compare instead of all of them; the counts are still
    compared in full (the rollback checks the rows the sync touched: seconds, whatever the database's size).

    `settle` is called once when rows differ, before they are looked at again: it should return when the sync has
    carried what was in flight (the controller waits for the sync to drain, bounded). None: no second look.
    """
    started = time.monotonic()
    blue = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=10)
    notes: list[str] = []
    try:
        with psycopg.connect(pg_url, connect_timeout=connect_timeout, autocommit=True) as green:
            results: list[TableIntegrity] = []
            pending: list[tuple[_Table, list[RowDiff], TableIntegrity]] = []
            for tm in mappings.values():
                if not tm.primary_key:
                    notes.append(f"{tm.name}: no primary key, counts only")
                t = _Table(tm, blue, green, schema)
                b_count, g_count = t.counts()
                if not tm.primary_key:
                    results.append(
                        TableIntegrity(
                            tm.name,
                            b_count,
                            g_count,
                            0,
                            0,
                            compared=0,
                            note="" if b_count == g_count else "counts differ",
                        )
                    )
                    continue
                diffs, segments, bad_segments, compared = (
                    _compare_table(t, segment_rows)
                    if only is None
                    else _compare_keys(t, only.get(tm.name, ()))
                )
                ti = TableIntegrity(tm.name, b_count, g_count, segments, bad_segments, tuple(diffs), compared)
                if diffs:
                    pending.append((t, diffs, ti))
                else:
                    results.append(ti)
            settled = 0
            if pending and settle is not None:
                settle()
            for t, diffs, ti in pending:
                if settle is not None:
                    blue_now, green_now = t.fetch_keys([d.key for d in diffs])
                    still = t.diff(blue_now, green_now)
                else:
                    still = diffs
                settled += len(diffs) - len(still)
                b_count, g_count = t.counts()
                results.append(
                    TableIntegrity(
                        ti.table,
                        b_count,
                        g_count,
                        ti.segments,
                        ti.mismatched_segments,
                        tuple(still),
                        ti.compared,
                    )
                )
    finally:
        blue.close()
    order = {name: i for i, name in enumerate(mappings)}
    results.sort(key=lambda r: order[r.table])
    return IntegrityReport(tuple(results), time.monotonic() - started, settled, tuple(notes))


def _compare_keys(t: _Table, keys: Iterable[tuple[Any, ...]]) -> tuple[list[RowDiff], int, int, int]:
    """Only the rows of `keys` (the rows the sync touched): a segment per query's worth of keys."""
    ordered = sorted(set(keys), key=repr)
    diffs: list[RowDiff] = []
    bad = 0
    for i in range(0, len(ordered), t.KEYS_PER_QUERY):
        found = t.diff(*t.fetch_keys(ordered[i : i + t.KEYS_PER_QUERY]))
        bad += bool(found)
        diffs += found
    return diffs, -(-len(ordered) // t.KEYS_PER_QUERY), bad, len(ordered)


def _compare_table(t: _Table, segment_rows: int) -> tuple[list[RowDiff], int, int, int]:
    diffs: list[RowDiff] = []
    segments = bad = compared = 0
    first: tuple[Any, ...] | None = None
    last: tuple[Any, ...] | None = None
    for rows in t.blue_segments(segment_rows):
        segments += 1
        lo, hi = t.key_of(rows[0]), t.key_of(rows[-1])
        first = first or lo
        last = hi
        green = t.green_rows(lo, hi)
        compared += len(rows)
        if _digest(rows) == _digest(green):
            continue
        bad += 1
        blue_map = {t.key_of(r): tuple(r) for r in rows}
        green_map = {t.key_of(r): r for r in green}
        diffs += t.diff(blue_map, green_map)
        compared += len(set(green_map) - set(blue_map))
    # green rows outside blue's key range: before the first key, after the last (or all, when blue is empty)
    extra = (
        t.green_rows(None, None) if last is None else t.green_after(last) + t.green_after(first, before=True)
    )  # type: ignore[arg-type]
    if extra:
        segments += 1
        bad += 1
        diffs += t.diff({}, {t.key_of(r): r for r in extra})
        compared += len(extra)
    return diffs, segments, bad, compared


class IntegrityWatch:
    """Runs `check` every `interval_s` in its own thread and gives the last score as a metrics source.

    The controller reads `poll()` once a tick (never waits for a check) and the rollback's integrity step calls
    `check_now()`. Differences are looked at again after `settle()` (the sync draining, bounded).
    """

    def __init__(
        self,
        sqlite_path: str,
        pg_url: str,
        tables: list[str] | None,
        *,
        casts: list[Any] | None = None,
        interval_s: float = 60.0,
        settle: Callable[[], object] | None = None,
        on_report: Callable[[IntegrityReport], object] | None = None,
    ):
        self.sqlite_path = sqlite_path
        self.pg_url = pg_url
        self.tables = tables
        self.casts = casts
        self.interval_s = interval_s
        self.settle = settle
        self.on_report = on_report
        self.last: IntegrityReport | None = None
        self.error: str | None = None
        self._mappings: dict[str, TableMap] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._due = 0.0

    def mappings(self) -> dict[str, TableMap]:
        if self._mappings is None:
            from cockpit.drivers.sync.schema import read_mapping

            conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
            try:
                self._mappings = read_mapping(conn, tables=self.tables, casts=self.casts)
            finally:
                conn.close()
        return self._mappings

    def check_now(self, touched_only: bool = False) -> IntegrityReport:
        """A full comparison; with `touched_only`, the counts and the rows the sync has carried either way since
        capture was installed (the rollback's step: DESIGN's "rows touched since the split began", a superset)."""
        with self._lock:  # one check at a time
            try:
                only = self._touched() if touched_only else None
                report = check(self.sqlite_path, self.pg_url, self.mappings(), settle=self.settle, only=only)
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                raise
            self.last, self.error = report, None
            if self.on_report is not None:
                self.on_report(report)
            return report

    def _touched(self) -> dict[str, set[tuple[Any, ...]]]:
        from cockpit.drivers.sync.capture import touched_keys

        conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
        try:
            return touched_keys(conn)
        finally:
            conn.close()

    def poll(self) -> dict[str, float | None]:
        now = time.monotonic()
        if now >= self._due and (self._thread is None or not self._thread.is_alive()):
            self._due = now + self.interval_s
            self._thread = threading.Thread(target=self._background, name="cockpit-integrity", daemon=True)
            self._thread.start()
        return {} if self.last is None else {"data_integrity_score": self.last.score}

    def _background(self) -> None:
        try:
            self.check_now()
        except Exception:  # kept in self.error; the score stays missing rather than wrong
            pass

    def stop(self) -> None:
        """A check under way only reads; it is not waited for long (a one-shot CLI action must not hang on it)."""
        if self._thread is not None:
            self._thread.join(2)
