"""Keyless tables synced both ways as multisets (every column together is a row's identity), or by a key the plan
names. Real SQLite files, the real PostgreSQL, the real initial copy; pgloader's corpus file `sqlite.db`."""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from cockpit.core.plan import Cast
from cockpit.drivers.sync.runner import SyncRunner
from tests.sync.test_copy_support import assert_copied_exactly
from tests.sync.test_corpus import CORPUS, MISSING
from tests.sync.test_sync_support import Events, blue_exec, blue_rows, green_rows, make_copied, pg_exec

LOG = ["CREATE TABLE log (line TEXT, n INTEGER, x REAL, b BLOB)"]


def _multiset(rows):
    return Counter(rows)


def _settle(r: SyncRunner, passes: int = 3) -> None:
    for _ in range(passes):
        r.run_once()
    lag = r.lag()
    assert lag["blue_to_green"].pending == 0 and lag["green_to_blue"].pending == 0


def test_identical_rows_inserted_on_both_sides_both_survive_and_values_stay_exact(tmp_path, pg_url):
    events = Events()
    db, r = make_copied(tmp_path, pg_url, LOG, tables=["log"], on_event=events)
    try:
        row = ("same", 1, 0.1 + 0.2, b"\x00\xff")
        blue_exec(db, "INSERT INTO log VALUES (?, ?, ?, ?)", row)
        pg_exec(pg_url, "INSERT INTO log VALUES (%s, %s, %s, %s)", row)
        blue_exec(db, "INSERT INTO log VALUES ('big', NULL, 1e300, x'')")
        pg_exec(pg_url, "INSERT INTO log VALUES ('tiny', -3, 5e-324, NULL)")
        _settle(r)
        want = _multiset([row, row, ("big", None, 1e300, b""), ("tiny", -3, 5e-324, None)])
        assert _multiset(blue_rows(db, "log")) == want and _multiset(green_rows(pg_url, "log")) == want
        blue_exec(
            db, "DELETE FROM log WHERE rowid = (SELECT min(rowid) FROM log WHERE line = 'same')"
        )  # one copy
        pg_exec(pg_url, "UPDATE log SET n = 7 WHERE line = 'tiny'")  # an update: - old, + new
        _settle(r)
        want = _multiset([row, ("big", None, 1e300, b""), ("tiny", 7, 5e-324, None)])
        assert _multiset(blue_rows(db, "log")) == want and _multiset(green_rows(pg_url, "log")) == want
        blue_exec(db, "DELETE FROM log WHERE line = 'same'")
        pg_exec(
            pg_url, "DELETE FROM log WHERE line = 'same'"
        )  # the same copy deleted on both sides: gone once
        _settle(r)
        assert _multiset(blue_rows(db, "log")) == _multiset(green_rows(pg_url, "log"))
        assert all(line != "same" for line, *_ in blue_rows(db, "log"))
        assert events.of("sync.conflict") == []
    finally:
        r.close()


def _blue_ops(db: Path, rnd: random.Random, n: int) -> None:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    for _ in range(n):
        pick = rnd.random()
        if pick < 0.5:
            conn.execute(
                "INSERT INTO log VALUES (?, ?, ?, ?)", (f"l{rnd.randrange(5)}", rnd.randrange(3), 0.5, None)
            )
        elif pick < 0.75:
            conn.execute(
                "DELETE FROM log WHERE rowid = (SELECT rowid FROM log WHERE line = ? LIMIT 1)",
                (f"l{rnd.randrange(5)}",),
            )
        else:
            conn.execute(
                "UPDATE log SET n = n + 1 WHERE rowid = (SELECT rowid FROM log WHERE line = ? LIMIT 1)",
                (f"l{rnd.randrange(5)}",),
            )
    conn.close()


