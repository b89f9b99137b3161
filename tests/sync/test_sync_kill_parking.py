"""SIGKILL of the applier (a real subprocess) while it parks rows: nothing lost, nothing parked twice.

Both sides register the same unique values under different keys, batch after batch, while a child process applies
and is killed at random points. Afterwards every acknowledged row is in its table or parked, exactly once, and
both sides hold the same rows and the same records."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg

from tests.sync.test_sync_support import assert_same, blue_rows, make_copied, store_rows

ROOT = Path(__file__).resolve().parents[2]
DDL = ["CREATE TABLE companies (id INTEGER PRIMARY KEY, cnpj TEXT NOT NULL UNIQUE, name TEXT)"]

CHILD = """
import sys
from pathlib import Path
from cockpit.drivers.sync.runner import SyncRunner
r = SyncRunner(Path(sys.argv[1]), sys.argv[2], tables=["companies"], batch_size=int(sys.argv[3]))
print("ready", flush=True)
while True:
    out = r.run_once()
    print(out["blue_to_green"]["changes"], out["green_to_blue"]["changes"], out["conflicts"], flush=True)
"""


def test_sigkill_while_parking_loses_and_doubles_nothing(tmp_path, pg_url):
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies"])
    r.close()
    rnd = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acknowledged: set[tuple[int, str]] = set()
    killed_parking = 0
    for run in range(25):
        conn = sqlite3.connect(db)
        with psycopg.connect(pg_url, autocommit=True) as pg:
            for i in range(6):
                n = run * 6 + i
                conn.execute("INSERT INTO companies VALUES (?, ?, 'b')", (n + 1, f"c{n}"))
                acknowledged.add((n + 1, f"c{n}"))
                if rnd.random() < 0.5:  # the same value registered on green too
                    pg.execute("INSERT INTO companies VALUES (%s, %s, 'g')", (-(n + 1), f"c{n}"))
                    acknowledged.add((-(n + 1), f"c{n}"))
            conn.commit()
        conn.close()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), pg_url, str(rnd.choice([1, 2, 3]))],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for _ in range(rnd.randrange(0, 4)):
                line = child.stdout.readline()
                if not line:
                    break
                if line.split()[2] != "0":
                    killed_parking += 1
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()
            child.stderr.close()
    assert killed_parking > 3  # kills landed around parking work
    r = make_runner(db, pg_url)
    try:
        for _ in range(4):
            r.run_once()
        lag = r.lag()
        assert lag["blue_to_green"].pending == 0 and lag["green_to_blue"].pending == 0
    finally:
        r.close()
    assert_same(db, pg_url, ["companies"])
    blue, green = store_rows(db, pg_url)
    assert Counter(x["uid"] for x in blue) == Counter(x["uid"] for x in green)  # every record on both sides
    assert max(Counter(x["uid"] for x in blue).values()) == 1  # once each
    present = {(row[0], row[1]) for row in blue_rows(db, "companies")}
    parked = Counter((x[x["parked"]]["id"], x[x["parked"]]["cnpj"]) for x in blue)
    assert max(parked.values(), default=1) == 1  # no version parked twice
    assert present | set(parked) == acknowledged  # every acknowledged row: in the table or parked
    assert not present & set(parked)


def make_runner(db: Path, pg_url: str):
    from cockpit.drivers.sync.runner import SyncRunner

    return SyncRunner(db, pg_url, tables=["companies"])
