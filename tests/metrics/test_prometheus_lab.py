"""The lab with Prometheus as its metric source (issue 12): `lab up --metrics prometheus` starts Debian's
Prometheus on loopback, scraping the lab's services (prometheus_client, cockpit/lab/app_metrics.py) each second.

- The figures read through it match the access log's over the same requests, within the access log's own truth
  checks' tolerances (tests/traffic/test_access_log.py): error rates within 0.5 point, p95 within 10 % (plus
  1 ms: nginx logs `$request_time` to the millisecond), here with green answering ~10 % 500s, 40 ms slower, and
  then its database down (503s: the connection-failure share), and blue 30 ms slower. The latencies are in the
  tens of ms, as in the truth check: the service's histogram cannot see the time before its handler runs (the
  thread waking, the request read: ~2-3 ms at p95 on a loaded 2-core machine), which at a 12 ms p95 is more
  than 10 %.
- Stopping Prometheus, or freezing it, marks the controller's metrics stale within 2 ticks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cockpit.control.controller import Controller
from cockpit.control.factory import build_drivers
from cockpit.core.journal import Journal
from cockpit.core.metric_names import KNOWN
from cockpit.core.plan import Plan, load_plan
from cockpit.core.rules import TriggerTracker
from cockpit.drivers.metrics.access_log import AccessLogMetrics
from cockpit.drivers.metrics.prometheus import APP_REQUESTS, PrometheusMetrics
from cockpit.drivers.services.processes import ProcessesDriver
from cockpit.lab.errors import LabError
from cockpit.lab.lab import LOAD_UNIT, LabOptions, down, listening, set_fault, status, up
from cockpit.lab.prometheus import UNIT as PROMETHEUS_UNIT
from cockpit.lab.prometheus import find_prometheus
from tests.conftest import wait_for
from tests.core.test_processes import cockpit

try:
    find_prometheus()
except LabError as exc:
    pytestmark = pytest.mark.skip(reason=str(exc))

SIDES = ("blue", "green")


@pytest.fixture
def lab(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, Plan]]:
    root = tmp_path / "lab"
    opts = LabOptions(
        root=root,
        rate=40,
        users=60,
        rows=400,
        pg_url=pg_url,
        green_percent=50,
        metrics="prometheus",
        quiet=True,
    )
    try:
        up(opts)
        yield root, load_plan(root / "plan.yaml")
    finally:
        down(root, quiet=True)


def unit(root: Path, name: str) -> ProcessesDriver:
    return ProcessesDriver({name: ["true"]}, pid_dir=root / "run", stop_timeout=10.0)


def exported(plan: Plan, side: str) -> float:
    """The requests a side's services counted, read from their own /metrics (what Prometheus must catch up to)."""
    total = 0.0
    for upstream in getattr(plan, side).upstreams:
        for line in httpx.get(f"http://{upstream}/metrics", timeout=5).text.splitlines():
            if line.startswith(APP_REQUESTS + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_figures_through_prometheus_match_the_access_log(lab: tuple[Path, Plan]) -> None:
    root, plan = lab
    assert plan.prometheus is not None and plan.prometheus.preset == "app"
    log = [plan.path(b.access_log) for b in plan.traffic.balancers if b.access_log]
    access = AccessLogMetrics(log, window_s=600, from_end=False)  # every request since the lab went up
    try:
        set_fault(root, "green", errors=10, latency_ms=40)
        set_fault(root, "blue", latency_ms=30)
        wait_for(lambda: access.poll().green.count >= 300, 60, what="300 requests on green")
        set_fault(root, "green", db_down=True)  # every API request on green answers 503 from here
        n = access.poll().green.count
        wait_for(lambda: access.poll().green.count >= n + 60, 30, what="60 requests on green, database down")
        unit(root, LOAD_UNIT).stop([LOAD_UNIT])

        # the same requests on both sides of the comparison: Prometheus has scraped the services' final counters
        source = PrometheusMetrics(url=plan.prometheus.url, jobs=dict(plan.prometheus.jobs), window="10m")
        for side in SIDES:
            promql = f'sum({APP_REQUESTS}{{job="{side}"}})'
            wait_for(
                lambda s=side, q=promql: source.query(q) == exported(plan, s), 15, what=f"{side} scraped"
            )
        got = source.sample()
        truth = access.poll().as_metrics()
    finally:
        access.close()
    for side in SIDES:
        print(
            f"{side}: access log {truth[f'{side}.requests']:.0f} requests, "
            + ", ".join(
                f"{name} {truth.get(f'{side}.{name}')} vs Prometheus {got.get(f'{side}.{name}')}"
                for name in ("error_rate", "connection_failure_rate", "response_time_p95")
            )
        )
    for side in SIDES:
        assert got[f"{side}.prometheus_stale"] == 0.0
        assert got[f"{side}.error_rate"] == pytest.approx(truth[f"{side}.error_rate"], abs=0.5)
        assert got[f"{side}.connection_failure_rate"] == pytest.approx(
            truth[f"{side}.connection_failure_rate"], abs=0.5
        )
        assert got[f"{side}.response_time_p95"] == pytest.approx(
            truth[f"{side}.response_time_p95"], rel=0.10, abs=1.0
        )
    # the faults are seen: ~10 % 500s before the outage, all 503s during it; green's p95 is past the 40 ms
    assert got["green.error_rate"] > 12 and got["green.connection_failure_rate"] > 8
    assert got["blue.error_rate"] == 0.0 and got["green.response_time_p95"] > 40
    assert got["blue.response_time_p95"] > 30


async def _ticks_until_stale(controller: Controller, deadline_s: float = 30.0) -> int:
    """Ticks (refreshes) until every side reads stale with no figures; fails past the deadline."""
    end = time.monotonic() + deadline_s
    ticks = 0
    while True:
        await controller.refresh()
        ticks += 1
        m = controller.metrics
        if all(m.get(f"{s}.prometheus_stale") == 1.0 and f"{s}.error_rate" not in m for s in SIDES):
            return ticks
        assert time.monotonic() < end, f"not stale after {ticks} ticks: {m}"


async def _fresh(controller: Controller) -> None:
    end = time.monotonic() + 30
    while True:
        await controller.refresh()
        m = controller.metrics
        fresh = m.get("prometheus.up") == 1.0 and all(m.get(f"{s}.prometheus_stale") == 0.0 for s in SIDES)
        if fresh and "green.error_rate" in m and "blue.response_time_p95" in m:
            return
        assert time.monotonic() < end, f"never fresh: {m}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
async def test_prometheus_gone_marks_the_controllers_metrics_stale_within_two_ticks(
    lab: tuple[Path, Plan], tmp_path: Path, how: str
) -> None:
    root, plan = lab
    drivers = build_drivers(plan, with_sync=False)
    controller = Controller(plan, drivers, Journal(tmp_path / "journal.db"))
    await controller.start()
    prometheus = unit(root, PROMETHEUS_UNIT)
    pid = int(json.loads((root / "run" / f"{PROMETHEUS_UNIT}.pid").read_text())["pid"])
    try:
        await _fresh(controller)
        assert set(controller.metrics) <= KNOWN, sorted(set(controller.metrics) - KNOWN)
        if how == "stopped":
            prometheus.stop([PROMETHEUS_UNIT])
        else:  # alive but answering nothing: each query waits for the source's timeout
            os.kill(pid, signal.SIGSTOP)
        ticks = await _ticks_until_stale(controller)
        print(f"Prometheus {how}: stale after {ticks} tick(s)")
        assert ticks <= 2
        assert controller.metrics["prometheus.up"] == 0.0
        # journaled once, as any failing source is (the screen greys the source from its last good reading)
        errors = controller.journal.events(kinds=["source.error"])
        assert [e.payload["source"] for e in errors] == ["metrics._PrometheusSource"], errors
        assert "PrometheusError" in errors[0].payload["error"]
    finally:
        if how == "frozen":
            os.kill(pid, signal.SIGCONT)
        await controller.close()
        drivers.close()


async def test_database_connection_failure_fires_from_prometheus(
    lab: tuple[Path, Plan], tmp_path: Path
) -> None:
    """The lab plan's database_connection_failure trigger (green.connection_failures > 50) on what the controller
    reads through Prometheus: green's database down (the fault switch: the services answer 503, the database
    itself is up, so the cockpit's own probe sees nothing)."""
    root, plan = lab
    drivers = build_drivers(plan, with_sync=False)
    controller = Controller(plan, drivers, Journal(tmp_path / "journal.db"))
    await controller.start()
    tracker = TriggerTracker(plan.rollback.triggers)
    try:
        await _fresh(controller)
        fired, _pending = tracker.update(controller.metrics, time.time())
        assert fired == []
        set_fault(root, "green", db_down=True)
        end = time.monotonic() + 45
        while not fired:
            assert time.monotonic() < end, f"never fired: {controller.metrics}"
            await asyncio.sleep(0.5)
            await controller.refresh()
            fired, _pending = tracker.update(controller.metrics, time.time())
        m = controller.metrics
        print(f"fired: {[f.reason for f in fired]}")
        assert [f.trigger.name for f in fired] == ["database_connection_failure"], [f.reason for f in fired]
        assert (m["green.connection_failure_rate"] or 0) > 50 and (
            m.get("green.db_connection_failure_rate") or 0
        ) < 50
        assert m["green.connection_failures"] == m["green.connection_failure_rate"]
    finally:
        await controller.close()
        drivers.close()


def test_lab_down_stops_prometheus(lab: tuple[Path, Plan]) -> None:
    root, plan = lab
    doc = status(root)
    prom = doc["prometheus"]
    assert doc["metrics"] == "prometheus" and prom["running"] and prom["url"] == plan.prometheus.url
    assert "Prometheus " + prom["url"] in cockpit("lab", "status", "--root", str(root)).stdout
    down(root, quiet=True)
    assert listening([prom["port"]]) == [] and not status(root)["up"]


def test_bad_metrics_choices_are_refused_before_anything_changes(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with pytest.raises(LabError, match="unknown metrics source 'graphite'; known: access-log, prometheus"):
        up(LabOptions(root=root, metrics="graphite", quiet=True))
    assert not root.exists()
    with pytest.raises(LabError, match=r"prometheus not found .*apt-get install -y prometheus"):
        find_prometheus(path=str(tmp_path), fallbacks=())
    done = cockpit("lab", "up", "--root", str(root), "--metrics", "graphite")
    assert done.returncode == 2 and "--metrics: invalid choice: 'graphite'" in done.stderr
    assert not root.exists()
