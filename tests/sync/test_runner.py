"""SyncRunner: lag figures, drain, the background loop, and PostgreSQL going away in the middle of it."""

from __future__ import annotations

import sqlite3
import textwrap
import uuid

import psycopg
import pytest

from cockpit.core.plan import PlanError, load_plan
from cockpit.drivers.sync.apply import ApplyError
from cockpit.drivers.sync.runner import Lag, SyncRunner
from tests.conftest import PG_ADMIN_URL, wait_for
from tests.sync.test_sync_support import (
    TABLES,
    Events,
    assert_same,
    blue_exec,
    blue_rows,
    green_rows,
    make_pair,
    pg_exec,
    runner,
    write_sync_plan,
)


def test_lag_counts_pending_and_is_zero_when_caught_up(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        assert r.lag() == {"blue_to_green": Lag(0.0, 0), "green_to_blue": Lag(0.0, 0)}
        for i in range(3):
            blue_exec(db, "INSERT INTO items (id) VALUES (?)", (i,))
        pg_exec(pg_url, "INSERT INTO items (id) VALUES (100)")
        pg_exec(pg_url, "UPDATE items SET id = 101 WHERE id = 100")  # a key change counts twice
        lag = r.lag()
        assert lag["blue_to_green"].pending == 3 and lag["green_to_blue"].pending == 3
        assert lag["blue_to_green"].age_s > 0 and lag["green_to_blue"].age_s > 0
        r.run_once()
        assert r.lag() == {"blue_to_green": Lag(0.0, 0), "green_to_blue": Lag(0.0, 0)}
    finally:
        r.close()


def test_green_changes_in_an_open_transaction_wait_and_are_not_skipped(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        with psycopg.connect(pg_url) as slow:
            slow.execute("INSERT INTO items (id, name) VALUES (1, 'slow')")  # open, uncommitted, lower seq
            pg_exec(pg_url, "INSERT INTO items (id, name) VALUES (2, 'fast')")
            r.run_once()
            # a later transaction id may not pass an earlier one still open: nothing applied yet
            assert blue_rows(db, "items") == []
            assert r.drain(0.2) is False
            slow.commit()
        assert r.drain(10) is True
        assert [row[:2] for row in blue_rows(db, "items")] == [(1, "slow"), (2, "fast")]
    finally:
        r.close()


def test_background_loop_keeps_both_sides_equal(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url, interval=0.05)
    r.start()
    try:
        assert r.running
        blue_exec(db, "INSERT INTO items (id, name) VALUES (1, 'blue')")
        pg_exec(pg_url, """INSERT INTO "Pairs" VALUES ('g', 1, 'green')""")
        wait_for(
            lambda: green_rows(pg_url, "items") == blue_rows(db, "items") != [], 10, what="blue row on green"
        )
        wait_for(lambda: blue_rows(db, "Pairs") == [("g", 1, "green")], 10, what="green row on blue")
    finally:
        r.stop()
    assert not r.running
    assert_same(db, pg_url)


def _admin(statement: str, params=()) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement, params)


def test_postgres_going_away_loses_nothing(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    name = pg_url.rsplit("/", 1)[1]
    events = Events()
    r = runner(db, pg_url, interval=0.05, max_backoff=0.4, connect_timeout=2, on_event=events)
    r.start()
    try:
        blue_exec(db, "INSERT INTO items (id, name) VALUES (0, 'before')")
        wait_for(lambda: len(green_rows(pg_url, "items")) == 1, 10, what="first row on green")
        conn = sqlite3.connect(db)  # a backlog, so that the connections are cut in the middle of a catch-up
        conn.executemany(
            "INSERT INTO items (id, name) VALUES (?, 'backlog')", [(i,) for i in range(1000, 21000)]
        )
        conn.commit()
        conn.close()
        wait_for(lambda: r.lag()["blue_to_green"].pending < 20000, 10, what="the catch-up to start")
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn = sqlite3.connect(db)
        for i in range(1, 201):  # the app keeps writing on blue while green is away
            conn.execute("INSERT INTO items (id, name) VALUES (?, 'during')", (i,))
            if i % 50 == 0:
                conn.execute("UPDATE items SET qty = ? WHERE id = ?", (i, i - 1))
                conn.execute("DELETE FROM items WHERE id = ?", (i - 2,))
            conn.commit()
        conn.close()
        wait_for(lambda: events.of("sync.error"), 10, what="the runner to notice")
        lag = r.lag()
        assert lag["blue_to_green"].pending >= 200  # waiting in the change log
        assert events.of("sync.error")[0]["retry_in_s"] > 0
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(lambda: r.lag()["blue_to_green"].pending == 0, 20, what="catch-up after reconnect")
        wait_for(lambda: events.of("sync.reconnected"), 5, what="reconnected event")
    finally:
        _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        r.stop()
    assert_same(db, pg_url)
    assert len(blue_rows(db, "items")) == 197 + 20000


def test_from_plan_reads_databases_tables_and_policy(tmp_path, pg_url, monkeypatch):
    db = make_pair(tmp_path, pg_url)
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    plan_file = write_sync_plan(
        tmp_path,
        db,
        "tables: [items, Pairs]\nconflict_policy: green-wins\nbatch_size: 50\ninterval: 250ms",
        extra=f"journal: {{path: j{uuid.uuid4().hex[:6]}.db}}\n",
    )
    plan = load_plan(plan_file)
    r = SyncRunner.from_plan(plan)
    try:
        assert r.sqlite_path == db and r.pg_url == pg_url
        assert list(r.tables) == list(TABLES) and r.conflict_policy == "green-wins"
        assert r.batch_size == 50 and r.interval == pytest.approx(0.25)
        assert r.check_installed() == []
        blue_exec(db, "INSERT INTO items (id, name) VALUES (1, 'x')")
        pg_exec(pg_url, "INSERT INTO items (id, name) VALUES (1, 'y')")  # a conflict: journaled
        r.run_once()
        from cockpit.core.journal import Journal

        j = Journal(plan.path(plan.journal.path), readonly=True)
        try:
            conflicts = [e for e in j.events() if e.kind == "sync.conflict"]
        finally:
            j.close()
        assert len(conflicts) == 1 and conflicts[0].payload["winner"] == "green"
        assert_same(db, pg_url)
    finally:
        r.close()


def test_from_plan_refuses_wrong_engines(tmp_path):
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        textwrap.dedent("""\
        name: t
        blue:
          database: {engine: postgresql, url: "postgresql://x/y"}
        green:
          database: {engine: postgresql, url: "postgresql://x/z"}
        phases:
          - {name: p, green: 100}
        """)
    )
    with pytest.raises(PlanError, match="sqlite"):
        SyncRunner.from_plan(load_plan(plan_file))


def test_a_value_that_does_not_fit_is_parked_naming_table_and_key_and_the_sync_goes_on(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    events = Events()
    r = runner(db, pg_url, interval=0.05, max_backoff=0.2, on_event=events)
    try:
        r.run_once()  # the mapping is read while every value fits
        blue_exec(
            db, "INSERT INTO items (id, qty) VALUES (1, 'not a number')"
        )  # SQLite takes it; PostgreSQL cannot
        blue_exec(db, "INSERT INTO items (id, qty) VALUES (2, 5)")  # behind it: must not wait
        r.run_once()
        (parked,) = events.of("sync.conflict")
        assert parked["kind"] == "violation" and parked["constraint"] == "type"
        assert "table 'items', key [1]" in parked["message"]
        assert parked["blue"]["qty"] == "not a number" and parked["green"] is None
        assert r.lag()["blue_to_green"].pending == 0  # nothing waits behind it
        r.run_once()  # the record reaches blue, and blue's row is set back to green's (none): both sides agree
        assert_same(db, pg_url)
        assert [row[0] for row in green_rows(pg_url, "items")] == [2]
    finally:
        r.close()


def test_run_without_capture_says_what_to_do(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url, install=False)
    r = runner(db, pg_url)
    try:
        with pytest.raises(Exception, match="sync install"):
            r.run_once()
    finally:
        r.close()


def test_pooled_neon_host_is_flagged():
    from cockpit.drivers.sync.runner import pooler_warning

    assert "direct host" in pooler_warning(
        "postgresql://u:p@ep-cool-1-pooler.us-east-2.aws.neon.tech/db?sslmode=require"
    )
    assert pooler_warning("postgresql://u:p@ep-cool-1.us-east-2.aws.neon.tech/db?sslmode=require") is None


def test_blue_capture_reinstalled_alone_is_detected(tmp_path, pg_url):
    from cockpit.drivers.sync.capture import install_sqlite, uninstall_sqlite
    from cockpit.drivers.sync.runner import connect_sqlite

    db = make_pair(tmp_path, pg_url)
    r = runner(db, pg_url)
    try:
        for i in range(3):
            blue_exec(db, "INSERT INTO items (id) VALUES (?)", (i,))
        r.run_once()
        conn = connect_sqlite(db)
        uninstall_sqlite(conn)  # blue's log is gone: PostgreSQL still says 3 changes were applied
        install_sqlite(conn, TABLES)
        conn.close()
        with pytest.raises(ApplyError, match="reinstalled on blue alone"):
            r.run_once()
    finally:
        r.close()
