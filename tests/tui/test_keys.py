"""Every key of the first screen against a real controller thread and the file traffic driver."""

from __future__ import annotations

from cockpit.core.lock import ControllerLock
from cockpit.tui.app import CockpitApp
from cockpit.tui.keys import ACTIONS
from cockpit.tui.modals import DEFAULT_ROLLBACK_REASON, AdvanceModal, EndingModal, HelpModal, RollbackModal
from tests.tui.conftest import green_in_file, journal_actions, text, until

SIZE = (120, 40)


async def _ready(pilot, app: CockpitApp) -> None:
    await until(
        pilot,
        lambda: app.state is not None and app.state.state == "ready",
        what="the controller's first state",
    )


async def _open(pilot, app: CockpitApp, key: str, screen: type) -> None:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, screen), what=f"{screen.__name__} after {key!r}")


async def _advance(pilot, app: CockpitApp) -> None:
    index = app.state.phase_index
    await _open(pilot, app, "a", AdvanceModal)
    await pilot.click("#confirm")
    await until(
        pilot,
        lambda: app.state.phase_index == index + 1 and app.state.running_action is None,
        what="the advance to end",
    )


async def test_advance_accepted_moves_to_validation_and_writes_5_percent(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _open(pilot, app, "a", AdvanceModal)
        dialog = app.screen.query_one("#from-to").content.plain
        assert "ready" in dialog and "validation (5% green)" in dialog
        await pilot.click("#confirm")
        await until(pilot, lambda: app.state.state == "active" and app.state.phase_index == 0, what="active")
        assert green_in_file(plan) == 5.0
        await until(pilot, lambda: app.last_result is not None, what="the result")
        assert app.last_result[:2] == ("advance", "ok")
        assert "advance ok" in text(app, "#result")
        assert "validation (1/5)" in text(app, "#timeline")
        await until(
            pilot, lambda: "advance" in text(app, "#actions-text"), what="the journaled action on screen"
        )
        assert "traffic" in text(app, "#actions-text")  # its steps with their timings
    [action] = journal_actions(plan)
    assert (action.verb, action.outcome) == ("advance", "ok")
    assert [s.name for s in action.steps] == ["gates", "green_services", "green_health", "traffic", "verify"]


async def test_advance_cancelled_changes_nothing(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        for cancel in ("escape", "#cancel"):
            await _open(pilot, app, "a", AdvanceModal)
            if cancel == "escape":
                await pilot.press("escape")
            else:
                await pilot.click(cancel)
            await until(pilot, lambda: not isinstance(app.screen, AdvanceModal), what="the dialog to close")
        seen = app.states_seen
        await until(pilot, lambda: app.states_seen >= seen + 3, what="a few controller ticks")
        assert app.state.state == "ready" and app.state.phase_index == -1
        assert app.last_result is None
    assert green_in_file(plan) is None
    assert journal_actions(plan) == []


async def test_hold_then_resume(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("h")
        await until(pilot, lambda: app.state.state == "held", what="held")
        assert app.state.held_reason == "held from the cockpit"
        await until(
            pilot, lambda: "held: held from the cockpit" in text(app, "#status-text"), what="held reason"
        )
        assert str(app.query_one("#badge").content).strip() == "HELD"
        await pilot.press("r")
        await until(pilot, lambda: app.state.state == "ready", what="resumed")
        await until(
            pilot, lambda: app.last_result and app.last_result[0] == "resume", what="the resume result"
        )
        assert app.last_result[1] == "ok"
    assert [(a.verb, a.outcome) for a in journal_actions(plan)] == [("hold", "ok"), ("resume", "ok")]


async def test_refused_action_is_shown(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("r")  # resume while not held: the controller refuses and says why
        await until(pilot, lambda: app.last_result is not None, what="the refusal")
        assert app.last_result[:2] == ("resume", "refused")
        assert "resume refused" in text(app, "#result") and "not held" in text(app, "#result")


async def test_rollback_accepted_with_reason(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _advance(pilot, app)
        assert green_in_file(plan) == 5.0
        await _open(pilot, app, "b", RollbackModal)
        reason = app.screen.query_one("#reason")
        assert reason.value == DEFAULT_ROLLBACK_REASON
        await pilot.press(*"error spike", "enter")  # typing starts the reason; Enter only leaves the field
        assert reason.value == "error spike" and not reason.has_focus
        seen = app.states_seen
        await until(pilot, lambda: app.states_seen >= seen + 3, what="a few controller ticks")
        assert isinstance(app.screen, RollbackModal) and app.state.state == "active"  # Enter fired nothing
        await pilot.press("i")  # the mode is the confirmation
        await until(pilot, lambda: app.state.state == "rolled_back", what="rolled back")
        await until(pilot, lambda: app.last_result and app.last_result[0] == "rollback", what="the result")
        assert app.last_result[1] == "ok"
        await until(pilot, lambda: "error spike" in text(app, "#actions-text"), what="the reason on screen")
    assert green_in_file(plan) == 0.0
    rollback = journal_actions(plan)[-1]
    assert (rollback.verb, rollback.outcome, rollback.reason) == ("rollback", "ok", "error spike")
    assert rollback.args == {"mode": "immediate"}
    assert [s.name for s in rollback.steps] == list(plan.rollback.steps)


async def test_rollback_gradual_chosen_in_the_dialog(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _advance(pilot, app)
        await _advance(pilot, app)
        assert green_in_file(plan) == 20.0
        await _open(pilot, app, "b", RollbackModal)
        await pilot.press("g")
        await until(pilot, lambda: app.state.state == "rolled_back", what="rolled back")
    rollback = journal_actions(plan)[-1]
    assert rollback.reason == DEFAULT_ROLLBACK_REASON
    assert rollback.args == {"mode": "gradual"}
    assert "5% -> 0%" in rollback.steps[0].detail
    assert green_in_file(plan) == 0.0


async def test_rollback_cancelled_changes_nothing(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _advance(pilot, app)
        await _open(pilot, app, "b", RollbackModal)
        await pilot.click("#cancel")
        await until(pilot, lambda: not isinstance(app.screen, RollbackModal), what="the dialog to close")
        await _open(pilot, app, "b", RollbackModal)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RollbackModal), what="the dialog to close")
        seen = app.states_seen
        await until(pilot, lambda: app.states_seen >= seen + 3, what="a few controller ticks")
        assert app.state.state == "active" and app.state.phase_index == 0
    assert green_in_file(plan) == 5.0
    assert [a.verb for a in journal_actions(plan)] == ["advance"]


async def test_help_lists_every_key_and_footer_shows_them(plan, controller_thread):
    from textual.widgets._footer import FooterKey

    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)

        def footer() -> set[tuple[str, str]]:
            return {(k.key_display, k.description) for k in app.query(FooterKey) if not k.disabled}

        # ready, blue a SQLite file, no sync: no copy, and nothing to resume
        offered = {"rollback", "advance", "hold", "backup", "help", "quit"}
        await until(pilot, lambda: ("a", "Advance") in footer(), what="the footer to offer advance")
        for a in ACTIONS:
            assert ((a.shown_key, a.label) in footer()) == (a.name in offered), a.name
        await _open(pilot, app, "question_mark", HelpModal)
        shown = app.screen.query_one("#help-keys").content.plain
        for a in ACTIONS:
            assert a.description in shown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpModal), what="help to close")


async def test_palette_offers_the_same_actions(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for a in ACTIONS:
            assert titles.count(a.label) == 1


async def test_quit_stops_the_controller_and_releases_the_lock(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 0
    lock = ControllerLock(plan.path(plan.journal.path))
    lock.acquire("test")  # would raise LockHeld if the controller still ran
    lock.release()


async def test_finalize_is_not_offered_before_the_end(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        assert app.check_action("finalize", ()) is False
        await pilot.press("f")  # no dialog: the screen says why
        await until(pilot, lambda: app.last_result is not None, what="the refusal")
        assert not isinstance(app.screen, EndingModal)
        assert app.last_result[:2] == ("finalize", "refused")
        assert "after the last phase" in app.last_result[2]
    assert journal_actions(plan) == []


async def test_finalize_confirmed_is_dispatched_to_the_controller(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        while app.state.state != "complete":
            index = app.state.phase_index
            await _open(pilot, app, "a", AdvanceModal)
            await pilot.press("f", "y")  # forced: whatever the gates say
            await until(
                pilot,
                lambda i=index: app.state.phase_index == i + 1 and app.state.running_action is None,
                what="the advance to end",
            )
        await until(pilot, lambda: app.check_action("finalize", ()) is True, what="finalize offered")
        await _open(pilot, app, "f", EndingModal)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EndingModal), what="the dialog to close")
        assert "finalize" not in [a.verb for a in journal_actions(plan)]
        await _open(pilot, app, "f", EndingModal)
        await pilot.press("y")
        await until(
            pilot, lambda: app.last_result is not None and app.last_result[0] == "finalize", what="finalize"
        )
        assert app.last_result[1] == "ok", app.last_result
        await until(pilot, lambda: app.state.ended is not None and app.state.ended.done, what="ended")
        assert app.state.ended.how == "finalize"
        await until(
            pilot, lambda: app.check_action("finalize", ()) is False, what="finalize no longer offered"
        )
        assert app.check_action("abandon", ()) is False
    assert [(a.verb, a.outcome) for a in journal_actions(plan)].count(("finalize", "ok")) == 1


async def test_abandon_confirmed_ends_on_blue_and_esc_cancels(plan, controller_thread):
    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await _advance(pilot, app)
        await _open(pilot, app, "x", EndingModal)
        assert "CLI only" in str(app.screen.query_one("#ending-drop").content)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EndingModal), what="the dialog to close")
        assert [a.verb for a in journal_actions(plan)] == ["advance"]
        await _open(pilot, app, "x", EndingModal)
        await pilot.press("y")
        await until(
            pilot, lambda: app.last_result is not None and app.last_result[0] == "abandon", what="abandon"
        )
        assert app.last_result[1] == "ok", app.last_result
        await until(pilot, lambda: app.state.ended is not None and app.state.ended.done, what="ended")
        await until(pilot, lambda: app.check_action("abandon", ()) is False, what="abandon no longer offered")
        assert app.check_action("advance", ()) is False
    assert green_in_file(plan) == 0.0
    assert [(a.verb, a.outcome) for a in journal_actions(plan)].count(("abandon", "ok")) == 1


async def test_preflight_runs_off_the_loop_is_journaled_and_shown(plan, controller_thread):
    """p runs the checklist in a thread, journals it as `cockpit preflight` does, and shows it, worst first."""
    from cockpit.control.preflight import EVENT
    from cockpit.core.journal import Journal
    from cockpit.tui.modals import PreflightModal

    app = CockpitApp(plan, controller_thread=controller_thread)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot, app)
        await _open(pilot, app, "p", PreflightModal)
        await until(pilot, lambda: bool(app.screen.query("#preflight-checks")), what="the checks on screen")
        verdict = app.screen.verdict
        assert str(app.screen.query_one("#preflight-verdict").content).startswith(
            f"Preflight: {verdict.word}"
        )
        shown = str(app.screen.query_one("#preflight-checks").content).splitlines()
        assert len(shown) == len(verdict.checks) and shown[0].split()[0] == min(
            (c.status for c in verdict.checks), key={"fail": 0, "warn": 1, "pass": 2}.get
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PreflightModal), what="the dialog to close")
        assert app.last_result[:2] == ("preflight", "ok" if verdict.go else "refused")
    with Journal(plan.path(plan.journal.path), readonly=True) as j:
        [event] = j.events(kinds=[EVENT])
    assert event.payload["verdict"] == verdict.word and len(event.payload["checks"]) == len(verdict.checks)


async def test_preflight_is_refused_read_only(plan):
    from cockpit.control.preflight import EVENT
    from cockpit.core.journal import Journal

    app = CockpitApp(plan, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await until(pilot, lambda: app.last_result is not None, what="the refusal")
        assert app.last_result[:2] == ("preflight", "refused")
    path = plan.path(plan.journal.path)
    if path.exists():
        with Journal(path, readonly=True) as j:
            assert j.events(kinds=[EVENT]) == []
