"""A table whose schema changed during the migration is held, then re-seeded from blue with `cockpit sync copy
--tables T`, while the other tables keep syncing. Real SQLite files, the real PostgreSQL, the real copy."""

from __future__ import annotations

import psycopg

from cockpit.cli.main import main
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

DDL = [
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    "CREATE TABLE pins (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id), label TEXT)",
    "CREATE TABLE log (line TEXT)",
]
TABLES = ["notes", "pins", "log"]


def test_a_column_added_on_blue_is_carried_by_re_seeding_that_table(tmp_path, pg_url, capsys):
    events = Events()
    db, r = make_copied(tmp_path, pg_url, DDL, tables=TABLES, on_event=events)
    try:
        blue_exec(db, "INSERT INTO notes (id, body) VALUES (1, 'one')")
        blue_exec(db, "INSERT INTO pins VALUES (1, 1, 'pinned')")
        r.run_once()
        pg_exec(pg_url, "CREATE VIEW note_bodies AS SELECT body FROM notes")
        r.install()  # the lead accepts green's new view
        blue_exec(db, "INSERT INTO log VALUES ('still flows')")  # before the held change: it goes through
        blue_exec(db, "ALTER TABLE notes ADD COLUMN color TEXT")
        blue_exec(db, "INSERT INTO notes (id, body, color) VALUES (2, 'two', 'red')")
        pg_exec(pg_url, "INSERT INTO notes (id, body) VALUES (-1, 'green note not yet on blue')")
        out = r.run_once()
        assert out["blue_to_green"]["held"] == "notes" and "re-seed" in r.problem()
        assert green_rows(pg_url, "log") == [("still flows",)]
        r.close()

        argv = ["sync", "copy", "--from", str(db), "--to", pg_url, "--tables", "notes", "--json"]
        assert main(argv) == 0, capsys.readouterr().err
        capsys.readouterr()

        blue_exec(db, "INSERT INTO notes (id, body, color) VALUES (3, 'three', 'blue')")
        blue_exec(db, "INSERT INTO log VALUES ('after')")
        for _ in range(3):
            r.run_once()
        assert r.problem() is None and r.schema_changed == {}
        assert_same(db, pg_url, TABLES)
        assert green_rows(pg_url, "notes") == [(1, "one", None), (2, "two", "red"), (3, "three", "blue")]
        blue, _ = store_rows(db, pg_url)
        (parked,) = [x for x in blue if x["kind"] == "reseed"]
        assert parked["green"]["body"] == "green note not yet on blue"  # parked, not dropped
        with psycopg.connect(pg_url) as pg:
            fks = pg.execute(
                "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'pins'::regclass"
            ).fetchall()
            assert len(fks) == 1 and fks[0][1]  # the foreign key from pins to notes was made again, validated
            assert pg.execute("SELECT count(*) FROM note_bodies").fetchone()[0] == 3  # and the view
        r.run_once()
        assert r.lag()["blue_to_green"].pending == 0
    finally:
        r.close()


def test_a_re_seed_cut_short_holds_the_sync_until_it_is_run_again(tmp_path, pg_url):
    from cockpit.drivers.sync import reseed

    db, r = make_copied(tmp_path, pg_url, DDL, tables=TABLES)
    try:
        blue_exec(db, "INSERT INTO notes VALUES (1, 'one')")
        r.run_once()
        reseed.prepare(r._sqlite(), r._postgres(), ["notes"])  # ...then the process died
        blue_exec(db, "INSERT INTO log VALUES ('waits')")
        try:
            r.run_once()
            raise AssertionError("the sync ran during an unfinished re-seed")
        except Exception as exc:
            assert "run the same command again" in str(exc)
        r.initial_copy(jobs=1, tables=["notes"])
        for _ in range(2):
            r.run_once()
        assert_same(db, pg_url, TABLES)
        assert [row[0] for row in blue_rows(db, "notes")] == [1]
    finally:
        r.close()
