"""Emptying a synced table is lossless: SQLite's `DELETE FROM t` and PostgreSQL's `TRUNCATE` reach the other side.

Real SQLite files and the real PostgreSQL, the real applier. PostgreSQL's TRUNCATE fires no row trigger; the
statement-level `_cockpit_truncate` trigger logs a delete per row, and refuses where its snapshot could miss rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from cockpit.drivers.sync import capture
from tests.conftest import wait_for
from tests.sync.test_sync_support import (
    PG_DDL,
    assert_same,
    blue_exec,
    blue_rows,
    green_rows,
    make_pair,
    pg_exec,
    runner,
)


def _green_log(pg_url: str) -> list[tuple]:
    with psycopg.connect(pg_url) as pg:
        return [tuple(r) for r in pg.execute("SELECT tbl, op, pk FROM cockpit.changes ORDER BY txid, seq")]


def _clear_green_log(pg_url: str) -> None:
    pg_exec(pg_url, "DELETE FROM cockpit.changes")


def _fill(pg_url: str) -> None:
    """Rows on green in both test tables."""
    pg_exec(pg_url, "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    pg_exec(pg_url, """INSERT INTO "Pairs" VALUES ('x', 1, 'one'), ('y', 2, 'two')""")


# ------------------------------------------------------------------------------------------------------ SQLite


def test_sqlite_delete_without_where_is_captured_row_by_row(tmp_path, pg_url):
    """SQLite has no TRUNCATE; its DELETE-without-WHERE shortcut must not skip the capture trigger."""
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        for i in range(1, 4):
            blue_exec(db, "INSERT INTO items (id, name) VALUES (?, ?)", (i, f"n{i}"))
        blue_exec(db, """INSERT INTO "Pairs" VALUES ('x', 1, 'kept')""")
        r.run_once()
        assert len(green_rows(pg_url, "items")) == 3
        conn = sqlite3.connect(db, isolation_level=None)
        first = conn.execute("SELECT max(seq) FROM _cockpit_changes").fetchone()[0]
        assert conn.execute("DELETE FROM items").rowcount == 3
        logged = [
            (t, op, json.loads(pk))
            for t, op, pk in conn.execute(
                # `items` has a one-column key: logged bare
                "SELECT tbl, op, json_array(pk) FROM _cockpit_changes WHERE seq > ? ORDER BY seq",
                (first,),
            )
        ]
        conn.close()
        assert sorted(logged, key=lambda e: e[2]) == [
            ("items", "D", [1]),
            ("items", "D", [2]),
            ("items", "D", [3]),
        ]
        r.run_once()
        assert green_rows(pg_url, "items") == []
        assert green_rows(pg_url, "Pairs") == [("x", 1, "kept")]
        assert_same(db, pg_url)
    finally:
        r.close()


# -------------------------------------------------------------------------------------------------- PostgreSQL


def test_truncate_on_green_empties_the_table_on_blue_and_nothing_else(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        _fill(pg_url)
        r.run_once()
        assert len(blue_rows(db, "items")) == 3
        _clear_green_log(pg_url)
        pg_exec(pg_url, "TRUNCATE items")
        assert sorted(_green_log(pg_url), key=lambda e: e[2]) == [
            ("items", "D", [1]),
            ("items", "D", [2]),
            ("items", "D", [3]),
        ]
        out = r.run_once()
        assert out["green_to_blue"]["deletes"] == 3
        assert blue_rows(db, "items") == []
        assert blue_rows(db, "Pairs") == [("x", 1, "one"), ("y", 2, "two")]
        assert_same(db, pg_url)
        again = r.run_once()  # the applier's deletes on blue are not captured: nothing comes back
        assert again["blue_to_green"]["changes"] == 0 and again["green_to_blue"]["changes"] == 0
    finally:
        r.close()


def test_truncate_then_insert_in_one_transaction(tmp_path, pg_url):
    """The deletes are logged in the truncating transaction, before its later writes: blue ends as green."""
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        _fill(pg_url)
        r.run_once()
        with psycopg.connect(pg_url) as pg:
            pg.execute("TRUNCATE items")
            pg.execute("INSERT INTO items (id, name) VALUES (2, 'again'), (9, 'new')")
        r.run_once()
        assert [row[:2] for row in blue_rows(db, "items")] == [(2, "again"), (9, "new")]
        assert_same(db, pg_url)
    finally:
        r.close()


def _make_fk_pair(tmp_path: Path, pg_url: str) -> Path:
    """parent <- child (a foreign key) and an unrelated table, synced; three rows each, on both sides."""
    db = tmp_path / "fk.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))")
    conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, name TEXT)")
    keys = capture.install_sqlite(conn, ["parent", "child", "other"])
    conn.close()
    pg_exec(pg_url, "CREATE TABLE parent (id bigint PRIMARY KEY, name text)")
    pg_exec(pg_url, "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent(id))")
    pg_exec(pg_url, "CREATE TABLE other (id bigint PRIMARY KEY, name text)")
    with psycopg.connect(pg_url) as pg:
        capture.install_pg(pg, keys)
    pg_exec(pg_url, "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3')")
    pg_exec(pg_url, "INSERT INTO child VALUES (10, 1), (11, 2), (12, 2)")
    pg_exec(pg_url, "INSERT INTO other VALUES (7, 'o7'), (8, 'o8'), (9, 'o9')")
    return db


@pytest.mark.parametrize("statement", ["TRUNCATE parent, child", "TRUNCATE parent CASCADE"])
def test_truncate_of_several_tables_and_cascade(tmp_path, pg_url, statement):
    db = _make_fk_pair(tmp_path, pg_url)
    tables = ["parent", "child", "other"]
    r = runner(db, pg_url, tables=tables)
    try:
        r.run_once()
        assert len(blue_rows(db, "child")) == 3
        pg_exec(pg_url, statement)
        out = r.run_once()
        assert out["green_to_blue"]["deletes"] == 6
        assert blue_rows(db, "parent") == [] and blue_rows(db, "child") == []
        assert blue_rows(db, "other") == [(7, "o7"), (8, "o8"), (9, "o9")]
        assert_same(db, pg_url, tables)
    finally:
        r.close()


def test_truncate_by_the_applier_is_not_captured(tmp_path, pg_url):
    """Writes tagged `cockpit.applying` (the applier's own) are skipped by the TRUNCATE trigger too: no echo."""
    make_pair(tmp_path, pg_url)
    _fill(pg_url)
    _clear_green_log(pg_url)
    with psycopg.connect(pg_url) as pg:
        with pg.transaction():
            pg.execute("SET LOCAL cockpit.applying = 'on'")
            pg.execute("TRUNCATE items")
        assert _green_log(pg_url) == []
        pg.execute("""TRUNCATE "Pairs\"""")  # SET LOCAL ended with its transaction: captured again
        pg.commit()
    assert sorted(_green_log(pg_url)) == [("Pairs", "D", ["x", 1]), ("Pairs", "D", ["y", 2])]


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_truncate_is_refused_where_its_snapshot_could_miss_rows(tmp_path, pg_url, isolation):
    """Under a transaction snapshot a row committed meanwhile is truncated but not seen: refused, nothing lost."""
    make_pair(tmp_path, pg_url)
    _fill(pg_url)
    _clear_green_log(pg_url)
    with psycopg.connect(pg_url) as pg:
        pg.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
            pg.execute("TRUNCATE items")
        pg.rollback()
    error = refused.value
    assert "TRUNCATE of synced table public.items refused" in str(error)
    assert isolation in str(error)
    assert "DELETE FROM public.items" in error.diag.message_hint
    assert "READ COMMITTED" in error.diag.message_hint
    assert len(green_rows(pg_url, "items")) == 3
    assert _green_log(pg_url) == []


def test_truncate_sees_a_row_committed_while_it_waited_for_its_lock(tmp_path, pg_url):
    """A writer holds the table; TRUNCATE waits for it; the row it commits is logged as deleted (READ COMMITTED:
    the trigger's query takes its snapshot after TRUNCATE holds the lock)."""
    make_pair(tmp_path, pg_url)
    _fill(pg_url)
    _clear_green_log(pg_url)
    failures: list[BaseException] = []

    def truncate() -> None:
        try:
            pg_exec(pg_url, "TRUNCATE items")
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    with psycopg.connect(pg_url) as writer, psycopg.connect(pg_url, autocommit=True) as watch:
        writer.execute("INSERT INTO items (id, name) VALUES (4, 'late')")
        thread = threading.Thread(target=truncate)
        thread.start()
        wait_for(
            lambda: watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE query = 'TRUNCATE items' AND wait_event_type = 'Lock'"
            ).fetchone(),
            what="TRUNCATE waiting for the writer's lock",
        )
        writer.commit()
        thread.join(timeout=10)
    assert not thread.is_alive() and not failures
    deleted = sorted((e for e in _green_log(pg_url) if e[1] == "D"), key=lambda e: e[2])
    assert deleted == [("items", "D", [i]) for i in (1, 2, 3, 4)]


