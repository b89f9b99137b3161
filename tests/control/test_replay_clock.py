"""The replay clock rebuilds the controller's snapshot at time t from a journal a real controller recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cockpit.control.replay import Playback, ReplayClock
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from cockpit.core.state import CockpitState, Ended
from tests.control.recorded_day import CALM, SPIKE, Recorded, record_day
from tests.core.plans import write_plan


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_day(tmp_path_factory.mktemp("day"))


@pytest.fixture(scope="module")
def clock(day: Recorded) -> ReplayClock:
    return ReplayClock.load(day.journal, day.plan)


def test_the_machine_follows_the_recorded_actions(day: Recorded, clock: ReplayClock) -> None:
    start = day.first("controller.start")
    before = clock.state_at(start.ts)
    assert (before.state, before.phase_index, before.green_configured) == ("ready", -1, 0.0)
    assert before.controller is not None and before.controller["actor"] == start.actor
    advanced = next(e for e in day.events if e.kind == "action.outcome" and e.payload["verb"] == "advance")
    during = clock.state_at(advanced.ts - 1e-6)
    assert during.running_action == "advance" and during.state == "advancing"
    after = clock.state_at(advanced.ts)
    assert (after.state, after.phase_index, after.green_configured) == ("active", 0, 5.0)
    assert after.phase_since == advanced.ts and after.running_action is None
    assert [a.verb for a in after.actions] == ["advance"] and after.actions[0].outcome == "ok"
    held = next(e for e in day.events if e.kind == "action.outcome" and e.payload["verb"] == "hold")
    s = clock.state_at(held.ts)
    assert (s.state, s.held_reason) == ("held", "watching green's errors")
    rolled = next(e for e in day.events if e.kind == "action.outcome" and e.payload["verb"] == "rollback")
    assert clock.state_at(rolled.ts - 1e-6).state == "rolling_back"
    end = clock.state_at(rolled.ts)
    assert (end.state, end.phase_index) == ("rolled_back", -1)
    stop = day.first("controller.stop")
    assert clock.state_at(stop.ts).controller is None


def test_figures_are_the_tick_batch_the_controller_recorded(day: Recorded, clock: ReplayClock) -> None:
    raised = day.first("alarm.raised", metric="green.error_rate")
    s: CockpitState = clock.state_at(raised.ts)
    assert s.metrics["green.error_rate"] == SPIKE and s.metrics["blue.response_time_p95"] == 81.0
    assert [(a.metric, a.level, a.value) for a in s.alarms] == [("green.error_rate", "critical", SPIKE)]
    cleared = day.first("alarm.cleared", metric="green.error_rate")
    s = clock.state_at(cleared.ts)
    assert s.alarms == () and s.metrics["green.error_rate"] == CALM
    assert s.green_live == 5.0  # the live split, as the controller read it that tick
    _batch, at = clock.metrics_at(cleared.ts)
    assert at is not None and s.sources["accesslogsource"] == at and s.sources["traffic"] == at
    # nothing recorded before the first tick: no figure, no source, rather than one made up
    first = clock.state_at(clock.start)
    assert clock.batch_ts[0] > clock.start and first.metrics == {} and first.sources == {}
    assert first.readiness is None and first.copy is None and first.read_only


def test_next_event_and_the_ends(clock: ReplayClock) -> None:
    t = clock.start
    seen = 0
    while (nxt := clock.next_event_after(t)) is not None:
        assert nxt > t
        t, seen = nxt, seen + 1
    assert seen == clock.events_until(clock.end) - clock.events_until(clock.start)
    assert clock.next_event_after(clock.end) is None


def test_playback_pauses_steps_and_changes_speed() -> None:
    now = [100.0]
    p = Playback(1000.0, 1100.0, speed=10, clock=lambda: now[0])
    now[0] += 2
    assert p.position() == 1020.0
    assert p.toggle() is True  # paused
    now[0] += 5
    assert p.position() == 1020.0
    p.toggle()
    assert p.set_speed(20) == 20
    now[0] += 1
    assert p.position() == 1040.0
    p.jump(1090.0)
    now[0] += 10
    assert p.position() == 1100.0 and p.paused  # stops at the end
    assert p.toggle() is False and p.position() == 1000.0  # play again from the start
    assert p.set_speed(1e9) == 4096.0 and p.set_speed(0.001) == 0.25


def test_stranded_changes_and_an_ending_follow_their_events(tmp_path: Path) -> None:
    day = load_plan(write_plan(tmp_path))
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        stranded = j.event(
            "rollback.stranded", {"green_only": 7, "stop_green_deferred": True}, action_id="rb1"
        )
        forced = j.event("rollback.forced", {"green_only": 7}, action_id="rb2")
        drained = j.event("rollback.drained", {"after_s": 3.0, "stop_green": False}, action_id="rb1")
        ended = Ended("abandon", time.time(), "ab1", "lead@host", done=True, steps=("traffic",))
        j.event("action.intent", {"verb": "abandon", "reason": "", "args": {}}, action_id="ab1")
        j.event(
            "action.outcome",
            {"verb": "abandon", "outcome": "ok", "extra": {"ended": ended.as_dict()}},
            action_id="ab1",
        )
        events = j.events_between()
    clock = ReplayClock.load(path, day)
    ts = {e.id: e.ts for e in events}
    left = clock.state_at(ts[stranded]).stranded
    assert left is not None and (left.green_only, left.stop_green_deferred, left.action_id) == (
        7,
        True,
        "rb1",
    )
    forced_state = clock.state_at(ts[forced]).stranded
    assert forced_state is not None and not forced_state.stop_green_deferred
    assert clock.state_at(ts[drained]).stranded is None
    end = clock.state_at(events[-1].ts)
    assert end.ended == ended and end.state == "abandoned"
    assert clock.state_at(ts[drained]).ended is None  # not before its outcome


def test_a_restart_after_a_crash_is_followed(tmp_path: Path) -> None:
    """A controller killed mid-advance (no controller.stop): the next one starts from the saved machine, settles
    the cut action and the live split; the replay follows each step."""
    plan = load_plan(write_plan(tmp_path))
    path = tmp_path / "journal.db"
    moving = {"state": "advancing", "phase_index": 0, "since": 1.0, "held_reason": ""}
    with Journal(path) as j:
        j.event("controller.start", {"pid": 1, "state": {**moving, "state": "active"}})
        j.event("action.intent", {"verb": "advance", "reason": "", "args": {}}, action_id="ad1")
        j.event("action.step", {"step": "gates", "status": "ok"}, action_id="ad1")
        restart = j.event("controller.start", {"pid": 2, "state": moving})
        settle = j.event("action.outcome", {"verb": "advance", "outcome": "reconciled"}, action_id="ad1")
        split = j.event("reconcile.split", {"journal_green": 5.0, "live_green": 20.0, "phase_index": 1})
        odd = j.event("reconcile.split", {"journal_green": 20.0, "live_green": 33.0, "phase_index": None})
        ts = {e.id: e.ts for e in j.events_between()}
    clock = ReplayClock.load(path, plan)
    s = clock.state_at(ts[restart])
    assert (s.state, s.running_action, s.controller) == (
        "advancing",
        "advance",
        {"pid": 2, "actor": s.controller["actor"]},
    )
    s = clock.state_at(ts[settle])
    assert (s.state, s.phase_index, s.running_action) == ("active", 0, None)
    s = clock.state_at(ts[split])
    assert (s.state, s.phase_index, s.green_configured) == ("active", 1, 20.0)
    s = clock.state_at(ts[odd])
    assert (s.state, s.phase_index, s.held_reason) == ("held", 1, "live split 33% matches no phase")
