"""The preflight's sync area against a real SQLite blue copied into a real PostgreSQL by the initial copy: go,
then capture missing, a parked conflict, the lag over the gate and a schema change since the copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.drivers.sync.runner import SyncRunner
from tests.control.preflight_support import check, make_plan, run_json
from tests.sync.test_sync_support import blue_exec, make_copied, pg_exec

COMPANIES = ["CREATE TABLE companies (id INTEGER PRIMARY KEY, cnpj TEXT NOT NULL UNIQUE, name TEXT)"]
SYNC = "sync: {tables: [companies]}\n"


def _copied(tmp_path: Path, pg_url: str, extra: str = "") -> tuple[Path, SyncRunner]:
    _db, runner = make_copied(tmp_path, pg_url, COMPANIES, tables=["companies"])
    return make_plan(tmp_path, pg_url, SYNC + extra, blue="app.db"), runner


def _sync(doc: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"] if c["area"] == "sync"}


def test_a_copied_pair_is_go(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    plan, runner = _copied(tmp_path, pg_url)
    runner.close()
    code, doc = run_json(plan, capsys)
    assert code == 0, doc
    assert _sync(doc) == {
        "capture": "pass",
        "lag": "pass",
        "conflicts": "pass",
        "schema": "pass",
        "running sync": "pass",
    }
    assert "event trigger" in check(doc, "sync", "schema")["found"]  # the test server's user is a superuser


def test_capture_missing_on_green_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, runner = _copied(tmp_path, pg_url)
    runner.close()
    pg_exec(pg_url, "DROP SCHEMA cockpit CASCADE")
    code, doc = run_json(plan, capsys)
    assert code == 1
    c = check(doc, "sync", "capture")
    assert c["status"] == "fail" and "green" in c["found"] and "cockpit sync" in c["do"], c


def test_a_parked_conflict_is_no_go(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    plan, runner = _copied(tmp_path, pg_url)
    db = tmp_path / "app.db"
    try:
        blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'base')")
        runner.run_once()
        blue_exec(db, "UPDATE companies SET name = 'blue' WHERE id = 1")
        pg_exec(pg_url, "UPDATE companies SET name = 'green' WHERE id = 1")
        for _ in range(3):
            runner.run_once()
        assert runner.conflicts_waiting() == 1
    finally:
        runner.close()
    code, doc = run_json(plan, capsys)
    assert code == 1
    c = check(doc, "sync", "conflicts")
    assert c["status"] == "fail" and c["found"].startswith("1 parked version"), c


def test_the_lag_over_the_gate_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, runner = _copied(tmp_path, pg_url, "metrics: {sync_lag: {warning: 0.001, critical: 0.002}}\n")
    runner.close()
    code, doc = run_json(plan, capsys)
    assert check(doc, "sync", "lag")["status"] == "pass"  # nothing pending: no lag at all
    blue_exec(tmp_path / "app.db", "INSERT INTO companies VALUES (7, '77', 'not synced')")  # no sync runs
    code, doc = run_json(plan, capsys)
    assert code == 1
    c = check(doc, "sync", "lag")
    assert c["status"] == "fail" and "1 pending" in c["found"] and ">= gate" in c["found"], c


def test_a_schema_change_since_the_copy_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, runner = _copied(tmp_path, pg_url)
    runner.close()
    pg_exec(pg_url, "ALTER TABLE companies ADD COLUMN extra text")
    code, doc = run_json(plan, capsys)
    assert code == 1
    c = check(doc, "sync", "schema")
    assert c["status"] == "fail" and "companies" in c["found"] and "--tables companies" in c["do"], c


def test_a_problem_the_running_sync_reported_warns(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from cockpit.drivers.sync.runner import read_problem
    from tests.conftest import wait_for

    plan, runner = _copied(tmp_path, pg_url)
    db = tmp_path / "app.db"

    def reported() -> object:
        conn = sqlite3.connect(db)
        try:
            return read_problem(conn)
        finally:
            conn.close()

    pg_exec(pg_url, "ALTER TABLE companies ADD COLUMN extra text")  # the running sync holds the table...
    blue_exec(db, "INSERT INTO companies VALUES (1, '11', 'held')")  # ...and says so once a change waits
    runner.start()
    try:
        wait_for(reported, timeout=20, what="the running sync to report its problem")
    finally:
        runner.stop()
    code, doc = run_json(plan, capsys)
    c = check(doc, "sync", "running sync")
    assert c["status"] == "warn" and "companies" in c["found"], c
