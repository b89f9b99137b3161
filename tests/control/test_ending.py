"""The end of a migration: `cockpit finalize` and `cockpit abandon` over a real pair (SQLite blue, PostgreSQL green
copied by the real initial copy, capture and disjoint keys installed), the real CLI in other processes, a real
webhook receiver, a real nginx in front of two backends for abandon's traffic step; a controller killed with
SIGKILL mid-finalize and mid-abandon, then the command run again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cockpit.control.commands import Abandon
from cockpit.control.factory import build_drivers
from cockpit.control.session import controller_session
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.drivers.backup import list_backups, take_backup, verify_backup
from cockpit.drivers.sync.ending import pg_leftovers, sqlite_leftovers
from cockpit.drivers.sync.runner import SyncRunner
from tests.conftest import PG_ADMIN_URL, wait_for
from tests.drivers.conftest import LocalHTTP
from tests.sync.test_sync_support import blue_exec, make_copied, pg_exec
from tests.traffic.conftest import Backend, fetch_sides, make_site

ROOT = Path(__file__).resolve().parents[2]
DDL = [
    "CREATE TABLE companies (id INTEGER PRIMARY KEY AUTOINCREMENT, cnpj TEXT NOT NULL UNIQUE, name TEXT)",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
]
PLAN = """\
name: t
blue:
  database: {{engine: sqlite, path: app.db}}
green:
  database: {{engine: postgresql, url: "${{COCKPIT_TEST_GREEN_URL}}"}}
traffic: {{driver: file, state_file: split.json}}
sync: {{interval: 100ms, integrity_interval: 1h, drain_timeout: 10s}}
phases:
  - {{name: half, green: 50}}
  - {{name: all, green: 100, soak: {soak}}}
rollback: {{drain_timeout: 5s}}
backup: {{folder: backups, archive_folder: archive, archive_keep: 30d}}
alerts:
  webhook: {{url: "{hook}", min_level: info}}
journal: {{path: journal.db}}
tick: 200ms
"""


@pytest.fixture
def hook() -> Iterator[LocalHTTP]:
    h = LocalHTTP()
    h.thread.start()
    yield h
    h.server.shutdown()
    h.server.server_close()


def make_world(tmp_path: Path, pg_url: str, hook: LocalHTTP, soak: str = "0s") -> tuple[Plan, Path]:
    os.environ["COCKPIT_TEST_GREEN_URL"] = pg_url
    db, runner = make_copied(tmp_path, pg_url, DDL)
    runner.close()
    (tmp_path / "plan.yaml").write_text(PLAN.format(hook=hook.url("/ok"), soak=soak))
    return load_plan(tmp_path / "plan.yaml"), db


@pytest.fixture
def world(tmp_path: Path, pg_url: str, hook: LocalHTTP, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, Path]:
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    return make_world(tmp_path, pg_url, hook)


def cockpit(plan: Plan, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cockpit", "-p", str(plan.source), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


async def _advance_all(plan: Plan) -> None:
    async with controller_session(plan, run_sync=False) as c:
        for _ in plan.phases:
            r = await c.advance(force=True, reason="test")
            assert r.ok, r.message


def advance_all(plan: Plan) -> None:
    asyncio.run(_advance_all(plan))


def actions(plan: Plan) -> list[Any]:
    j = Journal(plan.path(plan.journal.path), readonly=True)
    try:
        return j.actions(50)
    finally:
        j.close()


def ended(plan: Plan) -> dict[str, Any] | None:
    j = Journal(plan.path(plan.journal.path), readonly=True)
    try:
        return j.get_state("ended")
    finally:
        j.close()


def green_ids(pg_url: str, table: str) -> list[int]:
    with psycopg.connect(pg_url) as pg:
        return [r[0] for r in pg.execute(f"SELECT id FROM {table} ORDER BY id")]


def seed(db: Path, pg_url: str) -> None:
    """Rows written on both sides while the migration runs: blue's count up, green's count down from the ceiling."""
    for i in range(3):
        blue_exec(db, "INSERT INTO companies (cnpj, name) VALUES (?, ?)", (f"b{i}", "blue"))
        pg_exec(pg_url, "INSERT INTO companies (cnpj, name) VALUES (%s, %s)", (f"g{i}", "green"))
    blue_exec(db, "INSERT INTO notes (body) VALUES ('hello')")


def old_archive(plan: Plan, db: Path, days: float, label: str) -> Path:
    """An archive in the plan's archive folder, its manifest dated `days` ago."""
    m = take_backup(db, plan.path(plan.backup.archive_folder), label=label)
    manifest = Path(m.path) / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["created"] = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()
    manifest.write_text(json.dumps(doc))
    return Path(m.path)


