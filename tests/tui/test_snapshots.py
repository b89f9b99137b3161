"""Snapshots of the main states at 80x24 and 120x40, drawn from a fixed CockpitState (every time is relative to
its `now`, so they do not depend on the clock). Update with `pytest tests/tui --snapshot-update` after a
deliberate change, and look at the SVGs in tests/tui/__snapshots__/ before committing them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.widgets import Input

from cockpit.control.view import build_state
from cockpit.core.journal import ActionRecord, Step
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan, load_plan
from cockpit.core.state import Alarm, CockpitState, Lag, Readiness, ReadinessCheck
from cockpit.tui.app import CockpitApp
from cockpit.tui.keys import Context
from cockpit.tui.modals import AdvanceModal, HelpModal, RollbackModal
from tests.tui.conftest import until

SIZE = (120, 40)
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
NOW = 1_780_000_000.0

# the production plan's shape (plans/licitacoes.yaml), kept here so the snapshots do not move when it is edited
PLAN = """\
name: licitacoes
description: SQLite to Neon PostgreSQL, zero downtime
blue:
  database: {engine: sqlite, path: blue.db}
green:
  database: {engine: sqlite, path: green.db}
traffic: {driver: file, state_file: split.json}
phases:
  - name: validation
    green: 5
    soak: 6h
    description: 95% SQLite, 5% Neon (validation)
    gates: &gates
      - {metric: green.error_rate, op: "<", value: 1}
      - {metric: green.response_time_p95, op: "<", value: 500}
      - {metric: sync_lag, op: "<", value: 60}
  - {name: limited, green: 20, soak: 6h, description: "80% SQLite, 20% Neon (limited users)", gates: *gates}
  - {name: ab-test, green: 50, soak: 6h, description: "50% SQLite, 50% Neon (A/B testing)", gates: *gates}
  - {name: majority, green: 80, soak: 6h, description: "20% SQLite, 80% Neon (majority migration)", gates: *gates}
  - {name: complete, green: 100, soak: 18h, description: "0% SQLite, 100% Neon (complete switch)"}
metrics:
  cpu_usage: {warning: 80, critical: 95, unit: "%"}
  memory_usage: {warning: 85, critical: 95, unit: "%"}
  disk_usage: {warning: 80, critical: 90, unit: "%"}
  response_time_p95: {warning: 500, critical: 2000, unit: ms}
  error_rate: {warning: 1, critical: 5, unit: "%"}
  throughput: {min: 100, unit: req/s}
  connection_pool_usage: {warning: 80, critical: 95, unit: "%"}
  query_execution_time: {warning: 1000, critical: 5000, unit: ms}
  cache_hit_ratio: {min: 80, unit: "%"}
  sync_lag: {warning: 60, critical: 300, unit: s}
  data_integrity_score: {min: 99.9, unit: "%"}
rollback:
  triggers:
    - {name: error_rate_spike, metric: green.error_rate, op: ">", threshold: 10, for: 300s, action: immediate}
    - {name: response_time_degradation, metric: green.response_time_p95, op: ">", threshold: 5000, for: 180s,
       action: gradual}
