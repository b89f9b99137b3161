"""Rendering snapshots into text (pure functions)."""

from __future__ import annotations

from cockpit.control.view import build_state
from cockpit.core.journal import ActionRecord, Step
from cockpit.core.phases import Machine
from cockpit.tui import render


def test_bar_splits_cells_by_share():
    assert render.bar(0.0, 20).plain == "█" * 20
    spans = render.bar(25.0, 20).spans
    assert (spans[0].start, spans[0].end, spans[0].style) == (0, 5, render.OK)
    assert render.bar(None, 10).plain == "░" * 10


def test_durations():
    assert render.duration(0.0123) == "12ms"
    assert render.duration(3.44) == "3.4s"
    assert render.duration(125) == "2m5s"
    assert render.duration(None) == "?"


def test_timeline_marks_done_current_and_next(plan):
    state = build_state(plan, Machine("active", 1, 1000.0), now=1000.0 + 90)
    shown = render.timeline(state).plain
    assert (
        "✓ ready" in shown
        and "✓ validation 5%" in shown
        and "● limited 20%" in shown
        and "○ ab-test 50%" in shown
    )
    assert "1m30s in phase" in shown and "next: ab-test 50%" in shown


def test_live_split_differs_and_unknown(plan):
    state = build_state(plan, Machine("active", 0, 0.0), green_live=20.0, now=1.0)
    assert "≠ configured" in render.split(state).plain
    state = build_state(plan, Machine("active", 0, 0.0), green_live=None, now=1.0)
    assert "unknown" in render.split(state).plain


def test_gates_list_soak_and_metric_gates(plan):
    state = build_state(
        plan, Machine("active", 0, 0.0), gates=(("sync_lag < 60", False, "no data yet"),), now=5.0
    )
    shown = render.gates(state).plain
    assert "next advance: limited 20%" in shown and "✗ sync_lag < 60  no data yet" in shown
    assert not render.gates_met(state)


def test_running_action_shows_elapsed_and_steps(plan):
    record = ActionRecord(
        "x",
        "rollback",
        "ana@h",
        "why",
        100.0,
        {"mode": "immediate"},
        (Step("traffic", "ok", 0.25, "all traffic to blue"),),
    )
    state = build_state(plan, Machine("rolling_back", 0, 100.0), actions=(record,), now=103.0)
    shown = render.actions(state).plain
    assert "rollback" in shown and "running" in shown and "3.0s" in shown and "all traffic to blue" in shown


def test_split_shows_the_observed_share_or_a_dash(plan):
    state = build_state(
        plan, Machine("active", 0, 0.0), green_live=5.0, metrics={"traffic_distribution": 4.83}, now=1.0
    )
    assert "observed" in render.split(state).plain and "4.8% green" in render.split(state).plain
    state = build_state(plan, Machine("active", 0, 0.0), green_live=5.0, now=1.0)
    observed = next(line for line in render.split(state).plain.splitlines() if line.startswith("observed"))
    assert "–" in observed and "0" not in observed


def test_a_state_without_a_start_time_is_not_counted_from_1970(plan):
    state = build_state(plan, Machine("ready", -1, 0.0), now=1_780_000_000.0)
    shown = render.timeline(state).plain
    assert "an unknown time in this state" in shown and "h in this" not in shown
