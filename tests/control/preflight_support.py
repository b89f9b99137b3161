"""What the preflight tests share: a plan around a real SQLite blue and a PostgreSQL green, one run's JSON."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cockpit.cli.main import main
from cockpit.drivers.sync.runner import SyncRunner


def make_plan(
    tmp_path: Path, green_url: str, extra: str = "", blue: str = "blue.db", copied: bool = False
) -> Path:
    """A plan with a WAL SQLite blue and `green_url`; `extra` YAML is appended. A `blue` file that is not there
    yet is made with one table; `copied`: blue is copied into green by the real initial copy (capture on both
    sides), so that the sync area can pass."""
    db = tmp_path / blue
    if not db.exists():
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.commit()
        conn.close()
    if copied:
        runner = SyncRunner(db, green_url)
        try:
            runner.initial_copy(jobs=1)
        finally:
            runner.close()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""name: pf
blue: {{database: {{engine: sqlite, path: {blue}}}}}
green: {{database: {{engine: postgresql, url: "{green_url}"}}}}
phases: [{{name: one, green: 5, preflight: true}}]
preflight: {{timeout: 3s}}
"""
        + extra
    )
    return plan


def run_json(plan: Path, capsys: pytest.CaptureFixture[str], test_message: bool = False) -> tuple[int, dict]:
    """`cockpit preflight --json` (with `--no-test-message` unless `test_message`): exit code and the document."""
    flags = [] if test_message else ["--no-test-message"]
    code = main(["-p", str(plan), "preflight", "--json", *flags])
    return code, json.loads(capsys.readouterr().out)


def check(doc: dict, area: str, name: str) -> dict:
    """The one check named `name` in `area` (fails the test when it is not there)."""
    found = [c for c in doc["checks"] if c["area"] == area and c["name"] == name]
    assert len(found) == 1, [f"{c['area']}/{c['name']}" for c in doc["checks"]]
    return found[0]
