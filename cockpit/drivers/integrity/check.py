"""`check`: every table of a mapping compared on both sides; what differs, by key; the bytes moved to do it."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import psycopg

from cockpit.drivers.integrity import multiset, segments
from cockpit.drivers.integrity.canonical import verify
from cockpit.drivers.integrity.green import Green
from cockpit.drivers.integrity.report import IntegrityReport, RowDiff, TableIntegrity
from cockpit.drivers.integrity.table import Table
from cockpit.drivers.sync.schema import TableMap


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
    casts: Iterable[Any] | None = None,
    in_sql: bool = True,
    blue_jobs: int | None = None,
) -> IntegrityReport:
    """Compare every table of `mappings` on both sides. Blocking; bounded by the data size.

    Keyed tables by segment hashes computed in each database (`segments`), keyless ones as multisets of rows
    (`multiset`). `in_sql=False` streams every green value and hashes it here instead (what the check did before
    it hashed inside the databases; kept for the benchmark's comparison).

    `only`: per table, the keys (blue's forms) of the rows to compare instead of all of them; the counts are still
    compared in full (the rollback checks the rows the sync touched: seconds, whatever the database's size).

    `blue_jobs`: SQLite connections hashing blue's segments at once (default: the CPUs, at most 4).

    `casts`: the plan's casts (`Cast.table`, `Cast.column`): those columns are compared as carried.

    `settle` is called once when rows differ, before they are looked at again: it should return when the sync has
    carried what was in flight (the controller waits for the sync to drain, bounded). None: no second look.
    """
    started = time.monotonic()
    jobs = blue_jobs or min(4, os.cpu_count() or 1)
    cast_columns: dict[str, set[str]] = {}
    for c in casts or ():
        cast_columns.setdefault(c.table, set()).add(c.column)
    blue = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=10)
    notes: list[str] = []
    try:
        with psycopg.connect(
            pg_url, connect_timeout=max(1, math.ceil(connect_timeout)), autocommit=True
        ) as conn:
            green = Green(conn)
            tables = [
                Table(tm, blue, green, schema, cast_columns.get(tm.name, ()), in_sql, jobs)
                for tm in mappings.values()
            ]
            if only is None and in_sql:
                notes += _verify(green, tables)
            results: list[TableIntegrity] = []
            pending: list[tuple[Table, list[RowDiff], TableIntegrity]] = []
            for t in tables:
                before = green.bytes
                ti = _compare(t, segment_rows, only)
                if only is not None and not t.pk:
                    notes.append(f"{t.tm.name}: no primary key, counts only")
                ti = replace(ti, bytes=green.bytes - before)
                if ti.diffs and t.pk:
                    pending.append((t, list(ti.diffs), ti))
                else:
                    results.append(ti)
            settled = 0
            if pending and settle is not None:
                settle()
            for t, diffs, ti in pending:
                before = green.bytes
                if settle is not None:
                    blue_now, green_now = t.fetch_keys([d.key for d in diffs])
                    still = t.diff(blue_now, green_now)
                else:
                    still = diffs
                settled += len(diffs) - len(still)
                b_count, g_count = t.counts() if settle is not None else (ti.blue_rows, ti.green_rows)
                results.append(
                    replace(
                        ti,
                        blue_rows=b_count,
                        green_rows=g_count,
                        diffs=tuple(still),
                        bytes=ti.bytes + green.bytes - before,
                    )
                )
            moved = green.bytes
    finally:
        blue.close()
    order = {name: i for i, name in enumerate(mappings)}
    results.sort(key=lambda r: order[r.table])
    return IntegrityReport(tuple(results), time.monotonic() - started, settled, tuple(notes), moved)


def _verify(green: Green, tables: list[Table]) -> list[str]:
    """Green's renderings checked on probe values; a column green cannot render is streamed (with a note)."""
    forms, _ = verify(green.rows, [f for t in tables for f in t.forms])
    notes, i = [], 0
    for t in tables:
        t.set_forms(forms[i : i + len(t.forms)])
        i += len(t.forms)
        notes += [
            f"{t.tm.name}.{f.name} ({f.column.pg_type}): no rendering in PostgreSQL's SQL gives what blue holds; "
            "its values are streamed and hashed here"
            for f in t.streamed
        ]
    return notes


def _compare(
    t: Table, segment_rows: int, only: Mapping[str, Iterable[tuple[Any, ...]]] | None
) -> TableIntegrity:
    name = t.tm.name
    if only is not None:
        b_count, g_count = t.counts()
        if not t.pk:  # no keys were touched: the sync carries keyed tables only
            return TableIntegrity(
                name, b_count, g_count, 0, 0, note="" if b_count == g_count else "counts differ"
            )
        diffs, n_segments, bad, compared = _compare_keys(t, only.get(name, ()))
        return TableIntegrity(name, b_count, g_count, n_segments, bad, tuple(diffs), compared)
    out = segments.compare(t, segment_rows) if t.pk else multiset.compare(t)
    return TableIntegrity(
        name, out.blue_rows, out.green_rows, out.segments, out.mismatched, tuple(out.diffs), out.compared
    )


def _compare_keys(t: Table, keys: Iterable[tuple[Any, ...]]) -> tuple[list[RowDiff], int, int, int]:
    """Only the rows of `keys` (the rows the sync touched): a segment per query's worth of keys."""
    ordered = sorted(set(keys), key=repr)
    diffs: list[RowDiff] = []
    bad = 0
    for i in range(0, len(ordered), t.KEYS_PER_QUERY):
        found = t.diff(*t.fetch_keys(ordered[i : i + t.KEYS_PER_QUERY]))
        bad += bool(found)
        diffs += found
    return diffs, -(-len(ordered) // t.KEYS_PER_QUERY), bad, len(ordered)
