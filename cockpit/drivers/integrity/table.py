"""One table on both sides, read in blue's key order and in blue's value forms; the row-level comparison."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cockpit.drivers.integrity.report import RowDiff
from cockpit.drivers.sync.capture import qi
from cockpit.drivers.sync.schema import TableMap, pg_truncate
from cockpit.drivers.sync.values import identity


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
