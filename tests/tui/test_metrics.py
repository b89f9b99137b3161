"""The live figures: levels from the plan's thresholds, "–" for what is missing, alarms worst first, the trend; and
the screen redrawing the metrics panel only when its figures change."""

from __future__ import annotations

import dataclasses

import pytest

from cockpit.control.view import build_state
from cockpit.core.phases import Machine
from cockpit.core.plan import Threshold, Trigger
from cockpit.core.state import Alarm, CockpitState, Lag
from cockpit.tui import readings as m
from cockpit.tui.app import CockpitApp
from cockpit.tui.panels import AlarmsPanel
from tests.tui.conftest import text, until

THRESHOLDS = {
    "error_rate": Threshold(warning=1, critical=5, unit="%"),
    "response_time_p95": Threshold(warning=500, critical=2000, unit="ms"),
    "sync_lag": Threshold(warning=60, critical=300, unit="s"),
    "throughput": Threshold(min=100, unit="req/s"),
    "cpu_usage": Threshold(warning=80, critical=95, unit="%"),
}
LEVELS = m.Levels(THRESHOLDS, [Trigger(name="spike", metric="green.error_rate", threshold=10, op=">")])
FULL = {
    "blue.rps": 80.0,
    "green.rps": 20.0,
    "blue.error_rate": 0.5,
    "green.error_rate": 2.0,
    "blue.response_time_p95": 40.0,
    "green.response_time_p95": 2500.0,
    "traffic_distribution": 20.0,
    "throughput": 100.0,
    "cpu_usage": 10.0,
    "memory_usage": 20.0,
    "disk_usage": 30.0,
    "green.db_up": 1.0,
    "green.query_execution_time": 5.0,
    "connection_pool_usage": 5.0,
    "cache_hit_ratio": 99.0,
    "green.db_connection_failure_rate": 0.0,
    "data_integrity_score": 100.0,
}


def _state(plan, **kw) -> CockpitState:
    return build_state(plan, Machine("active", 1, 1000.0), now=1000.0 + 30, **kw)


def _style_of(content, needle: str) -> str:
    """The style of the span covering the first occurrence of `needle` in the content."""
    start = content.plain.index(needle)
    for span in content.spans:
        if (
            span.start <= start < span.end
            and isinstance(span.style, str)
            and span.style.startswith(".metric--")
        ):
            return span.style
    return ""


def _line(content, label: str) -> str:
    return next(line for line in content.plain.splitlines() if line.strip().startswith(label))


@pytest.mark.parametrize(
    ("key", "value", "level"),
    [
        ("green.error_rate", None, "missing"),
        ("green.error_rate", 0.2, "ok"),
        ("blue.error_rate", 1.0, "warning"),
        ("error_rate", 5.0, "critical"),
        ("green.error_rate", 12.0, "critical"),  # the trigger's condition holds (and the threshold too)
        ("throughput", 99.0, "warning"),  # under the minimum
        ("throughput", 100.0, "ok"),
        ("memory_usage", 99.0, "plain"),  # no threshold in the plan: no colour
        ("red.error_rate", 50.0, "plain"),  # only blue. and green. inherit a threshold
    ],
)
def test_levels_follow_the_plan(key, value, level):
    assert LEVELS.level(key, value) == level


def test_a_trigger_makes_a_figure_critical_below_its_thresholds():
    levels = m.Levels({}, [Trigger(name="integrity", metric="data_integrity_score", threshold=99, op="<")])
    assert levels.level("data_integrity_score", 98.0) == "critical"
    assert levels.level("data_integrity_score", 99.5) == "plain"


def test_missing_figures_show_a_dash_never_zero(plan):
    shown = m.metrics(_state(plan), LEVELS, m.Trend())
    for label in ("req/s", "error %", "p95 ms", "blue→green", "green→blue"):
        line = _line(shown, label)
        assert line.count(m.MISSING) >= 2 and "0" not in line, line
    for label in ("cpu", "green db", "cache hit"):
        line = _line(shown, label)
        assert line.count(m.MISSING) == 3 and "0" not in line, line
    assert _style_of(shown, m.MISSING) == ".metric--missing"


def test_figures_are_shown_and_coloured_by_their_level(plan):
    state = _state(plan, metrics=FULL, lag={"blue_to_green": Lag(1.4, 0), "green_to_blue": Lag(75.0, 12)})
    shown = m.metrics(state, LEVELS, None, width=40)
    assert _line(shown, "req/s").split() == ["req/s", "80.0", "20.0", "total", "100.0"]
    assert _line(shown, "error %").split() == ["error", "%", "0.50", "2.00"]
    assert _line(shown, "p95 ms").split() == ["p95", "ms", "40", "2500"]
    assert _line(shown, "blue→green").split() == ["blue→green", "1.4s", "0"]
    assert _line(shown, "green→blue").split() == ["green→blue", "1m15s", "12"]
    assert _style_of(shown, "0.50") == ".metric--ok"
    assert _style_of(shown, "2.00") == ".metric--warning"
    assert _style_of(shown, "2500") == ".metric--critical"
    assert _style_of(shown, "1m15s") == ".metric--warning"
    assert (
        "cpu 10%" in shown.plain
        and "green db up" in shown.plain
        and "integrity full check 100%" in shown.plain
    )
    assert "Green trend" not in shown.plain  # no trend kept: no trend shown


