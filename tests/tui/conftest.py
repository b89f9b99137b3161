"""Fixtures for the cockpit screen: a plan in tmp_path on the file traffic driver, and a real controller thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cockpit.control.factory import Drivers
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.drivers.traffic.base import SplitStatus
from cockpit.drivers.traffic.file import FileTrafficDriver
from tests.core.plans import BASE

# the core tests' rehearsal plan (file traffic driver, no services, no sync) with a drain bound of 1 s
PLAN = BASE.replace("drain_timeout: 5s", "drain_timeout: 1s")


@pytest.fixture(autouse=True)
def private_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every screen test remembers its theme in its own config folder, never the person's."""
    home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return load_plan(path)


def split_file(plan: Plan) -> Path:
    return plan.path(plan.traffic.state_file)


def green_in_file(plan: Plan) -> float | None:
    """The share the file driver wrote (the world), or None when nothing was ever applied."""
    path = split_file(plan)
    return json.loads(path.read_text())["green_percent"] if path.exists() else None


def journal_actions(plan: Plan) -> list:
    with Journal(plan.path(plan.journal.path), readonly=True) as j:
        return j.actions(50)


class GatedTraffic(FileTrafficDriver):
    """The file driver whose apply waits until the test opens the gate (an action that takes its time)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def apply(self, green_percent: float) -> list[SplitStatus]:
        self.entered.set()
        if not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        return super().apply(green_percent)


@pytest.fixture
def controller_thread(plan: Plan) -> Iterator[ControllerThread]:
    """A real controller on its own loop and thread, on the plan's file traffic driver (the app starts it)."""
    thread = ControllerThread(
        plan, drivers=Drivers(traffic=FileTrafficDriver(split_file(plan))), run_sync=False
    )
    yield thread
    thread.stop()


@pytest.fixture
def make_thread(plan: Plan) -> Iterator[Callable[[Drivers], ControllerThread]]:
    made: list[ControllerThread] = []

    def make(drivers: Drivers) -> ControllerThread:
        thread = ControllerThread(plan, drivers=drivers, run_sync=False)
        made.append(thread)
        return thread

    yield make
    for thread in made:
        thread.stop()


async def until(pilot, predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    """Let the app run until `predicate()` is truthy; fail after `timeout` seconds (a deadline, not a sleep)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        await pilot.pause(0.02)


def text(app, selector: str) -> str:
    """The plain text a panel of the screen shows."""
    return app.query_one(selector).text


def screen_text(app) -> str:
    """What the terminal shows now, as lines of text (the top screen with what shows through around a dialog)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
