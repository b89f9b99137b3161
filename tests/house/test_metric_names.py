"""The metrics the cockpit knows (cockpit/core/metric_names.py, what `plan check` validates names against) are
the metrics its sources really produce: the controller's refresh over a plan's real drivers (host, green's
PostgreSQL, blue's backups, the integrity watch, the sync's lag), and the access log's figures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cockpit.control.controller import Controller
from cockpit.control.factory import build_drivers
from cockpit.core.journal import Journal
from cockpit.core.metric_names import KNOWN
from cockpit.core.plan import load_plan
from cockpit.drivers.metrics.access_log import AccessLogMetrics
from tests.conftest import wait_for
from tests.sync.test_sync_support import make_pair, write_sync_plan
from tests.traffic.test_access_log import line


async def test_the_controllers_sources_produce_only_known_names(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCKPIT_TEST_GREEN_URL", pg_url)
    db = make_pair(tmp_path, pg_url)
    plan = load_plan(write_sync_plan(tmp_path, db, "tables: [items, Pairs]\nintegrity_interval: 100ms"))
    drivers = build_drivers(plan)
    controller = Controller(plan, drivers, Journal(tmp_path / "journal.db"))
    await controller.start()
    try:
        seen: set[str] = set()

        async def all_sources_reported() -> bool:
            await controller.refresh()
            seen.update(controller.metrics)
            return {"data_integrity_score", "cpu_usage", "green.db_up", "sync_lag"} <= seen

        deadline = time.monotonic() + 30
        while not await all_sources_reported():
            assert time.monotonic() < deadline, sorted(seen)
        assert seen <= KNOWN, sorted(seen - KNOWN)
    finally:
        await controller.close()
        drivers.close()


def test_the_access_logs_figures_are_known_names(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    log.touch()
    metrics = AccessLogMetrics(log)
    now = time.time()
    with open(log, "a", encoding="utf-8") as f:
        for i, side in enumerate(["blue", "green"] * 10):
            f.write(line(now, 500 if i % 7 == 0 else 200, side=side))
    names: set[str] = set()
    wait_for(lambda: names.update(metrics.poll().as_metrics()) or "green.response_time_p95" in names, 10)
    metrics.close()
    assert "green.error_rate" in names and "throughput" in names
    assert names <= KNOWN, sorted(names - KNOWN)
