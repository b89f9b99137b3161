"""The whole rollback sequence with real drivers: real processes for blue and green, a real health check, a real
webhook receiver. Each step is timed in the journal."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from cockpit.control.controller import Controller
from cockpit.control.factory import build_drivers
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from tests.core.plans import BASE, write_plan
from tests.drivers.conftest import LocalHTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan_text(blue_port: int, green_port: int, hook: str) -> str:
    py = sys.executable
    return (
        BASE.replace(
            "green:\n  database: {engine: sqlite, path: green.db}",
            f"""\
  services:
    driver: processes
    units: [blue-1]
    commands: {{blue-1: ["{py}", -m, http.server, "{blue_port}", --bind, 127.0.0.1]}}
    stop_timeout: 5s
green:
  database: {{engine: sqlite, path: green.db}}
  services:
    driver: processes
    units: [green-1]
    commands: {{green-1: ["{py}", -m, http.server, "{green_port}", --bind, 127.0.0.1]}}
    stop_timeout: 5s""",
        )
        + f"""\
health_checks:
  - {{name: blue-1, url: "http://127.0.0.1:{blue_port}/", side: blue, retries: 20, interval: 0.1s, timeout: 2s}}
  - {{name: green-1, url: "http://127.0.0.1:{green_port}/", side: green, retries: 20, interval: 0.1s, timeout: 2s}}
alerts:
  webhook: {{url: "{hook}", min_level: info}}
"""
    )


async def test_rollback_moves_traffic_stops_green_starts_blue_checks_and_notifies(tmp_path: Path) -> None:
    hook = LocalHTTP()
    hook.thread.start()
    blue_port, green_port = free_port(), free_port()
    plan = load_plan(
        write_plan(tmp_path, plan_text(blue_port, green_port, f"http://127.0.0.1:{hook.port}/ok"))
    )
    drivers = build_drivers(plan, with_metrics=False)
    drivers.green_services.start(["green-1"])
    c = Controller(plan, drivers, Journal(tmp_path / "journal.db"), actor="sre@host")
    await c.start()
    try:
        assert (await c.advance(to="ab-test")).ok
        r = await c.rollback("error rate 12% on green", "immediate")
        assert r.ok, r.as_dict()
        steps = {name: (status, detail) for name, status, _d, detail in r.steps}
        assert steps["traffic"][0] == "ok" and steps["stop_green"] == ("ok", "green-1 stopped")
        assert steps["start_blue"] == ("ok", "blue-1 running")
        assert steps["health"] == ("ok", "1/1 healthy")
        assert steps["notify"] == ("ok", "1/1 channels delivered")
        assert not drivers.green_services.status(["green-1"])[0].running
        assert drivers.blue_services.status(["blue-1"])[0].running
        sent = [q for q in hook.requests if q.method == "POST"]
        assert (
            len(sent) == 1
            and "ROLLBACK" in sent[0].json()["text"]
            and "error rate 12%" in sent[0].json()["text"]
        )
        journaled = c.journal.actions(1)[0]
        assert [s.name for s in journaled.steps] == [s[0] for s in r.steps]
        assert all(s.duration_s is not None for s in journaled.steps)
        assert r.duration_s < float(plan.rollback.max_duration)
        # advancing again brings green back up and checks it before any user is sent there
        again = await c.advance()
        assert again.ok, again.as_dict()
        steps = {name: (status, detail) for name, status, _d, detail in again.steps}
        assert steps["green_services"] == ("ok", "green-1 running") and steps["green_health"] == (
            "ok",
            "1/1 healthy",
        )
    finally:
        await c.close()
        drivers.blue_services.stop(["blue-1"])
        drivers.green_services.stop(["green-1"])
        hook.server.shutdown()


async def test_a_failing_step_is_reported_and_the_sequence_goes_on(tmp_path: Path) -> None:
    blue_port, green_port = free_port(), free_port()
    text = plan_text(blue_port, green_port, "http://127.0.0.1:9/nothing-listens")
    text = text.replace(
        f'url: "http://127.0.0.1:{blue_port}/", side: blue, retries: 20',
        f'url: "http://127.0.0.1:{blue_port}/missing", side: blue, retries: 2',
    )
    plan = load_plan(write_plan(tmp_path, text))
    drivers = build_drivers(plan, with_metrics=False)
    c = Controller(plan, drivers, Journal(tmp_path / "journal.db"))
    await c.start()
    try:
        assert (await c.advance()).ok
        r = await c.rollback("drill", "immediate")
        assert r.outcome == "partial" and "health" in r.message and "notify" in r.message
        statuses = {name: status for name, status, _d, _x in r.steps}
        assert statuses["traffic"] == "ok" and statuses["start_blue"] == "ok"
        assert statuses["health"] == "failed" and statuses["notify"] == "failed"
        assert c.machine.state == "rolled_back"  # all traffic is on blue: that part holds
    finally:
        await c.close()
        drivers.blue_services.stop(["blue-1"])
