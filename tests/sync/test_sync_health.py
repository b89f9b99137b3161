"""What the sync tells the controller and the lead: stalls within seconds, its error from any process, schema
changes held, conflicts listed and resolved from the CLI, keys left. Real SQLite files and the real PostgreSQL."""

from __future__ import annotations

import json

from cockpit.cli.main import main
from tests.conftest import wait_for
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
    "CREATE TABLE companies (id INTEGER PRIMARY KEY AUTOINCREMENT, cnpj TEXT NOT NULL UNIQUE, name TEXT)",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
]
METRICS = {
    "sync.stalled",
    "sync.stalled_s",
    "sync.conflicts_waiting",
    "sync.keys_left_min",
    "sync.schema_changed",
    "sync.green_only_pending",
}


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_a_stall_is_seen_within_seconds_and_clears_when_the_sync_moves(tmp_path, pg_url):
    events = Events()
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"], on_event=events)
    r.stall_after_s = 0.5
    try:
        r.lag()
        assert r.metrics()["sync.stalled"] == 0.0
        pg_exec(pg_url, "INSERT INTO notes (body) VALUES ('on green')")  # nothing applies it: no pass runs
        r.lag()
        wait_for(lambda: r.lag() and r.metrics()["sync.stalled"] == 1.0, 5, what="the stall to be seen")
        assert r.metrics()["sync.green_only_pending"] == 1.0 and r.green_only_pending() == 1
        assert events.of("sync.stalled")[0]["pending"]["green_to_blue"] == 1
        r.run_once()
        r.lag()
        assert r.metrics()["sync.stalled"] == 0.0 and events.of("sync.resumed")
        assert set(r.metrics()) == METRICS
        assert r.metrics()["sync.keys_left_min"] > 2**50
    finally:
        r.close()


def test_status_from_another_process_shows_what_stops_the_running_sync(tmp_path, pg_url, capsys):
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"], interval=0.05)
    try:
        r.start()
        pg_exec(pg_url, "ALTER TABLE notes ADD COLUMN extra text")  # green's schema moves on
        wait_for(lambda: "notes" in r.schema_changed, 5, what="the change to be seen")
        blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES ('1', 'flows')")
        blue_exec(db, "INSERT INTO notes (body) VALUES ('held')")
        blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES ('2', 'waits behind the held change')")
        wait_for(lambda: r.problem() is not None, 10, what="the hold to be reported")
        wait_for(
            lambda: [row[1] for row in green_rows(pg_url, "companies")] == ["1"], 10, what="the first change"
        )
        assert (
            main(
                ["sync", "status", "--from", str(db), "--to", pg_url, "--tables", "companies,notes", "--json"]
            )
            == 0
        )
        out = _json(capsys)
        assert "notes" in out["error"] and "cockpit sync copy --tables notes" in out["error"]
        assert out["schema_changed"] == {"notes": "ALTER TABLE on green (PostgreSQL)"}
        assert out["lag"]["blue_to_green"]["pending"] == 2
    finally:
        r.stop()


def test_a_schema_change_on_blue_holds_that_table_only(tmp_path, pg_url):
    events = Events()
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"], on_event=events)
    try:
        blue_exec(db, "ALTER TABLE notes ADD COLUMN extra TEXT")
        pg_exec(pg_url, "INSERT INTO notes (body) VALUES ('held on green')")
        blue_exec(db, "INSERT INTO companies (cnpj) VALUES ('1')")
        out = r.run_once()
        (changed,) = events.of("sync.schema_changed")
        assert changed["table"] == "notes" and "blue" in changed["change"]
        assert out["green_to_blue"]["held"] == "notes" and r.metrics()["sync.schema_changed"] == 1.0
        assert [row[1] for row in green_rows(pg_url, "companies")] == ["1"]
        assert blue_rows(db, "notes") == []  # not applied into the changed table
        r.run_once()
        assert len(events.of("sync.schema_changed")) == 1  # reported once
    finally:
        r.close()


