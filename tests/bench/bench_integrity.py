"""How long a full integrity check takes: the rollback's integrity step and `cockpit integrity` compare every row.

Run: .venv/bin/python tests/bench/bench_integrity.py [--rows N]
Generates bench_copy's table (text, real, boolean, date, timestamps), copies it into a scratch database on
$COCKPIT_TEST_PG's server with the sync's initial copy, then times `cockpit.drivers.integrity.check` over it (counts, then
checksums over key segments on both sides): rows compared per second. Then the app changes `--touched` rows on
blue, the sync carries them, and the rollback's own check (counts + the rows the sync touched) is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_copy import drop_db, fresh_db, generate, url_for

from cockpit.drivers.integrity import check
from cockpit.drivers.sync.capture import touched_keys
from cockpit.drivers.sync.runner import SyncRunner, connect_sqlite
from cockpit.drivers.sync.schema import read_mapping


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--segment", type=int, default=1000)
    ap.add_argument("--touched", type=int, default=10_000, help="rows the app changes after the copy")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-integrity-"))
    name = fresh_db()
    try:
        db = tmp / "bench.db"
        generate(db, args.rows)
        runner = SyncRunner(db, url_for(name))
        runner.initial_copy(jobs=1)
        conn = connect_sqlite(db)
        try:
            mappings = read_mapping(conn, tables=["bench"])
        finally:
            conn.close()
        print(f"{args.rows:,} rows; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        started = time.perf_counter()
        report = check(str(db), url_for(name), mappings, segment_rows=args.segment)
        took = time.perf_counter() - started
        print(
            f"full check, segments of {args.segment}: {took:.2f}s = {report.compared / took:,.0f} rows/s; "
            f"score {report.score:g}%, ok {report.ok}"
        )
        conn = sqlite3.connect(db)
        step = max(1, args.rows // args.touched)
        conn.execute("UPDATE bench SET amount = amount + 1 WHERE id % ? = 0", (step,))
        conn.commit()
        conn.close()
        while runner.run_once()["blue_to_green"]["changes"]:
            pass
        runner.close()
        conn = connect_sqlite(db)
        try:
            only = touched_keys(conn)
        finally:
            conn.close()
        started = time.perf_counter()
        scoped = check(str(db), url_for(name), mappings, only=only)
        took = time.perf_counter() - started
        print(
            f"rollback's check (counts + {scoped.compared:,} touched rows): {took:.2f}s; score {scoped.score:g}%, "
            f"ok {scoped.ok}"
        )
    finally:
        drop_db(name)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
