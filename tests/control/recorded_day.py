"""A short Day 0 recorded by a real controller (its own loop and thread, the file traffic driver, the real journal
writer): figures sampled every tick, an advance, an error spike that raises and clears an alarm, a hold, a
rollback. The replay tests play it back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Event, Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.core.recorder import Result
from cockpit.drivers.traffic.file import FileTrafficDriver
from tests.conftest import wait_for
from tests.core.plans import BASE

PLAN = BASE.replace("drain_timeout: 5s", "drain_timeout: 1s") + (
    "metrics:\n  error_rate: {warning: 1, critical: 5, unit: '%'}\n  response_time_p95: {warning: 500, critical: 2000, unit: ms}\n"
)
SPIKE = 7.25  # green's error rate during the spike (critical from 5)
CALM = 0.25


class ScriptedTraffic:
    """The access log's figures as the test sets them (the rest of the chain is real: rules, journal, replay)."""

    source_name = "accesslogsource"

    def __init__(self) -> None:
        self.green_error = CALM

    def poll(self) -> dict[str, float | None]:
        return {
            "blue.error_rate": 0.5,
            "green.error_rate": self.green_error,
            "blue.response_time_p95": 81.0,
            "green.response_time_p95": 123.0,
            "blue.rps": 12.0,
            "green.rps": 3.0,
            "throughput": 15.0,
            "access_log.window_s": 30.0,
        }


@dataclass(frozen=True)
class Recorded:
    plan: Plan
    journal: Path
    events: list[Event]

    def first(self, kind: str, **payload: object) -> Event:
        return next(
            e
            for e in self.events
            if e.kind == kind and all(e.payload.get(k) == v for k, v in payload.items())
        )


def _events(path: Path) -> list[Event]:
    with Journal(path, readonly=True) as j:
        return j.events_between()


def _act(thread: ControllerThread, make: Callable[[Controller], Coroutine[Any, Any, Result]]) -> Result:
    """Run one action on the controller's own loop, from any thread (running loop or none)."""
    assert thread.controller is not None
    return asyncio.run_coroutine_threadsafe(make(thread.controller), thread.loop).result(60)


def record_day(folder: Path) -> Recorded:
    (folder / "plan.yaml").write_text(PLAN)
    plan = load_plan(folder / "plan.yaml")
    journal = plan.path(plan.journal.path)
    traffic = ScriptedTraffic()
    thread = ControllerThread(
        plan,
        drivers=Drivers(traffic=FileTrafficDriver(plan.path(plan.traffic.state_file)), metrics=[traffic]),
        run_sync=False,
    )
    thread.start()
    try:

        def kinds() -> list[tuple[str, dict]]:
            return [(e.kind, e.payload) for e in _events(journal)]

        def has_alarm(kind: str) -> bool:
            return any(k == kind and p.get("metric") == "green.error_rate" for k, p in kinds())

        with Journal(journal, readonly=True) as j:
            wait_for(lambda: len(j.sample_series("green.error_rate")) >= 3, what="a few ticks sampled")
        assert _act(thread, lambda c: c.advance()).ok
        traffic.green_error = SPIKE
        wait_for(lambda: has_alarm("alarm.raised"), what="the spike's alarm")
        traffic.green_error = CALM
        wait_for(lambda: has_alarm("alarm.cleared"), what="the alarm cleared")
        assert _act(thread, lambda c: c.hold("watching green's errors")).ok
        assert _act(thread, lambda c: c.rollback("rehearsed rollback")).ok
        with Journal(journal, readonly=True) as j:
            seen = len(j.sample_series("green.error_rate"))
            # a second of ticks after it (10 at 0.1 s): at the slowest speed a replay takes 4 s to get through
            wait_for(lambda: len(j.sample_series("green.error_rate")) >= seen + 10, what="ticks after")
    finally:
        thread.stop()
    return Recorded(plan, journal, _events(journal))
