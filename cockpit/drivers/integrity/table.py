"""One table on both sides: key ranges, segment hashes in each database, rows in blue's forms, the row comparison.

A range is `(lo, hi)` over blue's primary key, `lo <= key < hi`, None for an open end; keys are in blue's forms.
Both sides order keys the same way: SQLite's BINARY collation (text compared with `COLLATE BINARY` on blue) and
PostgreSQL's "C" on green, byte order of UTF-8 on both.

`blue_hash` and `green_hashes` give per range the row count and the md5 of the rows' canonical texts (see
`canonical`) in key order: blue concatenates with `group_concat` over an index range scan (key order), on several
connections at once; green with `string_agg(... ORDER BY key)`, every range of a level in one statement (one round
trip): an index range scan per range (`LATERAL`) where green's key index sorts as blue does, else rows assigned to
ranges by `width_bucket` over the sorted range starts (one key column) or by a running count of boundary markers
merged into the key order (several), then sorted. Were a scan ever to hand rows in another order, the hashes would
differ and the rows be compared one by one: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import Any

from psycopg import sql

from cockpit.drivers.integrity.canonical import (
    ColumnForm,
    blue_row_sql,
    column_form,
    green_field_sql,
    green_prepared,
    register_blue,
)
from cockpit.drivers.integrity.green import Green
from cockpit.drivers.integrity.report import RowDiff
from cockpit.drivers.sync.capture import qi
from cockpit.drivers.sync.schema import TableMap, pg_truncate
from cockpit.drivers.sync.values import identity

Key = tuple[Any, ...]
Range = tuple[Key | None, Key | None]
Hash = tuple[int, str | None, str | None]  # rows, md5 of the columns rendered in SQL, md5 of those streamed
_TEXT_KEYS = {"text", "date", "timestamp", "timestamptz"}  # stored as text on blue (or may be)


def _canon_row(values: Sequence[Any]) -> str:
    return repr(tuple((type(v).__name__, v) for v in values))


class Table:
    """Reads one table on both sides in blue's key order and in blue's value forms."""

    KEYS_PER_QUERY = 500

    def __init__(
        self,
        tm: TableMap,
        blue: sqlite3.Connection,
        green: Green,
        schema: str,
        casts: Iterable[str] = (),
        in_sql: bool = True,
        blue_jobs: int = 1,
    ):
        self.tm = tm
        self.blue_jobs = blue_jobs
        self.blue = blue
        self.green = green
        self.pk = tm.primary_key
        cast = set(casts)
        self.forms = [column_form(c, c.name in cast, in_sql) for c in tm.columns]
        names = [c.name for c in tm.columns]
        self.key_index = [names.index(k) for k in self.pk]
        self.cols = {c.name: c for c in tm.columns}
        self.s_cols = ", ".join(qi(n) for n in names)
        self.s_pk = ", ".join(qi(k) for k in self.pk)
        self.s_order = ", ".join(
            qi(k) + (" COLLATE BINARY" if self.cols[k].pg_type in _TEXT_KEYS else "") for k in self.pk
        )
        self.s_key = f"({self.s_order})"
        self.s_table = qi(tm.name)
        self.g_table = sql.Identifier(schema, pg_truncate(tm.name))
        self.g_names = [sql.Identifier(pg_truncate(n)) for n in names]
        self.g_cols = sql.SQL(", ").join(self.g_names)
        self.g_keys = [self._g_collated(sql.Identifier(pg_truncate(k)), k) for k in self.pk]
        self.g_pk = sql.SQL("({})").format(sql.SQL(", ").join(self.g_keys))
        self.g_order = sql.SQL(", ").join(self.g_keys)
        self.to_blue: list[Callable[[Any], Any]] = [c.to_sqlite for c in tm.columns]
        # only the columns whose forms differ are converted (most are the same on both sides)
        self.convert = [(i, f) for i, f in enumerate(self.to_blue) if f is not identity]
        self.carried = [(i, f.canonical) for i, f in enumerate(self.forms) if f.cast]
        self._index_ordered: bool | None = None
        self.set_forms(self.forms)

    def set_forms(self, forms: list[ColumnForm]) -> None:
        """The columns' renderings (after `canonical.verify` has streamed those green cannot render)."""
        self.forms = forms
        self.in_sql = [f for f in forms if f.green is not None]
        self.streamed = [f for f in forms if f.green is None]
        register_blue(self.blue, forms)
        self.s_row = blue_row_sql(self.in_sql)
        self.s_streamed = blue_row_sql(self.streamed)

    def _g_collated(self, ident: sql.Composable, name: str) -> sql.Composable:
        return sql.SQL('{} COLLATE "C"').format(ident) if self.cols[name].pg_type == "text" else ident

    # -------------------------------------------------------------------------------------------- keys, rows

    def key_of(self, row: Sequence[Any]) -> Key:
        return tuple(row[i] for i in self.key_index)

    def _pg_key(self, key: Key) -> list[Any]:
        return [self.cols[k].to_pg(v) for k, v in zip(self.pk, key, strict=True)]

    def _s_range(self, r: Range) -> tuple[str, list[Any]]:
        marks = "(" + ", ".join("?" for _ in self.pk) + ")"
        where, params = [], []
        if r[0] is not None:
            where.append(f"{self.s_key} >= {marks}")
            params += list(r[0])
        if r[1] is not None:
            where.append(f"{self.s_key} < {marks}")
            params += list(r[1])
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def _g_ranges(self, ranges: Sequence[Range]) -> tuple[sql.Composable, list[Any]]:
        """WHERE clause for rows in any of `ranges` (none: every row)."""
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk))
        alts, params = [], []
        for lo, hi in ranges:
            parts = []
            if lo is not None:
                parts.append(sql.SQL("{} >= {}").format(self.g_pk, marks))
                params += self._pg_key(lo)
            if hi is not None:
                parts.append(sql.SQL("{} < {}").format(self.g_pk, marks))
                params += self._pg_key(hi)
            if not parts:
                return sql.SQL(""), []
            alts.append(sql.SQL("({})").format(sql.SQL(" AND ").join(parts)))
        if not alts:
            return sql.SQL(""), []
        return sql.SQL(" WHERE {}").format(sql.SQL(" OR ").join(alts)), params

    def blue_count(self) -> int:
        return int(self.blue.execute(f"SELECT count(*) FROM {self.s_table}").fetchone()[0])

    def green_count(self) -> int:
        return int(self.green.rows(sql.SQL("SELECT count(*) FROM {}").format(self.g_table))[0][0])

    def counts(self) -> tuple[int, int]:
        return self.blue_count(), self.green_count()

    def blue_starts(self, r: Range, step: int) -> list[Key]:
        """Blue's keys in `r` at every `step`-th row from its first: the starts of sub-ranges of `step` rows."""
        where, params = self._s_range(r)
        first = self.blue.execute(
            f"SELECT {self.s_pk} FROM {self.s_table}{where} ORDER BY {self.s_order} LIMIT 1", params
        ).fetchone()
        if first is None:
            return []
        marks = "(" + ", ".join("?" for _ in self.pk) + ")"
        upper = "" if r[1] is None else f" AND {self.s_key} < {marks}"
        query = (
            f"SELECT {self.s_pk} FROM {self.s_table} WHERE {self.s_key} >= {marks}{upper} "
            f"ORDER BY {self.s_order} LIMIT 1 OFFSET ?"
        )
        starts = [tuple(first)]
        while True:
            nxt = self.blue.execute(query, [*starts[-1], *(r[1] or ()), step]).fetchone()
            if nxt is None:
                return starts
            starts.append(tuple(nxt))

    def blue_rows(self, r: Range) -> list[tuple[Any, ...]]:
        where, params = self._s_range(r)
        rows = self.blue.execute(f"SELECT {self.s_cols} FROM {self.s_table}{where}", params).fetchall()
        return self.carry(rows)

    def carry(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Blue's rows as compared: cast columns as carried."""
        if not self.carried:
            return rows
        out = []
        for r in rows:
            row = list(r)
            for i, f in self.carried:
                row[i] = f(row[i])
            out.append(tuple(row))
        return out

    def green_rows(self, ranges: Sequence[Range]) -> list[tuple[Any, ...]]:
        """Green rows in any of `ranges` (none: all), in blue's forms."""
        where, params = self._g_ranges(ranges)
        query = sql.SQL("SELECT {} FROM {}{}").format(self.g_cols, self.g_table, where)
        return self.in_blue_forms(self.green.rows(query, params))

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

    def fetch_keys(self, keys: Sequence[Key]) -> tuple[dict[Key, tuple], dict[Key, tuple]]:
        """The current rows of `keys` (blue's forms) on both sides, a few hundred keys a query."""
        blue: dict[Key, tuple] = {}
        green: dict[Key, tuple] = {}
        one = "(" + ", ".join("?" for _ in self.pk) + ")"
        for i in range(0, len(keys), self.KEYS_PER_QUERY):
            chunk = keys[i : i + self.KEYS_PER_QUERY]
            values = ", ".join([one] * len(chunk))
            rows = self.blue.execute(
                f"SELECT {self.s_cols} FROM {self.s_table} WHERE ({self.s_pk}) IN (VALUES {values})",
                [v for key in chunk for v in key],
            ).fetchall()
            blue.update((self.key_of(r), r) for r in self.carry(rows))
            marks = sql.SQL(", ").join(
                sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk)) for _ in chunk
            )
            query = sql.SQL("SELECT {} FROM {} WHERE {} IN (VALUES {})").format(
                self.g_cols,
                self.g_table,
                sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(pg_truncate(k)) for k in self.pk)),
                marks,
            )
            found = self.green.rows(query, [v for key in chunk for v in self._pg_key(key)])
            green.update((self.key_of(r), r) for r in self.in_blue_forms(found))
        return blue, green

    def diff(self, blue: dict[Key, tuple], green: dict[Key, tuple]) -> list[RowDiff]:
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

    # -------------------------------------------------------------------------------------------- hashes

    def blue_hashes(self, ranges: Sequence[Range]) -> list[Hash]:
        """`blue_hash` of every range, on `blue_jobs` connections at once: SQLite runs without the GIL while it
        calls no Python function, and blue's rendering calls none for integers, text, blobs and most reals."""
        path = self.blue.execute("PRAGMA database_list").fetchone()[2]
        jobs = min(self.blue_jobs, len(ranges) // 8) if path else 1
        if jobs <= 1:
            return [self.blue_hash(r) for r in ranges]
        size = -(-len(ranges) // jobs)
        chunks = [ranges[i : i + size] for i in range(0, len(ranges), size)]

        def on_own_connection(chunk: Sequence[Range]) -> list[Hash]:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                register_blue(conn, self.forms)
                return [self.blue_hash(r, conn) for r in chunk]
            finally:
                conn.close()

        with ThreadPoolExecutor(len(chunks) - 1) as pool:
            rest = [pool.submit(on_own_connection, c) for c in chunks[1:]]
            first = [self.blue_hash(r) for r in chunks[0]]
            return first + [h for f in rest for h in f.result()]

    def blue_hash(self, r: Range, conn: sqlite3.Connection | None = None) -> Hash:
        """Rows, md5 of the rows rendered for the SQL part, md5 of those for the streamed part: in key order."""
        where, params = self._s_range(r)
        parts = ["count(*)"] + [
            f"CAST(group_concat({expr}, char(10)) AS BLOB)"
            for expr, forms in ((self.s_row, self.in_sql), (self.s_streamed, self.streamed))
            if forms
        ]
        row = (
            (conn or self.blue)
            .execute(f"SELECT {', '.join(parts)} FROM {self.s_table}{where}", params)
            .fetchone()
        )
        digests = iter(hashlib.md5(b or b"").hexdigest() for b in row[1:])
        return (
            int(row[0]),
            next(digests) if self.in_sql else None,
            next(digests) if self.streamed else None,
        )

    def green_hashes(self, ranges: Sequence[Range], whole: bool = False) -> list[Hash | None]:
        """Green's figures for each of `ranges` (disjoint, in key order; `whole`: together they hold every key),
        the same as `blue_hash` gives; None where green has no row."""
        starts = sorted({k for r in ranges for k in r if k is not None})
        index = {k: i + 1 for i, k in enumerate(starts)}
        bucket = [0 if r[0] is None else index[r[0]] for r in ranges]
        inner: tuple[sql.Composable, list[Any]] | None = None

        def buckets() -> tuple[sql.Composable, list[Any]]:  # the rows of `ranges` with their bucket numbers
            where, w_params = self._g_ranges(() if whole else ranges)
            query, b_params = self._g_buckets(starts, where)
            return query, (b_params + w_params if len(self.pk) == 1 else w_params + b_params)

        out: dict[int, list[Any]] = {}
        if self.in_sql:
            if self.index_ordered():
                query, params = self._g_lateral(ranges)
                found = [(bucket[i], n, d) for i, n, d in self.green.rows(query, params)]
            else:
                inner = buckets()
                query = sql.SQL(
                    "SELECT s.b, count(*), md5(string_agg({}, E'\\n' ORDER BY {})) FROM ({}) s GROUP BY s.b"
                ).format(self._g_row(), self._s_order(), inner[0])
                found = self.green.rows(query, inner[1])
            for b, n, digest in found:
                if n:
                    out[int(b)] = [int(n), digest, None]
        if self.streamed:
            inner = inner or buckets()
            cols = sql.SQL(", ").join(sql.Identifier(f"v{self.forms.index(f)}") for f in self.streamed)
            query = sql.SQL("SELECT s.b, {} FROM ({}) s ORDER BY {}").format(cols, inner[0], self._s_order())
            for b, rows in groupby(self.green.rows(query, inner[1]), key=lambda r: r[0]):
                texts = [
                    ",".join(f.green_text(v) for f, v in zip(self.streamed, r[1:], strict=True)) for r in rows
                ]
                entry = out.setdefault(int(b), [len(texts), None, None])
                entry[0] = len(texts)
                entry[2] = hashlib.md5("\n".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
        return [None if b not in out else (out[b][0], out[b][1], out[b][2]) for b in bucket]

    def _g_row(self) -> sql.Composable:
        return sql.SQL(" || ',' || ").join(
            green_field_sql(f, sql.Identifier(f"v{self.forms.index(f)}")) for f in self.in_sql
        )

    def index_ordered(self) -> bool:
        """Green has a b-tree index on the key whose order is blue's: a range is then an index range scan, its rows
        come in key order, and the segments need no sort (PostgreSQL's "C" order is blue's for text; an index on
        text in another collation orders otherwise)."""
        if self._index_ordered is None:
            rows = self.green.rows(
                sql.SQL(
                    "SELECT array_agg(a.attname::text ORDER BY k.n), "
                    "array_agg(coalesce(c.collname::text, '') ORDER BY k.n), "
                    "(SELECT datcollate::text FROM pg_database WHERE datname = current_database()) "
                    "FROM pg_index i "
                    "CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) WITH ORDINALITY k(att, coll, n) "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att "
                    "LEFT JOIN pg_collation c ON c.oid = k.coll "
                    "WHERE i.indrelid = {}::regclass AND k.n <= %s AND i.indpred IS NULL AND i.indisvalid "
                    "AND (SELECT a.amname FROM pg_class r JOIN pg_am a ON a.oid = r.relam WHERE r.oid = i.indexrelid) "
                    "= 'btree' "
                    "GROUP BY i.indexrelid"
                ).format(sql.Literal(self.g_table.as_string(self.green.conn))),
                [len(self.pk)],
            )
            names = [pg_truncate(k) for k in self.pk]

            def c_order(collation: str, database: str) -> bool:
                return collation in ("C", "POSIX") or (collation == "default" and database in ("C", "POSIX"))

            self._index_ordered = any(
                list(cols) == names
                and all(
                    c_order(coll, db) or self.cols[k].pg_type != "text"
                    for k, coll in zip(self.pk, colls, strict=True)
                )
                for cols, colls, db in rows
            )
        return self._index_ordered

    def _g_lateral(self, ranges: Sequence[Range]) -> tuple[sql.Composable, list[Any]]:
        """Each range hashed by its own index range scan (one statement): rows (range's index, count, md5)."""
        keys = [sql.Identifier(pg_truncate(k)) for k in self.pk]
        g_key = sql.SQL("({})").format(sql.SQL(", ").join(keys))
        values = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(green_prepared(f, g), sql.Identifier(f"v{i}"))
            for i, (f, g) in enumerate(zip(self.forms, self.g_names, strict=True))
        )
        order = sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(self.pk)))
        key_as = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(k, sql.Identifier(f"k{i}")) for i, k in enumerate(keys)
        )

        def agg(where: sql.Composable) -> sql.Composable:
            return sql.SQL(
                "SELECT count(*) AS c, md5(string_agg({row}, E'\\n' ORDER BY {order})) AS h "
                "FROM (SELECT {keys}, {values} FROM {table} WHERE {where} OFFSET 0) s"
            ).format(
                row=self._g_row(), order=order, keys=key_as, values=values, table=self.g_table, where=where
            )

        types = [sql.SQL(self.cols[k].pg_type) for k in self.pk]
        paired = [(i, r) for i, r in enumerate(ranges) if r[0] is not None and r[1] is not None]
        parts, params = [], []
        if paired:
            arrays = sql.SQL(", ").join(
                sql.SQL("%s::{}[]").format(t) for t in [sql.SQL("int"), *types, *types]
            )
            lo = sql.SQL("({})").format(
                sql.SQL(", ").join(sql.Identifier("r", f"lo{i}") for i in range(len(keys)))
            )
            hi = sql.SQL("({})").format(
                sql.SQL(", ").join(sql.Identifier("r", f"hi{i}") for i in range(len(keys)))
            )
            names = sql.SQL(", ").join(
                [sql.Identifier("n")]
                + [sql.Identifier(f"lo{i}") for i in range(len(keys))]
                + [sql.Identifier(f"hi{i}") for i in range(len(keys))]
            )
            where = sql.SQL("{k} >= {lo} AND {k} < {hi}").format(k=g_key, lo=lo, hi=hi)
            parts.append(
                sql.SQL("SELECT r.n, x.c, x.h FROM unnest({}) AS r({}) CROSS JOIN LATERAL ({}) x").format(
                    arrays, names, agg(where)
                )
            )
            params.append([i for i, _ in paired])
            for side in (0, 1):
                for j, k in enumerate(self.pk):
                    params.append([self.cols[k].to_pg(r[side][j]) for _, r in paired])  # type: ignore[index]
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in self.pk))
        for i, (lo_key, hi_key) in enumerate(ranges):
            if lo_key is not None and hi_key is not None:
                continue
            conds: list[sql.Composable] = [sql.SQL("true")]
            if lo_key is not None:
                conds.append(sql.SQL("{} >= {}").format(g_key, marks))
                params += self._pg_key(lo_key)
            if hi_key is not None:
                conds.append(sql.SQL("{} < {}").format(g_key, marks))
                params += self._pg_key(hi_key)
            parts.append(
                sql.SQL("SELECT {}, x.c, x.h FROM ({}) x").format(
                    sql.Literal(i), agg(sql.SQL(" AND ").join(conds))
                )
            )
        return sql.SQL(" UNION ALL ").join(parts), params

    def _s_order(self) -> sql.Composable:
        return sql.SQL(", ").join(self._g_collated(sql.Identifier(f"k{i}"), k) for i, k in enumerate(self.pk))

    def _g_buckets(self, starts: Sequence[Key], where: sql.Composable) -> tuple[sql.Composable, list[Any]]:
        """The inner query: bucket `b`, the keys `k0..`, the columns as prepared for rendering `v0..`."""
        keys = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.Identifier(pg_truncate(k)), sql.Identifier(f"k{i}"))
            for i, k in enumerate(self.pk)
        )
        values = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(green_prepared(f, g), sql.Identifier(f"v{i}"))
            for i, (f, g) in enumerate(zip(self.forms, self.g_names, strict=True))
        )
        types = [self.cols[k].pg_type for k in self.pk]
        if not starts:
            q = sql.SQL("SELECT 0 AS b, {}, {} FROM {}{} OFFSET 0").format(keys, values, self.g_table, where)
            return q, []
        columns = [[self.cols[k].to_pg(key[i]) for key in starts] for i, k in enumerate(self.pk)]
        if len(self.pk) == 1:
            q = sql.SQL("SELECT width_bucket({}, %s::{}[]) AS b, {}, {} FROM {}{} OFFSET 0").format(
                self.g_keys[0], sql.SQL(types[0]), keys, values, self.g_table, where
            )
            return q, columns
        # several key columns: boundary markers (m = 1) merged into the key order; a row's bucket is the number
        # of markers at or before it (a marker sorts before an equal key)
        order = sql.SQL(", ").join(
            self._g_collated(sql.Identifier(f"k{i}"), k) for i, k in enumerate(self.pk)
        )
        markers = sql.SQL(", ").join(sql.SQL("unnest(%s::{}[])").format(sql.SQL(t)) for t in types)
        nulls = sql.SQL(", ").join(sql.SQL("NULL") for _ in self.forms)
        q = sql.SQL(
            "SELECT * FROM (SELECT sum(m) OVER (ORDER BY {order}, m DESC ROWS UNBOUNDED PRECEDING) AS b, u.* "
            "FROM (SELECT 0 AS m, {keys}, {values} FROM {table}{where} "
            "UNION ALL SELECT 1, {markers}, {nulls}) u) w WHERE w.m = 0 OFFSET 0"
        ).format(
            order=order,
            keys=keys,
            values=values,
            table=self.g_table,
            where=where,
            markers=markers,
            nulls=nulls,
        )
        return q, columns
