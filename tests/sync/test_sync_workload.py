"""A random workload on both sides at once while the sync runs; afterwards both sides are equal row for row."""

from __future__ import annotations

import random
import sqlite3
import threading

import psycopg
import pytest

from tests.conftest import wait_for
from tests.sync.test_sync_support import Events, assert_same, make_pair, runner

KEYS = 40  # a small key space: inserts reuse deleted keys, both sides touch the same rows


def blue_workload(db, ops: int, seed: int) -> int:
    rnd = random.Random(seed)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    done = 0
    for _ in range(ops):
        k = rnd.randrange(KEYS)
        choice = rnd.random()
        try:
            if choice < 0.4:
                conn.execute(
                    "INSERT INTO items (id, name, qty, price, data) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, qty = excluded.qty",
                    (k, f"b{rnd.random():.6f}", rnd.randrange(1000), rnd.random() * 100, rnd.randbytes(4)),
                )
            elif choice < 0.6:
                conn.execute("UPDATE items SET qty = qty + 1, name = ? WHERE id = ?", (f"bu{done}", k))
            elif choice < 0.75:
                conn.execute("DELETE FROM items WHERE id = ?", (k,))
            elif choice < 0.85:
                conn.execute("UPDATE items SET id = ? WHERE id = ?", (rnd.randrange(KEYS), k))  # key change
            else:
                conn.execute("BEGIN IMMEDIATE")  # a transaction over both tables
                conn.execute(
                    """INSERT INTO "Pairs" VALUES (?, ?, ?) ON CONFLICT (a, b) DO UPDATE SET "value" = excluded."value\"""",
                    (f"k{k % 5}", k % 7, f"b{done}"),
                )
                conn.execute('DELETE FROM "Pairs" WHERE a = ? AND b = ?', (f"k{(k + 1) % 5}", (k + 3) % 7))
                conn.execute("COMMIT")
            done += 1
        except sqlite3.IntegrityError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    conn.close()
    return done


def green_workload(pg_url: str, ops: int, seed: int) -> int:
    rnd = random.Random(seed)
    done = 0
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for _ in range(ops):
            k = rnd.randrange(KEYS)
            choice = rnd.random()
            try:
                if choice < 0.4:
                    pg.execute(
                        "INSERT INTO items (id, name, qty, price, data) VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, qty = excluded.qty",
                        (
                            k,
                            f"g{rnd.random():.6f}",
                            rnd.randrange(1000),
                            rnd.random() * 100,
                            rnd.randbytes(4),
                        ),
                    )
                elif choice < 0.6:
                    pg.execute("UPDATE items SET qty = qty + 1, name = %s WHERE id = %s", (f"gu{done}", k))
                elif choice < 0.75:
                    pg.execute("DELETE FROM items WHERE id = %s", (k,))
                elif choice < 0.85:
                    pg.execute("UPDATE items SET id = %s WHERE id = %s", (rnd.randrange(KEYS), k))
                else:
                    with pg.transaction():
                        pg.execute(
                            """INSERT INTO "Pairs" VALUES (%s, %s, %s) ON CONFLICT (a, b) DO UPDATE"""
                            """ SET "value" = excluded."value\"""",
                            (f"k{k % 5}", k % 7, f"g{done}"),
                        )
                        pg.execute(
                            """DELETE FROM "Pairs" WHERE a = %s AND b = %s""",
                            (f"k{(k + 2) % 5}", (k + 1) % 7),
                        )
                done += 1
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                pass
    return done


@pytest.mark.parametrize("policy", ["newest", "blue-wins"])
def test_random_workload_on_both_sides_at_once(tmp_path, pg_url, policy):
    db = make_pair(tmp_path, pg_url)
    events = Events()
    r = runner(db, pg_url, interval=0.02, batch_size=50, conflict_policy=policy, on_event=events)
    r.start()
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(name, fn, *args):
        try:
            results[name] = fn(*args)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("blue", blue_workload, db, 1500, 1)),
        threading.Thread(target=run, args=("green", green_workload, pg_url, 1500, 2)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert results["blue"] > 1000 and results["green"] > 1000
        wait_for(lambda: r.drain(1.0), 30, what="drain after the workload")
        wait_for(lambda: r.lag()["blue_to_green"].pending == 0, 30, what="blue→green caught up")
    finally:
        r.stop()
    r2 = runner(db, pg_url)
    try:  # one more pass from a fresh runner moves nothing: both sides already agree
        again = r2.run_once()
        assert again["blue_to_green"]["changes"] == 0 and again["green_to_blue"]["changes"] == 0
    finally:
        r2.close()
    assert_same(db, pg_url)
    assert not events.of("sync.error"), events.of("sync.error")
