"""The initial copy as a controller action: journaled, locked, its progress in the snapshots, the same from the
CLI (one-shot or queued to a running controller) and from the screen's `c` key. Real SQLite, real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cockpit.cli.main import main
from cockpit.control.factory import build_drivers
from cockpit.control.session import ControllerThread, controller_session
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.core.state import CopyView, TableCopy
from cockpit.tui.app import CockpitApp
from cockpit.tui.modals import CopyModal
from tests.sync.test_sync_support import assert_same, make_blue, write_sync_plan
from tests.tui.conftest import text, until

ROWS = 60_000  # enough for several progress reports (the copy reads in chunks)


def _blue(tmp_path: Path, rows: int = ROWS) -> Path:
    db = tmp_path / "blue.db"
    make_blue(db)
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO items (id, name, qty, price) VALUES (?, ?, ?, ?)",
        ((i, f"item {i}", i % 7, i / 4) for i in range(1, rows + 1)),
    )
    conn.executemany(
        'INSERT INTO "Pairs" (a, b, "value") VALUES (?, ?, ?)', ((f"k{i}", i, "v") for i in range(50))
    )
    conn.commit()
    conn.close()
    return db


@pytest.fixture
def plan(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Plan:
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    db = _blue(tmp_path)
    return load_plan(write_sync_plan(tmp_path, db, "tables: [items, Pairs]\ninterval: 100ms\ncopy_jobs: 2"))


def _copy_actions(plan: Plan) -> list[Any]:
    with Journal(plan.path(plan.journal.path), readonly=True) as j:
        return [a for a in j.actions(50) if a.verb == "copy"]


def _green_tables(pg_url: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        return sorted(
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        )


class _Watched:
    """The plan's real sync runner, recording the controller's copy view at every progress report."""

    def __init__(self, runner: Any, controller: list[Any]):
        self.runner = runner
        self.controller = controller
        self.views: list[CopyView | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)

    def initial_copy(self, jobs: int, progress: Any) -> Any:
        def seen(p: Any) -> None:
            progress(p)
            self.views.append(self.controller[0].copy_view())

        return self.runner.initial_copy(jobs, seen)


async def test_copy_action_reports_progress_and_journals_its_step(plan: Plan, pg_url: str) -> None:
    drivers = build_drivers(plan)
    holder: list[Any] = []
    watched = _Watched(drivers.sync, holder)
    drivers.sync = watched
    published: list[str | None] = []
    try:
        async with controller_session(plan, run_sync=False, drivers=drivers) as controller:
            holder.append(controller)
            controller.subscribe(lambda s: published.append(s.copy.state if s.copy else None))
            result = await controller.copy("test")
            final = controller.snapshot()
    finally:
        drivers.close()
    assert result.ok, result.message
    assert [s[0] for s in result.steps] == ["copy"]
    assert f"{ROWS + 50:,} rows" in result.steps[0][3]
    assert result.extra["capture"]["tables"] == ["Pairs", "items"]
    # mid-copy views: running, some rows of the big table committed and not all of them yet
    mid = [v for v in watched.views if v is not None and v.state == "running"]
    items = [t for v in mid for t in v.tables if t.table == "items"]
    assert any(0 < t.rows_done < t.rows_total == ROWS for t in items), items
    assert "running" in published and published[-1] == "done"
    view = final.copy
    assert view is not None and view.state == "done" and view.rows_done == ROWS + 50
    assert all(t.done for t in view.tables) and view.eta_s == 0.0
    doc = final.to_json()["copy"]
    assert doc["state"] == "done" and doc["rows_done"] == ROWS + 50 and len(doc["tables"]) == 2
    [action] = _copy_actions(plan)
    assert action.outcome == "ok" and action.steps[0].name == "copy"
    assert_same(plan.path(plan.blue.database.path), pg_url)


def test_cli_copy_with_a_plan_goes_through_the_controller(plan: Plan, pg_url: str, capsys) -> None:
    assert main(["-p", str(plan.source), "sync", "copy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["copy"]["rows"] == ROWS + 50
    assert out["capture"]["tables"] == ["Pairs", "items"]
    assert out["action"]["verb"] == "copy" and out["action"]["ok"]
    [action] = _copy_actions(plan)
    assert action.outcome == "ok"
    assert_same(plan.path(plan.blue.database.path), pg_url)
    # a second copy is refused (green has the tables), journaled, and green is left as it was
    assert main(["-p", str(plan.source), "sync", "copy"]) == 1
    out = capsys.readouterr().out
    assert "copy failed" in out and "already in schema" in out
    assert [a.outcome for a in _copy_actions(plan)] == ["ok", "failed"]
    assert _green_tables(pg_url) == ["Pairs", "items"]
    assert_same(plan.path(plan.blue.database.path), pg_url)


def test_copy_refused_once_users_are_on_green(plan: Plan, pg_url: str, capsys) -> None:
    with Journal(plan.path(plan.journal.path)) as j:
        j.set_state("machine", {"state": "active", "phase_index": 0, "since": 0.0, "held_reason": ""})
    assert main(["-p", str(plan.source), "sync", "copy"]) == 1
    assert "before any user is on green" in capsys.readouterr().out
    assert _green_tables(pg_url) == []
    conn = sqlite3.connect(plan.path(plan.blue.database.path))
    try:  # blue untouched: no capture was installed
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 0
    finally:
        conn.close()


def test_cli_copy_is_queued_to_the_running_controller(plan: Plan, pg_url: str, capsys) -> None:
    thread = ControllerThread(plan, run_sync=True)
    thread.start()
    try:
        assert main(["-p", str(plan.source), "sync", "copy"]) == 0
        captured = capsys.readouterr()
        assert "queued copy" in captured.err
        assert "copy ok" in captured.out
        assert thread.controller is not None and thread.controller.copy_view().state == "done"
        assert (
            main(["-p", str(plan.source), "status"]) == 0
        )  # another process reads the controller's snapshot
        assert f"initial copy done: {ROWS + 50:,}/{ROWS + 50:,} rows in 2 tables" in capsys.readouterr().out
    finally:
        thread.stop()
    assert_same(plan.path(plan.blue.database.path), pg_url)


async def test_c_key_copies_and_the_metrics_panel_shows_it(plan: Plan, pg_url: str) -> None:
    thread = ControllerThread(plan, run_sync=True)
    app = CockpitApp(plan, controller_thread=thread)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state is not None, what="the first state")
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CopyModal), what="the copy dialog")
            assert "blue.db" in app.screen.query_one("#copy-from-to").content.plain
            await pilot.click("#confirm")
            await until(pilot, lambda: app.last_result is not None, timeout=60, what="the copy's result")
            assert app.last_result[:2] == ("copy", "ok"), app.last_result
            await until(
                pilot, lambda: "done: 60k rows" in text(app, "#metrics-text"), what="the copy on screen"
            )
            line = next(x for x in text(app, "#metrics-text").splitlines() if "Initial copy" in x)
            assert line.split()[:4] == ["Initial", "copy", "done:", "60k"]
    finally:
        thread.stop()
    assert_same(plan.path(plan.blue.database.path), pg_url)


def test_copy_view_adds_up_its_tables() -> None:
    view = CopyView(
        "running",
        0.0,
        (TableCopy("a", 50, 100, 10.0, 5.0), TableCopy("b", 10, 10, 5.0, 0.0, True)),
        seconds=2.0,
    )
    assert (view.rows_done, view.rows_total, view.rows_per_s, view.eta_s) == (60, 110, 30.0, 5.0)
    assert CopyView.from_dict(view.as_dict()) == view
    waiting = CopyView("running", 0.0, (TableCopy("a", 0, 100, 0.0, None),), seconds=0.1)
    assert waiting.eta_s is None