def assert_finalized(plan: Plan, db: Path, pg_url: str) -> None:
    assert pg_leftovers(pg_url) == []
    assert sqlite_leftovers(db) == []
    top = max(green_ids(pg_url, "companies"))
    pg_exec(pg_url, "INSERT INTO companies (cnpj, name) VALUES ('after', 'green')")
    with psycopg.connect(pg_url) as pg:
        (new,) = pg.execute("SELECT id FROM companies WHERE cnpj = 'after'").fetchone() or (None,)
    assert new is not None and new > top  # green counts up again, above every key handed out
    e = ended(plan)
    assert e is not None and e["done"] and e["how"] == "finalize"
    assert verify_backup(e["archive"]).ok
    assert [m.label for m in list_backups(plan.path(plan.backup.archive_folder))].count("final") == 1


# ------------------------------------------------------------------------------------------------ finalize
def test_finalize_ends_on_green_for_good(world: tuple[Plan, Path], pg_url: str, hook: LocalHTTP) -> None:
    plan, db = world
    seed(db, pg_url)
    stale = old_archive(plan, db, 40, "older")
    recent = old_archive(plan, db, 10, "recent")
    advance_all(plan)

    done = cockpit(plan, "finalize", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    steps = {s["step"]: (s["status"], s["detail"]) for s in result["steps"]}
    assert list(steps) == ["integrity", "stop_sync", "keys", "clean", "archive", "notify", "report"]
    assert steps["integrity"][0] == "ok" and "every row compared" in steps["integrity"][1]
    assert steps["report"][0] == "ok"  # the report of the whole migration, beside the journal
    reports = plan.path(plan.journal.path).parent / "reports"
    assert (reports / "report.html").exists() and (reports / "report.md").exists()
    assert "1 older archives removed" in steps["archive"][1]
    assert_finalized(plan, db, pg_url)
    assert not stale.exists() and recent.exists()  # 40 days old removed, 10 days old kept (30 days)
    # the rows written on green reached blue before the sync stopped, and blue's archive holds them
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM companies WHERE name = 'green'").fetchone() == (3,)
    conn.close()
    assert any("finalized on green" in body for body in (r.body.decode() for r in hook.requests))

    status = cockpit(plan, "status", "--json")
    doc = json.loads(status.stdout)
    assert doc["state"] == "complete" and doc["ended"]["done"] and doc["ended"]["how"] == "finalize"
    assert "finalized (for good)" in cockpit(plan, "status").stdout
    for verb in (["advance", "--yes"], ["rollback", "--yes", "--reason", "drill"]):
        refused = cockpit(plan, *verb)
        assert refused.returncode == 1
        assert "the migration was finalized" in refused.stdout and "over for good" in refused.stdout
    again = cockpit(plan, "finalize", "--yes")
    assert again.returncode == 0 and "already finalized" in again.stdout
    other = cockpit(plan, "abandon", "--yes")
    assert other.returncode == 1 and "finalized" in other.stdout


def test_finalize_is_refused_until_the_last_phase_has_soaked(
    tmp_path: Path, pg_url: str, hook: LocalHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    plan, db = make_world(tmp_path, pg_url, hook, soak="1h")
    no = cockpit(plan, "finalize")
    assert no.returncode == 2 and "--yes" in no.stderr and "nothing was done" in no.stderr
    early = cockpit(plan, "finalize", "--yes")
    assert early.returncode == 1 and "advance to all first" in early.stdout
    advance_all(plan)
    soaking = cockpit(plan, "finalize", "--yes")
    assert soaking.returncode == 1 and "soak is not over" in soaking.stdout and "no --force" in soaking.stdout
    assert cockpit(plan, "finalize", "--yes", "--force").returncode == 2  # there is no --force
    assert ended(plan) is None
    assert pg_leftovers(pg_url)  # capture still in place: nothing changed
    assert "_cockpit_changes" in " ".join(sqlite_leftovers(db))


def test_finalize_refuses_while_blue_and_green_differ(world: tuple[Plan, Path], pg_url: str) -> None:
    plan, db = world
    seed(db, pg_url)
    advance_all(plan)
    sync = SyncRunner.from_plan(plan)
    sync.run_once()  # b0 on green too
    sync.stop()
    with psycopg.connect(pg_url) as pg:  # behind the sync's back: capture does not see it
        pg.execute("SELECT set_config('cockpit.applying', 'on', false)")
        pg.execute("UPDATE companies SET name = 'drifted' WHERE cnpj = 'b0'")
        pg.commit()
    failed = cockpit(plan, "finalize", "--yes")
    assert failed.returncode == 1
    assert "step integrity failed" in failed.stdout and "nothing was changed" in failed.stdout
    assert ended(plan) is None and pg_leftovers(pg_url)
    # rollback still runs (partial here: its own integrity step sees the drift too): nothing ended
    rb = cockpit(plan, "rollback", "--yes", "--reason", "drill")
    assert "rollback partial" in rb.stdout and "all traffic on blue" in rb.stdout


# ------------------------------------------------------------------------------------------------ abandon
def test_abandon_moves_everyone_to_blue_and_drops_green(
    world: tuple[Plan, Path], pg_url: str, tmp_path: Path
) -> None:
    plan, db = world
    blue, green = Backend("blue").start(), Backend("green").start()
    site = make_site(tmp_path, blue, green)
    try:
        asyncio.run(_abandon_over_nginx(plan, db, pg_url, site))
    finally:
        site.nginx.stop()
        blue.stop()
        green.stop()
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
    refused = cockpit(plan, "advance", "--yes")
    assert refused.returncode == 1 and "abandoned" in refused.stdout
    doc = json.loads(cockpit(plan, "status", "--json").stdout)
    assert doc["state"] == "abandoned" and doc["ended"]["how"] == "abandon" and doc["ended"]["done"]


async def _abandon_over_nginx(plan: Plan, db: Path, pg_url: str, site: Any) -> None:
    drivers = build_drivers(plan, with_metrics=False)
    drivers.traffic = site.driver
    async with controller_session(plan, run_sync=False, drivers=drivers) as c:
        assert (await c.advance(force=True, reason="test")).ok
        sides = {s[0] for s in fetch_sides(site.url, [f"u{i}" for i in range(40)])}
        assert sides == {"blue", "green"}
        pg_exec(pg_url, "INSERT INTO companies (cnpj, name) VALUES ('late', 'green')")  # not yet on blue
        name = pg_url.rsplit("/", 1)[1]
        wrong = await c.act(Abandon(drop_green="not-" + name))
        assert wrong.outcome == "refused" and "does not match" in wrong.message
        assert c.ended is None and c.machine.phase_index == 0  # validated before anything moved
        result = await c.act(Abandon(drop_green=name))
        assert result.ok, result.message
        assert [s[0] for s in result.steps] == ["traffic", "drain", "clean", "drop_green", "notify", "report"]
        assert {s[0] for s in fetch_sides(site.url, [f"u{i}" for i in range(40)])} == {"blue"}
        assert c.machine.state == "abandoned"
        rb = await c.rollback("drill")
        assert rb.outcome == "refused" and "abandoned" in rb.message
    drivers.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM companies WHERE cnpj = 'late'").fetchone() == (1,)  # drained
    conn.close()
    assert sqlite_leftovers(db) == []


def test_abandon_keeps_green_unless_asked(world: tuple[Plan, Path], pg_url: str) -> None:
    plan, db = world
    advance_all(plan)
    no = cockpit(plan, "abandon")
    assert no.returncode == 2 and "--yes" in no.stderr
    done = cockpit(plan, "abandon", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {s["step"]: (s["status"], s["detail"]) for s in json.loads(done.stdout)["steps"]}
    assert steps["drop_green"][0] == "skipped" and "kept" in steps["drop_green"][1]
    assert pg_leftovers(pg_url) == [] and sqlite_leftovers(db) == []
    assert green_ids(pg_url, "companies") == []  # green's copy is still there, its tables intact
    assert json.loads((plan.path("split.json")).read_text())["green_percent"] == 0


# ------------------------------------------------------------------------------------------------ crashes
def killed_mid(plan: Plan, mode: str) -> None:
    """A controller process running `mode` (finalize | abandon) until a step blocks, then SIGKILL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    marker = plan.path("in-flight")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.control.crash_ending", str(plan.source), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=120, what="the step to block")
        assert proc.poll() is None, proc.communicate()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_finalize_killed_mid_way_then_run_again(world: tuple[Plan, Path], pg_url: str) -> None:
    plan, db = world
    seed(db, pg_url)
    advance_all(plan)
    killed_mid(plan, "finalize")  # killed in the archive step: the archive taken, not yet verified
    e = ended(plan)
    assert e is not None and not e["done"] and e["steps"] == ["stop_sync", "keys", "clean"]
    # any controller started now (this rollback's one-shot) first finishes the finalize, then refuses
    refused = cockpit(plan, "rollback", "--yes", "--reason", "drill")
    assert refused.returncode == 1 and "the migration was finalized" in refused.stdout

    again = cockpit(plan, "finalize", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_finalized(plan, db, pg_url)
    finals = [a for a in actions(plan) if a.verb == "finalize"]
    assert [a.outcome for a in finals][-3:] == ["interrupted", "ok", "ok"]
    resumed = {s.name: s.status for s in finals[-2].steps}
    assert resumed["clean"] == "skipped" and resumed["archive"] == "ok"


def test_abandon_killed_mid_way_then_run_again(world: tuple[Plan, Path], pg_url: str) -> None:
    plan, db = world
    advance_all(plan)
    killed_mid(plan, "abandon")  # killed in the clean step: blue's capture gone, green's still there
    e = ended(plan)
    assert e is not None and not e["done"] and e["how"] == "abandon"
    assert sqlite_leftovers(db) == [] and pg_leftovers(pg_url)

    again = cockpit(plan, "abandon", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    e = ended(plan)
    assert e is not None and e["done"]
    name = pg_url.rsplit("/", 1)[1]  # the interrupted abandon asked for the drop: the resumed one did it
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
    abandons = [a for a in actions(plan) if a.verb == "abandon"]
    assert [a.outcome for a in abandons][-3:] == ["interrupted", "ok", "ok"]
