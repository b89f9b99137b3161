"""Disjoint database-chosen keys on real SQLite files and the real PostgreSQL: AUTOINCREMENT and plain INTEGER
PRIMARY KEY on blue, identity and serial on green."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from cockpit.drivers.sync.capture import install_pg, install_sqlite, record_copy_position, sqlite_position
from cockpit.drivers.sync.keys import JS_SAFE, KeysError
from cockpit.drivers.sync.runner import SyncRunner, connect_sqlite
from tests.conftest import wait_for
from tests.sync.test_sync_support import Events, assert_same, blue_exec, blue_rows, pg_exec

BLUE = {
    "autoincrement": "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)",
    "rowid": "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
}
GREEN_SERIAL = "CREATE TABLE t (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE)"
VARIANTS = [
    ("autoincrement", "identity"),
    ("rowid", "identity"),
    ("rowid", "serial"),
    ("autoincrement", "serial"),
]


def _pair(
    tmp_path: Path, pg_url: str, blue: str, green: str, rows: int = 3, **kwargs
) -> tuple[Path, SyncRunner]:
    """Blue with `rows` rows; green by the real copy (identity) or by hand (serial); capture and keys installed."""
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute(BLUE[blue])
    conn.executemany("INSERT INTO t (name) VALUES (?)", [(f"old{i}",) for i in range(rows)])
    conn.commit()
    conn.close()
    r = SyncRunner(db, pg_url, tables=["t"], **kwargs)
    if green == "identity":
        r.initial_copy(jobs=1)
        return db, r
    pg_exec(pg_url, GREEN_SERIAL)
    with psycopg.connect(pg_url) as pg:
        pg.execute("INSERT INTO t SELECT x, 'old' || (x - 1) FROM generate_series(1, %s) x", (rows,))
        pg.execute("SELECT setval('t_id_seq', %s, %s)", (max(rows, 1), rows > 0))
        pg.commit()
        blue_conn = connect_sqlite(db)
        keys = install_sqlite(blue_conn, ["t"])
        record_copy_position(pg, sqlite_position(blue_conn))
        pg.commit()
        install_pg(pg, keys)
        blue_conn.close()
    r.install()
    return db, r


def _green_insert(pg_url: str, name: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as pg:
        return pg.execute("INSERT INTO t (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]


def _blue_insert(db: Path, name: str) -> int:
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute("INSERT INTO t (name) VALUES (?)", (name,))
        conn.commit()
        return cur.lastrowid
    finally:
        conn.close()


@pytest.mark.parametrize(("blue", "green"), VARIANTS)
def test_green_counts_down_from_a_ceiling_and_blue_jumps_above_it(tmp_path, pg_url, blue, green):
    db, r = _pair(tmp_path, pg_url, blue, green)
    try:
        (state,) = r.key_states()
        assert state.state == "down" and state.floor == 4 and state.ceiling == 3 + (JS_SAFE - 3) // 2
        ceiling = state.ceiling
        assert r.install()["keys"][0]["green_next"] == ceiling  # idempotent: not restarted, not moved
        assert [_green_insert(pg_url, f"g{i}") for i in range(3)] == [ceiling, ceiling - 1, ceiling - 2]
        assert _blue_insert(db, "b0") == 4  # blue keeps taking max + 1 until green's rows arrive
        r.run_once()
        assert _blue_insert(db, "b1") == ceiling + 1  # green's first rows are on blue: blue jumps above
        r.run_once()
        assert _green_insert(pg_url, "g3") == ceiling - 3  # the applier never moved green's sequence up
        r.run_once()
        assert_same(db, pg_url, ["t"])
        left = r.keys_left()["t"]
        assert left == (ceiling - 4) - 4  # green's next key down to blue's highest key below it
        restored = r.restore_keys()
        assert restored[0].state == "up" and restored[0].green_next == ceiling + 2  # above every key
        assert _green_insert(pg_url, "after") == ceiling + 2
    finally:
        r.close()


@pytest.mark.parametrize(
    ("blue", "green", "rows"),
    [
        ("autoincrement", "identity", 100_000),
        ("rowid", "identity", 20_000),
        ("rowid", "serial", 20_000),
        ("autoincrement", "serial", 20_000),
    ],
)
def test_inserts_on_both_sides_at_full_speed_all_arrive_with_no_conflict(tmp_path, pg_url, blue, green, rows):
    events = Events()
    db, r = _pair(tmp_path, pg_url, blue, green, rows=0, on_event=events, interval=0.05)
    half = rows // 2
    errors: list[BaseException] = []

    def blue_writer() -> None:
        try:
            conn = sqlite3.connect(db, timeout=30, isolation_level=None)
            conn.execute("PRAGMA synchronous = NORMAL")
            for i in range(half):
                conn.execute("INSERT INTO t (name) VALUES (?)", (f"b{i}",))  # one transaction each
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def green_writer() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as pg, pg.pipeline():
                for i in range(rows - half):
                    pg.execute("INSERT INTO t (name) VALUES (%s)", (f"g{i}",))  # one transaction each
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    r.start()
    try:
        writers = [threading.Thread(target=blue_writer), threading.Thread(target=green_writer)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        assert not errors, errors
        wait_for(
            lambda: r.drain(5) and r.lag()["blue_to_green"].pending == 0, 120, what="the sync to catch up"
        )
    finally:
        r.stop()
    try:
        assert events.of("sync.conflict") == []
        names = {row[1] for row in blue_rows(db, "t")}
        assert names == {f"b{i}" for i in range(half)} | {f"g{i}" for i in range(rows - half)}
        assert_same(db, pg_url, ["t"])
        assert max(row[0] for row in blue_rows(db, "t")) < JS_SAFE
    finally:
        r.close()


def test_blue_deleting_its_top_row_reuses_the_key_without_meeting_green(tmp_path, pg_url):
    db, r = _pair(tmp_path, pg_url, "rowid", "identity")
    try:
        four = _blue_insert(db, "four")
        r.run_once()
        blue_exec(db, "DELETE FROM t WHERE id = ?", (four,))
        assert _blue_insert(db, "four again") == four  # SQLite's max + 1 takes the key again
        r.run_once()
        assert_same(db, pg_url, ["t"])
        assert r.keys_left()["t"] > JS_SAFE // 4  # a table green never writes keeps half the key space
    finally:
        r.close()


def test_a_ceiling_too_close_is_refused_with_nothing_changed_and_disjoint_tables_are_left_alone(
    tmp_path, pg_url
):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute(BLUE["rowid"])
    conn.executemany("INSERT INTO t (name) VALUES (?)", [(f"n{i}",) for i in range(10)])
    conn.commit()
    conn.close()
    r = SyncRunner(db, pg_url, tables=["t"], key_ceiling=1000, key_headroom=5000)
    try:
        with pytest.raises(KeysError, match="key_headroom"):
            r.initial_copy(jobs=1)
        assert r.key_states()[0].state == "up"  # the sequence was not touched
        r.key_headroom = 10
        r.install()
        (state,) = r.key_states()
        assert (state.state, state.ceiling, state.green_next) == ("down", 1000, 1000)
        r.key_ceiling = 2**40
        assert r.install()["keys"][0]["ceiling"] == 1000  # idempotent: a sequence counting down stays
        alone = SyncRunner(db, pg_url, tables=["t"], disjoint_keys=["t"])
        try:
            assert alone.key_states() == [] and alone.keys_left() == {}
        finally:
            alone.close()
    finally:
        r.close()


def test_integer_keys_stay_inside_the_type(tmp_path, pg_url):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute(BLUE["rowid"])
    conn.commit()
    conn.close()
    pg_exec(pg_url, "CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL UNIQUE)")  # int4
    r = SyncRunner(db, pg_url, tables=["t"])
    try:
        r.install()
        (state,) = r.key_states()
        assert state.limit == 2**31 - 1 and state.ceiling == (2**31 - 1) // 2
    finally:
        r.close()
