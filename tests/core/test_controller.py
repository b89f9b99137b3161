"""Every controller transition, gates, preemption, triggers: a real controller on real files."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers
from cockpit.core.journal import Journal
from cockpit.core.lock import LockHeld
from cockpit.core.plan import load_plan
from tests.conftest import sample_values
from tests.core.drivers import GatedTraffic, StaticMetrics
from tests.core.plans import BASE, write_plan


def split(tmp_path: Path) -> float:
    return json.loads((tmp_path / "split.json").read_text())["green_percent"]


async def open_controller(tmp_path: Path, text: str = BASE, **drivers_kw: object) -> Controller:
    plan = load_plan(write_plan(tmp_path, text))
    traffic = drivers_kw.pop("traffic", None) or GatedTraffic(tmp_path / "split.json")
    drivers = Drivers(traffic=traffic, **drivers_kw)  # type: ignore[arg-type]
    controller = Controller(plan, drivers, Journal(tmp_path / "journal.db"), actor="tester@host")
    await controller.start()
    return controller


async def until(predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_every_transition(tmp_path: Path) -> None:
    c = await open_controller(tmp_path)
    try:
        assert c.machine.state == "ready" and c.machine.phase_index == -1
        r = await c.advance()
        assert r.ok, r.message
        assert (c.machine.state, c.machine.phase_index, split(tmp_path)) == ("active", 0, 5)
        assert [s[0] for s in r.steps] == ["gates", "green_services", "green_health", "traffic", "verify"]
        assert (await c.advance()).ok and split(tmp_path) == 20
        assert (await c.hold("watching p95")).ok and c.machine.state == "held"
        refused = await c.advance()
        assert refused.outcome == "refused" and "resume first" in refused.message and split(tmp_path) == 20
        assert (await c.hold()).outcome == "refused"
        assert (await c.resume()).ok and c.machine.state == "active"
        assert (await c.resume()).outcome == "refused"
        assert (await c.advance(to="complete")).ok
        assert (c.machine.state, split(tmp_path)) == ("complete", 100)
        assert (await c.advance()).outcome == "refused"
        r = await c.rollback("drill", "immediate")
        assert r.ok, r.message
        assert (c.machine.state, c.machine.phase_index, split(tmp_path)) == ("rolled_back", -1, 0)
        names = [s[0] for s in r.steps]
        assert names == ["traffic", "drain", "stop_green", "start_blue", "health", "integrity", "notify"]
        assert (await c.advance(to="nope")).outcome == "refused"
        assert (await c.advance()).ok and (c.machine.state, split(tmp_path)) == ("active", 5)
        # the journal has every action with intent, steps and outcome
        actions = c.journal.actions(20)
        assert [a.verb for a in actions][:3] == ["advance", "advance", "hold"]
        assert all(a.outcome is not None for a in actions)
        assert actions[0].actor == "tester@host" and actions[0].steps[3].name == "traffic"
    finally:
        await c.close()


async def test_failed_traffic_leaves_world_as_it_was(tmp_path: Path) -> None:
    traffic = GatedTraffic(tmp_path / "split.json")
    c = await open_controller(tmp_path, traffic=traffic)
    try:
        assert (await c.advance()).ok
        traffic.fail_with = "nginx: [emerg] unknown directive"
        r = await c.advance()
        assert r.outcome == "failed" and "unknown directive" in r.message
        assert (c.machine.state, c.machine.phase_index, split(tmp_path)) == ("active", 0, 5)
    finally:
        await c.close()


async def test_gates_and_soak_block_and_force_is_journaled(tmp_path: Path) -> None:
    text = BASE.replace(
        "{name: validation, green: 5, soak: 0s}",
        "{name: validation, green: 5, soak: 1h, gates: [{metric: green.error_rate, op: '<', value: 1}]}",
    )
    metrics = StaticMetrics(**{"green.error_rate": 3.0})
    c = await open_controller(tmp_path, text, metrics=[metrics])
    try:
        assert (await c.advance()).ok
        await c.refresh()
        r = await c.advance()
        assert r.outcome == "refused"
        assert "soak: 0s of 3600s in validation" in r.message and "green.error_rate < 1 (now 3)" in r.message
        assert split(tmp_path) == 5
        r = await c.advance(force=True, reason="CAB approved")
        assert r.ok and split(tmp_path) == 20
        forced = c.journal.actions(1)[0]
        assert forced.args["force"] is True and "forced past" in forced.steps[0].detail
    finally:
        await c.close()


async def test_rollback_preempts_an_advance_in_flight(tmp_path: Path) -> None:
    traffic = GatedTraffic(tmp_path / "split.json")
    c = await open_controller(tmp_path, traffic=traffic)
    try:
        assert (await c.advance()).ok
        traffic.gate, traffic.entered = threading.Event(), threading.Event()
        adv = asyncio.ensure_future(c.advance())
        await until(traffic.entered.is_set)
        assert c.snapshot().running_action == "advance"
        rb = asyncio.ensure_future(c.rollback("p95 spike", "immediate"))
        await until(lambda: adv.done())
        assert adv.result().outcome == "preempted" and "traffic" in adv.result().message
        traffic.gate.set()  # the advance's apply (already in nginx's hands) finishes; the rollback goes after it
        result = await rb
        assert result.ok, result.message
        assert traffic.applied[-1] == 0 and split(tmp_path) == 0
        assert c.machine.state == "rolled_back"
    finally:
        await c.close()


async def test_trigger_fires_rollback_after_its_duration(tmp_path: Path) -> None:
    text = BASE.replace(
        "rollback:\n",
        "rollback:\n  triggers:\n    - {name: error_rate_spike, metric: green.error_rate, op: '>', threshold: 10, for: 0.3s, action: immediate}\n",
    )
    metrics = StaticMetrics(**{"green.error_rate": 0.5})
    c = await open_controller(tmp_path, text, metrics=[metrics])
    runner = asyncio.ensure_future(c.run())
    try:
        assert (await c.advance()).ok
        metrics.values["green.error_rate"] = 25.0
        await until(
            lambda: any(a.level == "trigger" for a in (c.latest.alarms if c.latest else ())), timeout=5
        )
        await until(lambda: c.machine.state == "rolled_back", timeout=10)
        assert split(tmp_path) == 0
        rb = [a for a in c.journal.actions(5) if a.verb == "rollback"][0]
        assert rb.actor.endswith("(trigger)") and "error_rate_spike" in rb.reason
    finally:
        await c.close()
        await runner


async def test_a_second_controller_is_refused(tmp_path: Path) -> None:
    c = await open_controller(tmp_path)
    try:
        plan = load_plan(tmp_path / "plan.yaml")
        other = Controller(plan, Drivers(), Journal(tmp_path / "journal.db"))
        with pytest.raises(LockHeld, match="already running"):
            await other.start()
    finally:
        await c.close()
    again = await open_controller(tmp_path)  # released on close
    await again.close()


async def test_gradual_rollback_steps_down(tmp_path: Path) -> None:
    traffic = GatedTraffic(tmp_path / "split.json")
    c = await open_controller(tmp_path, traffic=traffic)
    try:
        assert (await c.advance(to="ab-test")).ok
        r = await c.rollback("slow p95", "gradual")
        assert r.ok
        assert traffic.applied == [50, 20, 5, 0]
        assert "50% -> " not in r.steps[0][3] and "20% -> 5% -> 0%" in r.steps[0][3]
    finally:
        await c.close()


async def test_a_failing_source_is_journaled_once_and_its_recovery_too(tmp_path: Path) -> None:
    class Flaky(StaticMetrics):
        broken = True

        def poll(self) -> dict[str, float | None]:
            if self.broken:
                raise ConnectionError("neon cold start")
            return super().poll()

    source = Flaky(cpu_usage=10.0)
    c = await open_controller(tmp_path, metrics=[source])
    try:
        for _ in range(5):
            await c.refresh()
        errors = c.journal.events(kinds=["source.error"])
        assert len(errors) == 1 and "neon cold start" in errors[0].payload["error"]
        source.broken = False
        await c.refresh()
        await c.refresh()
        assert len(c.journal.events(kinds=["source.recovered"])) == 1
        assert c.metrics["cpu_usage"] == 10.0
    finally:
        await c.close()


async def test_old_samples_are_dropped_hourly_while_the_controller_runs(tmp_path: Path) -> None:
    import time

    c = await open_controller(tmp_path)
    try:
        now = [time.time()]
        c.clock = lambda: now[0]
        c.monitor.next_prune = now[0] + 3600  # as start() left it, on this clock
        c.journal.samples({"cpu_usage": 50.0}, ts=now[0] - 7 * 86400 + 60)  # 7 days old in a minute
        await c.refresh()
        assert 50.0 in sample_values(c.journal.path, "cpu_usage")
        now[0] += 3600
        await c.refresh()
        assert 50.0 not in sample_values(c.journal.path, "cpu_usage")
    finally:
        await c.close()


async def test_old_samples_are_dropped_at_start_events_never(tmp_path: Path) -> None:
    import time

    journal = Journal(tmp_path / "journal.db")
    journal.samples({"cpu_usage": 50.0}, ts=time.time() - 8 * 86400)
    journal.samples({"cpu_usage": 40.0}, ts=time.time() - 3600)
    journal.event("note", {"text": "kept"})
    journal.close()
    c = await open_controller(tmp_path)
    try:
        assert sample_values(c.journal.path, "cpu_usage") == [40.0]
        assert (
            c.journal.events(kinds=["note"])
            and c.journal.events(kinds=["controller.start"])[0].payload["samples_pruned"] == 1
        )
    finally:
        await c.close()
