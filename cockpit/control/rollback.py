"""The rollback sequence (DESIGN "The rollback sequence"), each step timed in the journal.

1 traffic to blue (one reload; `gradual` steps down through the phases with short soaks) - 2 drain green->blue
sync - 3 stop green - 4 make sure blue runs - 5 health checks - 6 integrity - 7 notify. A failing step is reported
and the sequence goes on where that is safe (green is never stopped while traffic may still reach it); no step
waits without a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cockpit.control.factory import Drivers
from cockpit.control.sides import check_health, set_services
from cockpit.core.plan import Plan
from cockpit.core.recorder import Recorder, StepFailed
from cockpit.drivers.services.factory import service_units


@dataclass
class RollbackOutcome:
    traffic_ok: bool
    failed_steps: list[str]


async def run_sequence(
    plan: Plan,
    drivers: Drivers,
    rec: Recorder,
    mode: str,
    from_index: int,
    apply_split: Callable[[float], Awaitable[object]],
    reason: str,
) -> RollbackOutcome:
    failed: list[str] = []
    traffic_ok = True
    for step in plan.rollback.steps:
        if step == "stop_green" and not traffic_ok:
            rec.record_step(step, "skipped", 0.0, "traffic may still reach green: green left running")
            continue
        try:
            with rec.step(step) as info:
                await _STEPS[step](
                    plan,
                    drivers,
                    info,
                    mode=mode,
                    from_index=from_index,
                    apply_split=apply_split,
                    reason=reason,
                    rec=rec,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            failed.append(step)
            if step == "traffic":
                traffic_ok = False
    return RollbackOutcome(traffic_ok, failed)


async def _traffic(
    plan: Plan,
    drivers: Drivers,
    info: dict[str, str],
    *,
    mode: str,
    from_index: int,
    apply_split: Callable[[float], Awaitable[object]],
    **_: object,
) -> None:
    if drivers.traffic is None:
        info["status"], info["detail"] = "skipped", "no traffic driver in the plan"
        return
    if mode == "gradual":
        shares = [plan.phases[i].green for i in range(from_index - 1, -1, -1)]
        for share in shares:
            await apply_split(share)
            await asyncio.sleep(plan.rollback.gradual_soak)
        info["detail"] = "stepped down through " + " -> ".join(f"{s:g}%" for s in [*shares, 0.0])
    await apply_split(0.0)
    info["detail"] = info["detail"] or "all traffic to blue"


async def _drain(plan: Plan, drivers: Drivers, info: dict[str, str], **_: object) -> None:
    if drivers.sync is None:
        info["status"], info["detail"] = "skipped", "no sync running"
        return
    timeout = float(plan.rollback.drain_timeout)
    drained = await asyncio.to_thread(drivers.sync.drain, timeout)
    if not drained:
        try:
            lag = await asyncio.to_thread(drivers.sync.lag)
            pending = lag.get("green_to_blue")
            left = f"{pending.pending} changes still pending" if pending else "pending changes unknown"
        except Exception as exc:  # the green database may be the thing that is down
            left = f"cannot read the change log ({exc})"
        raise StepFailed(f"green->blue not drained after {timeout:g}s: {left}")
    info["detail"] = "green->blue caught up"


async def _stop_green(plan: Plan, drivers: Drivers, info: dict[str, str], **_: object) -> None:
    await set_services(drivers.green_services, service_units(plan.green.services), "stop", info)


async def _start_blue(plan: Plan, drivers: Drivers, info: dict[str, str], **_: object) -> None:
    await set_services(drivers.blue_services, service_units(plan.blue.services), "start", info)


async def _health(plan: Plan, drivers: Drivers, info: dict[str, str], **_: object) -> None:
    await check_health(plan, drivers, ("blue", "front"), info)


async def _integrity(plan: Plan, drivers: Drivers, info: dict[str, str], **_: object) -> None:
    if drivers.integrity is None:
        info["status"], info["detail"] = "skipped", "no sync between blue and green in the plan"
        return
    report = await asyncio.to_thread(drivers.integrity.check_now, True)
    info["detail"] = (
        f"score {report.score:g}% over {report.compared} rows the sync touched; counts compared in full"
    )
    if not report.ok:
        first = [f"{t.table} {d.describe()}" for t in report.tables for d in t.diffs][:5]
        first += [f"{t.table}: {t.note}" for t in report.tables if t.note]
        raise StepFailed("blue and green differ: " + "; ".join(first))


async def _notify(
    plan: Plan, drivers: Drivers, info: dict[str, str], *, reason: str, rec: Recorder, **_: object
) -> None:
    if drivers.notifier is None:
        info["status"], info["detail"] = "skipped", "no alerts in the plan"
        return
    steps = ", ".join(f"{s} {st}" for s, st, _d, _x in rec.steps)
    results = await asyncio.to_thread(
        drivers.notifier.send,
        "critical",
        f"ROLLBACK of {plan.name} completed",
        f"Reason: {reason}. Steps: {steps}.",
        {"actor": rec.actor, "plan": plan.name},
    )
    failed = [r for r in results if not getattr(r, "ok", False)]
    info["detail"] = f"{len(results) - len(failed)}/{len(results)} channels delivered"
    if failed:
        raise StepFailed(
            "; ".join(f"{getattr(r, 'channel', '?')}: {getattr(r, 'error', '?')}" for r in failed)
        )


_STEPS = {
    "traffic": _traffic,
    "drain": _drain,
    "stop_green": _stop_green,
    "start_blue": _start_blue,
    "health": _health,
    "integrity": _integrity,
    "notify": _notify,
}
