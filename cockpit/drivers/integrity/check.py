"""`check`: counts, then checksums over primary-key segments on both sides, narrowed to the rows that differ."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg

from cockpit.drivers.integrity.report import IntegrityReport, RowDiff, TableIntegrity
from cockpit.drivers.integrity.table import _Table
from cockpit.drivers.sync.schema import TableMap


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
