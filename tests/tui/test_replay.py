"""`cockpit replay` driven by Textual's Pilot over a journal a real controller recorded (tests/control/recorded_day):
the live screen's panels with the recorded figures at the replay's time, pause, next event, speed, the action keys
refused read-only, and 80x24."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from cockpit.cli.main import main
from cockpit.cli.report import recorded_plan
from cockpit.core.journal import Journal
from cockpit.tui.app import CockpitApp
from cockpit.tui.modals import HelpModal
from cockpit.tui.panels import ActionsPanel, AlarmsPanel, MetricsPanel, Panel
from cockpit.tui.replay import READ_ONLY, ReplayApp
from tests.control.recorded_day import SPIKE, Recorded, record_day
from tests.tui.conftest import screen_text, text, until


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_day(tmp_path_factory.mktemp("day"))


def _title(app: ReplayApp) -> str:
    return text(app, "#title")


async def _shown_at(pilot, app: ReplayApp, at: float) -> None:
    await until(pilot, lambda: app.state is not None and app.state.now == at, what=f"the state at {at}")
    await until(pilot, lambda: "REPLAY" in _title(app) and "reading" not in _title(app), what="the bar")


async def test_same_panels_with_the_recorded_figures(day: Recorded) -> None:
    raised = day.first("alarm.raised", metric="green.error_rate")
    app = ReplayApp(day.plan, day.journal, at=raised.ts, paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _shown_at(pilot, app, raised.ts)
        assert isinstance(app, CockpitApp)  # the live screen itself, not a twin of it
        for panel in ("#timeline", "#split", "#gates", "#readiness", "#journal-line"):
            assert isinstance(app.query_one(panel), Panel)
        app.query_one("#actions", ActionsPanel)
        app.query_one("#metrics", MetricsPanel)
        assert "● validation 5%" in text(app, "#timeline")
        split = text(app, "#split")
        assert "configured" in split and "5% green" in split and "✓ as configured" in split
        alarms = app.query_one("#alarms", AlarmsPanel)
        await until(
            pilot, lambda: f"green.error_rate {SPIKE:g}% >= critical 5%" in alarms.text, what="the alarm"
        )
        figures = text(app, "#metrics-text")
        assert f"{SPIKE:.2f}" in figures and "0.50" in figures and "123" in figures  # the tick's batch
        assert "advance" in text(app, "#actions-text") and "verify" in text(app, "#actions-text")
        assert "not recorded" in text(app, "#readiness")
        assert "not recorded" in str(app.query_one("#metrics").border_title)
        assert "‖ ×60" in _title(app) and "read-only" in text(app, "#status-text")


async def test_next_event_steps_through_the_day(day: Recorded) -> None:
    start = day.first("controller.start")
    app = ReplayApp(day.plan, day.journal, at=start.ts, paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _shown_at(pilot, app, start.ts)
        assert "before the first phase" in text(app, "#status-text")
        assert app.query_one("#alarms", AlarmsPanel).has_class("-none")
        seen: list[str] = []
        for e in day.events[day.events.index(start) + 1 :]:
            if e.ts == app.state.now:  # type: ignore[union-attr]
                continue  # stamped at the same instant: one step shows both
            await pilot.press("n")
            await _shown_at(pilot, app, e.ts)
            assert app.source.playback is not None and app.source.playback.paused  # a step stays paused
            seen.append(app.state.state)  # type: ignore[union-attr]
            if e.kind == "alarm.raised":
                alarms = app.query_one("#alarms", AlarmsPanel)
                await until(pilot, lambda: "CRITICAL" in alarms.text, what="the alarm")  # noqa: B023
            if e.kind == "action.outcome" and e.payload["verb"] == "hold":
                assert "held: watching green's errors" in text(app, "#status-text")
        assert {"advancing", "active", "held", "rolling_back", "rolled_back"} <= set(seen)
        assert "rolled back" in text(app, "#timeline")
        await pilot.press("n")  # past the last event: said, and nothing moves
        await until(pilot, lambda: any("end of the journal" in str(n.message) for n in app._notifications))
        assert app.state.now == day.events[-1].ts  # type: ignore[union-attr]


async def test_pause_stops_time_and_speed_keys(day: Recorded) -> None:
    start = day.first("controller.start")
    app = ReplayApp(day.plan, day.journal, at=start.ts, speed=0.25)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state is not None and app.state.now > start.ts, what="time moving")
        assert "▶ ×0.25" in _title(app)
        await pilot.press("space")
        playback = app.source.playback
        assert playback is not None and playback.paused
        await until(pilot, lambda: "‖" in _title(app), what="the bar says paused")
        frozen, calls = playback.position(), app.source.calls
        await until(pilot, lambda: app.source.calls >= calls + 4, what="four polls while paused")
        assert playback.position() == frozen and app.state.now == frozen  # type: ignore[union-attr]
        await pilot.press("plus")
        assert playback.speed == 0.5
        await until(pilot, lambda: "×0.5 " in _title(app), what="the bar shows the speed")
        await pilot.press("plus", "plus", "minus")
        assert playback.speed == 1.0
        await pilot.press("space")
        assert not playback.paused
        await until(pilot, lambda: app.state is not None and app.state.now > frozen, what="time moving again")


async def test_action_keys_are_refused_read_only(day: Recorded) -> None:
    with Journal(day.journal, readonly=True) as j:
        before = j.last_event_id()
    app = ReplayApp(day.plan, day.journal, paused=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state is not None, what="the first state")
        main = app.screen
        for key, verb in (
            ("a", "advance"),
            ("b", "rollback"),
            ("h", "hold"),
            ("r", "resume"),
            ("c", "copy"),
            ("s", "backup"),
            ("f", "finalize"),
            ("x", "abandon"),
        ):
            app.last_result = None
            await pilot.press(key)
            await until(pilot, lambda: app.last_result is not None, what=f"{key} answered")
            assert app.last_result == (verb, "refused", READ_ONLY, None)
            assert app.screen is main  # no dialog opened
        assert "replay: read-only" in text(app, "#result")
    with Journal(day.journal, readonly=True) as j:
        assert j.last_event_id() == before  # nothing journaled, nothing queued
        assert j.taken_commands() == [] and j.command(1) is None


async def test_replay_at_80x24(day: Recorded) -> None:
    raised = day.first("alarm.raised", metric="green.error_rate")
    app = ReplayApp(day.plan, day.journal, at=raised.ts, paused=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown_at(pilot, app, raised.ts)
        await until(pilot, lambda: "CRITICAL" in screen_text(app), what="the alarm on screen")
        await until(pilot, lambda: "␣ Pause" in screen_text(app).splitlines()[-1], what="the footer")
        screen = screen_text(app)
        lines = screen.splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert "REPLAY ‖ ×60" in lines[0]
        for word in (
            "Phases",
            "validation 5%",
            "configured",
            "Alarms (1)",
            "Metrics",
            "Pause",
            "Next",
            "Quit",
        ):
            assert word in screen, word
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpModal), what="help")
        keys = str(app.screen.query_one("#help-keys", Static).content)  # the help lists the replay's keys too
        assert "Replay: jump to the journal's next event" in keys and "Rollback" in keys


async def test_an_unreadable_journal_is_said_once(tmp_path, day: Recorded) -> None:
    bad = tmp_path / "journal.db"
    bad.write_bytes(b"not a journal at all" * 100)
    app = ReplayApp(day.plan, bad)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "cannot read the state" in app.note, what="the error shown")
        assert "REPLAY · reading the journal" in _title(app) and app.state is None


def test_cli_refuses_bad_input_before_any_screen(
    tmp_path: Path, day: Recorded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COCKPIT_PLAN", raising=False)
    journal = str(day.journal)
    assert main(["replay"]) == 2
    assert "nothing to replay: give --journal FILE" in capsys.readouterr().err
    old = tmp_path / "old.db"  # a journal from before plans were recorded at each start
    with Journal(old) as j:
        j.event("controller.start", {"pid": 1, "state": {}}, actor="ana@box")
    assert main(["replay", "--journal", str(old)]) == 2
    assert "does not record its plan" in capsys.readouterr().err
    plan = str(day.plan.path("plan.yaml"))
    assert main(["-p", plan, "replay", "--journal", journal, "--speed", "0"]) == 2
    assert "--speed must be above 0" in capsys.readouterr().err
    assert main(["-p", plan, "replay", "--journal", journal, "--at", "soon"]) == 2
    assert "not a time" in capsys.readouterr().err
    assert main(["-p", plan, "replay", "--journal", str(tmp_path / "none.db")]) == 1
    assert "no journal at" in capsys.readouterr().err


def test_the_journal_carries_its_plan(day: Recorded) -> None:
    """Each controller start journals its plan (redacted): `replay --journal FILE` needs nothing else."""
    plan = recorded_plan(day.journal)
    assert [p.name for p in plan.phases] == [p.name for p in day.plan.phases]
    assert plan.rollback.triggers == day.plan.rollback.triggers and plan.name == day.plan.name
