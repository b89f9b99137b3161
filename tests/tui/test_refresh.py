"""The screen keeps refreshing while an action runs on the controller's loop, then shows its result."""

from __future__ import annotations

from cockpit.control.factory import Drivers
from cockpit.tui.app import CockpitApp
from cockpit.tui.modals import AdvanceModal, HelpModal
from tests.tui.conftest import GatedTraffic, green_in_file, split_file, text, until


async def test_refresh_while_an_action_runs(plan, make_thread):
    traffic = GatedTraffic(split_file(plan))
    app = CockpitApp(plan, controller_thread=make_thread(Drivers(traffic=traffic)))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state is not None, what="the first state")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AdvanceModal), what="the dialog")
            await pilot.click("#confirm")
            await until(pilot, traffic.entered.is_set, what="the advance to reach the traffic step")
            # the action is blocked inside the driver; the screen shows it running and keeps taking snapshots
            await until(pilot, lambda: app.state.running_action == "advance", what="the running action")
            await until(
                pilot, lambda: "advance running" in text(app, "#status-text"), what="running in the status"
            )
            await until(
                pilot, lambda: "running" in text(app, "#actions-text"), what="running in the journal panel"
            )
            assert str(app.query_one("#badge").content).strip() == "ADVANCING"
            seen = app.states_seen
            await until(
                pilot, lambda: app.states_seen >= seen + 3, what="new snapshots while the action runs"
            )
            # and the keys still answer
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpModal), what="help while the action runs")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpModal), what="help to close")
            assert app.last_result is None and traffic.gate.is_set() is False
            traffic.gate.set()
            await until(pilot, lambda: app.last_result is not None, what="the result")
            assert app.last_result[:2] == ("advance", "ok")
            await until(
                pilot, lambda: app.state.state == "active" and app.state.running_action is None, what="active"
            )
            assert "advance ok" in text(app, "#result")
    finally:
        traffic.gate.set()
    assert green_in_file(plan) == 5.0


async def test_rollback_preempts_an_advance_sent_from_the_screen(plan, make_thread):
    traffic = GatedTraffic(split_file(plan))
    app = CockpitApp(plan, controller_thread=make_thread(Drivers(traffic=traffic)))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.state is not None, what="the first state")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AdvanceModal), what="the dialog")
            await pilot.click("#confirm")
            await until(pilot, traffic.entered.is_set, what="the advance to block in the driver")
            await pilot.press("b")
            await until(pilot, lambda: app.screen.query("#reason"), what="the rollback dialog")
            await pilot.press("i")
            await until(pilot, lambda: app.state.running_action == "rollback", what="the rollback to start")
            traffic.gate.set()
            await until(
                pilot,
                lambda: app.state.state == "rolled_back" and app.state.running_action is None,
                what="rolled back",
            )
            outcomes = {a.verb: a.outcome for a in app.state.actions}
            assert outcomes == {"advance": "preempted", "rollback": "ok"}
    finally:
        traffic.gate.set()
    assert green_in_file(plan) == 0.0
