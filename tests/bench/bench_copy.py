"""Initial copy of a 1,000,000-row SQLite table: ours vs pgloader vs `psql \\copy` from CSV, same server.

Run: .venv/bin/python tests/bench/bench_copy.py [--rows N] [--jobs N] [--rounds N] [--skip-pgloader]
Needs the PostgreSQL server of the tests (COCKPIT_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres),
`pgloader` and `psql` on PATH. Each tool loads into its own fresh database; the figures are rows per second of wall
time, printed side by side with our ratios (targets: >= 3x pgloader, >= 0.9x psql \\copy). With `--rounds N` every tool
runs N times, interleaved (so all see the same machine load), and the medians are compared.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from cockpit.drivers.sync import copy as copy_module
from cockpit.drivers.sync.copy import copy_database

ADMIN = os.environ.get("COCKPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLE_SQL = (
    "CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL, active BOOLEAN NOT NULL, "
    "day DATE, created DATETIME, updated TIMESTAMP)"
)
PG_TABLE_SQL = (
    "CREATE TABLE bench (id bigint NOT NULL, name text NOT NULL, amount double precision, active boolean NOT NULL, "
    "day date, created timestamp, updated timestamp)"
)


def generate(path: Path, rows: int) -> None:
    rng = random.Random(42)
    base = dt.datetime(2020, 1, 1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(TABLE_SQL)

    def gen():
        for i in range(1, rows + 1):
            t = base + dt.timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))
            u = t + dt.timedelta(seconds=rng.randrange(0, 86400), milliseconds=rng.randrange(1000))
            yield (
                i,
                f"customer {i} {rng.choice(['alpha', 'beta', 'gamma', 'delta'])} name",
                round(rng.uniform(0, 10000), 2) if i % 10 else rng.random() * 1000,
                i % 3 == 0,
                t.date().isoformat(),
                t.strftime("%Y-%m-%d %H:%M:%S"),
                u.strftime("%Y-%m-%d %H:%M:%S.") + f"{u.microsecond // 1000:03d}",
            )

    conn.executemany("INSERT INTO bench VALUES (?, ?, ?, ?, ?, ?, ?)", gen())
    conn.commit()
    conn.close()


def export_csv(db: Path, out: Path) -> None:
    conn = sqlite3.connect(db)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        for row in conn.execute("SELECT id, name, amount, active, day, created, updated FROM bench"):
            w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    conn.close()


def fresh_db() -> str:
    name = f"cockpit_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_for(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM bench").fetchone()[0]


def cpu_seconds() -> float:
    """CPU time of this process, all threads (SQLite renders the COPY text in our process)."""
    t = os.times()
    return t.user + t.system


def run_ours(db: Path, jobs: int) -> tuple[float | None, str, float]:
    name = fresh_db()
    try:
        work = db.with_name("ours.db")
        shutil.copy(db, work)
        cpu0 = cpu_seconds()
        started = time.perf_counter()
        report = copy_database(str(work), url_for(name), jobs=jobs)
        took = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
        assert count(url_for(name)) == report.rows
        readers = copy_module._readers(jobs)
        return (
            took,
            (
                f"load {report.load_seconds:.2f}s of {report.seconds:.2f}s total; {readers} SQLite "
                f"reader(s) on {os.cpu_count()} CPUs; our process CPU {cpu:.2f}s"
            ),
            cpu,
        )
    finally:
        drop_db(name)


def run_pgloader(db: Path) -> tuple[float | None, str]:
    exe = shutil.which("pgloader")
    if exe is None:
        return None, "pgloader not installed"
    name = fresh_db()
    try:
        work = db.with_name("pgloader.db")
        shutil.copy(db, work)
        started = time.perf_counter()
        proc = subprocess.run(
            [exe, f"sqlite://{work}", url_for(name).replace("postgresql://", "pgsql://")],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        took = time.perf_counter() - started
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return None, f"pgloader failed (exit {proc.returncode}): " + " | ".join(tail)
        rows = count(url_for(name))
        return took, f"{rows} rows loaded"
    except subprocess.TimeoutExpired:
        return None, "pgloader timed out"
    finally:
        drop_db(name)


def run_psql(csv_path: Path) -> tuple[float | None, str]:
    exe = shutil.which("psql")
    if exe is None:
        return None, "psql not installed"
    name = fresh_db()
    try:
        with psycopg.connect(url_for(name)) as conn:
            conn.execute(PG_TABLE_SQL)
        started = time.perf_counter()
        proc = subprocess.run(
            [
                exe,
                url_for(name),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy bench FROM '{csv_path}' WITH (FORMAT csv)",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        took = time.perf_counter() - started
        if proc.returncode != 0:
            return None, f"psql failed: {proc.stderr.strip()}"
        return took, "into an existing table without keys"
    finally:
        drop_db(name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--jobs", type=int, default=4, help="a second cockpit run with this many jobs (the first uses 1)"
    )
    ap.add_argument("--rounds", type=int, default=1, help="runs of every tool, interleaved; medians compared")
    ap.add_argument("--skip-pgloader", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cockpit-bench-"))
    try:
        db = tmp / "bench.db"
        t0 = time.perf_counter()
        generate(db, args.rows)
        export_csv(db, tmp / "bench.csv")
        print(
            f"generated {args.rows} rows (+ CSV) in {time.perf_counter() - t0:.1f}s; load average "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.rounds} round(s)"
        )
        ours_label, many_label = "cockpit copy", f"cockpit --jobs {args.jobs}"
        times: dict[str, list[float]] = {}
        notes: dict[str, str] = {}
        cpus: list[float] = []
        for _ in range(args.rounds):
            for label, run in (
                (ours_label, lambda: run_ours(db, 1)),
                (many_label, lambda: run_ours(db, args.jobs)),
                ("pgloader", lambda: (None, "skipped") if args.skip_pgloader else run_pgloader(db)),
                ("psql \\copy (CSV)", lambda: run_psql(tmp / "bench.csv")),
            ):
                result = run()
                secs, notes[label] = result[0], result[1]
                if len(result) > 2:
                    cpus.append(result[2])  # type: ignore[misc]
                if secs:
                    times.setdefault(label, []).append(secs)
        med = {label: statistics.median(ts) for label, ts in times.items()}
        print(f"{'tool':<20} {'median s':>8} {'rows/s':>12}  rounds (s); note")
        for label in (ours_label, many_label, "pgloader", "psql \\copy (CSV)"):
            secs = med.get(label)
            rate = f"{args.rows / secs:>12,.0f}" if secs else f"{'-':>12}"
            rounds = " ".join(f"{t:.2f}" for t in times.get(label, []))
            print(f"{label:<20} {secs if secs else float('nan'):>8.2f} {rate}  {rounds}; {notes[label]}")
        ours = min(t for t in (med.get(ours_label), med.get(many_label)) if t)
        print(f"ours = the faster median of the two cockpit runs ({ours:.2f}s)")
        parse = med.get("psql \\copy (CSV)")
        if parse:  # psql's time is PostgreSQL's COPY parse of the same rows, which our load needs as well
            ncpu = os.cpu_count() or 1
            cpu = statistics.median(cpus)
            floor = (cpu + parse) / ncpu
            print(
                f"CPU bound: our process {cpu:.2f}s (median; SQLite rendering + Python) + PostgreSQL parse "
                f"~{parse:.2f}s (psql's time) on {ncpu} CPUs -> at best {floor:.2f}s wall even if perfectly parallel"
            )
        for peer, target in (("pgloader", 3.0), ("psql \\copy (CSV)", 0.9)):
            theirs = med.get(peer)
            if theirs:
                ratio = theirs / ours
                print(
                    f"ours / {peer}: {ratio:.2f}x (target >= {target}x) {'OK' if ratio >= target else 'MISSED'}"
                )
            else:
                print(f"ours / {peer}: n/a ({notes[peer]})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
