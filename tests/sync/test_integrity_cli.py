"""The standalone `cockpit integrity`: rows in flight are looked at again after the sync drains (as the periodic
check does), and a refused schema prints the problems with the way through. Real SQLite, PostgreSQL, processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.sync.test_refusal import _mismatch_db
from tests.sync.test_sync_support import make_copied


def integrity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cockpit", "integrity", *args], capture_output=True, text=True, timeout=120
    )


def test_rows_in_flight_are_checked_again_after_the_sync_drains(tmp_path: Path, pg_url: str) -> None:
    ddl = ["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"]
    db, runner = make_copied(tmp_path, pg_url, ddl)
    runner.close()
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 51)])
    conn.commit()
    conn.close()
    # blue's 50 rows are in flight (no sync runs): the check lets the sync carry them, then looks again
    out = integrity("--from", str(db), "--to", pg_url, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["settled_keys"] == 50, doc
    assert doc["tables"][0]["green_rows"] == 50


def test_a_refused_schema_prints_the_problems_and_the_fixes(tmp_path: Path, pg_url: str) -> None:
    db = _mismatch_db(tmp_path)
    out = integrity("--from", str(db), "--to", pg_url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "problem(s) stop the comparison" in out.stderr and "lots-of-it" in out.stderr
    assert "The way through" in out.stderr and "--cast products.qty=" in out.stderr
