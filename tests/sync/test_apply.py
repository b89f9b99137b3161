"""The applier on real SQLite files and the real PostgreSQL: both directions, no loop-back, conflicts per policy."""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest

from cockpit.drivers.sync.apply import POLICIES, settle
from tests.conftest import wait_for
from tests.sync.test_sync_support import (
    Events,
    assert_same,
    blue_exec,
    blue_rows,
    green_rows,
    make_pair,
    pg_exec,
    runner,
)


def test_both_directions_with_key_changes_deletes_blobs_and_composite_keys(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        blue_exec(db, "INSERT INTO items VALUES (1, 'a', 2, 1.5, x'00ff00')")
        blue_exec(db, """INSERT INTO "Pairs" VALUES ('x', 1, 'blue')""")
        pg_exec(pg_url, "INSERT INTO items VALUES (2, 'g', 3, 2.25, NULL)")
        pg_exec(pg_url, """INSERT INTO "Pairs" VALUES ('y', 2, 'green')""")
        out = r.run_once()
        assert out["blue_to_green"]["upserts"] == 2 and out["green_to_blue"]["upserts"] == 2
        assert_same(db, pg_url)
        assert green_rows(pg_url, "items") == [(1, "a", 2, 1.5, b"\x00\xff\x00"), (2, "g", 3, 2.25, None)]

        blue_exec(db, "UPDATE items SET id = 10 WHERE id = 1")  # key change on blue
        pg_exec(pg_url, "UPDATE items SET id = 20, name = 'moved' WHERE id = 2")  # and on green
        blue_exec(db, """UPDATE "Pairs" SET b = 5 WHERE a = 'x'""")
        pg_exec(pg_url, """DELETE FROM "Pairs" WHERE a = 'y'""")
        out = r.run_once()
        assert out["conflicts"] == 0
        assert_same(db, pg_url)
        assert [row[0] for row in blue_rows(db, "items")] == [10, 20]
        assert blue_rows(db, "Pairs") == [("x", 5, "blue")]

        blue_exec(db, "DELETE FROM items")
        r.run_once()
        assert_same(db, pg_url)
        assert green_rows(pg_url, "items") == []
    finally:
        r.close()


def test_nothing_loops_back(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        blue_exec(db, "INSERT INTO items (id, name) VALUES (1, 'a')")
        pg_exec(pg_url, "INSERT INTO items (id, name) VALUES (2, 'b')")
        first = r.run_once()
        assert first["blue_to_green"]["changes"] == 1 and first["green_to_blue"]["changes"] == 1
        second = r.run_once()  # the applied writes were not captured: nothing comes back
        assert second["blue_to_green"]["changes"] == 0 and second["green_to_blue"]["changes"] == 0
        lag = r.lag()
        assert lag["blue_to_green"].pending == 0 and lag["green_to_blue"].pending == 0
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT count(*) FROM _cockpit_context").fetchone()[0] == 0
        conn.close()
    finally:
        r.close()


def test_several_changes_of_one_key_coalesce(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        blue_exec(db, "INSERT INTO items (id, qty) VALUES (1, 0)")
        for i in range(1, 6):
            blue_exec(db, "UPDATE items SET qty = ? WHERE id = 1", (i,))
        blue_exec(db, "INSERT INTO items (id, qty) VALUES (2, 0)")
        blue_exec(db, "DELETE FROM items WHERE id = 2")
        out = r.run_once()["blue_to_green"]
        assert out["changes"] == 8
        assert out["upserts"] == 1 and out["deletes"] == 1
        assert green_rows(pg_url, "items") == [(1, None, 5, None, None)]
    finally:
        r.close()


def test_batches_smaller_than_the_backlog(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url, batch_size=7)
    try:
        conn = sqlite3.connect(db)
        conn.executemany("INSERT INTO items (id, name) VALUES (?, ?)", [(i, f"n{i}") for i in range(100)])
        conn.commit()
        conn.close()
        with psycopg.connect(pg_url) as pg:
            with pg.cursor() as cur:
                cur.executemany(
                    "INSERT INTO items (id, name) VALUES (%s, %s)", [(i, "g") for i in range(1000, 1050)]
                )
            pg.commit()
        out = r.run_once()
        assert out["blue_to_green"]["changes"] == 100
        assert out["green_to_blue"]["changes"] == 50
        assert_same(db, pg_url)
    finally:
        r.close()


def _next_millisecond() -> None:
    start = time.time()
    wait_for(lambda: time.time() >= start + 0.002, 1, interval=0.001, what="the clock to move on")


@pytest.mark.parametrize("policy", POLICIES)
def test_conflicts_are_settled_by_policy_and_reported_with_both_versions(tmp_path, pg_url, policy):
    db = make_pair(tmp_path, pg_url)
    events = Events()
    r = runner(db, pg_url, conflict_policy=policy, on_event=events)
    try:
        blue_exec(db, "INSERT INTO items (id, name, qty) VALUES (1, 'base', 0)")
        blue_exec(db, "INSERT INTO items (id, name, qty) VALUES (2, 'base', 0)")
        r.run_once()
        # key 1: blue first, green later; key 2: green first, blue later (by change time)
        blue_exec(db, "UPDATE items SET name = 'blue' WHERE id = 1")
        _next_millisecond()  # SQLite's clock has millisecond steps: keep the order of the two sides unambiguous
        pg_exec(pg_url, "UPDATE items SET name = 'green' WHERE id = 1")
        pg_exec(pg_url, "DELETE FROM items WHERE id = 2")
        _next_millisecond()
        blue_exec(db, "UPDATE items SET name = 'blue' WHERE id = 2")
        out = r.run_once()
        assert out["conflicts"] == 2
        assert_same(db, pg_url)
        conflicts = {c["key"][0]: c for c in events.of("sync.conflict")}
        assert set(conflicts) == {1, 2}
        one, two = conflicts[1], conflicts[2]
        assert one["blue"]["name"] == "blue" and one["green"]["name"] == "green"
        assert two["blue"]["name"] == "blue" and two["green"] is None  # deleted on green
        assert one["policy"] == policy and one["table"] == "items"
        expected = {
            "blue-wins": ("blue", "blue"),
            "green-wins": ("green", "green"),
            "newest": ("green", "blue"),
        }
        assert (one["winner"], two["winner"]) == expected[policy]
        names = {row[0]: row[1] for row in blue_rows(db, "items")}
        assert names.get(1) == one["winner"]
        assert (2 in names) == (two["winner"] == "blue")
        again = r.run_once()  # settled once: nothing left to move, no conflict reported twice
        assert again["conflicts"] == 0 and len(events.of("sync.conflict")) == 2
        assert_same(db, pg_url)
    finally:
        r.close()


def test_settle_rules():
    assert settle("blue-wins", 1.0, 2.0) == "blue"
    assert settle("green-wins", 2.0, 1.0) == "green"
    assert settle("newest", 1.0, 2.0) == "green"
    assert settle("newest", 2.0, 1.0) == "blue"
    assert settle("newest", 1.0, 1.0) == "blue"


def test_bad_policy_is_refused(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    with pytest.raises(ValueError, match="policy"):
        runner(db, pg_url, conflict_policy="last-writer")


def test_large_batches_go_through_copy_with_every_kind_of_value(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    r.applier().copy_threshold = 1  # every upsert through COPY + merge
    try:
        rows = [
            (1, "tab\there", 1, 0.1, b"\x00\\\n"),
            (2, None, None, None, None),
            (3, "line\nbreak\\", -5, 1e300, b""),
        ]
        conn = sqlite3.connect(db)
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
        conn.close()
        r.run_once()
        assert green_rows(pg_url, "items") == rows
        blue_exec(db, "UPDATE items SET name = 'again' WHERE id = 2")
        r.run_once()
        assert_same(db, pg_url)
    finally:
        r.close()


def test_green_identity_moves_past_keys_applied_from_blue(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    pg_exec(pg_url, "ALTER TABLE items ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
    r = runner(db, pg_url)
    try:
        for i in range(1, 6):
            blue_exec(db, "INSERT INTO items (name) VALUES (?)", (f"blue{i}",))
        r.run_once()
        # the app on green inserts without a key: it must not collide with the rows that came from blue
        pg_exec(pg_url, "INSERT INTO items (name) VALUES ('green')")
        r.run_once()
        assert_same(db, pg_url)
        assert [row[:2] for row in blue_rows(db, "items")][-1] == (6, "green")
    finally:
        r.close()


def test_reserved_and_mixed_case_identifiers_and_quoted_keys(tmp_path, pg_url):
    from cockpit.drivers.sync.capture import install_pg, install_sqlite
    from tests.sync.test_sync_support import connect_sqlite

    db = tmp_path / "odd.db"
    conn = connect_sqlite(db)
    conn.execute('CREATE TABLE "user" ("Order" TEXT PRIMARY KEY, "references" TEXT, "select" INTEGER)')
    keys = install_sqlite(conn, ["user"])
    conn.close()
    pg_exec(pg_url, 'CREATE TABLE "user" ("Order" text PRIMARY KEY, "references" text, "select" bigint)')
    with psycopg.connect(pg_url) as pg:
        install_pg(pg, keys)
    r = runner(db, pg_url, tables=["user"])
    try:
        blue_exec(db, """INSERT INTO "user" VALUES ('it''s "quoted"', 'a', 1)""")
        pg_exec(pg_url, """INSERT INTO "user" VALUES ('ünï''cødé', 'b', 2)""")
        r.run_once()
        assert_same(db, pg_url, ["user"])
        blue_exec(db, """UPDATE "user" SET "Order" = 'renamed' WHERE "select" = 1""")
        pg_exec(pg_url, """DELETE FROM "user" WHERE "select" = 2""")
        r.run_once()
        assert_same(db, pg_url, ["user"])
        assert green_rows(pg_url, "user") == [("renamed", "a", 1)]
    finally:
        r.close()


def test_parents_first_order():
    from cockpit.drivers.sync.apply import _parents_first

    assert _parents_first(["c", "b", "a"], [("c", "b"), ("b", "a")]) == ["a", "b", "c"]
    assert _parents_first(["x", "y"], [("x", "y"), ("y", "x")]) == ["x", "y"]  # a cycle does not hang


@pytest.mark.parametrize("deferrable", [False, True])
def test_foreign_keys_on_green_in_any_order(tmp_path, pg_url, deferrable):
    """Deletes of parents and children and re-parenting, in one batch, with foreign keys enforced on green."""
    from cockpit.drivers.sync.capture import install_pg, install_sqlite
    from tests.sync.test_sync_support import connect_sqlite

    db = tmp_path / "fk.db"
    conn = connect_sqlite(db)
    conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
    keys = install_sqlite(conn, ["child", "parent"])
    conn.close()
    defer = " DEFERRABLE INITIALLY IMMEDIATE" if deferrable else ""
    pg_exec(pg_url, "CREATE TABLE parent (id bigint PRIMARY KEY, name text)")
    pg_exec(
        pg_url, f"CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent(id){defer})"
    )
    with psycopg.connect(pg_url) as pg:
        install_pg(pg, keys)
    r = runner(db, pg_url, tables=["child", "parent"])
    try:
        blue_exec(db, "INSERT INTO parent VALUES (1, 'one')")
        blue_exec(db, "INSERT INTO child VALUES (10, 1)")  # child table listed first, parent written first
        r.run_once()
        blue_exec(db, "DELETE FROM child WHERE id = 10")
        blue_exec(db, "DELETE FROM parent WHERE id = 1")
        blue_exec(db, "INSERT INTO parent VALUES (2, 'two')")
        blue_exec(db, "INSERT INTO child VALUES (11, 2)")
        r.run_once()
        assert_same(db, pg_url, ["parent", "child"])
        # re-parenting: the old parent goes, its child moves to a new one, in one batch (not deferrable: the
        # batch fails as a whole and is applied change by change, in the app's order)
        blue_exec(db, "INSERT INTO parent VALUES (3, 'three')")
        blue_exec(db, "UPDATE child SET parent_id = 3 WHERE id = 11")
        blue_exec(db, "DELETE FROM parent WHERE id = 2")
        out = r.run_once()
        assert out["blue_to_green"]["changes"] == 3
        assert_same(db, pg_url, ["parent", "child"])
    finally:
        r.close()


def test_unique_key_moved_between_rows_in_one_batch_on_both_sides(tmp_path, pg_url):
    """A name moves from one row to another and the first row changes again later: applied as one batch the
    upserts collide on the unique name, so the batch is applied change by change instead."""
    from cockpit.drivers.sync.capture import install_pg, install_sqlite
    from tests.sync.test_sync_support import connect_sqlite

    db = tmp_path / "u.db"
    conn = connect_sqlite(db)
    conn.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)")
    keys = install_sqlite(conn, ["tags"])
    conn.close()
    pg_exec(pg_url, "CREATE TABLE tags (id bigint PRIMARY KEY, name text UNIQUE, n bigint)")
    with psycopg.connect(pg_url) as pg:
        install_pg(pg, keys)
    r = runner(db, pg_url, tables=["tags"])
    try:
        blue_exec(db, "INSERT INTO tags VALUES (1, 'x', 0)")
        r.run_once()
        for side_exec, url_or_db, base in ((blue_exec, db, 10), (pg_exec, pg_url, 20)):
            side_exec(url_or_db, f"UPDATE tags SET name = 'y{base}' WHERE id = 1")
            side_exec(url_or_db, f"INSERT INTO tags VALUES ({base}, 'x', 0)")
            side_exec(url_or_db, "UPDATE tags SET n = n + 1 WHERE id = 1")
            out = r.run_once()
            assert out["conflicts"] == 0
            direction = "blue_to_green" if side_exec is blue_exec else "green_to_blue"
            assert out[direction]["small_steps"] is True and out[direction]["changes"] == 3
            assert_same(db, pg_url, ["tags"])
            side_exec(url_or_db, f"DELETE FROM tags WHERE id = {base}")
            side_exec(url_or_db, "UPDATE tags SET name = 'x' WHERE id = 1")
            r.run_once()
            assert_same(db, pg_url, ["tags"])
    finally:
        r.close()
