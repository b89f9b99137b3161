"""Two-way sync figures on the real PostgreSQL.

Run: .venv/bin/python tests/bench/bench_sync.py [--seconds 20] [--rate 1000] [--backlog 100000]

1. Steady sync: the app writes `--rate` rows/s on SQLite (inserts and updates, one per transaction) while the
   runner loops; lag (age of the oldest change not yet applied) sampled every 50 ms: p50/p95/p99/max (target p99
   < 1 s). Done at the runner intervals given by `--intervals` (the plan's `sync.interval`; a commit on blue wakes
   the loop early, so blue→green lag should not depend on it).
2. Catch-up: a backlog of `--backlog` changes on SQLite (inserts and updates), then the runner drains it:
   changes/s (target >= 20,000). The same for a backlog on PostgreSQL (green→blue), for comparison.
3. Catch-up with conflicts: a table with a unique e-mail; blue inserts `--backlog` rows while green registers 1 % of
   the same e-mails under its own keys; one pass settles, parks and mirrors them. Changes/s beside the same run
   with no duplicates (target: >= 0.8x).
4. Catch-up of a keyless table (rows are a multiset: inserts, then 1 % removals and updates), both directions.

Uses a scratch database on $COCKPIT_TEST_PG's server (created and dropped).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from cockpit.drivers.sync.capture import install_pg, install_sqlite, record_copy_position, sqlite_position
from cockpit.drivers.sync.runner import SyncRunner

ADMIN = os.environ.get("COCKPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SQLITE_DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL, status TEXT,"
    " note TEXT, updated_at TEXT)"
)
PG_DDL = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount double precision, status text,"
    " note text, updated_at text)"
)


class Scratch:
    def __init__(self) -> None:
        self.name = f"cockpit_bench_{uuid.uuid4().hex[:10]}"
        self.url = ADMIN.rsplit("/", 1)[0] + "/" + self.name
        self.tmp = tempfile.TemporaryDirectory()

    def __enter__(self) -> Scratch:
        with psycopg.connect(ADMIN, autocommit=True) as a:
            a.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(ADMIN, autocommit=True) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.tmp.cleanup()

    def pair(self, tag: str) -> tuple[Path, str]:
        """A fresh SQLite file and a fresh PostgreSQL table, capture installed on both."""
        db = Path(self.tmp.name) / f"{tag}.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(SQLITE_DDL)
        keys = install_sqlite(conn, ["orders"])
        with psycopg.connect(self.url) as pg:
            from cockpit.drivers.sync.capture import uninstall_pg

            uninstall_pg(pg)
            pg.execute("DROP TABLE IF EXISTS orders")
            pg.execute(PG_DDL)
            pg.commit()
            record_copy_position(pg, sqlite_position(conn))
            pg.commit()
            install_pg(pg, keys)
        conn.close()
        return db, self.url


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def steady(scratch: Scratch, seconds: float, rate: int, interval: float, batch: int) -> None:
    db, url = scratch.pair(f"steady_{interval}")
    runner = SyncRunner(db, url, tables=["orders"], interval=interval, batch_size=batch)
    runner.start()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            if i % 4 == 3:  # a quarter are updates of recent rows
                conn.execute(
                    "UPDATE orders SET status = 'paid', updated_at = ? WHERE id = ?", (str(now), i - 3)
                )
            else:
                conn.execute(
                    "INSERT INTO orders (id, customer, amount, status, note) VALUES (?, ?, ?, 'new', ?)",
                    (i, f"customer-{i % 997}", i * 0.5, "x" * 40),
                )
            i += 1
            written[0] = i
        conn.close()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    ages: list[float] = []
    pendings: list[int] = []
    deadline = time.monotonic() + seconds
    time.sleep(1.0)  # warm-up
    while time.monotonic() < deadline:
        lag = runner.lag()["blue_to_green"]
        ages.append(lag.age_s)
        pendings.append(lag.pending)
        time.sleep(0.05)
    stop.set()
    t.join()
    elapsed = seconds
    caught = runner.drain(30)
    runner.stop()
    with psycopg.connect(url) as pg:
        green = pg.execute("SELECT count(*) FROM orders").fetchone()[0]
    blue = sqlite3.connect(db).execute("SELECT count(*) FROM orders").fetchone()[0]
    p99 = _pct(ages, 99)
    print(
        f"steady {rate}/s for {elapsed:.0f}s, interval {interval:g}s, batch {batch}: wrote {written[0]:,} "
        f"({written[0] / elapsed:,.0f}/s achieved)\n"
        f"   blue→green lag: p50 {_pct(ages, 50):.3f}s  p95 {_pct(ages, 95):.3f}s  p99 {p99:.3f}s  "
        f"max {max(ages):.3f}s  (target p99 < 1 s: {'ok' if p99 < 1 else 'ABOVE TARGET'}); "
        f"pending p99 {_pct([float(p) for p in pendings], 99):.0f}, mean {statistics.mean(pendings):.1f}\n"
        f"   after the run: drained {caught}, rows blue {blue:,} green {green:,}"
    )


def catch_up_blue(scratch: Scratch, backlog: int, batch: int) -> None:
    db, url = scratch.pair(f"catchup_{batch}")
    conn = sqlite3.connect(db, isolation_level=None)
    inserts = int(backlog * 0.7)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO orders (id, customer, amount, status, note) VALUES (?, ?, ?, 'new', ?)",
        ((i, f"customer-{i % 997}", i * 0.5, "x" * 40) for i in range(inserts)),
    )
    conn.executemany(
        "UPDATE orders SET status = 'paid' WHERE id = ?", ((i,) for i in range(backlog - inserts))
    )
    conn.execute("COMMIT")
    logged = conn.execute("SELECT count(*) FROM _cockpit_changes").fetchone()[0]
    conn.close()
    runner = SyncRunner(db, url, tables=["orders"], batch_size=batch, pass_budget_s=3600)
    runner.mappings()
    t0 = time.perf_counter()
    runner.run_once()
    elapsed = time.perf_counter() - t0
    lag = runner.lag()
    runner.close()
    rate = logged / elapsed
    print(
        f"catch-up blue→green, batch {batch}: {logged:,} changes in {elapsed:.2f}s = {rate:,.0f} changes/s "
        f"(target >= 20,000: {'ok' if rate >= 20_000 else 'BELOW TARGET'}); pending after: "
        f"{lag['blue_to_green'].pending}"
    )


def catch_up_green(scratch: Scratch, backlog: int, batch: int) -> None:
    db, url = scratch.pair(f"catchup_green_{batch}")
    inserts = int(backlog * 0.7)
    with psycopg.connect(url) as pg:
        with pg.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (id, customer, amount, status, note)"
                " SELECT i, 'customer-' || (i %% 997), i * 0.5, 'new', repeat('x', 40) FROM generate_series(0, %s) i",
                (inserts - 1,),
            )
            cur.execute("UPDATE orders SET status = 'paid' WHERE id < %s", (backlog - inserts,))
        pg.commit()
        logged = pg.execute("SELECT count(*) FROM cockpit.changes").fetchone()[0]
    runner = SyncRunner(db, url, tables=["orders"], batch_size=batch, pass_budget_s=3600)
    runner.mappings()
    t0 = time.perf_counter()
    runner.run_once()
    elapsed = time.perf_counter() - t0
    lag = runner.lag()
    runner.close()
    print(
        f"catch-up green→blue, batch {batch}: {logged:,} changes in {elapsed:.2f}s = {logged / elapsed:,.0f} "
        f"changes/s; pending after: {lag['green_to_blue'].pending}"
    )


ACCOUNTS_SQLITE = (
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, balance REAL)"
)
EVENTS_SQLITE = "CREATE TABLE events (at REAL, kind TEXT, payload TEXT)"


def _copied(scratch: Scratch, tag: str, ddl: str, table: str) -> tuple[Path, str, SyncRunner]:
    """A SQLite file with one empty table, copied into a fresh schema-less database by the real initial copy."""
    db = Path(scratch.tmp.name) / f"{tag}.db"
    conn = sqlite3.connect(db)
    conn.execute(ddl)
    conn.commit()
    conn.close()
    with psycopg.connect(scratch.url, autocommit=True) as pg:
        from cockpit.drivers.sync.capture import uninstall_pg

        uninstall_pg(pg)
        pg.execute(f"DROP TABLE IF EXISTS {table}, orders CASCADE")
    runner = SyncRunner(db, scratch.url, tables=[table], batch_size=1000, pass_budget_s=3600)
    runner.initial_copy(jobs=1)
    return db, scratch.url, runner


def catch_up_conflicts(scratch: Scratch, backlog: int, share: float) -> float:
    db, url, runner = _copied(scratch, f"conflicts_{share}", ACCOUNTS_SQLITE, "accounts")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts (email, name, balance) VALUES (?, ?, ?)",
        ((f"user{i}@example.com", f"name {i}", i * 0.25) for i in range(backlog)),
    )
    conn.execute("COMMIT")
    conn.close()
    duplicates = int(backlog * share)
    with psycopg.connect(url) as pg:
        with pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO accounts (email, name, balance) VALUES (%s, 'green', 0)",
                [(f"user{i * (backlog // max(duplicates, 1))}@example.com",) for i in range(duplicates)],
            )
        pg.commit()
    runner.mappings()
    t0 = time.perf_counter()
    out = runner.run_once()
    runner.run_once()  # the mirror of the parked records (and the reverts) into blue
    elapsed = time.perf_counter() - t0
    changes = out["blue_to_green"]["changes"] + out["green_to_blue"]["changes"]
    lag = runner.lag()
    parked = runner.conflicts_waiting()
    runner.close()
    rate = changes / elapsed
    print(
        f"catch-up with {share:.0%} duplicates ({duplicates} e-mails on both sides): {changes:,} changes in "
        f"{elapsed:.2f}s = {rate:,.0f} changes/s; parked {parked}; pending after: "
        f"{lag['blue_to_green'].pending + lag['green_to_blue'].pending}"
    )
    return rate


def catch_up_keyless(scratch: Scratch, backlog: int) -> None:
    db, url, runner = _copied(scratch, "keyless", EVENTS_SQLITE, "events")
    conn = sqlite3.connect(db, isolation_level=None)
    inserts = int(backlog * 0.98)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?)", ((i * 0.001, f"k{i % 17}", "x" * 40) for i in range(inserts))
    )
    conn.execute("DELETE FROM events WHERE rowid % 100 = 0")
    conn.execute("COMMIT")
    logged = conn.execute("SELECT count(*) FROM _cockpit_changes").fetchone()[0]
    conn.close()
    runner.mappings()
    t0 = time.perf_counter()
    runner.run_once()
    elapsed = time.perf_counter() - t0
    print(
        f"catch-up keyless blue→green: {logged:,} changes ({inserts:,} inserts, then 1 % removed) in {elapsed:.2f}s"
        f" = {logged / elapsed:,.0f} changes/s; pending after: {runner.lag()['blue_to_green'].pending}"
    )
    with psycopg.connect(url) as pg:
        pg.execute(
            "INSERT INTO events SELECT i * 0.001, 'g', repeat('y', 40) FROM generate_series(1, %s) i",
            (inserts,),
        )
        pg.execute("UPDATE events SET kind = 'h' WHERE kind = 'g' AND at < %s", (inserts * 0.00001,))
        pg.commit()
        logged = pg.execute("SELECT count(*) FROM cockpit.changes").fetchone()[0]
    t0 = time.perf_counter()
    runner.run_once()
    elapsed = time.perf_counter() - t0
    print(
        f"catch-up keyless green→blue: {logged:,} changes in {elapsed:.2f}s = {logged / elapsed:,.0f} changes/s;"
        f" pending after: {runner.lag()['green_to_blue'].pending}"
    )
    runner.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--intervals", default="0.25,1")
    ap.add_argument("--batches", default="1000,5000")
    ap.add_argument(
        "--skip-conflicts", action="store_true", help="leave out the conflict and keyless figures"
    )
    ap.add_argument("--only-conflicts", action="store_true", help="only the conflict and keyless figures")
    args = ap.parse_args()
    with Scratch() as scratch:
        if args.only_conflicts:
            args.intervals, args.batches = "", ""
        for interval in [float(x) for x in args.intervals.split(",") if x]:
            steady(scratch, args.seconds, args.rate, interval, 1000)
        for batch in [int(x) for x in args.batches.split(",") if x]:
            catch_up_blue(scratch, args.backlog, batch)
        for batch in [int(x) for x in args.batches.split(",") if x]:
            catch_up_green(scratch, args.backlog, batch)
        if not args.skip_conflicts:
            clean = catch_up_conflicts(scratch, args.backlog, 0.0)
            dup = catch_up_conflicts(scratch, args.backlog, 0.01)
            print(
                f"catch-up with 1 % duplicates / without: {dup / clean:.2f}x (target >= 0.8x: "
                f"{'ok' if dup >= 0.8 * clean else 'BELOW TARGET'})"
            )
            catch_up_keyless(scratch, args.backlog)


if __name__ == "__main__":
    main()
