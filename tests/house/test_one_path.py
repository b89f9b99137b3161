"""One path per action: while a controller holds a plan's lock, the commands that change what the plan drives
refuse beside it, naming it (pid, actor); without a plan (--from/--to) they still work, for scripts. Real
controller, real processes, real SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.control.session import ControllerThread
from cockpit.core.journal import current_actor
from cockpit.core.plan import Plan, load_plan
from tests.conftest import sample_values
from tests.sync.test_sync_support import make_pair, write_sync_plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plan(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Plan:
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    db = make_pair(tmp_path, pg_url)
    return load_plan(write_sync_plan(tmp_path, db, "tables: [items, Pairs]\ninterval: 100ms"))


@pytest.fixture
def controller(plan: Plan) -> Iterator[ControllerThread]:
    thread = ControllerThread(plan, run_sync=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sync_run_with_the_plan_of_a_running_controller_is_refused_naming_it(
    plan: Plan, controller: ControllerThread
) -> None:
    out = cockpit("-p", str(plan.source), "sync", "run", "--once")
    assert out.returncode == 1, out.stderr
    assert "cockpit sync run refused: a controller is already running this plan" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr and current_actor() in out.stderr
    assert out.stdout == ""  # no pass was made beside the controller's loop


@pytest.mark.parametrize(
    "command",
    [
        ("sync", "install"),
        ("sync", "uninstall", "--yes"),
        ("sync", "copy", "--tables", "items"),
        ("integrity",),
        ("lab", "down", "--root", "{folder}"),
    ],
)
def test_commands_that_change_the_plans_world_refuse_beside_the_controller(
    plan: Plan, controller: ControllerThread, command: tuple[str, ...]
) -> None:
    folder = str(Path(str(plan.source)).parent)
    args = [a.format(folder=folder) for a in command]
    out = cockpit("-p", str(plan.source), *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "refused: a controller is already running this plan" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr


def test_without_a_plan_the_scripts_form_still_runs(
    plan: Plan, controller: ControllerThread, pg_url: str
) -> None:
    blue = str(plan.path(plan.blue.database.path))
    out = cockpit("sync", "status", "--json", "--from", blue, "--to", pg_url)
    assert out.returncode == 0, out.stderr
    help_text = " ".join(cockpit("sync", "--help").stdout.split())
    assert "--from FILE.db --to URL works without a plan, for scripts" in help_text


def test_sync_run_with_a_plan_and_no_controller_writes_no_samples(plan: Plan) -> None:
    out = cockpit("-p", str(plan.source), "sync", "run", "--once")
    assert out.returncode == 0, out.stderr
    assert _samples(plan) == 0


def _samples(plan: Plan) -> int:
    path = plan.path(plan.journal.path)
    if not path.exists():
        return 0
    return len(sample_values(path, "sync.blue_to_green.pending"))
