"""The backup as a controller action and a gate: `cockpit backup take|list|verify|restore`, the first advance
refused until a fresh backup exists (plan `backup.required`), and the screen's `s` key. Real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cockpit.cli.main import main
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from cockpit.tui.app import CockpitApp
from tests.core.plans import BASE, write_plan
from tests.tui.conftest import text, until

PLAN = BASE.replace(
    "tick: 0.1s", "tick: 0.1s\nbackup:\n  folder: backups\n  keep: 2\n  required: true\n  max_age: 1h\n"
)


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    conn = sqlite3.connect(tmp_path / "blue.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany("INSERT INTO users (email) VALUES (?)", ((f"u{i}@x.com.br",) for i in range(500)))
    conn.commit()
    conn.close()
    return write_plan(tmp_path, PLAN)


def _cli(plan_path: Path, *args: str) -> int:
    return main(["-p", str(plan_path), *args])


def test_first_advance_waits_for_a_backup_then_goes(plan_path: Path, capsys) -> None:
    assert _cli(plan_path, "advance", "--yes") == 1
    out = capsys.readouterr().out
    assert "refused" in out and "backup of blue younger than 1h" in out and "none taken yet" in out

    assert _cli(plan_path, "backup", "take", "--label", "pre 5%", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and [s["step"] for s in result["steps"]] == ["backup", "verify"]
    manifest = result["extra"]["backup"]
    assert manifest["tables"] == {"users": 500} and manifest["name"].endswith("-pre-5")
    assert manifest["source_path"].endswith("blue.db")

    assert _cli(plan_path, "advance", "--yes") == 0
    assert "now in phase validation" in capsys.readouterr().out
    with Journal(plan_path.parent / "journal.db", readonly=True) as j:
        verbs = [(a.verb, a.outcome) for a in j.actions(10)]
    assert verbs == [("advance", "refused"), ("backup", "ok"), ("advance", "ok")]


def test_list_verify_restore(plan_path: Path, tmp_path: Path, capsys) -> None:
    for label in ("one", "two", "three"):
        assert _cli(plan_path, "backup", "take", "--label", label) == 0
    capsys.readouterr()
    assert _cli(plan_path, "backup", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["label"] for m in listed] == ["three", "two"]  # keep: 2
    name = listed[0]["name"]

    assert _cli(plan_path, "backup", "verify", name) == 0
    assert "ok" in capsys.readouterr().out
    target = tmp_path / "restored.db"
    assert _cli(plan_path, "backup", "restore", name, str(target)) == 0
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 500
    finally:
        conn.close()
    assert _cli(plan_path, "backup", "restore", name, str(target)) == 1  # never overwrites
    assert "refusing to overwrite" in capsys.readouterr().err

    gz = tmp_path / "backups" / name / "blue.db.gz"
    data = bytearray(gz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    gz.write_bytes(bytes(data))
    assert _cli(plan_path, "backup", "verify", name) == 1
    assert "blue.db.gz" in capsys.readouterr().out
    assert _cli(plan_path, "backup", "verify", "no-such-backup") == 2


def test_backup_of_a_missing_blue_fails_and_leaves_nothing(plan_path: Path, capsys) -> None:
    (plan_path.parent / "blue.db").unlink()
    assert _cli(plan_path, "backup", "take") == 1
    assert "backup failed" in capsys.readouterr().out
    assert not (plan_path.parent / "backups").exists() or not any((plan_path.parent / "backups").iterdir())


async def test_s_key_takes_a_backup_and_the_gate_turns_green(plan_path: Path) -> None:
    plan = load_plan(plan_path)
    thread = ControllerThread(plan, run_sync=False)
    app = CockpitApp(plan, controller_thread=thread)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state is not None and app.state.gates, what="the backup gate")
            assert "✗ backup of blue younger than 1h" in text(app, "#gates")
            await pilot.press("s")
            await until(pilot, lambda: app.last_result is not None, timeout=30, what="the backup's result")
            assert app.last_result[:2] == ("backup", "ok"), app.last_result
            await until(pilot, lambda: "✓ backup of blue" in text(app, "#gates"), what="the gate met")
            assert "backup 0." in text(app, "#metrics-text") or "backup 1." in text(app, "#metrics-text")
    finally:
        thread.stop()
