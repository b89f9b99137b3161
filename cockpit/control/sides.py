"""What the rollback and the advance both do to a side: make its services run (or stop), check its health."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

from cockpit.control.factory import Drivers
from cockpit.core.plan import Plan
from cockpit.core.recorder import StepFailed
from cockpit.drivers.services.base import ServiceDriver


async def set_services(
    driver: ServiceDriver | None, units: list[str], verb: Literal["start", "stop"], info: dict[str, str]
) -> None:
    """`verb` (start|stop) the units; fails the step naming each unit that did not end as asked."""
    if driver is None or not units:
        info["status"], info["detail"] = "skipped", "no services driver in the plan"
        return
    # over a fleet, a FleetError's message names every failed host and why, and the hosts that were ok: the
    # step's journaled detail
    statuses = await asyncio.to_thread(driver.start if verb == "start" else driver.stop, units)
    want_running = verb == "start"
    bad = [s.unit for s in statuses if s.running != want_running]
    info["detail"] = ", ".join(
        f"{s.host + ' ' if s.host else ''}{s.unit} {'running' if s.running else 'stopped'}" for s in statuses
    )
    if bad:
        raise StepFailed(f"{verb} did not take for {', '.join(bad)}")


async def check_health(plan: Plan, drivers: Drivers, sides: Iterable[str], info: dict[str, str]) -> None:
    """The plan's health checks of `sides`, with their retries, bounded by a third of the rollback budget."""
    wanted = set(sides)
    checks = [c for c in plan.health_checks if c.side in wanted]
    if not checks or drivers.health is None:
        info["status"], info["detail"] = "skipped", f"no {'/'.join(sorted(wanted))} health checks in the plan"
        return
    budget = float(plan.rollback.max_duration) / 3
    results = await asyncio.gather(*(asyncio.to_thread(drivers.health.check, c, budget) for c in checks))
    bad = [f"{c.name}: {r.error or r.status}" for c, r in zip(checks, results, strict=True) if not r.ok]
    info["detail"] = f"{len(checks) - len(bad)}/{len(checks)} healthy"
    if bad:
        raise StepFailed("; ".join(bad))
