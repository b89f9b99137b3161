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


def _table_bytes(url: str, table: str) -> int:
    with psycopg.connect(url) as pg:
        return int(pg.execute("SELECT pg_table_size(%s)", [table]).fetchone()[0])


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
    assert report.notes == ()  # every column hashed in SQL on both sides
    # only segment hashes crossed: a few bytes per segment, far below the table
    assert 0 < users.bytes < _table_bytes(url, "users") / 50
    assert report.bytes >= sum(t.bytes for t in report.tables)  # and the probes of the renderings
    assert report.as_dict()["bytes"] == report.bytes and "moved" in report.summary()


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
    assert 0 < doc["tables"][0]["bytes"] <= doc["bytes"] < 20_000
    assert run("--tables", "nope").returncode == 1


def test_a_table_without_a_key_is_compared_as_a_multiset(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "log.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE log (at TEXT, line TEXT, n REAL)")
        conn.executemany(
            "INSERT INTO log VALUES (?, ?, ?)", [("2026-01-01", f"l{i % 400}", i / 3) for i in range(3000)]
        )
        conn.execute("INSERT INTO log VALUES ('2026-01-02', 'twice', 1.0)")
        conn.execute("INSERT INTO log VALUES ('2026-01-02', 'twice', 1.0)")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    copy_database(str(db), pg_url, jobs=1)
    with sqlite3.connect(db) as conn:
        mapping = read_mapping(conn)
    equal = check(str(db), pg_url, mapping)
    assert equal.ok and equal.table("log").compared == 3002
    assert equal.table("log").bytes < _table_bytes(pg_url, "log") / 5  # bucket hashes only
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("DELETE FROM log WHERE line = 'l3' AND n = 1")  # missing on green
        pg.execute("UPDATE log SET line = 'changed' WHERE line = 'l7' AND n = 7 / 3.0")  # one of each
        pg.execute("INSERT INTO log VALUES ('2026-01-03', 'ghost', NULL)")  # missing on blue
        pg.execute(
            "DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE line = 'twice')"
        )  # one of two
    report = check(str(db), pg_url, mapping)
    log = report.table("log")
    assert not report.ok and (log.blue_rows, log.green_rows) == (3002, 3001)
    found = sorted((d.kind, d.key) for d in log.diffs)
    assert found == [
        ("missing_on_blue", ("2026-01-01", "changed", 7 / 3)),
        ("missing_on_blue", ("2026-01-03", "ghost", None)),
        ("missing_on_green", ("2026-01-01", "l3", 1.0)),
        ("missing_on_green", ("2026-01-01", "l7", 7 / 3)),
        ("missing_on_green", ("2026-01-02", "twice", 1.0)),
    ]
    assert "missing on blue" in report.summary()


def test_differences_at_segment_edges_in_every_kind_of_key(tmp_path: Path, pg_url: str) -> None:
    """Segments of 100 rows, ranges cut again down to 64 rows: rows changed, deleted and added at the first and
    last key of segments, before blue's first key and after its last, with integer, text and composite keys."""
    db = tmp_path / "edges.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, v TEXT, r REAL)")
        conn.executemany("INSERT INTO n VALUES (?, ?, ?)", [(i, f"v{i}", i / 10) for i in range(1, 1001)])
        conn.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v INTEGER)")  # byte order: 'B' < 'a' < 'é'
        conn.executemany(
            "INSERT INTO s VALUES (?, ?)", [(f"{c}{i:03d}", i) for c in "Baé" for i in range(150)]
        )
        conn.execute("CREATE TABLE c (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b))")
        conn.executemany("INSERT INTO c VALUES (?, ?, ?)", [(f"k{i % 7}", i, "v") for i in range(700)])
    copy_database(str(db), pg_url, jobs=1)
    with sqlite3.connect(db) as conn:
        mapping = read_mapping(conn)
    assert check(str(db), pg_url, mapping, segment_rows=100).ok
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("UPDATE n SET v = 'x' WHERE id IN (1, 100, 101, 1000)")  # first, last, first of next, last
        pg.execute("DELETE FROM n WHERE id IN (201, 300)")
        pg.execute("INSERT INTO n VALUES (0, 'before', 0), (1001, 'after', 0), (5000, 'far', 0)")
        pg.execute("UPDATE s SET v = -1 WHERE k IN ('B000', 'a000', 'é149')")
        pg.execute(
            "INSERT INTO s VALUES ('A', 0), ('Bz', 0), ('ê', 0)"
        )  # before 'B000', between, after 'é149'
        pg.execute("UPDATE c SET v = 'w' WHERE (a, b) IN (('k0', 0), ('k6', 692))")
        pg.execute("DELETE FROM c WHERE (a, b) = ('k3', 3)")
        pg.execute("INSERT INTO c VALUES ('k0', -1, 'v'), ('k9', 0, 'v')")
    report = check(str(db), pg_url, mapping, segment_rows=100)
    found = {t.table: sorted((d.key, d.kind) for d in t.diffs) for t in report.tables}
    assert found["n"] == sorted(
        [((i,), "different") for i in (1, 100, 101, 1000)]
        + [((i,), "missing_on_green") for i in (201, 300)]
        + [((i,), "missing_on_blue") for i in (0, 1001, 5000)]
    )
    assert found["s"] == sorted(
        [((k,), "different") for k in ("B000", "a000", "é149")]
        + [((k,), "missing_on_blue") for k in ("A", "Bz", "ê")]
    )
    assert found["c"] == sorted(
        [(("k0", 0), "different"), (("k6", 692), "different"), (("k3", 3), "missing_on_green")]
        + [(("k0", -1), "missing_on_blue"), (("k9", 0), "missing_on_blue")]
    )
    # rows crossed only for the parts that differ: well below the tables
    assert report.bytes < sum(_table_bytes(pg_url, t) for t in "nsc") / 3
    # without an index on the key, green sorts the rows into segments instead of a range scan each: same rows
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("ALTER TABLE n DROP CONSTRAINT n_pkey")
    unindexed = check(str(db), pg_url, mapping, segment_rows=100).table("n")
    assert sorted((d.key, d.kind) for d in unindexed.diffs) == found["n"]