"""


@pytest.fixture
def snap_plan(tmp_path: Path) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return load_plan(path)


# 20% on green, whose error rate spiked (a rollback trigger counts down) and p95 creeps up; cpu past its warning;
# green→blue sync behind its warning; no cache figure yet (shown as "–")
METRICS = {
    "blue.rps": 76.9,
    "green.rps": 19.3,
    "blue.error_rate": 0.04,
    "green.error_rate": 12.5,
    "blue.response_time_p95": 48.0,
    "green.response_time_p95": 612.0,
    "traffic_distribution": 20.1,
    "throughput": 96.2,
    "cpu_usage": 81.5,
    "memory_usage": 41.0,
    "disk_usage": 22.5,
    "green.db_up": 1.0,
    "green.query_execution_time": 12.34,
    "connection_pool_usage": 35.0,
    "green.db_connection_failure_rate": 0.0,
    "data_integrity_score": 100.0,
    "data_integrity_checked_at": NOW - 240,
    "backup_age": 7 * 3600.0,
    "access_log.window_s": 60.0,
    "traffic_distribution.window_s": 4.0,
    "traffic_distribution.restarted": 1.0,
}

# not ready: green->blue is behind the drain bound and the newest backup is older than the plan allows
READINESS = Readiness(
    (
        ReadinessCheck("nginx", "ok", "nginx -t passes (1 balancer)"),
        ReadinessCheck("blue", "ok", "blue healthy (4 checks)"),
        ReadinessCheck("sync", "failed", "green→blue 1m15s behind (12 waiting): the drain allows 30s"),
        ReadinessCheck("backup", "failed", "newest backup 7h old > limit 6h"),
        ReadinessCheck("conflicts", "skipped", "conflicts not counted by this sync"),
    ),
    NOW - 2,
)


def _state(plan: Plan) -> CockpitState:
    actions = (
        ActionRecord(
            "a1",
            "advance",
            "ana@ops-1",
            "",
            NOW - 7500,
            {"to": None, "force": False},
            (
                Step("gates", "ok", 0.001, "all met"),
                Step("traffic", "ok", 0.412, "lb1 5%"),
                Step("verify", "ok", 0.020, "5% green live"),
            ),
            "ok",
            NOW - 7499.5,
            "now in phase validation (5% green)",
        ),
        ActionRecord(
            "a2",
            "advance",
            "ana@ops-1",
            "",
            NOW - 600,
            {"to": None, "force": False},
            (Step("gates", "failed", 0.002, "soak: 5h50m of 6h in validation"),),
            "refused",
            NOW - 599.9,
            "gates not met: soak: 5h50m of 6h in validation",
        ),
        ActionRecord(
            "a3",
            "advance",
            "ana@ops-1",
            "",
            NOW - 300,
            {"to": None, "force": False},
            (
                Step("gates", "ok", 0.001, "all met"),
                Step("traffic", "ok", 0.380, "lb1 20%"),
                Step("verify", "ok", 0.018, "20% green live"),
            ),
            "ok",
            NOW - 299.6,
            "now in phase limited (20% green)",
        ),
        ActionRecord(
            "a4",
            "hold",
            "rui@ops-2",
            "p95 creeping up",
            NOW - 60,
            {},
            (),
            "ok",
            NOW - 60,
            "held: p95 creeping up",
        ),
    )
    state = build_state(
        plan,
        Machine("held", 1, NOW - 300, "p95 creeping up"),
        actions=actions,
        green_live=20.0,
        gates=(
            ("green.error_rate < 1", False, "now 12.5"),
            ("green.response_time_p95 < 500", False, "now 612"),
            ("sync_lag < 60", False, "now 75"),
        ),
        controller={"pid": 4242, "actor": "ana@ops-1"},
        now=NOW,
        metrics=METRICS,
        lag={"blue_to_green": Lag(1.4, 0), "green_to_blue": Lag(75.0, 12)},
        alarms=(
            Alarm("throughput", "warning", 96.2, 100.0, "throughput 96.2req/s < minimum 100req/s"),
            Alarm("green.error_rate", "critical", 12.5, 5.0, "green.error_rate 12.5% >= critical 5%"),
            Alarm(
                "green.response_time_p95",
                "warning",
                612.0,
                500.0,
                "green.response_time_p95 612ms >= warning 500ms",
            ),
            Alarm(
                "green.error_rate",
                "trigger",
                12.5,
                10.0,
                "error_rate_spike: green.error_rate > 10, rollback (immediate) in 42s",
            ),
        ),
    )
    return dataclasses.replace(state, readiness=READINESS)


class ShownApp(CockpitApp):
    """The screen of a fixed state, with the keys a controller in this process would offer."""

    def _key_context(self) -> Context:
        return dataclasses.replace(super()._key_context(), can_act=True)


def _app(plan: Plan, state: CockpitState | None = None) -> CockpitApp:
    state = state or _state(plan)
    app = ShownApp(plan, state_source=lambda: state)
    # the trend the screen would have kept over the last minutes: calm, then green's error rate and p95 climbing
    for i in range(24):
        err, p95 = (
            (0.1 + 0.02 * (i % 3), 140.0 + 5 * (i % 4)) if i < 14 else (0.6 * (i - 13), 140.0 + 45 * (i - 13))
        )
        app.trend.add(
            dataclasses.replace(
                state,
                now=NOW - 10 * (24 - i),
                metrics={"green.error_rate": err, "green.response_time_p95": p95},
            )
        )
    return app


def _drawn(app) -> bool:
    """The state is in and every panel drew it (the sized ones draw once laid out; no alarms, no alarm panel)."""
    panels = ("#split", "#metrics-text", "#timeline") + (
        ("#alarms",) if app.state and app.state.alarms else ()
    )
    return app.state is not None and all(app.query_one(p).renders for p in panels)


async def _shown(pilot) -> None:
    await until(pilot, lambda: _drawn(pilot.app), what="the first state, drawn")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", SIZES)
def test_first_screen(snap_plan, snap_compare, size):
    """Held at 20 %, a trigger counting down, rollback not ready (sync behind, backup old). At 80x24 the journal is
    folded to one line, the phases and the split say less, the alarms take two lines."""
    assert snap_compare(_app(snap_plan), terminal_size=SIZES[size], run_before=_shown)


def test_first_screen_ready_and_rolled_back(snap_plan, snap_compare):
    """After a rollback: all on blue, the light green, advance and copy offered again."""
    ready = Readiness(tuple(ReadinessCheck(c.name, "ok", c.detail) for c in READINESS.checks[:4]), NOW - 1)
    state = dataclasses.replace(
        _state(snap_plan),
        state="rolled_back",
        phase_index=-1,
        green_configured=0.0,
        green_live=0.0,
        held_reason="",
        alarms=(),
        gates=(),
        readiness=ready,
        metrics={**METRICS, "traffic_distribution": 0.0, "green.rps": 0.0, "blue.rps": 96.2},
    )
    assert snap_compare(_app(snap_plan, state), terminal_size=SIZE, run_before=_shown)


def _dialog(make):
    async def open_dialog(pilot) -> None:
        await _shown(pilot)
        pilot.app.push_screen(make(pilot.app))
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False

    return open_dialog


@pytest.mark.parametrize("size", SIZES)
def test_advance_dialog_with_unmet_gates(snap_plan, snap_compare, size):
    opened = _dialog(lambda app: AdvanceModal(app.state))
    assert snap_compare(_app(snap_plan), terminal_size=SIZES[size], run_before=opened)


@pytest.mark.parametrize("size", SIZES)
def test_rollback_dialog(snap_plan, snap_compare, size):
    opened = _dialog(lambda app: RollbackModal(app.state, list(snap_plan.rollback.steps), 30.0))
    assert snap_compare(_app(snap_plan), terminal_size=SIZES[size], run_before=opened)


def test_help_at_80x24_scrolls_its_keys_keeps_its_button(snap_plan, snap_compare):
    opened = _dialog(lambda app: HelpModal())
    assert snap_compare(_app(snap_plan), terminal_size=SIZES["80x24"], run_before=opened)


@pytest.mark.parametrize("theme", ["cockpit-light", "cockpit-high-contrast"])
def test_themes(snap_plan, snap_compare, theme):
    async def themed(pilot) -> None:
        pilot.app.theme = theme
        await _shown(pilot)
        pilot.app.clear_notifications()  # "theme: ... (remembered)" would leave on its own clock
        await pilot.pause()

    assert snap_compare(_app(snap_plan), terminal_size=SIZE, run_before=themed)
