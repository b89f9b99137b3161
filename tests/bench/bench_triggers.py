"""Write overhead of the capture triggers on SQLite: inserts/s with triggers vs without (target ratio >= 0.5).

Run: .venv/bin/python tests/bench/bench_triggers.py [--rows N] [--rounds N]
Two shapes: one insert per transaction (what a web app does; dominated by the commit) and 1,000 inserts per
transaction (the triggers' own cost shows). WAL, synchronous=NORMAL, as the sync sets up blue.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cockpit.drivers.sync.capture import install_sqlite

DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL, status TEXT,"
    " created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
)


def _db(folder: Path, name: str, triggers: bool) -> sqlite3.Connection:
    path = folder / name
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(DDL)
    if triggers:
        install_sqlite(conn, ["orders"])
    return conn


def _run(conn: sqlite3.Connection, rows: int, per_tx: int, start: int) -> float:
    sql = "INSERT INTO orders (id, customer, amount, status) VALUES (?, ?, ?, ?)"
    t0 = time.perf_counter()
    i = start
    while i < start + rows:
        conn.execute("BEGIN")
        for j in range(i, min(i + per_tx, start + rows)):
            conn.execute(sql, (j, f"customer-{j % 977}", j * 0.25, "new"))
        conn.execute("COMMIT")
        i += per_tx
    return rows / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--rows", type=int, default=100_000
    )  # a round of 20,000 batched inserts was ~40 ms: noise
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(
        f"SQLite {sqlite3.sqlite_version}; {args.rows} inserts per round, {args.rounds} rounds (best rates; the ratio is the median of the rounds' ratios)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = _db(folder, "plain.db", False)
        captured = _db(folder, "captured.db", True)
        for per_tx, label in ((1, "1 insert per transaction"), (1000, "1,000 inserts per transaction")):
            rows = args.rows if per_tx > 1 else max(1000, args.rows // 4)
            plains, trigs = [], []
            for r in range(args.rounds):  # interleaved, so both see the same machine load
                start = (r + 1) * 10_000_000 + per_tx * 1_000_000
                plains.append(_run(plain, rows, per_tx, start))
                trigs.append(_run(captured, rows, per_tx, start))
            # the median of each round's ratio: one lucky round of one side cannot swing it (best/best did)
            ratio = statistics.median(t / p for t, p in zip(trigs, plains, strict=True))
            best_plain, best_trig = max(plains), max(trigs)
            verdict = "ok" if ratio >= 0.5 else "BELOW TARGET"
            print(
                f"{label:32} without triggers {best_plain:>10,.0f}/s   with triggers {best_trig:>10,.0f}/s"
                f"   ratio {ratio:.2f} (target >= 0.50: {verdict})"
            )
        logged = captured.execute("SELECT count(*) FROM _cockpit_changes").fetchone()[0]
        print(f"changes logged by the triggers: {logged:,}")
        plain.close()
        captured.close()


if __name__ == "__main__":
    main()
