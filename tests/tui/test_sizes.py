"""Any terminal from 80x24 up: the footer keeps rollback, help and quit; every dialog shows its buttons and its key
hints whole (read from the screen's text); Esc cancels and the named key confirms, in every dialog."""

from __future__ import annotations

import dataclasses

import pytest

from cockpit.tui.app import CockpitApp
from cockpit.tui.modals import (
    AdvanceChoice,
    AdvanceModal,
    CopyModal,
    EndingModal,
    HelpModal,
    RollbackChoice,
    RollbackModal,
    hint_line,
)
from tests.tui.conftest import screen_text, until
from tests.tui.test_snapshots import _app, _shown, _state, snap_plan  # noqa: F401 - the fixture

SIZES = [(80, 24), (120, 40), (200, 60)]
STATES = {  # the held snapshot state, moved to the other states that change what the footer offers
    "held": {},
    "active": {"state": "active", "held_reason": ""},
    "rolling_back": {"state": "rolling_back", "held_reason": "", "running_action": "rollback"},
    "ready": {
        "state": "ready",
        "phase_index": -1,
        "green_configured": 0.0,
        "green_live": 0.0,
        "held_reason": "",
    },
}


def _footer(app) -> str:
    return screen_text(app).splitlines()[-1]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", STATES)
async def test_the_footer_keeps_rollback_help_and_quit(snap_plan, size, name) -> None:  # noqa: F811
    state = dataclasses.replace(_state(snap_plan), **STATES[name])
    app = _app(snap_plan, state)
    async with app.run_test(size=size) as pilot:
        await _shown(pilot)
        await until(pilot, lambda: "b Rollback" in _footer(app), what="the footer with its keys")
        footer = _footer(app)
        for key in ("b Rollback", "? Help", "q Quit"):
            assert key in footer, (key, footer)
        assert ("a Advance" in footer) == (name in ("active", "ready"))  # never while held or rolling back
        assert ("r Resume" in footer) == (name == "held")
        assert "Copy" not in footer  # no sync in this plan (and users are on green)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_read_only_and_browser_footers_offer_no_action(snap_plan, size) -> None:  # noqa: F811
    state = _state(snap_plan)
    for serving in (False, True):
        app = CockpitApp(snap_plan, state_source=lambda: state, read_only=True, serving=serving)
        async with app.run_test(size=size) as pilot:
            await _shown(pilot)
            await until(pilot, lambda app=app: "Quit" in _footer(app), what="the footer")
            footer = _footer(app)
            for verb in ("Advance", "Resume", "Backup", "Copy", "Hold"):
                assert verb not in footer
            # read-only, rollback stays in view (dimmed: it says where to act); in the browser it does not exist
            assert ("b Rollback" in footer) == (not serving)
            if serving:
                await pilot.press("b")
                await pilot.pause()
                assert not isinstance(app.screen, RollbackModal) and app.last_result is None


def _dialogs(app):
    """name -> (the dialog, its buttons as printed, [(confirming key, what the dialog answers)])."""
    plan = app.plan
    return {
        "advance": (
            lambda: AdvanceModal(app.state),
            ["Cancel  Esc", "Advance  y"],
            [("y", lambda r: isinstance(r, AdvanceChoice) and not r.force)],
        ),
        "advance forced": (
            lambda: AdvanceModal(app.state),
            ["Cancel  Esc", "Advance  y"],
            [("f y", lambda r: isinstance(r, AdvanceChoice) and r.force)],
        ),
        "rollback": (
            lambda: RollbackModal(app.state, list(plan.rollback.steps), 30.0),
            ["Cancel  Esc", "Gradual  g", "Immediate  i"],
            [
                ("i", lambda r: r == RollbackChoice("manual rollback from the cockpit", "immediate")),
                ("g", lambda r: isinstance(r, RollbackChoice) and r.mode == "gradual"),
                ("tab e r r enter enter g", lambda r: r == RollbackChoice("err", "gradual")),
            ],
        ),
        "copy": (lambda: CopyModal(plan), ["Cancel  Esc", "Copy  y"], [("y", lambda r: r is True)]),
        "finalize": (
            lambda: EndingModal(plan, "finalize"),
            ["Cancel  Esc", "Finalize  y", "cannot be undone"],
            [("y", lambda r: r is True)],
        ),
        "abandon": (
            lambda: EndingModal(plan, "abandon"),
            ["Cancel  Esc", "Abandon  y", "CLI only", "cannot be undone"],
            [("y", lambda r: r is True)],
        ),
        "help": (HelpModal, ["Close  Esc"], []),
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_dialog_fits_esc_cancels_its_key_confirms(snap_plan, size) -> None:  # noqa: F811
    app = _app(snap_plan)
    async with app.run_test(size=size) as pilot:
        await _shown(pilot)
        app.notify("a toast on top", timeout=60)  # a dialog clears them: none covers its buttons
        for name, (make, buttons, confirms) in _dialogs(app).items():
            answers: list[object] = []
            for keys, accepts in [("escape", lambda r: r is None), *confirms]:
                dialog = make()
                app._dialog(dialog, answers.append)
                await until(pilot, lambda d=dialog: app.screen is d and d.is_mounted, what=f"{name} open")
                await pilot.pause()
                shown = screen_text(app)
                for button in buttons:
                    assert button in shown, (name, size, button)
                assert hint_line(dialog.hints()).plain in shown, (name, size, shown)
                assert "a toast on top" not in shown
                await pilot.press("enter")  # Enter alone never confirms
                await pilot.pause()
                assert app.screen is dialog and not answers, (name, "enter")
                await pilot.press(*keys.split())
                await until(pilot, lambda d=dialog: app.screen is not d, what=f"{name} to close on {keys}")
                assert accepts(answers.pop()), (name, keys)