def test_the_panel_folds_into_two_columns_when_wide(plan):
    state = _state(plan, metrics=FULL)
    narrow = m.metrics(state, LEVELS, m.Trend(), width=50)
    wide = m.metrics(state, LEVELS, m.Trend(), width=100)
    assert len(wide.plain.splitlines()) < len(narrow.plain.splitlines())
    assert max(len(line) for line in wide.plain.splitlines()) <= 100
    assert "Traffic" in _line(wide, "Traffic") and "System & database" in _line(wide, "Traffic")


def test_db_down_is_critical(plan):
    shown = m.metrics(_state(plan, metrics={"green.db_up": 0.0}), LEVELS)
    assert "green db DOWN" in shown.plain and _style_of(shown, "DOWN") == ".metric--critical"


def test_alarms_worst_first_and_nothing_when_all_is_well(plan):
    assert m.alarms(_state(plan)).plain == ""
    alarms = (
        Alarm("throughput", "warning", 50.0, 100.0, "throughput 50req/s < minimum 100req/s"),
        Alarm("cpu_usage", "critical", 97.0, 95.0, "cpu_usage 97% >= critical 95%"),
        Alarm(
            "green.error_rate",
            "trigger",
            12.0,
            10.0,
            "spike: green.error_rate > 10, rollback (immediate) in 12s",
        ),
    )
    lines = m.alarms(_state(plan, alarms=alarms)).plain.splitlines()
    assert [line.split()[0] for line in lines] == ["ROLLBACK", "CRITICAL", "warning"]
    assert lines[0].endswith("rollback (immediate) in 12s")
    # more than fit: the last line counts the rest
    many = alarms + tuple(Alarm(f"m{i}", "warning", 1.0, 0.0, f"m{i} high") for i in range(3))
    lines = m.alarms(_state(plan, alarms=many), limit=3).plain.splitlines()
    assert len(lines) == 3 and lines[2].startswith(" … 4 more") and lines[0].split()[0] == "ROLLBACK"


def test_trend_keeps_the_worst_value_per_bucket_and_stays_bounded(plan):
    trend = m.Trend(window_s=30, step_s=10)
    for now, err in ((1000.0, 1.0), (1004.0, 3.0), (1008.0, 2.0), (1010.0, None), (1020.0, 0.5)):
        trend.add(build_state(plan, Machine("active", 1, 0.0), now=now, metrics={"green.error_rate": err}))
    assert trend.series("green.error_rate", 102, 3) == [3.0, None, 0.5]
    for i in range(10):
        trend.add(build_state(plan, Machine("active", 1, 0.0), now=1030.0 + 10 * i, metrics={}))
    assert len(trend.buckets) == 3
    trend.add(build_state(plan, Machine("active", 1, 0.0), now=10.0, metrics={"green.error_rate": 1.0}))
    assert len(trend.buckets) == 1  # the clock went back: start again


def test_sparkline_scales_to_the_largest_value():
    line = m.sparkline([0.0, 3.0, None, 10.0], "green.error_rate", LEVELS)
    assert line.plain == "▁▃ █"
    assert [s.style for s in line.spans] == [".metric--ok", ".metric--warning", ".metric--critical"]


# ------------------------------------------------------------------------------------------------ on the screen
class Source:
    """A state source the test swaps snapshots in; each call gives a new snapshot object (as the journal does)."""

    def __init__(self, state: CockpitState):
        self.state = state

    def __call__(self) -> CockpitState:
        return dataclasses.replace(self.state)


