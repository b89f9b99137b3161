"""Integrity on a real SQLite file and its real PostgreSQL copy: counts, segment checksums, the exact rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from cockpit.drivers.integrity import check, mask
from cockpit.drivers.sync.copy import copy_database
from cockpit.drivers.sync.schema import read_mapping


@pytest.fixture
def copied(tmp_path: Path, pg_url: str) -> tuple[str, str, dict]:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, active BOOLEAN, score REAL,"
            " created DATETIME)"
        )
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
            [
                (i, f"user{i}@example.com.br", i % 2, i / 7, f"2026-01-{1 + i % 28:02d} 10:00:00")
                for i in range(1, 2501)
            ],
        )
        conn.execute('CREATE TABLE "Companies" (cnpj TEXT PRIMARY KEY, name TEXT)')
        conn.executemany(
            'INSERT INTO "Companies" VALUES (?, ?)',
            [(f"{i:02d}.345.678/0001-{i:02d}", f"Empresa {i}") for i in range(10, 60)],
        )
    copy_database(str(db), pg_url, jobs=2)
    with sqlite3.connect(db) as conn:
        mapping = read_mapping(conn)
    return str(db), pg_url, mapping


def test_equal_sides_score_100(copied: tuple[str, str, dict]) -> None:
    db, url, mapping = copied
    report = check(db, url, mapping, segment_rows=500)
    assert report.ok and report.score == 100.0
    users = report.table("users")
    assert (users.blue_rows, users.green_rows, users.segments, users.mismatched_segments) == (
        2500,
        2500,
        5,
        0,
    )
    assert report.compared == 2550


def test_names_the_exact_rows_and_masks_personal_data(copied: tuple[str, str, dict]) -> None:
    db, url, mapping = copied
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("UPDATE users SET score = score + 1 WHERE id = 1234")
        pg.execute("DELETE FROM users WHERE id = 77")
        pg.execute("INSERT INTO users VALUES (9999, 'ghost@example.com', true, 1.0, now())")
        pg.execute("""UPDATE "Companies" SET name = 'Outra' WHERE cnpj = '42.345.678/0001-42'""")
    report = check(db, url, mapping, segment_rows=500)
    assert not report.ok
    users, companies = report.table("users"), report.table("Companies")
    kinds = {(d.key, d.kind, d.columns) for d in users.diffs}
    assert kinds == {
        ((77,), "missing_on_green", ()),
        ((1234,), "different", ("score",)),
        ((9999,), "missing_on_blue", ()),
    }
    assert users.mismatched_segments == 3  # the two touched segments and the rows after blue's last key
    assert [d.key for d in companies.diffs] == [("42.345.678/0001-42",)]
    text = report.summary()
    assert "42.345.678/0001-42" not in text and "**.***.***/****-42" in text
    assert "42.345.678/0001-42" in report.summary(unmask=True)
    assert report.score == pytest.approx(100 * (2551 - 4) / 2551, abs=1e-3)
    assert [t for t in report.as_dict()["tables"] if t["table"] == "Companies"][0]["diffs"][0]["key"] == [
        "**.***.***/****-42"
    ]


def test_rows_in_flight_that_catch_up_are_not_divergence(copied: tuple[str, str, dict]) -> None:
    db, url, mapping = copied
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("UPDATE users SET email = 'late@example.com' WHERE id = 10")
        pg.execute("UPDATE users SET email = 'wrong@example.com' WHERE id = 11")

    def sync_catches_up() -> None:  # what the sync would do for the row in flight
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("UPDATE users SET email = 'user10@example.com.br' WHERE id = 10")

    report = check(db, url, mapping, settle=sync_catches_up)
    assert report.settled_keys == 1
    assert [(d.key, d.columns) for d in report.table("users").diffs] == [((11,), ("email",))]


def test_mask() -> None:
    assert (
        mask("ana.souza@gmail.com 123.456.789-09 12.345.678/0001-95")
        == "a***@gmail.com ***.***.***-09 **.***.***/****-95"
    )


def test_cli(copied: tuple[str, str, dict]) -> None:
    import json
    import subprocess
    import sys

    db, url, _ = copied

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "cockpit", "integrity", "--from", db, "--to", url, *a]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    ok = run()
    assert ok.returncode == 0 and "score 100% over 2550 rows" in ok.stdout
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("UPDATE users SET email = 'x@y.com' WHERE id = 5")
    bad = run("--json", "--tables", "users")
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False and doc["tables"][0]["diffs"] == [
        {"key": [5], "kind": "different", "columns": ["email"]}
    ]
    assert run("--tables", "nope").returncode == 1


def test_a_table_without_a_key_is_compared_by_count(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "log.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE log (at TEXT, line TEXT)")
        conn.executemany("INSERT INTO log VALUES (?, ?)", [("2026-01-01", f"l{i}") for i in range(10)])
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    copy_database(str(db), pg_url, jobs=1)
    with sqlite3.connect(db) as conn:
        mapping = read_mapping(conn)
    assert check(str(db), pg_url, mapping).ok
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("DELETE FROM log WHERE line = 'l3'")
    report = check(str(db), pg_url, mapping)
    assert not report.ok and report.table("log").note == "counts differ"
    assert "no primary key, counts only" in report.summary()


def test_touched_rows_are_what_the_sync_carried_and_the_rollback_compares_them(
    tmp_path: Path, pg_url: str
) -> None:
    """The keys the sync carries either way (also key changes and deletes) are remembered; a check of those rows
    finds a touched row that differs and the counts, and leaves the untouched rows alone (the rollback's scope)."""
    from cockpit.drivers.integrity import IntegrityWatch
    from cockpit.drivers.sync.capture import touched_keys
    from cockpit.drivers.sync.runner import SyncRunner

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
        conn.execute('CREATE TABLE "Pairs" (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b))')
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(i, f"u{i}@x.com") for i in range(1, 1001)])
        conn.executemany('INSERT INTO "Pairs" VALUES (?, ?, ?)', [(f"k{i}", i, "v") for i in range(20)])
    runner = SyncRunner(db, pg_url)
    try:
        runner.initial_copy(jobs=1)
        with sqlite3.connect(db) as conn:  # the app on blue
            conn.execute("UPDATE users SET email = 'new@x.com' WHERE id = 5")
            conn.execute("UPDATE users SET id = 2000 WHERE id = 6")  # a key change: both keys touched
            conn.execute("DELETE FROM \"Pairs\" WHERE a = 'k3'")
        with psycopg.connect(pg_url, autocommit=True) as pg:  # the app on green
            pg.execute("INSERT INTO users VALUES (3000, 'green@x.com')")
            pg.execute("UPDATE \"Pairs\" SET v = 'green' WHERE a = 'k4' AND b = 4")
        runner.run_once()
        runner.run_once()
        with sqlite3.connect(db) as conn:
            touched = touched_keys(conn)
            logged = conn.execute("SELECT count(*) FROM _cockpit_changes WHERE pk = '[3000]'").fetchone()[0]
        assert touched == {"users": {(5,), (6,), (2000,), (3000,)}, "Pairs": {("k3", 3), ("k4", 4)}}
        assert logged == 0  # the applier's writes on blue are remembered, not logged (nothing loops back)

        watch = IntegrityWatch(str(db), pg_url, None)
        assert watch.check_now(touched_only=True).ok
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("UPDATE users SET email = 'drift' WHERE id IN (5, 700)")  # 5 touched, 700 not
        scoped = watch.check_now(touched_only=True)
        assert [d.key for t in scoped.tables for d in t.diffs] == [(5,)]
        assert scoped.table("users").compared == 4 and scoped.table("users").blue_rows == 1001
        full = watch.check_now()
        assert sorted(d.key for t in full.tables for d in t.diffs) == [(5,), (700,)]
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("UPDATE users SET email = 'u5@x.com' WHERE id = 5")
            pg.execute("SET session_replication_role = replica")  # a write the triggers do not see
            pg.execute("INSERT INTO users VALUES (9999, 'ghost')")
        counted = watch.check_now(touched_only=True)
        assert not counted.ok and counted.table("users").green_rows == counted.table("users").blue_rows + 1
    finally:
        runner.close()