def test_truncate_logs_keys_exactly_as_a_row_delete_does(pg_url):
    """One key format in the change log whatever removed the row (the applier casts these keys back)."""
    pg_exec(
        pg_url,
        'CREATE TABLE odd (at timestamptz, amount numeric(12, 2), ref uuid, "Name" text, n bigint,'
        ' PRIMARY KEY (at, amount, ref, "Name"))',
    )
    with psycopg.connect(pg_url) as pg:
        capture.install_pg(pg, {"odd": ("at", "amount", "ref", "Name")})
    row = (
        "INSERT INTO odd VALUES ('2024-02-29 12:34:56.789+03', 1234.5,"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'it''s \"x\"', 1)"
    )
    pg_exec(pg_url, row)
    pg_exec(pg_url, "DELETE FROM odd")
    pg_exec(pg_url, row)
    pg_exec(pg_url, "TRUNCATE odd")
    deleted = [e for e in _green_log(pg_url) if e[1] == "D"]
    assert len(deleted) == 2 and deleted[0] == deleted[1]
    assert deleted[0][2][1:] == [1234.5, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 'it\'s "x"']


# ------------------------------------------------------------------------------------------ install, uninstall


def _truncate_triggers(pg: psycopg.Connection) -> list[str]:
    rows = pg.execute(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = %s"
        " ORDER BY c.relname",
        (capture.PG_TRUNCATE_TRIGGER,),
    ).fetchall()
    return [r[0] for r in rows]


