"""SIGKILL of the applier (a real subprocess) at random points, 50 times; then both sides are equal."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.sync.test_sync_support import assert_same, make_pair, runner
from tests.sync.test_sync_workload import blue_workload, green_workload

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
from tests.sync.test_sync_support import runner
r = runner(Path(sys.argv[1]), sys.argv[2], batch_size=int(sys.argv[3]))
print("ready", flush=True)
while True:
    out = r.run_once()
    print(out["blue_to_green"]["changes"], out["green_to_blue"]["changes"], flush=True)
"""


def _positions(db: Path, pg_url: str) -> tuple[int, list[int]]:
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute(
            "SELECT position FROM cockpit.positions WHERE direction = 'blue_to_green'"
        ).fetchall()
    assert len(rows) <= 1
    conn = sqlite3.connect(db)
    try:
        state = conn.execute("SELECT key, value FROM _cockpit_state WHERE key = 'green_to_blue'").fetchall()
    finally:
        conn.close()
    assert len(state) <= 1
    return (rows[0][0] if rows else 0), (json.loads(state[0][1]) if state else [0, 0])


def test_sigkill_at_random_points_loses_and_repeats_nothing(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    rnd = random.Random(5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    last_blue, last_green = 0, [0, 0]
    killed_busy = 0
    for run in range(50):
        blue_workload(db, 25, seed=1000 + run)
        green_workload(pg_url, 25, seed=2000 + run)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), pg_url, str(rnd.choice([1, 2, 3, 5]))],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for _ in range(rnd.randrange(0, 6)):  # let it apply a few batches, then kill it mid-way
                line = child.stdout.readline()
                if not line:
                    break
                if line.split() != ["0", "0"]:
                    killed_busy += 1
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()
            child.stderr.close()
        blue_pos, green_pos = _positions(db, pg_url)
        assert blue_pos >= last_blue and green_pos >= last_green  # positions never go back
        last_blue, last_green = blue_pos, green_pos
    assert killed_busy > 10  # most kills landed while there was work in flight
    r = runner(db, pg_url)
    try:
        assert r.drain(30)
        r.run_once()
        lag = r.lag()
        assert lag["blue_to_green"].pending == 0 and lag["green_to_blue"].pending == 0
    finally:
        r.close()
    assert_same(db, pg_url)
    with psycopg.connect(pg_url) as pg:
        total, distinct = pg.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()
        assert total == distinct
        assert (
            pg.execute("SELECT count(*) FROM cockpit.changes WHERE tbl NOT IN ('items', 'Pairs')").fetchone()[
                0
            ]
            == 0
        )
