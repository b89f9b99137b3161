"""The controller over a real sync (SQLite blue, PostgreSQL green): conflicts, a stall and a schema change become
journal entries, alerts (one with a count for a storm) and alarms; a rollback whose drain cannot finish strands
nothing (green left running, the drain goes on, green stopped once it ends); rows changed behind the sync's back
raise an alarm naming them and `cockpit integrity repair` brings them back through the sync.

Real processes for green's service, a real webhook receiver on loopback, the real CLI in other processes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cockpit.control.controller import Controller
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.drivers.sync.capture import sqlite_applying
from tests.conftest import wait_for
from tests.drivers.conftest import LocalHTTP
from tests.sync.test_sync_support import blue_exec, make_copied, pg_exec

ROOT = Path(__file__).resolve().parents[2]
DDL = ["CREATE TABLE companies (id INTEGER PRIMARY KEY AUTOINCREMENT, cnpj TEXT NOT NULL UNIQUE, name TEXT)"]
PLAN = """\
name: t
blue:
  database: {{engine: sqlite, path: app.db}}
green:
  database: {{engine: postgresql, url: "${{COCKPIT_TEST_GREEN_URL}}"}}
  services: {{driver: processes, units: [green-1], commands: {{green-1: [sleep, "600"]}}, pid_dir: run}}
traffic: {{driver: file, state_file: split.json}}
sync: {{interval: 100ms, integrity_interval: {integrity}}}
phases:
  - {{name: half, green: 50}}
  - {{name: all, green: 100}}
rollback: {{drain_timeout: 2s}}
alerts:
  webhook: {{url: "{hook}", min_level: warning}}
  gather: 1s
  every: 1h