async def test_metrics_redraw_on_change_only(plan):
    source = Source(
        _state(plan, metrics=FULL, lag={"blue_to_green": Lag(0.5, 0), "green_to_blue": Lag(0.0, 0)})
    )
    app = CockpitApp(plan, state_source=source, poll_interval=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one("#metrics-text")
        await until(
            pilot, lambda: "80.0" in text(app, "#metrics-text") and app.states_seen >= 3, what="the metrics"
        )
        await pilot.pause()
        before, seen = panel.renders, app.states_seen
        # new snapshots with the same figures: taken in, not redrawn
        source.state = dataclasses.replace(source.state, metrics=dict(FULL))
        await until(pilot, lambda: app.states_seen >= seen + 3, what="unchanged snapshots taken in")
        assert panel.renders == before
        # new figures: redrawn once, and shown
        source.state = dataclasses.replace(
            source.state,
            metrics={**FULL, "blue.rps": 81.5},
            lag={"blue_to_green": Lag(400.0, 7), "green_to_blue": Lag(0.0, 0)},
        )
        await until(pilot, lambda: "81.5" in text(app, "#metrics-text"), what="the new req/s")
        seen = app.states_seen
        await until(pilot, lambda: app.states_seen >= seen + 3, what="more snapshots")
        assert panel.renders == before + 1
        shown = text(app, "#metrics-text")
        assert _line(panel.content, "blue→green").split() == ["blue→green", "6m40s", "7"]
        assert "81.5" in shown


async def test_missing_figures_and_alarms_on_the_screen(plan):
    source = Source(_state(plan))
    app = CockpitApp(plan, state_source=source, poll_interval=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.state is not None, what="the first state")
        await pilot.pause()
        panel = app.query_one("#metrics-text")
        assert _line(panel.content, "req/s").split() == ["req/s", m.MISSING, m.MISSING, "total", m.MISSING]
        assert "cpu –" in text(app, "#metrics-text")
        alarms = app.query_one("#alarms", AlarmsPanel)
        assert not alarms.display  # all is well: no alarm panel
        trigger = Alarm(
            "green.error_rate",
            "trigger",
            12.0,
            10.0,
            "spike: green.error_rate > 10, rollback (immediate) in 12s",
        )
        source.state = dataclasses.replace(source.state, alarms=(trigger,))
        await until(
            pilot,
            lambda: alarms.display and "rollback (immediate) in 12s" in text(app, "#alarms"),
            what="the trigger countdown",
        )
        assert alarms.border_title == "Alarms (1)" and alarms.has_class("-critical")
        source.state = dataclasses.replace(source.state, alarms=())
        await until(pilot, lambda: not alarms.display, what="the alarm panel to go")


async def test_narrow_screen_shows_the_metrics(plan):
    source = Source(_state(plan, metrics=FULL))
    app = CockpitApp(plan, state_source=source, poll_interval=0.02)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "80.0" in text(app, "#metrics-text"), what="the metrics")
        await pilot.pause()
        metrics = app.query_one("#metrics")
        assert metrics.display and not app.query_one("#actions").display
        panel = app.query_one("#metrics-text")
        # two columns: traffic beside health, all of it inside the panel
        assert "System & database" in _line(panel.content, "Traffic")
        assert len(panel.content.plain.splitlines()) <= metrics.content_size.height


def test_figures_say_their_window_and_a_silent_source_is_greyed_with_its_age(plan):
    from cockpit.tui import render

    now = 1030.0
    fresh = dataclasses.replace(
        _state(
            plan,
            metrics={
                **FULL,
                "access_log.window_s": 60.0,
                "traffic_distribution.window_s": 4.0,
                "traffic_distribution.restarted": 1.0,
            },
            green_live=20.0,
            lag={"blue_to_green": Lag(1.4, 0), "green_to_blue": Lag(2.0, 3)},
        ),
        sources={"accesslogsource": now - 1, "sync": now - 1, "traffic": now - 1, "systemmetrics": now - 1},
    )
    shown = m.metrics(fresh, LEVELS)
    assert "last 1m" in _line(shown, "Traffic") and "stale" not in shown.plain
    split = render.split(fresh).plain
    assert "20.0% green · last 4s, since the change" in split and "✓ as configured" in split
    quiet = dataclasses.replace(
        fresh,
        sources={
            "accesslogsource": now - 42,
            "sync": now - 15,
            "traffic": now - 90,
            "systemmetrics": now - 1,
        },
    )
    shown = m.metrics(quiet, LEVELS)
    assert "stale: 42.0s old" in _line(shown, "Traffic") and "stale: 15.0s old" in _line(shown, "Sync lag")
    assert _style_of(shown, "2500") == ".metric--missing"  # a critical p95 from 42 s ago is not shown as now
    assert _style_of(shown, "cpu") == "" and _style_of(shown, "10%") != ".metric--missing"  # system is fresh
    split = render.split(quiet).plain
    assert "20% green, read 1m30s ago" in split and "20.0% green, 42s old" in split


def test_integrity_figures_say_what_they_cover(plan):
    state = _state(
        plan,
        metrics={
            **FULL,
            "data_integrity_checked_at": 1030.0 - 240,
            "data_integrity_touched_score": 99.5,
            "data_integrity_touched_at": 1030.0 - 60,
        },
    )
    line = _line(m.metrics(state, LEVELS), "integrity")
    assert line.strip() == "integrity full check 100% 4m ago · touched rows 99.5% 1m ago"
