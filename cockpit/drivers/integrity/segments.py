"""A keyed table compared by segment hashes computed in each database, narrowed down to the rows that differ.

Level 0: blue's keys cut into segments of `segment_rows` (blue counts them, a keyset walk of its key index); both
sides hash every segment at once (green in one query, blue while green works). A segment whose (rows, md5) differ
is cut again into `fanout` parts by blue's keys, both sides hash the parts (one green query per level for all of
them), and so on until a part holds at most `leaf_rows` of blue's rows: only then do rows cross, those of the
differing parts, and are compared in Python (`Table.diff`). Green rows outside blue's keys fall into the range
before blue's first key or the last segment, and are found the same way.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cockpit.drivers.integrity.report import RowDiff
from cockpit.drivers.integrity.table import Hash, Key, Range, Table


@dataclass(frozen=True)
class Outcome:
    diffs: list[RowDiff]
    segments: int
    mismatched: int
    compared: int
    blue_rows: int
    green_rows: int


def _same(a: Hash | None, b: Hash | None) -> bool:
    if a is None or a[0] == 0:
        return b is None or b[0] == 0
    return a == b


def _ranges(starts: list[Key], last: Key | None) -> list[Range]:
    """Ranges of buckets 1..n of `starts`, the last one ending at `last` (None: open)."""
    return [(s, starts[i + 1] if i + 1 < len(starts) else last) for i, s in enumerate(starts)]


def compare(t: Table, segment_rows: int, fanout: int = 16, leaf_rows: int = 16) -> Outcome:
    starts = t.blue_starts((None, None), segment_rows)
    top = _ranges(starts, None)
    # before blue's first key (all keys when blue is empty): blue has no rows there, green should have none
    first: Range = (None, starts[0] if starts else None)
    with ThreadPoolExecutor(1) as pool:  # green hashes while blue does
        green_job = pool.submit(t.green_hashes, [first, *top], True)
        blue = t.blue_hashes(top)
        before, *green = green_job.result()
    blue_rows = sum(h[0] for h in blue)
    green_rows = sum(h[0] for h in green if h) + (before[0] if before else 0)
    pending: list[tuple[Range, int]] = [(first, 0)] if before and before[0] else []
    pending += [(r, b[0]) for r, b, g in zip(top, blue, green, strict=True) if not _same(b, g)]
    mismatched = len(pending)
    leaves: list[Range] = []
    while pending:
        split = [(r, n) for r, n in pending if n > leaf_rows]
        leaves += [r for r, n in pending if n <= leaf_rows]
        if not split:
            break
        pending = _narrow(t, split, fanout)
    diffs: list[RowDiff] = []
    if leaves:
        green_found = {t.key_of(r): r for r in t.green_rows(leaves)}
        blue_found = {t.key_of(r): r for lo_hi in leaves for r in t.blue_rows(lo_hi)}
        diffs = t.diff(blue_found, green_found)
    extra = sum(d.kind == "missing_on_blue" for d in diffs)
    return Outcome(diffs, len(top), mismatched, blue_rows + extra, blue_rows, green_rows)


def _narrow(t: Table, split: list[tuple[Range, int]], fanout: int) -> list[tuple[Range, int]]:
    """The parts of `split`'s ranges whose hashes differ, with blue's row count of each."""
    parts: list[Range] = []
    for (lo, hi), n in split:
        starts = t.blue_starts((lo, hi), math.ceil(n / fanout))
        if lo is not None and starts and starts[0] != lo:
            starts[0] = lo  # the part from the range's start (green may hold keys blue has not)
        parts += _ranges(starts, hi)
    with ThreadPoolExecutor(1) as pool:
        green_job = pool.submit(t.green_hashes, parts)
        blue = t.blue_hashes(parts)
        green = green_job.result()
    return [(r, b[0]) for r, b, g in zip(parts, blue, green, strict=True) if not _same(b, g)]