def test_a_column_green_cannot_render_is_streamed(copied: tuple[str, str, dict]) -> None:
    """A converter the renderings do not know: that column's values cross and are hashed here (said in a note);
    the other columns are still hashed in SQL; the same check with every column streamed finds the same rows."""
    import dataclasses

    db, url, original = copied
    users = original["users"]
    odd = dataclasses.replace(users.column("email"), pg_type="citext")
    mapping = {
        "users": dataclasses.replace(
            users, columns=tuple(odd if c.name == "email" else c for c in users.columns)
        )
    }
    in_sql = check(db, url, mapping, segment_rows=500)
    assert in_sql.ok and any("users.email" in n and "streamed" in n for n in in_sql.notes)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("UPDATE users SET email = 'x@y.com' WHERE id = 501")
        pg.execute("UPDATE users SET score = 0 WHERE id = 7")
    for report in (check(db, url, mapping, segment_rows=500), check(db, url, mapping, in_sql=False)):
        found = sorted((d.key, d.columns) for d in report.table("users").diffs)
        assert found == [((7,), ("score",)), ((501,), ("email",))]
    streamed = check(db, url, mapping, in_sql=False)
    assert streamed.table("users").bytes > 10 * check(db, url, original).table("users").bytes


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
            logged = conn.execute("SELECT count(*) FROM _cockpit_changes WHERE pk = 3000").fetchone()[0]
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
        # each score says what it covers: a touched-rows check never stands in for the full one
        watch.check_now(touched_only=True)
        figures = watch.poll()
        assert figures["data_integrity_score"] == full.score < 100
        assert figures["data_integrity_touched_score"] == watch.last_touched.score
        assert figures["data_integrity_touched_at"] >= figures["data_integrity_checked_at"]
        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("UPDATE users SET email = 'u5@x.com' WHERE id = 5")
            pg.execute("SET session_replication_role = replica")  # a write the triggers do not see
            pg.execute("INSERT INTO users VALUES (9999, 'ghost')")
        counted = watch.check_now(touched_only=True)
        assert not counted.ok and counted.table("users").green_rows == counted.table("users").blue_rows + 1
    finally:
        runner.close()


def test_a_cast_column_is_compared_as_carried(tmp_path: Path, pg_url: str) -> None:
    from cockpit.core.plan import Cast
    from cockpit.drivers.integrity import IntegrityWatch

    db = tmp_path / "cast.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "10"), (2, " 20 "), (3, "x"), (4, None)])
    casts = [Cast("t", "n", "bigint", "null")]
    copy_database(str(db), pg_url, jobs=1, casts=casts)
    watch = IntegrityWatch(str(db), pg_url, None, casts=casts)
    assert watch.check_now().ok  # '10' carried as 10, 'x' as NULL: equal as carried
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("UPDATE t SET n = 21 WHERE id = 2")
    assert [(d.key, d.columns) for d in watch.check_now().table("t").diffs] == [((2,), ("n",))]


def test_instants_in_mixed_iso_forms_compare_by_meaning(tmp_path: Path, pg_url: str) -> None:
    """A DATETIME column holding isoformat() and CURRENT_TIMESTAMP texts is carried as timestamp; integrity
    compares instants, so the copy is equal, and a changed instant on green is still found by key."""
    db = tmp_path / "mixed.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at DATETIME)")
        forms = ["2026-03-04T03:03:00.123456", "2026-03-04 03:03:00", "2026-03-05 10:00:00"]
        conn.executemany("INSERT INTO events (at) VALUES (?)", [(f,) for _ in range(100) for f in forms])
    report = copy_database(str(db), pg_url)
    assert any("2 ISO forms" in n for n in report.notes)
    with sqlite3.connect(db) as conn:
        mapping = read_mapping(conn)
    result = check(str(db), pg_url, mapping)
    assert result.ok and result.score == 100.0, result.summary()
    with psycopg.connect(pg_url) as pg:
        pg.execute("UPDATE events SET at = at + interval '1 second' WHERE id = 2")
    result = check(str(db), pg_url, mapping)
    assert not result.ok
    assert [(list(d.key), d.kind) for d in result.table("events").diffs] == [([2], "different")]
