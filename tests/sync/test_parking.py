"""Nothing acknowledged is dropped: conflicts and refused changes are parked whole on both sides, the sync goes on.

Real SQLite files and the real PostgreSQL; the green side is made by the real initial copy.
"""

from __future__ import annotations

import pytest

from cockpit.drivers.sync.apply import POLICIES
from tests.sync.test_sync_support import (
    Events,
    assert_same,
    blue_exec,
    blue_rows,
    green_rows,
    make_copied,
    pg_exec,
    store_rows,
)

COMPANIES = ["CREATE TABLE companies (id INTEGER PRIMARY KEY, cnpj TEXT NOT NULL UNIQUE, name TEXT)"]


def _settled(db, pg_url, r, tables=("companies",)):
    """Passes until both directions have nothing pending and the stores are mirrored; then both sides agree."""
    for _ in range(4):
        r.run_once()
    lag = r.lag()
    assert lag["blue_to_green"].pending == 0 and lag["green_to_blue"].pending == 0
    assert_same(db, pg_url, list(tables))
    blue, green = store_rows(db, pg_url)
    assert sorted(x["uid"] for x in blue) == sorted(x["uid"] for x in green)  # every record on both sides
    assert len({x["uid"] for x in blue}) == len(blue)  # once each
    return blue


@pytest.mark.parametrize("policy", POLICIES)
def test_same_key_on_both_sides_parks_the_loser_whole_on_both_sides(tmp_path, pg_url, policy):
    events = Events()
    db, r = make_copied(
        tmp_path, pg_url, COMPANIES, tables=["companies"], conflict_policy=policy, on_event=events
    )
    try:
        blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'base')")
        r.run_once()
        blue_exec(db, "UPDATE companies SET name = 'blue' WHERE id = 1")
        pg_exec(pg_url, "UPDATE companies SET name = 'green' WHERE id = 1")
        records = _settled(db, pg_url, r)
        (rec,) = records
        kept = {"blue-wins": "blue", "green-wins": "green", "newest": "green"}[policy]
        parked = "green" if kept == "blue" else "blue"
        assert (rec["kind"], rec["kept"], rec["parked"], rec["policy"]) == ("conflict", kept, parked, policy)
        assert rec[parked] == {"id": 1, "cnpj": "11", "name": parked}  # the loser, every column
        assert blue_rows(db, "companies") == [(1, "11", kept)]
        (event,) = events.of("sync.conflict")
        assert event["uid"] == rec["uid"] and event[parked]["name"] == parked
    finally:
        r.close()


@pytest.mark.parametrize("policy", POLICIES)
def test_same_unique_value_under_two_keys_keeps_one_and_parks_the_other(tmp_path, pg_url, policy):
    events = Events()
    db, r = make_copied(
        tmp_path, pg_url, COMPANIES, tables=["companies"], conflict_policy=policy, on_event=events
    )
    try:
        blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'blue one')")
        pg_exec(pg_url, "INSERT INTO companies VALUES (-1, '11', 'green one')")
        blue_exec(db, "INSERT INTO companies VALUES (2, '22', 'behind it on blue')")
        pg_exec(pg_url, "INSERT INTO companies VALUES (-2, '33', 'behind it on green')")
        records = _settled(db, pg_url, r)
        (rec,) = records
        assert rec["kind"] == "unique" and rec["constraint_name"] == "companies_cnpj_key"
        rows = blue_rows(db, "companies")
        keys = {row[0] for row in rows}
        assert {2, -2} <= keys  # nothing waited behind the collision
        assert len([row for row in rows if row[1] == "11"]) == 1  # one holder of the value...
        survivor = next(row for row in rows if row[1] == "11")
        parked = rec[rec["parked"]]
        assert parked["cnpj"] == "11" and parked["id"] != survivor[0]  # ...the other is parked, whole
        assert {survivor[0], parked["id"]} == {1, -1}
        assert events.of("sync.conflict")[0]["kind"] == "unique"
    finally:
        r.close()


