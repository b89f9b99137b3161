"""A table without a primary key compared as a multiset of rows: equal when every row occurs as often on both sides.

Each row is hashed (md5 of its canonical text, see `canonical`); rows fall into buckets by the first hex digits of
their hash, and a bucket is (rows, md5 of its row hashes in sorted order): a multiset hash, independent of the
order rows are stored in. Buckets of two hex digits first (256: a few kB cross when equal); a bucket that differs
is cut by two more digits, down to buckets of at most `leaf_rows` of blue's rows, whose rows are then fetched from
both sides and counted against each other. A differing row is named by its values (there is no key): once per
surplus occurrence, `missing_on_green` or `missing_on_blue`; a changed row shows as one of each.

Blue's row hashes are computed by SQLite with a registered md5 and grouped in Python; green's in SQL, unless a
column cannot be rendered there, in which case green's rows are streamed and hashed in Python (said in a note).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg import sql

from cockpit.drivers.integrity.canonical import blue_row_sql, green_field_sql, green_prepared, row_text
from cockpit.drivers.integrity.report import RowDiff
from cockpit.drivers.integrity.segments import Outcome
from cockpit.drivers.integrity.table import Table, _canon_row

MAX_DIGITS = 8


def compare(t: Table, leaf_rows: int = 64) -> Outcome:
    with ThreadPoolExecutor(1) as pool:
        green_job = pool.submit(_green_buckets, t, 2, ())
        blue_hashes = sorted(
            h for (h,) in t.blue.execute(f"SELECT cockpit_md5(CAST({_blue_row(t)} AS BLOB)) FROM {t.s_table}")
        )
        green = green_job.result()
    blue = _buckets(blue_hashes, 2)
    blue_rows, green_rows = len(blue_hashes), sum(n for n, _ in green.values())
    differ = sorted(p for p in set(blue) | set(green) if blue.get(p) != green.get(p))
    mismatched, digits = len(differ), 2
    leaves: list[str] = []
    while differ:
        small = [p for p in differ if blue.get(p, (0, ""))[0] <= leaf_rows or digits >= MAX_DIGITS]
        leaves += small
        wider = [p for p in differ if p not in small]
        if not wider:
            break
        digits += 2
        green = _green_buckets(t, digits, wider)
        blue = _buckets([h for h in blue_hashes if h[: digits - 2] in set(wider)], digits)
        differ = sorted(p for p in set(blue) | set(green) if blue.get(p) != green.get(p))
    diffs = _diff(t, leaves) if leaves else []
    extra = sum(d.kind == "missing_on_blue" for d in diffs)
    return Outcome(diffs, 256, mismatched, blue_rows + extra, blue_rows, green_rows)


def _blue_row(t: Table) -> str:
    return blue_row_sql(t.forms)  # every column, in the table's order


def _buckets(hashes: Sequence[str], digits: int) -> dict[str, tuple[int, str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for h in hashes:  # sorted: each bucket's hashes stay in order
        grouped[h[:digits]].append(h)
    return {p: (len(hs), hashlib.md5("".join(hs).encode()).hexdigest()) for p, hs in grouped.items()}


def _green_row_sql(t: Table, values: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" || ',' || ").join(green_field_sql(f, v) for f, v in zip(t.forms, values, strict=True))


def _green_row_hashes_sql(t: Table) -> sql.Composable:
    values = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(green_prepared(f, g), sql.Identifier(f"v{i}"))
        for i, (f, g) in enumerate(zip(t.forms, t.g_names, strict=True))
    )
    row = _green_row_sql(t, [sql.Identifier(f"v{i}") for i in range(len(t.forms))])
    return sql.SQL("SELECT md5({}) AS h FROM (SELECT {} FROM {} OFFSET 0) s").format(row, values, t.g_table)


def _green_buckets(t: Table, digits: int, within: Sequence[str]) -> dict[str, tuple[int, str]]:
    if t.streamed:  # a column green cannot render: its rows are hashed here
        hashes = sorted(h for h in _green_hashes_streamed(t) if not within or h[: digits - 2] in set(within))
        return _buckets(hashes, digits)
    where = sql.SQL(" WHERE left(h, %s) = ANY(%s)") if within else sql.SQL("")
    query = sql.SQL(
        "SELECT left(h, %s), count(*), md5(string_agg(h, '' ORDER BY h COLLATE \"C\")) FROM ({}) x{} GROUP BY 1"
    ).format(_green_row_hashes_sql(t), where)
    params: list[Any] = [digits] + ([digits - 2, list(within)] if within else [])
    return {p: (int(n), d) for p, n, d in t.green.rows(query, params)}


def _green_hashes_streamed(t: Table) -> list[str]:
    fmts = [f.fmt for f in t.forms]
    rows = t.green_rows(())
    return [hashlib.md5(row_text(fmts, r).encode("utf-8", "surrogatepass")).hexdigest() for r in rows]


def _diff(t: Table, prefixes: Sequence[str]) -> list[RowDiff]:
    wanted = tuple(prefixes)
    blue_rows = [
        tuple(r[:-1])
        for r in t.blue.execute(
            f"SELECT {t.s_cols}, cockpit_md5(CAST({_blue_row(t)} AS BLOB)) FROM {t.s_table}"
        )
        if r[-1].startswith(wanted)
    ]
    if t.streamed:
        fmts = [f.fmt for f in t.forms]
        green_rows = [
            r
            for r in t.green_rows(())
            if hashlib.md5(row_text(fmts, r).encode("utf-8", "surrogatepass")).hexdigest().startswith(wanted)
        ]
    else:
        row_sql = _green_row_sql(t, [green_prepared(f, g) for f, g in zip(t.forms, t.g_names, strict=True)])
        query = sql.SQL("SELECT {} FROM {} WHERE left(md5({}), %s) = ANY(%s)").format(
            t.g_cols, t.g_table, row_sql
        )
        green_rows = []
        for digits in sorted({len(p) for p in prefixes}):
            same = [p for p in prefixes if len(p) == digits]
            green_rows += t.in_blue_forms(t.green.rows(query, [digits, same]))
    blue_count = Counter(_canon_row(r) for r in t.carry(blue_rows))
    green_count = Counter(_canon_row(r) for r in green_rows)
    by_canon = {_canon_row(r): r for r in t.carry(blue_rows)} | {_canon_row(r): r for r in green_rows}
    out = []
    for canon in sorted(set(blue_count) | set(green_count)):
        b, g = blue_count[canon], green_count[canon]
        row = by_canon[canon]
        kind = "missing_on_green" if b > g else "missing_on_blue"
        out += [RowDiff(tuple(row), kind, blue=row if b > g else None, green=row if g > b else None)] * abs(
            b - g
        )
    return out