def test_conflicts_listed_and_resolved_from_the_command_line(tmp_path, pg_url, capsys):
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"], conflict_policy="green-wins")
    args = ["--from", str(db), "--to", pg_url, "--tables", "companies,notes"]
    try:
        blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES ('11', 'blue co')")
        pg_exec(pg_url, "INSERT INTO companies (cnpj, name) VALUES ('11', 'green co')")
        blue_exec(db, "INSERT INTO notes (id, body) VALUES (5, 'blue note')")
        pg_exec(pg_url, "INSERT INTO notes (id, body) VALUES (5, 'green note')")
        for _ in range(3):
            r.run_once()
        assert main(["sync", "conflicts", *args, "--json"]) == 0
        listed = {c["tbl"]: c for c in _json(capsys)["conflicts"]}
        assert set(listed) == {"companies", "notes"}
        company = listed["companies"]
        assert company["kind"] == "unique" and company["parked"] == "blue" and company["status"] == "waiting"
        assert company["blue"]["name"] == "blue co" and company["green"]["name"] == "green co"
        assert set(company["blue"]) == {"id", "cnpj", "name"}  # every column of both versions
        assert r.conflicts_waiting() == 2 and r.metrics()["sync.conflicts_waiting"] == 2.0

        note = listed["notes"]["uid"]
        assert main(["sync", "conflicts", "resolve", note, "--keep", "blue", *args]) == 0
        capsys.readouterr()
        assert (
            main(["sync", "conflicts", "resolve", company["uid"], "--keep", "both", *args]) == 1
        )  # same cnpj
        assert "blue refuses the row" in capsys.readouterr().err
        assert main(["sync", "conflicts", "resolve", company["uid"], "--keep", "blue", *args]) == 0
        for _ in range(3):
            r.run_once()
        assert_same(db, pg_url, ["companies", "notes"])
        assert blue_rows(db, "notes") == [(5, "blue note")]
        assert [row[1:] for row in blue_rows(db, "companies")] == [("11", "blue co")]
        assert r.conflicts_waiting() == 0
        blue, green = store_rows(db, pg_url)
        assert {x["status"] for x in blue} == {"resolved"} and {x["status"] for x in green} == {"resolved"}
        assert main(["sync", "conflicts", "resolve", note, "--keep", "green", *args]) == 2  # already resolved
    finally:
        r.close()


def test_keep_both_adds_the_parked_row_under_a_new_key(tmp_path, pg_url, capsys):
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"], conflict_policy="blue-wins")
    args = ["--from", str(db), "--to", pg_url, "--tables", "companies,notes"]
    try:
        blue_exec(db, "INSERT INTO notes (id, body) VALUES (5, 'base')")
        r.run_once()
        blue_exec(db, "UPDATE notes SET body = 'blue' WHERE id = 5")
        pg_exec(pg_url, "UPDATE notes SET body = 'green' WHERE id = 5")
        for _ in range(3):
            r.run_once()
        (rec,) = r.conflicts()
        assert main(["sync", "conflicts", "resolve", rec["uid"], "--keep", "both", *args]) == 0
        for _ in range(3):
            r.run_once()
        assert_same(db, pg_url, ["notes"])
        assert [row[1] for row in blue_rows(db, "notes")] == ["blue", "green"]
    finally:
        r.close()


def test_keys_command_shows_and_restores(tmp_path, pg_url, capsys):
    db, r = make_copied(tmp_path, pg_url, DDL, tables=["companies", "notes"])
    r.close()
    args = ["--from", str(db), "--to", pg_url, "--tables", "companies,notes"]
    assert main(["sync", "keys", *args, "--json"]) == 0
    out = _json(capsys)
    assert {k["table"] for k in out["keys"]} == {"companies", "notes"}
    assert all(k["state"] == "down" for k in out["keys"]) and out["keys_left_min"] > 2**50
    assert main(["sync", "keys", "--restore", *args, "--json"]) == 0
    assert {k["state"] for k in _json(capsys)["keys"]} == {"up"}