def test_install_is_idempotent_and_uninstall_removes_the_truncate_trigger(pg_url):
    with psycopg.connect(pg_url) as pg:
        for ddl in PG_DDL:
            pg.execute(ddl)
        pg.commit()
        keys = {"items": ("id",), "Pairs": ("a", "b")}
        capture.install_pg(pg, keys)
        capture.install_pg(pg, keys)
        assert _truncate_triggers(pg) == ["Pairs", "items"]  # one each, not two
        pg.execute("INSERT INTO items (id) VALUES (1), (2)")
        pg.commit()
        pg.execute("DELETE FROM cockpit.changes")
        pg.execute("TRUNCATE items")
        pg.commit()
        assert pg.execute("SELECT count(*) FROM cockpit.changes").fetchone()[0] == 2  # logged once
        dropped = capture.uninstall_pg(pg)
        assert sorted(dropped) == [
            "schema cockpit",
            "trigger Pairs",
            "trigger items",
            "truncate trigger Pairs",
            "truncate trigger items",
        ]
        assert _truncate_triggers(pg) == []
        assert capture.uninstall_pg(pg) == []
        pg.execute("INSERT INTO items (id) VALUES (3)")
        pg.execute("TRUNCATE items")  # the app still truncates with capture gone
        pg.commit()


def test_a_table_without_the_truncate_trigger_counts_as_not_installed(pg_url):
    """Capture installed by a cockpit without the TRUNCATE trigger is incomplete: `sync install` must run again."""
    with psycopg.connect(pg_url) as pg:
        for ddl in PG_DDL:
            pg.execute(ddl)
        pg.commit()
        keys = {"items": ("id",), "Pairs": ("a", "b")}
        capture.install_pg(pg, keys)
        pg.execute(f"DROP TRIGGER {capture.PG_TRUNCATE_TRIGGER} ON items")
        pg.commit()
        assert capture.pg_installed(pg) == ["Pairs"]
        capture.install_pg(pg, keys)
        assert capture.pg_installed(pg) == ["Pairs", "items"]
