"""Change capture on real SQLite files and the real PostgreSQL: what the triggers log, and what they skip."""

from __future__ import annotations

import json
import sqlite3
import time

import psycopg
import pytest

from cockpit.drivers.sync import capture
from tests.sync.test_sync_support import PG_DDL, TABLES, make_blue, make_pair


def _blue_log(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return [
            (t, op, json.loads(pk))
            for t, op, pk in conn.execute(  # keys as JSON arrays: one-column keys are logged bare
                "SELECT tbl, op, iif(tbl IN (SELECT tbl FROM _cockpit_raw_keys), json_array(pk), pk)"
                " FROM _cockpit_changes ORDER BY seq"
            )
        ]
    finally:
        conn.close()


def _green_log(pg_url) -> list[tuple]:
    with psycopg.connect(pg_url) as pg:
        return [tuple(r) for r in pg.execute("SELECT tbl, op, pk FROM cockpit.changes ORDER BY seq")]


def test_sqlite_captures_insert_update_delete_and_key_change(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    capture.install_sqlite(conn, TABLES)
    conn.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
    conn.execute("UPDATE items SET name = 'b' WHERE id = 1")
    conn.execute("UPDATE items SET id = 2 WHERE id = 1")  # key change: delete old + upsert new
    conn.execute("DELETE FROM items WHERE id = 2")
    conn.execute("""INSERT INTO "Pairs" VALUES ('x', 1, 'v')""")
    conn.execute("""UPDATE "Pairs" SET b = 2 WHERE a = 'x'""")
    assert _blue_log(db) == [
        ("items", "I", [1]),
        ("items", "U", [1]),
        ("items", "D", [1]),
        ("items", "U", [2]),
        ("items", "D", [2]),
        ("Pairs", "I", ["x", 1]),
        ("Pairs", "D", ["x", 1]),
        ("Pairs", "U", ["x", 2]),
    ]
    assert capture.sqlite_position(conn) == 8
    assert conn.execute(
        "SELECT DISTINCT typeof(pk) FROM _cockpit_changes WHERE tbl = 'items'"
    ).fetchall() == [("integer",)]
    ts = conn.execute(
        f"SELECT {capture.sqlite_epoch('min(ts)')}, {capture.sqlite_epoch('max(ts)')} FROM _cockpit_changes"
    ).fetchone()
    assert abs(ts[1] - time.time()) < 60 and ts[0] <= ts[1]


def test_sqlite_applier_writes_are_not_captured_and_later_writes_are(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE loose (a TEXT, b INTEGER)")  # keyless: its triggers log row images
    capture.install_sqlite(conn, [*TABLES, "loose"])
    for round_ in (1, 2):  # the first use registers the override, the second only flips it on
        conn.execute("BEGIN IMMEDIATE")
        with capture.sqlite_applying(conn):
            conn.execute("INSERT INTO items (id, name) VALUES (?, 'applied')", (round_ * 10,))
            conn.execute("UPDATE items SET id = id + 1 WHERE id = ?", (round_ * 10,))
            conn.execute("INSERT INTO loose (a, b) VALUES ('applied', ?)", (round_,))
        conn.execute("COMMIT")
        # the same connection outside the block: captured (the cockpit's own repairs go through capture)
        conn.execute("INSERT INTO items (id, name) VALUES (?, 'cockpit, not applying')", (round_,))
    assert conn.execute("SELECT count(*) FROM _cockpit_context").fetchone()[0] == 0
    assert (
        conn.execute("SELECT sqlite_source_id()").fetchone()[0]
        == sqlite3.connect(":memory:").execute("SELECT sqlite_source_id()").fetchone()[0]
    )
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("INSERT INTO items (id, name) VALUES (3, 'app')")
    assert _blue_log(db) == [("items", "I", [1]), ("items", "I", [2]), ("items", "I", [3])]


def test_sqlite_applying_registers_on_a_connection_that_reuses_an_old_ones_id(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    capture.install_sqlite(conn, TABLES)
    # what a closed connection at the same address would have left: an entry, but no function on this one
    capture._APPLYING[id(conn)] = capture._Applying("left by a closed connection")
    conn.execute("BEGIN IMMEDIATE")
    with capture.sqlite_applying(conn):
        conn.execute("INSERT INTO items (id, name) VALUES (1, 'applied')")
    conn.execute("COMMIT")
    assert _blue_log(db) == []


def test_sqlite_applying_ends_when_the_block_raises(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    capture.install_sqlite(conn, TABLES)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError), capture.sqlite_applying(conn):
        conn.execute("INSERT INTO items (id, name) VALUES (1, 'applied')")
        conn.execute("INSERT INTO items (id, name) VALUES (1, 'twice')")
    conn.execute("ROLLBACK")
    conn.execute("INSERT INTO items (id, name) VALUES (2, 'after')")
    assert _blue_log(db) == [("items", "I", [2])]
    assert conn.execute("SELECT count(*) FROM _cockpit_context").fetchone()[0] == 0


def test_sqlite_triggers_of_an_older_cockpit_skip_the_applier_and_install_replaces_them(tmp_path):
    """A blue captured by an older cockpit: log with `origin`, triggers that read `_cockpit_context`. The applier
    of today still goes unlogged there; `install_sqlite` replaces the triggers and keeps the log's rows."""
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TABLE _cockpit_changes (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL,"
        " pk TEXT NOT NULL, ts REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
        " origin TEXT NOT NULL DEFAULT 'blue')"
    )
    conn.execute("CREATE TABLE _cockpit_context (applier TEXT)")
    conn.execute(
        "CREATE TRIGGER _cockpit_items_ins AFTER INSERT ON items WHEN NOT EXISTS (SELECT 1 FROM _cockpit_context)"
        " BEGIN INSERT INTO _cockpit_changes (tbl, op, pk, ts)"
        " VALUES ('items', 'I', json_array(NEW.id), ((julianday('now') - 2440587.5) * 86400.0)); END"
    )
    conn.execute("INSERT INTO items (id, name) VALUES (1, 'app, old triggers')")
    conn.execute("BEGIN IMMEDIATE")
    with capture.sqlite_applying(conn):
        conn.execute("INSERT INTO items (id, name) VALUES (2, 'applied, old triggers')")
    conn.execute("COMMIT")
    capture.install_sqlite(conn, TABLES)
    triggers = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = '_cockpit_items_ins'"
    ).fetchone()[0]
    assert "_cockpit_context" not in triggers and capture.SQLITE_APPLIER in triggers
    conn.execute("BEGIN IMMEDIATE")
    with capture.sqlite_applying(conn):
        conn.execute("INSERT INTO items (id, name) VALUES (3, 'applied')")
    conn.execute("COMMIT")
    conn.execute("INSERT INTO items (id, name) VALUES (4, 'app')")
    assert _blue_log(db) == [("items", "I", [1]), ("items", "I", [4])]
    assert capture.sqlite_position(conn) == 2


def test_sqlite_install_upgrades_a_log_of_the_older_form_rows_and_seqs_kept(tmp_path):
    """A log written by the triggers of an older cockpit (keys as JSON arrays, `ts` in epoch seconds), with a table
    captured then that this install does not name: the rows come through with their `seq`s, one-column keys made
    bare, times as Julian days; both tables are captured in today's form afterwards."""
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    now = time.time()
    conn.execute(
        "CREATE TABLE _cockpit_changes (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL,"
        " pk TEXT NOT NULL, ts REAL NOT NULL DEFAULT ((julianday() - 2440587.5) * 86400.0))"
    )
    conn.execute(
        'CREATE TRIGGER _cockpit_Pairs_ins AFTER INSERT ON "Pairs" BEGIN INSERT INTO _cockpit_changes'
        " (tbl, op, pk, ts) VALUES ('Pairs', 'I', json_array(NEW.a, NEW.b), ((julianday() - 2440587.5) * 86400.0)); END"
    )
    conn.executemany(
        "INSERT INTO _cockpit_changes (seq, tbl, op, pk, ts) VALUES (?, ?, ?, ?, ?)",
        [
            (7, "items", "U", "[5]", now - 10),
            (8, "items", "D", '["k"]', now - 5),
            (9, "Pairs", "I", '["x",1]', now),
        ],
    )
    capture.install_sqlite(conn, ["items"])
    rows = conn.execute(
        f"SELECT seq, tbl, op, pk, typeof(pk), {capture.sqlite_epoch('ts')} FROM _cockpit_changes ORDER BY seq"
    ).fetchall()
    assert [r[:5] for r in rows] == [
        (7, "items", "U", 5, "integer"),
        (8, "items", "D", "k", "text"),
        (9, "Pairs", "I", '["x",1]', "text"),
    ]
    assert [round(r[5] - now, 3) for r in rows] == [-10.0, -5.0, 0.0]
    assert capture.sqlite_log_is_current(conn)
    conn.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
    conn.execute("""INSERT INTO "Pairs" VALUES ('y', 2, 'v')""")
    assert _blue_log(db)[3:] == [("items", "I", [1]), ("Pairs", "I", ["y", 2])]
    assert capture.touched_keys(conn) == {"items": {(5,), ("k",), (1,)}, "Pairs": {("x", 1), ("y", 2)}}
    capture.install_sqlite(conn, ["items"])  # again: nothing converted twice
    assert _blue_log(db)[0] == ("items", "U", [5])


def test_sqlite_install_is_idempotent_and_leaves_app_tables_untouched(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    before = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table' ORDER BY name").fetchall()
    conn.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
    capture.install_sqlite(conn, TABLES)
    capture.install_sqlite(conn, TABLES)
    conn.execute("INSERT INTO items (id, name) VALUES (2, 'b')")
    assert _blue_log(db) == [("items", "I", [2])]  # one trigger each, not two
    assert capture.sqlite_installed(conn) == sorted(TABLES)
    after = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE '\\_cockpit\\_%' ESCAPE '\\'"
        " AND name != 'sqlite_sequence' ORDER BY name"
    ).fetchall()
    assert after == before
    dropped = capture.uninstall_sqlite(conn)
    assert "table _cockpit_changes" in dropped
    assert capture.uninstall_sqlite(conn) == []
    assert capture.sqlite_installed(conn) == []
    assert capture.sqlite_position(conn) == 0
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 2
    conn.execute("INSERT INTO items (id, name) VALUES (3, 'c')")  # the app still writes with capture gone


def test_sqlite_captures_a_keyless_table_as_row_images_and_refuses_what_is_missing(tmp_path):
    db = tmp_path / "b.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE logs (line TEXT, n INTEGER, x REAL, b BLOB)")
    assert capture.install_sqlite(conn, ["logs"]) == {"logs": ()}
    conn.execute("INSERT INTO logs VALUES ('a', 1, 0.1 + 0.2, x'00ff')")
    conn.execute("UPDATE logs SET n = 2")
    conn.execute("UPDATE logs SET n = 2")  # nothing changed: nothing logged
    conn.execute("DELETE FROM logs")
    ops = conn.execute("SELECT op, pk FROM _cockpit_changes ORDER BY seq").fetchall()
    assert [op for op, _ in ops] == ["+", "-", "+", "-"]
    assert capture.decode_image(ops[0][1]) == ("a", 1, 0.1 + 0.2, b"\x00\xff")  # exact: 17 digits, blob
    assert capture.decode_image(ops[2][1])[1] == 2
    assert capture.touched_keys(conn) == {}  # row images are not keys
    with pytest.raises(capture.CaptureError, match="nope"):
        capture.install_sqlite(conn, ["logs"], {"logs": ["nope"]})
    with pytest.raises(capture.CaptureError, match="missing"):
        capture.install_sqlite(conn, ["missing"])


def test_sqlite_position_survives_pruning(tmp_path):
    db = tmp_path / "b.db"
    make_blue(db)
    conn = sqlite3.connect(db, isolation_level=None)
    assert capture.sqlite_position(conn) == 0
    capture.install_sqlite(conn, TABLES)
    for i in range(5):
        conn.execute("INSERT INTO items (id) VALUES (?)", (i,))
    capture.prune_sqlite(conn, 5)  # everything applied: the last row stays as the high-water mark
    assert conn.execute("SELECT seq FROM _cockpit_changes").fetchall() == [(5,)]
    assert capture.sqlite_position(conn) == 5
    conn.execute("INSERT INTO items (id) VALUES (10)")
    assert conn.execute("SELECT seq FROM _cockpit_changes").fetchall() == [(5,), (6,)]


def test_postgres_captures_and_skips_the_applier(tmp_path, pg_url):
    make_pair(tmp_path, pg_url)
    with psycopg.connect(pg_url) as pg:
        pg.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
        pg.execute("UPDATE items SET name = 'b' WHERE id = 1")
        pg.execute("UPDATE items SET id = 2 WHERE id = 1")
        pg.execute("DELETE FROM items WHERE id = 2")
        pg.execute("""INSERT INTO "Pairs" VALUES ('x', 1, 'v')""")
        pg.execute(
            """UPDATE "Pairs" SET b = 2 WHERE a = 'x'"""
        )  # a two-column key changes: old and new in order
        pg.execute("""DELETE FROM "Pairs" WHERE a = 'x'""")
        pg.commit()
        with pg.transaction():
            pg.execute("SET LOCAL cockpit.applying = 'on'")
            pg.execute("INSERT INTO items (id, name) VALUES (7, 'applied')")
        # SET LOCAL ended with its transaction: the next write is captured again
        pg.execute("INSERT INTO items (id, name) VALUES (8, 'app')")
        pg.commit()
    assert _green_log(pg_url) == [
        ("items", "I", [1]),
        ("items", "U", [1]),
        ("items", "D", [1]),
        ("items", "U", [2]),
        ("items", "D", [2]),
        ("Pairs", "I", ["x", 1]),
        ("Pairs", "D", ["x", 1]),
        ("Pairs", "U", ["x", 2]),
        ("Pairs", "D", ["x", 2]),
        ("items", "I", [8]),
    ]


def test_postgres_install_uninstall_idempotent_and_app_tables_untouched(pg_url):
    with psycopg.connect(pg_url) as pg:
        for ddl in PG_DDL:
            pg.execute(ddl)
        pg.commit()
        columns = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        before = pg.execute(columns).fetchall()
        keys = {"items": ("id",), "Pairs": ("a", "b")}
        capture.install_pg(pg, keys)
        capture.install_pg(pg, keys)
        assert capture.pg_installed(pg) == ["Pairs", "items"]
        pg.execute("INSERT INTO items (id) VALUES (1)")
        pg.commit()
        assert pg.execute("SELECT count(*) FROM cockpit.changes").fetchone()[0] == 1
        assert pg.execute(columns).fetchall() == before
        assert sorted(capture.uninstall_pg(pg)) == [
            "schema cockpit",
            "trigger Pairs",
            "trigger items",
            "truncate trigger Pairs",
            "truncate trigger items",
        ]
        assert capture.uninstall_pg(pg) == []
        assert capture.pg_installed(pg) == []
        assert pg.execute("SELECT to_regnamespace('cockpit')").fetchone()[0] is None
        pg.execute("INSERT INTO items (id) VALUES (2)")
        pg.commit()


def test_postgres_install_refuses_missing_tables(pg_url):
    with psycopg.connect(pg_url) as pg, pytest.raises(capture.CaptureError, match="nothere"):
        capture.install_pg(pg, {"nothere": ("id",)})


def test_copy_position_is_recorded_on_postgres(pg_url):
    with psycopg.connect(pg_url) as pg:
        assert capture.read_blue_position(pg) == 0
        capture.record_copy_position(pg, 42)
        pg.commit()
        assert capture.read_blue_position(pg) == 42
        capture.record_copy_position(pg, 43)
        pg.rollback()  # in the caller's transaction: rolled back with it
        assert capture.read_blue_position(pg) == 42