def _green_ops(pg_url: str, rnd: random.Random, n: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for _ in range(n):
            pick = rnd.random()
            line = f"l{rnd.randrange(5)}"
            if pick < 0.5:
                pg.execute("INSERT INTO log VALUES (%s, %s, 0.5, NULL)", (line, rnd.randrange(3)))
            elif pick < 0.75:
                pg.execute(
                    "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE line = %s LIMIT 1)", (line,)
                )
            else:
                pg.execute(
                    "UPDATE log SET n = n + 1 WHERE ctid = (SELECT ctid FROM log WHERE line = %s LIMIT 1)",
                    (line,),
                )


def test_random_multiset_workloads_on_both_sides_converge(tmp_path, pg_url):
    db, r = make_copied(tmp_path, pg_url, LOG, tables=["log"], batch_size=7)
    rnd = random.Random(8)
    try:
        for _ in range(15):
            _blue_ops(db, rnd, 20)
            _green_ops(pg_url, rnd, 20)
            r.run_once()
        _settle(r)
        blue = _multiset(blue_rows(db, "log"))
        assert blue == _multiset(green_rows(pg_url, "log"))
        assert max(blue.values()) > 1  # duplicates were part of it
    finally:
        r.close()


def test_a_key_the_plan_names_makes_a_keyless_table_keyed(tmp_path, pg_url):
    ddl = ["CREATE TABLE settings (name TEXT NOT NULL, value TEXT)"]
    db, r = make_copied(tmp_path, pg_url, ddl, tables=["settings"], row_keys={"settings": ["name"]})
    try:
        blue_exec(db, "INSERT INTO settings VALUES ('theme', 'dark')")
        _settle(r)
        blue_exec(
            db, "UPDATE settings SET value = 'light' WHERE name = 'theme'"
        )  # state-based: one row per key
        pg_exec(pg_url, "INSERT INTO settings VALUES ('lang', 'pt')")
        _settle(r)
        assert sorted(blue_rows(db, "settings")) == [("lang", "pt"), ("theme", "light")]
        assert sorted(green_rows(pg_url, "settings")) == [("lang", "pt"), ("theme", "light")]
        conn = sqlite3.connect(db)
        ops = {op for (op,) in conn.execute("SELECT op FROM _cockpit_changes")}
        conn.close()
        assert ops <= {"I", "U", "D"}  # keys, not row images
    finally:
        r.close()


SQLITE_DB_CASTS = [Cast("intege", "id", "text"), Cast("stamps", "StartTime", "text")]


@pytest.mark.skipif(not (CORPUS / "sqlite.db").exists(), reason=MISSING)
def test_pgloader_sqlite_db_copies_then_syncs_both_ways_with_duplicates(tmp_path, pg_url):
    path = tmp_path / "sqlite.db"
    shutil.copy(CORPUS / "sqlite.db", path)
    r = SyncRunner(path, pg_url, casts=SQLITE_DB_CASTS)
    try:
        r.initial_copy(jobs=2)
        assert_copied_exactly(str(path), pg_url, casts=SQLITE_DB_CASTS)
        rnd = random.Random(3)
        keyless = ["long", "item", "TableName", "references", "double", "t548"]
        for _ in range(5):
            conn = sqlite3.connect(path, isolation_level=None)
            with psycopg.connect(pg_url, autocommit=True) as pg:
                for _ in range(10):
                    table = rnd.choice(keyless)
                    cols = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')]
                    row = conn.execute(f'SELECT * FROM "{table}" ORDER BY random() LIMIT 1').fetchone()
                    if row is None:
                        continue
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    if rnd.random() < 0.5:  # a duplicate of an existing row, on either side
                        conn.execute(
                            f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM "{table}" LIMIT 1'
                        )
                    else:
                        pg.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM "{table}" LIMIT 1')
                    if rnd.random() < 0.3:
                        conn.execute(
                            f'DELETE FROM "{table}" WHERE rowid = (SELECT max(rowid) FROM "{table}")'
                        )
                    if rnd.random() < 0.3:
                        pg.execute(f'DELETE FROM "{table}" WHERE ctid = (SELECT min(ctid) FROM "{table}")')
            conn.close()
            r.run_once()
        _settle(r)
        assert_copied_exactly(
            str(path), pg_url, casts=SQLITE_DB_CASTS
        )  # blue and green equal, value by value
    finally:
        r.close()
