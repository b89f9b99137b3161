"""Opening the cockpit: a second cockpit on a plan another controller drives turns read-only; a bad plan is refused."""

from __future__ import annotations

import pytest

from cockpit.control.factory import Drivers
from cockpit.control.session import ControllerThread
from cockpit.core.plan import PlanError
from cockpit.drivers.traffic.file import FileTrafficDriver
from cockpit.tui.app import CockpitApp, run_tui
from tests.tui.conftest import split_file, text, until


async def test_second_cockpit_falls_back_to_read_only(plan, make_thread):
    first = ControllerThread(
        plan, drivers=Drivers(traffic=FileTrafficDriver(split_file(plan))), run_sync=False
    )
    first.start()
    try:
        app = CockpitApp(
            plan, controller_thread=make_thread(Drivers(traffic=FileTrafficDriver(split_file(plan))))
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.read_only, what="the fallback to read-only")
            await until(pilot, lambda: app.state is not None, what="the journal's state")
            await until(
                pilot, lambda: "read-only" in text(app, "#status-text"), what="read-only in the status"
            )
            await pilot.press("h")
            await until(pilot, lambda: app.last_result is not None, what="the refusal")
            assert app.last_result[:2] == ("hold", "refused")
        assert first.controller is not None and first.controller.machine.state == "ready"
    finally:
        first.stop()


def test_run_tui_refuses_a_bad_plan(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("name: x\nphases: 3\n")
    with pytest.raises(PlanError) as err:
        run_tui(str(bad))
    assert str(bad) in str(err.value)
