"""A read-only cockpit shows what another controller journals, refuses to act, and never polls twice at once."""

from __future__ import annotations

import threading

from cockpit.control.factory import Drivers
from cockpit.control.session import ControllerThread
from cockpit.control.view import build_state
from cockpit.core.phases import Machine
from cockpit.core.state import CockpitState
from cockpit.drivers.traffic.file import FileTrafficDriver
from cockpit.tui.app import CockpitApp
from cockpit.tui.modals import AdvanceModal, RollbackModal
from tests.tui.conftest import journal_actions, split_file, text, until


def _other_controller(plan) -> ControllerThread:
    thread = ControllerThread(
        plan, drivers=Drivers(traffic=FileTrafficDriver(split_file(plan))), run_sync=False
    )
    thread.start()
    return thread


async def test_read_only_shows_another_controllers_journal_and_refuses_actions(plan):
    other = _other_controller(plan)
    try:
        assert (await other.call(lambda c: c.advance())).ok
        assert (await other.call(lambda c: c.hold("watching the error rate"))).ok
        app = CockpitApp(plan, read_only=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot, lambda: app.state is not None and app.state.state == "held", what="the journal's state"
            )
            assert app.state.phase_index == 0 and app.state.green_live == 5.0
            await until(pilot, lambda: "read-only" in text(app, "#status-text"), what="the read-only status")
            status = text(app, "#status-text")
            assert f"controller pid {other.controller.lock.holder()['pid']}" in status
            assert "held: watching the error rate" in status
            assert "advance" in text(app, "#actions-text") and "hold" in text(app, "#actions-text")
            before = len(journal_actions(plan))
            for key, verb in (("a", "advance"), ("b", "rollback"), ("h", "hold"), ("r", "resume")):
                app.last_result = None
                await pilot.press(key)
                await until(pilot, lambda: app.last_result is not None, what=f"the refusal of {verb}")
                assert app.last_result[:2] == (verb, "refused")
                assert "read-only cockpit" in app.last_result[2] and f"cockpit {verb}" in app.last_result[2]
                assert not isinstance(app.screen, (AdvanceModal, RollbackModal))
            assert "refused" in text(app, "#result")
            # the other controller acts: the read-only screen follows
            assert (await other.call(lambda c: c.resume())).ok
            await until(
                pilot, lambda: app.state.state == "active", what="the resume seen through the journal"
            )
        assert len(journal_actions(plan)) == before + 1  # only the other controller's resume
    finally:
        other.stop()


async def test_read_only_without_a_controller_reads_the_world(plan):
    other = _other_controller(plan)
    try:
        assert (await other.call(lambda c: c.advance())).ok
    finally:
        other.stop()
    app = CockpitApp(plan, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state is not None, what="the journal's state")
        assert (
            app.state.state == "active" and app.state.green_live == 5.0
        )  # from the split file, not from memory
        await until(pilot, lambda: "no controller running" in text(app, "#status-text"), what="no controller")
        await pilot.press("a")
        await until(pilot, lambda: app.last_result is not None, what="the refusal")
        assert "no controller is running" in app.last_result[2]


async def test_read_only_before_any_journal_says_so(plan):
    app = CockpitApp(plan, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "no journal at" in text(app, "#status-text"), what="the missing journal")
        assert app.state is None


async def test_read_only_polls_never_overlap(plan):
    """A slow journal read: ticks are skipped while it runs, never two reads at once, and the loop stays free."""
    release = threading.Event()
    inside = 0
    most = 0
    calls = 0
    lock = threading.Lock()
    state = build_state(plan, Machine("active", 1, 1000.0), green_live=20.0, now=1060.0, read_only=True)

    def slow_source() -> CockpitState:
        nonlocal inside, most, calls
        with lock:
            inside += 1
            calls += 1
            most = max(most, inside)
        try:
            release.wait(10)
            return state
        finally:
            with lock:
                inside -= 1

    app = CockpitApp(plan, read_only=True, state_source=slow_source, poll_interval=0.02)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.skipped_polls >= 5, what="ticks skipped while a read runs")
            assert calls == 1 and app.state is None
            release.set()
            await until(pilot, lambda: app.state is state, what="the slow read's state")
            assert "limited (2/5)" in text(app, "#timeline")
    finally:
        release.set()
    assert most == 1


async def test_unchanged_state_is_not_redrawn(plan):
    """Each poll brings a new but equal snapshot: the panels keep what they show instead of redrawing."""
    calls = 0

    def source() -> CockpitState:
        nonlocal calls
        calls += 1
        return build_state(plan, Machine("active", 0, 1000.0), green_live=5.0, now=1010.0, read_only=True)

    app = CockpitApp(plan, read_only=True, state_source=source, poll_interval=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.states_seen >= 10, what="ten snapshots")
        for panel in ("#timeline", "#split", "#gates", "#actions-text"):
            assert app.query_one(panel).renders == 1, panel
    assert calls >= 10