def test_thousand_cross_side_duplicates_all_end_in_the_table_or_parked(tmp_path, pg_url):
    db, r = make_copied(tmp_path, pg_url, COMPANIES, tables=["companies"])
    try:
        import sqlite3

        import psycopg

        conn = sqlite3.connect(db)
        conn.executemany("INSERT INTO companies VALUES (?, ?, 'b')", [(i, f"c{i}") for i in range(1, 1001)])
        conn.commit()
        conn.close()
        with psycopg.connect(pg_url) as pg:
            with pg.cursor() as cur:
                cur.executemany(
                    "INSERT INTO companies VALUES (%s, %s, 'g')", [(-i, f"c{i}") for i in range(1, 1001)]
                )
            pg.commit()
        _settled(db, pg_url, r)
        rows = blue_rows(db, "companies")
        blue, _ = store_rows(db, pg_url)
        parked = {(rec[rec["parked"]]["id"], rec[rec["parked"]]["cnpj"]) for rec in blue}
        present = {(row[0], row[1]) for row in rows}
        acknowledged = {(i, f"c{i}") for i in range(1, 1001)} | {(-i, f"c{i}") for i in range(1, 1001)}
        assert present | parked == acknowledged and not present & parked
        assert len(rows) == 1000 and len(blue) == 1000
    finally:
        r.close()


def test_a_check_violation_and_a_foreign_key_orphan_are_parked_and_the_sync_goes_on(tmp_path, pg_url):
    events = Events()
    ddl = [
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), qty INTEGER)",
    ]
    db, r = make_copied(tmp_path, pg_url, ddl, tables=["parent", "child"], on_event=events)
    try:
        pg_exec(pg_url, "ALTER TABLE child ADD CONSTRAINT qty_positive CHECK (qty >= 0)")  # green is stricter
        r.install()  # the lead accepts the schema as it now is (else the changed table is held)
        blue_exec(db, "INSERT INTO parent VALUES (1, 'p1')")
        blue_exec(db, "INSERT INTO parent VALUES (2, 'p2')")
        r.run_once()
        pg_exec(pg_url, "DELETE FROM parent WHERE id = 2")  # green deletes a parent...
        blue_exec(
            db, "INSERT INTO child VALUES (20, 2, 1)"
        )  # ...while blue gives it a child: an orphan on green
        blue_exec(db, "INSERT INTO child VALUES (10, 1, -5)")  # green refuses the negative quantity
        for i in range(30, 40):
            blue_exec(db, "INSERT INTO child VALUES (?, 1, 1)", (i,))  # the changes behind them
        _settled(db, pg_url, r, ("parent", "child"))
        kinds = {(p["key"][0], p["kind"]) for p in events.of("sync.conflict")}
        assert kinds == {(20, "violation"), (10, "violation")}
        by_key = {p["key"][0]: p for p in events.of("sync.conflict")}
        assert by_key[10]["constraint"] == "qty_positive" and "check constraint" in by_key[10]["message"]
        assert "foreign key" in by_key[20]["message"]
        assert by_key[10]["blue"] == {"id": 10, "parent_id": 1, "qty": -5}
        ids = [row[0] for row in green_rows(pg_url, "child")]
        assert ids == list(range(30, 40))  # the refused rows are parked, not in either table
        assert [row[0] for row in blue_rows(db, "parent")] == [1]
    finally:
        r.close()


def test_a_holder_that_changes_later_on_the_source_is_carried_not_parked(tmp_path, pg_url):
    """The batch reads key 3's state now ('11'), while green still has key 1 holding '11': key 1 gave it up on
    blue after the batch's range. Its newer state comes along; nothing is parked."""
    events = Events()
    db, r = make_copied(tmp_path, pg_url, COMPANIES, tables=["companies"], on_event=events, batch_size=1)
    try:
        blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'first holder')")
        r.run_once()
        blue_exec(db, "INSERT INTO companies VALUES (3, '33', 'later holder')")
        blue_exec(db, "UPDATE companies SET cnpj = '12' WHERE id = 1")
        blue_exec(db, "UPDATE companies SET cnpj = '11' WHERE id = 3")
        _settled(db, pg_url, r)
        assert events.of("sync.conflict") == []
        assert blue_rows(db, "companies") == [(1, "12", "first holder"), (3, "11", "later holder")]
    finally:
        r.close()


