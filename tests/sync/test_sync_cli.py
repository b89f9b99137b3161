"""`cockpit sync copy|run|install|uninstall|status` end to end: real SQLite file, real PostgreSQL, real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

from cockpit.cli.main import main
from tests.conftest import wait_for
from tests.sync.test_sync_support import (
    assert_same,
    blue_exec,
    green_rows,
    make_blue,
    make_pair,
    pg_exec,
    write_sync_plan,
)

ROOT = Path(__file__).resolve().parents[2]


def _seeded_blue(tmp_path: Path) -> Path:
    db = tmp_path / "app.db"
    make_blue(db)
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?)", [(i, f"n{i}", i, i / 4, None) for i in range(50)]
    )
    conn.execute("""INSERT INTO "Pairs" VALUES ('a', 1, 'x')""")
    conn.commit()
    conn.close()
    return db


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_copy_then_run_once_then_status(tmp_path, pg_url, capsys):
    db = _seeded_blue(tmp_path)
    assert main(["sync", "copy", "--from", str(db), "--to", pg_url, "--jobs", "2", "--json"]) == 0
    out = _json(capsys)
    assert out["capture"]["tables"] == ["Pairs", "items"]
    assert out["copy"]["rows"] == 51
    assert_same(db, pg_url)

    blue_exec(db, "UPDATE items SET name = 'changed' WHERE id = 3")
    pg_exec(pg_url, "DELETE FROM items WHERE id = 4")
    assert main(["sync", "status", "--from", str(db), "--to", pg_url, "--json"]) == 0
    status = _json(capsys)
    assert status["lag"]["blue_to_green"]["pending"] == 1 and status["lag"]["green_to_blue"]["pending"] == 1
    assert status["installed"] == {"blue": ["Pairs", "items"], "green": ["Pairs", "items"]}
    assert status["reachable"] is True

    assert main(["sync", "run", "--once", "--from", str(db), "--to", pg_url]) == 0
    text = capsys.readouterr().out
    assert "blue→green: 1 changes" in text and "green→blue: 1 changes" in text
    assert_same(db, pg_url)
    assert main(["sync", "status", "--from", str(db), "--to", pg_url, "--json"]) == 0
    status = _json(capsys)
    assert status["lag"] == {
        "blue_to_green": {"age_s": 0.0, "pending": 0},
        "green_to_blue": {"age_s": 0.0, "pending": 0},
    }


def test_copy_refused_leaves_blue_as_it_was(tmp_path, pg_url, capsys):
    db = _seeded_blue(tmp_path)
    pg_exec(pg_url, "CREATE TABLE items (id bigint PRIMARY KEY)")  # the copy refuses existing tables
    assert main(["sync", "copy", "--from", str(db), "--to", pg_url]) == 1
    assert "refused" in capsys.readouterr().err
    conn = sqlite3.connect(db)
    leftovers = conn.execute(
        "SELECT name FROM sqlite_master WHERE name LIKE '\\_cockpit%' ESCAPE '\\'"
    ).fetchall()
    conn.close()
    assert leftovers == []


def test_run_needs_capture_installed(tmp_path, pg_url, capsys):
    db = make_pair(tmp_path, pg_url, install=False)
    assert main(["sync", "run", "--once", "--from", str(db), "--to", pg_url]) == 2
    assert "sync install" in capsys.readouterr().err
    assert main(["sync", "install", "--from", str(db), "--to", pg_url]) == 0
    assert main(["sync", "install", "--from", str(db), "--to", pg_url]) == 0  # idempotent
    assert main(["sync", "run", "--once", "--from", str(db), "--to", pg_url]) == 0


def test_uninstall_refuses_pending_changes_without_yes(tmp_path, pg_url, capsys):
    db = make_pair(tmp_path, pg_url)
    blue_exec(db, "INSERT INTO items (id) VALUES (1)")
    assert main(["sync", "uninstall", "--from", str(db), "--to", pg_url]) == 1
    assert "still waiting" in capsys.readouterr().err
    assert main(["sync", "uninstall", "--from", str(db), "--to", pg_url, "--yes", "--json"]) == 0
    out = _json(capsys)
    assert "schema cockpit" in out["green"] and "table _cockpit_changes" in out["blue"]
    assert main(["sync", "uninstall", "--from", str(db), "--to", pg_url]) == 0  # idempotent
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT to_regnamespace('cockpit')").fetchone()[0] is None


def test_status_with_postgres_unreachable_exits_1(tmp_path, pg_url, capsys):
    db = make_pair(tmp_path, pg_url)
    blue_exec(db, "INSERT INTO items (id) VALUES (1)")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://postgres:secret@127.0.0.1:{port}/nope"
    assert main(["sync", "status", "--from", str(db), "--to", url, "--json"]) == 1
    out = _json(capsys)
    assert out["reachable"] is False and out["lag"]["green_to_blue"] is None
    assert out["lag"]["blue_to_green"]["pending"] == 1
    assert "secret" not in json.dumps(out)


def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COCKPIT_PLAN", raising=False)
    assert main(["sync", "status"]) == 2
    assert main(["sync", "status", "--from", str(tmp_path / "none.db"), "--to", "postgresql://x/y"]) == 2
    assert "not found" in capsys.readouterr().err


def test_run_loop_from_a_plan_stops_cleanly_on_sigterm(tmp_path, pg_url):
    db = make_pair(tmp_path, pg_url)
    plan = write_sync_plan(tmp_path, db, "tables: [items, Pairs]\ninterval: 100ms")
    env = {**os.environ, "COCKPIT_TEST_GREEN_URL": pg_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "-p", str(plan), "sync", "run", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        blue_exec(db, "INSERT INTO items (id, name) VALUES (1, 'from blue')")
        wait_for(lambda: green_rows(pg_url, "items") != [], 20, what="the loop to copy the row")
        line = json.loads(proc.stdout.readline())
        assert set(line["lag"]) == {"blue_to_green", "green_to_blue"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert_same(db, pg_url)
    # only a controller writes samples into the plan's journal (tests/house/test_one_path.py)
    assert not (tmp_path / ".cockpit" / "journal.db").exists()
