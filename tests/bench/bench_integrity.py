"""A full integrity check of 1,000,000 rows against a PostgreSQL behind a ~100 Mbit/s link: ours vs reladiff vs the
streaming check, equal tables and then 10 differing rows; then the rollback's check of the rows the sync touched.

Run: .venv/bin/python tests/bench/bench_integrity.py [--rows N] [--mbit 100] [--changed 10] [--touched 10000]
Generates bench_copy's table (integer key, text, real, boolean, date, timestamps), copies it with the sync's initial
copy into a scratch database on $COCKPIT_TEST_PG's server, and clones that database for reladiff's other side.
Green is reached through `throttle_proxy.ThrottleProxy` (a token bucket per direction); bytes are what crossed its
socket, beside the figure the check reports itself.

- ours: `cockpit.drivers.integrity.check` (segment hashes computed in SQLite and in PostgreSQL);
- streaming: the same check with `in_sql=False`, every green value streamed and hashed in Python, as it did before;
- reladiff: PostgreSQL to PostgreSQL on the same rows (the clone direct, green through the proxy), its hashdiff with
  its defaults. Not a dependency of cockpit: `.venv/bin/pip install -e '.[bench]'` to include it.

Targets: ours faster than reladiff, and under 1 % of the table's size moved when the tables are equal; every
differing row found by key.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from bench_copy import ADMIN, drop_db, fresh_db, generate, url_for
from throttle_proxy import ThrottleProxy

from cockpit.drivers.integrity import IntegrityReport, check
from cockpit.drivers.sync.capture import touched_keys
from cockpit.drivers.sync.runner import SyncRunner, connect_sqlite
from cockpit.drivers.sync.schema import read_mapping


def via(proxy: ThrottleProxy, name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"


def reladiff_keys(local: str, remote: str) -> set[tuple[Any, ...]]:
    """reladiff's diff of the same table in two PostgreSQL databases: the keys it reports."""
    from reladiff import connect_to_table, diff_tables

    a = connect_to_table(local, "bench", "id")
    b = connect_to_table(remote, "bench", "id")
    columns = ("name", "amount", "active", "day", "created", "updated")
    return {(int(row[0]),) for _sign, row in diff_tables(a, b, extra_columns=columns)}


def green_sql(name: str, statement: str, params: list[Any]) -> None:
    """A write on green that its capture triggers do not see (the sync must not carry it to blue)."""
    with psycopg.connect(url_for(name), autocommit=True) as pg:
        pg.execute("SET session_replication_role = replica")
        pg.execute(statement, params)  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--mbit", type=float, default=100.0, help="bandwidth of the link to green, each way")
    ap.add_argument("--segment", type=int, default=1000)
    ap.add_argument("--changed", type=int, default=10, help="rows changed on green for the second round")
    ap.add_argument(
        "--touched", type=int, default=10_000, help="rows the app changes for the rollback's check"
    )
    ap.add_argument("--no-streaming", action="store_true", help="skip the streaming check (the slow one)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-integrity-"))
    green, clone = fresh_db(), None
    try:
        db = tmp / "bench.db"
        generate(db, args.rows)
        runner = SyncRunner(db, url_for(green))
        runner.initial_copy(jobs=2)
        runner.close()  # the clone below needs green without sessions
        conn = connect_sqlite(db)
        try:
            mappings = read_mapping(conn, tables=["bench"])
        finally:
            conn.close()
        clone = f"{green}_clone"
        with psycopg.connect(ADMIN, autocommit=True) as pg:
            pg.execute(
                f'CREATE DATABASE "{clone}" TEMPLATE "{green}"'
            )  # reladiff's other side: the same rows
        with psycopg.connect(url_for(green)) as pg:
            heap, total = pg.execute(
                "SELECT pg_table_size('bench'), pg_total_relation_size('bench')"
            ).fetchone()
        print(
            f"{args.rows:,} rows; table {heap / 1e6:.1f} MB ({total / 1e6:.1f} MB with its index); link "
            f"{args.mbit:g} Mbit/s each way; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        relad = importlib.util.find_spec("reladiff") is not None
        if not relad:
            print("reladiff: not installed; .venv/bin/pip install -e '.[bench]' to print it beside ours")
        # the first and last keys, and random ones
        changed = sorted({1, args.rows, *random.Random(7).sample(range(2, args.rows), args.changed - 2)})
        server = urlsplit(ADMIN)
        with ThrottleProxy(server.hostname or "127.0.0.1", server.port or 5432, mbit=args.mbit) as proxy:
            for label in ("equal", f"{len(changed)} rows differ"):
                if label != "equal":
                    green_sql(green, "UPDATE bench SET amount = amount + 1 WHERE id = ANY(%s)", [changed])
                want = {(k,) for k in changed} if label != "equal" else set()
                print(f"\n{label}:")
                print(
                    f"  {'':10} {'seconds':>8} {'bytes (socket)':>15} {'% of table':>10} {'reported':>10}  found"
                )
                runs: list[tuple[str, Callable[[], tuple[set[Any], int | None]]]] = [
                    ("ours", lambda: _ours(db, via(proxy, green), mappings, args.segment, True)),
                ]
                if relad:
                    runs.append(
                        ("reladiff", lambda: (reladiff_keys(url_for(clone), via(proxy, green)), None))
                    )
                if not args.no_streaming:
                    runs.append(
                        ("streaming", lambda: _ours(db, via(proxy, green), mappings, args.segment, False))
                    )
                for name, run in runs:
                    proxy.reset()
                    started = time.perf_counter()
                    found, reported = run()
                    took = time.perf_counter() - started
                    ok = (
                        "all"
                        if found == want
                        else f"{len(found & want)} of {len(want)}, {len(found - want)} extra"
                    )
                    print(
                        f"  {name:10} {took:8.2f} {proxy.bytes:15,} {100 * proxy.bytes / heap:9.3f}% "
                        f"{'' if reported is None else f'{reported:,}':>10}  {ok} ({len(found)} by key)"
                    )
        green_sql(green, "UPDATE bench SET amount = amount - 1 WHERE id = ANY(%s)", [changed])
        _rollback_check(db, green, mappings, args)
    finally:
        drop_db(green)
        if clone:
            drop_db(clone)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _ours(db: Path, url: str, mappings: dict, segment: int, in_sql: bool) -> tuple[set[Any], int | None]:
    report: IntegrityReport = check(str(db), url, mappings, segment_rows=segment, in_sql=in_sql)
    return {d.key for t in report.tables for d in t.diffs}, report.bytes


def _rollback_check(db: Path, green: str, mappings: dict, args: argparse.Namespace) -> None:
    runner = SyncRunner(db, url_for(green))
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
    scoped = check(str(db), url_for(green), mappings, only=only)
    took = time.perf_counter() - started
    print(
        f"\nrollback's check (counts + {scoped.compared:,} touched rows, direct): {took:.2f}s; "
        f"score {scoped.score:g}%, {scoped.bytes:,} bytes"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