def test_unique_collision_from_green_to_blue_is_parked_too(tmp_path, pg_url):
    events = Events()
    db, r = make_copied(
        tmp_path, pg_url, COMPANIES, tables=["companies"], conflict_policy="blue-wins", on_event=events
    )
    try:
        pg_exec(pg_url, "INSERT INTO companies VALUES (-7, '77', 'green')")
        blue_exec(db, "INSERT INTO companies VALUES (7, '77', 'blue')")
        # green→blue first: blue's row is pending there, so the collision is found on SQLite
        r.applier().green_to_blue(r._sqlite(), r._postgres(), 0)
        _settled(db, pg_url, r)
        (p,) = events.of("sync.conflict")
        assert p["kind"] == "unique" and p["winner"] == "blue" and p["parked"] == "green"
        assert p["green"]["id"] == -7
        assert blue_rows(db, "companies") == [(7, "77", "blue")]
    finally:
        r.close()


def test_unique_indexes_over_expressions_and_partial_ones_are_settled_too(tmp_path, pg_url):
    """Green's unique index on lower(email) (how COLLATE NOCASE is carried) and a partial one: a collision there is
    a unique conflict settled by the policy, not a refused change."""
    events = Events()
    ddl = [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE UNIQUE, code TEXT, active INTEGER)"
    ]
    db, r = make_copied(tmp_path, pg_url, ddl, tables=["users"], conflict_policy="blue-wins", on_event=events)
    try:
        pg_exec(pg_url, "CREATE UNIQUE INDEX users_email_lower ON users (lower(email))")
        pg_exec(pg_url, "CREATE UNIQUE INDEX users_code_active ON users (code) WHERE active = 1")
        r.install()  # the lead accepts green's indexes
        pg_exec(pg_url, "INSERT INTO users VALUES (-1, 'Ana@X.com', 'g', 0)")
        blue_exec(db, "INSERT INTO users VALUES (1, 'ana@x.com', 'b', 0)")
        pg_exec(pg_url, "INSERT INTO users VALUES (-2, 'bo@x.com', 'k1', 1)")
        blue_exec(db, "INSERT INTO users VALUES (2, 'cy@x.com', 'k1', 1)")
        blue_exec(
            db, "INSERT INTO users VALUES (3, 'di@x.com', 'k1', 0)"
        )  # inactive: outside the partial index
        _settled(db, pg_url, r, ("users",))
        kinds = {(p["kept_key"][0], p["kind"], p["constraint"]) for p in events.of("sync.conflict")}
        assert kinds == {(1, "unique", "users_email_lower"), (2, "unique", "users_code_active")}
        assert [row[0] for row in blue_rows(db, "users")] == [1, 2, 3]  # blue's rows kept, green's parked
    finally:
        r.close()


def test_a_version_parked_on_green_counts_as_green_only_until_blue_has_the_record(tmp_path, pg_url):
    db, r = make_copied(tmp_path, pg_url, COMPANIES, tables=["companies"], conflict_policy="blue-wins")
    try:
        pg_exec(pg_url, "INSERT INTO companies VALUES (-1, '11', 'green')")
        r.applier().green_to_blue(r._sqlite(), r._postgres(), 0)  # green's row reaches blue first...
        blue_exec(db, "UPDATE companies SET name = 'blue' WHERE id = -1")
        pg_exec(pg_url, "UPDATE companies SET name = 'green again' WHERE id = -1")
        r.applier().blue_to_green(r._sqlite(), r._postgres())  # ...blue wins: green's version parked on green
        assert r.green_only_pending() == 2  # green's pending change, and the record blue has not got yet
        r.run_once()
        assert r.green_only_pending() == 0
        assert_same(db, pg_url, ["companies"])
    finally:
        r.close()


def test_the_same_change_on_both_sides_parks_nothing(tmp_path, pg_url):
    events = Events()
    db, r = make_copied(tmp_path, pg_url, COMPANIES, tables=["companies"], on_event=events)
    try:
        blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'a'), (2, '22', 'b')")
        r.run_once()
        blue_exec(db, "UPDATE companies SET name = 'same' WHERE id = 1")
        pg_exec(pg_url, "UPDATE companies SET name = 'same' WHERE id = 1")
        blue_exec(db, "DELETE FROM companies WHERE id = 2")
        pg_exec(pg_url, "DELETE FROM companies WHERE id = 2")
        assert _settled(db, pg_url, r) == []
        assert events.of("sync.conflict") == []
    finally:
        r.close()