journal: {{path: journal.db}}
tick: 200ms
"""


@pytest.fixture
def integrity() -> str:
    """How often the watch compares (a test parametrizes it: its settle runs passes of the sync, so a test of a
    sync that nobody runs keeps it away)."""
    return "1s"


@pytest.fixture
def world(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, integrity: str
) -> Iterator[tuple[Plan, Path, str, LocalHTTP]]:
    """The plan over a copied pair, a webhook receiver for its alerts."""
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    db, runner = make_copied(tmp_path, pg_url, DDL)
    runner.close()
    hook = LocalHTTP()
    hook.thread.start()
    (tmp_path / "plan.yaml").write_text(PLAN.format(hook=hook.url("/ok"), integrity=integrity))
    try:
        yield load_plan(tmp_path / "plan.yaml"), db, pg_url, hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture
def running(world: Any) -> Iterator[tuple[ControllerThread, Controller]]:
    plan = world[0]
    thread = ControllerThread(plan, run_sync=True)
    controller = thread.start()
    try:
        yield thread, controller
    finally:
        thread.stop()
        if controller.drivers.green_services is not None:
            controller.drivers.green_services.stop(["green-1"])


def act(thread: ControllerThread, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, thread.loop).result(120)


def alarm(c: Controller, metric: str) -> Any:
    return next((a for a in (c.latest.alarms if c.latest else ()) if a.metric == metric), None)


def kinds(plan: Plan, kind: str) -> list[dict[str, Any]]:
    j = Journal(plan.path(plan.journal.path), readonly=True)
    try:
        return [e.payload for e in j.events(kinds=[kind])]
    finally:
        j.close()


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args], capture_output=True, text=True, env=env, timeout=120
    )


def hooks(hook: LocalHTTP) -> list[str]:
    with hook.lock:
        return [r.body.decode() for r in hook.requests]


def green_running(c: Controller) -> bool:
    assert c.drivers.green_services is not None
    return c.drivers.green_services.status(["green-1"])[0].running


@pytest.mark.parametrize("integrity", ["1h"])
def test_a_storm_of_conflicts_is_journaled_alerted_once_with_its_count_and_a_critical_alarm(
    world: Any,
) -> None:
    plan, db, url, hook = world
    thread = ControllerThread(plan, run_sync=False)  # the passes are the test's: both sides write first
    c = thread.start()
    try:
        wait_for(
            lambda: c.latest and c.latest.metrics.get("data_integrity_checked_at"), timeout=15, what="check"
        )
        for i in range(5):
            blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES (?, 'from blue')", (f"cnpj-{i}",))
            pg_exec(url, "INSERT INTO companies (cnpj, name) VALUES (%s, 'from green')", (f"cnpj-{i}",))
        assert c.drivers.sync is not None
        c.drivers.sync.run_once()
        c.drivers.sync.run_once()
        found = wait_for(lambda: alarm(c, "sync.conflicts_waiting"), timeout=30, what="the conflicts alarm")
        assert found.level == "critical" and "5 sync conflicts waiting" in found.message
        assert len(kinds(plan, "sync.conflict")) == 5  # each journaled
        wait_for(lambda: kinds(plan, "alert.sent"), timeout=30, what="the alert")
        sent = hooks(hook)
        assert len(sent) == 1 and "sync conflict parked (5 in" in sent[0], sent
        assert "cockpit sync conflicts" in sent[0]
        assert c.latest is not None and c.latest.metrics["sync.conflicts_waiting"] == 5
        conflicts = next(x for x in c.latest.readiness.checks if x.name == "conflicts")
        assert conflicts.status == "failed"
        doc = json.loads(cockpit("-p", str(plan.source), "status", "--json").stdout)
        assert any(a["metric"] == "sync.conflicts_waiting" for a in doc["alarms"])
        assert "5 waiting (`cockpit sync conflicts`)" in cockpit("-p", str(plan.source), "status").stdout
    finally:
        thread.stop()


@pytest.mark.parametrize("integrity", ["1h"])
def test_a_stalled_sync_is_a_critical_alarm_within_seconds(world: Any) -> None:
    plan, db, _url, hook = world
    thread = ControllerThread(plan, run_sync=False)  # nobody carries the change: pending does not go down
    c = thread.start()
    try:
        wait_for(
            lambda: c.latest and c.latest.metrics.get("data_integrity_checked_at"), timeout=15, what="check"
        )
        blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES ('x', 'y')")  # the watch's next look: in 1h
        found = wait_for(lambda: alarm(c, "sync.stalled"), timeout=15, what="the stall alarm")
        assert found.level == "critical" and "1 changes pending, not going down" in found.message
        wait_for(lambda: any("sync stalled" in h for h in hooks(hook)), timeout=15, what="its alert")
    finally:
        thread.stop()


def test_a_schema_change_holds_the_migration_saying_what_to_do(world: Any, running: Any) -> None:
    plan, _db, url, hook = world
    thread, c = running
    assert act(thread, c.advance()).ok
    pg_exec(url, "ALTER TABLE companies ADD COLUMN extra text")
    wait_for(lambda: c.machine.state == "held", timeout=20, what="the hold")
    assert "schema changed under the sync (companies:" in c.machine.held_reason
    assert "cockpit sync copy --tables companies" in c.machine.held_reason
    assert alarm(c, "sync.schema_changed").level == "critical"
    assert kinds(plan, "sync.schema_changed")[0]["table"] == "companies"
    assert act(thread, c.resume()).ok
    refused = act(thread, c.advance())
    assert refused.outcome == "refused" and "cockpit sync copy --tables companies" in refused.message
    wait_for(lambda: any("schema changed under the sync" in h for h in hooks(hook)), timeout=15, what="alert")


def test_a_rollback_whose_drain_cannot_finish_strands_nothing(world: Any, running: Any) -> None:
    plan, db, url, hook = world
    thread, c = running
    assert act(thread, c.advance()).ok and green_running(c)
    holder = psycopg.connect(url)  # an open transaction on green holds back every change committed after it
    holder.execute("INSERT INTO companies (cnpj, name) VALUES ('held', 'open')")
    for i in range(7):
        pg_exec(url, "INSERT INTO companies (cnpj, name) VALUES (%s, 'acknowledged on green')", (f"g{i}",))
    try:
        result = act(thread, c.rollback("drill"))
        assert result.outcome == "partial", result
        assert "7 changes still on green only: the drain goes on, green left running" in result.message
        steps = {s[0]: s for s in result.steps}
        assert steps["drain"][1] == "failed" and "7 changes still on green only" in steps["drain"][3]
        assert steps["stop_green"][1] == "skipped" and "deferred" in steps["stop_green"][3]
        assert c.machine.state == "rolled_back" and green_running(c)
        wait_for(lambda: alarm(c, "sync.green_only_pending"), timeout=10, what="the stranded alarm")
        doc = json.loads(cockpit("-p", str(plan.source), "status", "--json").stdout)
        assert doc["state"] == "rolled_back" and doc["stranded"]["green_only"] == 7
        assert doc["stranded"]["stop_green_deferred"] is True
        assert "rollback --force" in alarm(c, "sync.green_only_pending").message
        wait_for(
            lambda: any("changes still on green only" in h for h in hooks(hook)), timeout=15, what="alert"
        )
        assert green_running(c)  # still: the drain has not finished
    finally:
        holder.commit()
        holder.close()
    wait_for(lambda: kinds(plan, "rollback.drained"), timeout=30, what="the drain to finish")
    wait_for(lambda: not green_running(c), timeout=30, what="green stopped after the drain")
    conn = sqlite3.connect(db)
    on_blue = {r[0] for r in conn.execute("SELECT cnpj FROM companies")}
    conn.close()
    assert {f"g{i}" for i in range(7)} | {"held"} <= on_blue
    wait_for(lambda: alarm(c, "sync.green_only_pending") is None, timeout=10, what="the alarm to end")
    assert c.latest is not None and c.latest.stranded is None
    stop = [a for a in c.journal.actions(10) if a.verb == "stop_green"]
    assert stop and stop[-1].outcome == "ok"


def test_a_forced_rollback_stops_green_and_journals_it(world: Any, running: Any) -> None:
    plan, _db, url, _hook = world
    thread, c = running
    assert act(thread, c.advance()).ok
    holder = psycopg.connect(url)
    holder.execute("INSERT INTO companies (cnpj, name) VALUES ('held', 'open')")
    pg_exec(url, "INSERT INTO companies (cnpj, name) VALUES ('g', 'acknowledged')")
    try:
        result = act(thread, c.rollback("drill", actor="lead@host", force=True))
        assert result.outcome == "partial" and "green stopped (forced)" in result.message
        assert not green_running(c)
        forced = kinds(plan, "rollback.forced")
        assert forced and forced[0]["green_only"] == 1
        assert c.stranded.current is not None and not c.stranded.current.stop_green_deferred
    finally:
        holder.commit()
        holder.close()
    wait_for(lambda: kinds(plan, "rollback.drained"), timeout=30, what="the drain to finish")


def test_rows_changed_behind_the_syncs_back_raise_an_alarm_and_are_repaired(world: Any, running: Any) -> None:
    plan, db, url, hook = world
    thread, c = running
    for i in range(1, 6):
        blue_exec(db, "INSERT INTO companies (id, cnpj, name) VALUES (?, ?, 'blue')", (i, f"c{i}"))
    wait_for(lambda: pg_count(url) == 5, timeout=20, what="the rows on green")
    with psycopg.connect(url) as pg:  # behind the sync's back: its capture skips the applier's own writes
        pg.execute("SET LOCAL cockpit.applying = 'on'")
        pg.execute("UPDATE companies SET name = 'changed on green' WHERE id = 2")
        pg.execute("DELETE FROM companies WHERE id = 4")
        pg.execute("INSERT INTO companies (id, cnpj, name) VALUES (999, 'ghost', 'green only')")
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")
    with sqlite_applying(conn):  # as the applier writes: not captured
        conn.execute("UPDATE companies SET name = 'changed on blue' WHERE id = 3")
    conn.commit()
    conn.close()

    def named() -> Any:  # a check under way while the rows changed sees part of it; the next one all of it
        found = alarm(c, "data_integrity_score")
        return found if found and "4 rows differ" in found.message else None

    found = wait_for(named, timeout=30, what="the mismatch alarm naming the four rows")
    assert found.level == "critical" and "after the sync drained" in found.message
    assert all(k in found.message for k in ("(2)", "(3)", "(4)", "(999)"))
    wait_for(
        lambda: any("rows differ after the sync drained" in h for h in hooks(hook)), timeout=15, what="alert"
    )
    # green's version of 3 and green's absence of 4 win for those two: through the running controller's queue
    out = cockpit(
        "-p",
        str(plan.source),
        "integrity",
        "repair",
        "--prefer",
        "green",
        "--keys",
        "companies:3,companies:4",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "queued repair" in out.stderr and "2 rows brought in line with green" in out.stdout
    assert blue_row(db, 3) == "blue" and blue_row(db, 4) is None
    out = cockpit("-p", str(plan.source), "integrity", "repair", "--prefer", "blue", "--all", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["extra"]["logged"] == {"companies": 2}
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT name FROM companies WHERE id = 2").fetchone() == ("blue",)
        assert pg.execute("SELECT count(*) FROM companies WHERE id = 999").fetchone() == (0,)
    wait_for(lambda: alarm(c, "data_integrity_score") is None, timeout=30, what="the alarm to clear")
    verbs = [a.verb for a in c.journal.actions(10)]
    assert verbs.count("repair") == 2
    bad = cockpit("-p", str(plan.source), "integrity", "repair", "--all")
    assert bad.returncode == 2 and "--prefer blue|green" in bad.stderr


def pg_count(url: str) -> int:
    with psycopg.connect(url) as pg:
        return int(pg.execute("SELECT count(*) FROM companies").fetchone()[0])


def blue_row(db: Path, key: int) -> str | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT name FROM companies WHERE id = ?", (key,)).fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()
