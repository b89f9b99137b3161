"""The `rollback` action and its sequence (DESIGN "The rollback sequence"), each step timed in the journal.

1 traffic to blue (one reload; `gradual` steps down through the phases with short soaks) - 2 drain green->blue
sync - 3 stop green - 4 make sure blue runs - 5 health checks - 6 integrity - 7 notify. A failing step is reported
and the sequence goes on where that is safe (green is never stopped while traffic may still reach it); no step
waits without a bound. The plan chooses the steps and their order (`rollback.steps`); `STEPS` maps each name to
what it does.

Nothing is stranded: a drain that cannot finish in its bound says how many acknowledged changes are still on
green only; green is then not stopped (unless the rollback is forced, which is journaled), the machine reads
`rolled_back` with those changes counted, and the controller keeps draining (cockpit.control.stranded) and stops
green once they are all on blue (`stop_green`, the action below).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cockpit.control.commands import Rollback, RollbackMode, StopGreen
from cockpit.control.factory import Drivers
from cockpit.control.sides import check_health, set_services
from cockpit.core.phases import Machine, Refused
from cockpit.core.plan import Plan
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.state import Stranded
from cockpit.core.vocabulary import Outcome, RollbackStep, State
from cockpit.drivers.services.factory import service_units

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


async def run(ctl: Controller, rec: Recorder, cmd: Rollback) -> Result:
    from_index = ctl.machine.phase_index
    ctl.set_machine(replace(ctl.machine, state=State.ROLLING_BACK, since=ctl.clock()))
    left = Left()
    outcome = await run_sequence(
        Rollbacking(
            ctl.plan, ctl.drivers, rec, cmd.mode, from_index, ctl.apply_split, cmd.reason, cmd.force, left
        )
    )
    ctl.monitor.triggers.reset()
    if not outcome.traffic_ok:
        ctl.set_machine(Machine(State.FAILED, from_index, ctl.clock()))
        return rec.outcome(
            Outcome.FAILED, "traffic could not be moved back to blue: " + _failed_detail(rec, "traffic")
        )
    ctl.set_machine(Machine(State.ROLLED_BACK, -1, ctl.clock()))
    if left.green_only:
        ctl.stranded.strand(Stranded(left.green_only, ctl.clock(), left.deferred, rec.action_id))
        n = "an unknown number of" if left.green_only < 0 else str(left.green_only)
        still = "green left running" if left.deferred else "green stopped (forced)"
        return rec.outcome(
            Outcome.PARTIAL,
            f"all traffic on blue; {n} changes still on green only: the drain goes on, {still}",
            {"green_only": left.green_only},
        )
    if outcome.failed_steps:
        return rec.outcome(
            Outcome.PARTIAL, "all traffic on blue; failed steps: " + ", ".join(outcome.failed_steps)
        )
    return rec.outcome(Outcome.OK, "all traffic on blue")


def _failed_detail(rec: Recorder, step: str) -> str:
    for name, status, _d, detail in rec.steps:
        if name == step and status == "failed":
            return detail
    return "?"


@dataclass(frozen=True)
class Rollbacking:
    """What every step of one rollback sees."""

    plan: Plan
    drivers: Drivers
    rec: Recorder
    mode: RollbackMode
    from_index: int
    apply_split: Callable[[float], Awaitable[object]]
    reason: str
    force: bool = False  # stop green even while it holds changes blue lacks
    left: Left = field(default_factory=lambda: Left())


@dataclass
class Left:
    """What the drain left on green: acknowledged changes blue lacks (0: none, -1: green unreadable), and whether
    the stop of green waits for them."""

    green_only: int = 0
    deferred: bool = False


@dataclass(frozen=True)
class RollbackOutcome:
    traffic_ok: bool
    failed_steps: list[str]


async def run_sequence(r: Rollbacking, steps: Sequence[str] | None = None) -> RollbackOutcome:
    """The plan's rollback steps in its order, or the given ones (`cockpit abandon`: traffic and drain)."""
    failed: list[str] = []
    traffic_ok = True
    for name in r.plan.rollback.steps if steps is None else steps:
        step = RollbackStep(name)
        if step == RollbackStep.STOP_GREEN and not traffic_ok:
            r.rec.record_step(step, "skipped", 0.0, "traffic may still reach green: green left running")
            continue
        try:
            with r.rec.step(step) as info:
                await STEPS[step](r, info)
        except asyncio.CancelledError:
            raise
        except Exception:
            failed.append(step)
            if step == RollbackStep.TRAFFIC:
                traffic_ok = False
    return RollbackOutcome(traffic_ok, failed)


async def _traffic(r: Rollbacking, info: dict[str, str]) -> None:
    if r.drivers.traffic is None:
        info["status"], info["detail"] = "skipped", "no traffic driver in the plan"
        return
    if r.mode == "gradual":
        shares = [r.plan.phases[i].green for i in range(r.from_index - 1, -1, -1)]
        for share in shares:
            await r.apply_split(share)
            await asyncio.sleep(r.plan.rollback.gradual_soak)
        info["detail"] = "stepped down through " + " -> ".join(f"{s:g}%" for s in [*shares, 0.0])
    await r.apply_split(0.0)
    info["detail"] = info["detail"] or "all traffic to blue"


async def _drain(r: Rollbacking, info: dict[str, str]) -> None:
    sync = r.drivers.sync
    if sync is None:
        info["status"], info["detail"] = "skipped", "no sync running"
        return
    timeout = float(r.plan.rollback.drain_timeout)
    drained = await asyncio.to_thread(sync.drain, timeout)
    if drained:
        info["detail"] = "green->blue caught up"
        return
    try:
        r.left.green_only = await asyncio.to_thread(sync.green_only_pending)
        left = f"{r.left.green_only} changes still on green only"
    except Exception as exc:  # the green database may be the thing that is down
        r.left.green_only = -1
        left = f"cannot read green's change log ({exc}): it may still hold changes blue lacks"
    if r.left.green_only == 0:  # caught up between the deadline and the count
        info["detail"] = "green->blue caught up"
        return
    raise StepFailed(
        f"green->blue not drained after {timeout:g}s: {left}; the drain goes on after the rollback"
    )


async def _stop_green(r: Rollbacking, info: dict[str, str]) -> None:
    n = r.left.green_only
    if n and not r.force:
        r.left.deferred = True
        what = "changes blue may lack" if n < 0 else f"{n} changes blue lacks"
        info["status"] = "skipped"
        info["detail"] = (
            f"deferred: green holds {what}; it is stopped once the drain has carried them "
            "(`cockpit rollback --force` stops it now)"
        )
        return
    if n:
        r.rec.journal.event(
            "rollback.forced", {"green_only": n, "step": "stop_green"}, r.rec.actor, r.rec.action_id
        )
    await set_services(r.drivers.green_services, service_units(r.plan.green.services), "stop", info)
    if n:
        info["detail"] = (
            f"forced with {'some' if n < 0 else n} changes still on green only; " + info["detail"]
        )


async def stop_green(ctl: Controller, rec: Recorder, cmd: StopGreen) -> Result:
    """The `stop_green` action: green's services stopped after a rollback, never while users may reach green,
    nor (unless forced) while it holds changes blue lacks."""
    if ctl.machine.state != State.ROLLED_BACK:
        raise Refused(f"green may serve users ({ctl.machine.state}): only after a rollback")
    stranded = ctl.stranded.current
    if stranded is not None and stranded.green_only and not cmd.force:
        raise Refused(
            f"green still holds {stranded.green_only} changes blue lacks; the drain goes on (--force stops it anyway)"
        )
    with rec.step(RollbackStep.STOP_GREEN) as info:
        await set_services(ctl.drivers.green_services, service_units(ctl.plan.green.services), "stop", info)
    if stranded is not None and stranded.green_only:
        ctl.stranded.forced(rec)
    return rec.outcome(Outcome.OK, "green stopped")


async def _start_blue(r: Rollbacking, info: dict[str, str]) -> None:
    await set_services(r.drivers.blue_services, service_units(r.plan.blue.services), "start", info)


async def _health(r: Rollbacking, info: dict[str, str]) -> None:
    await check_health(r.plan, r.drivers, ("blue", "front"), info)


async def _integrity(r: Rollbacking, info: dict[str, str]) -> None:
    integrity = r.drivers.integrity
    if integrity is None:
        info["status"], info["detail"] = "skipped", "no sync between blue and green in the plan"
        return
    report = await asyncio.to_thread(integrity.check_now, True)
    info["detail"] = (
        f"score {report.score:g}% over {report.compared} rows the sync touched; counts compared in full"
    )
    if not report.ok:
        first = [f"{t.table} {d.describe()}" for t in report.tables for d in t.diffs][:5]
        first += [f"{t.table}: {t.note}" for t in report.tables if t.note]
        raise StepFailed("blue and green differ: " + "; ".join(first))


async def _notify(r: Rollbacking, info: dict[str, str]) -> None:
    notifier = r.drivers.notifier
    if notifier is None:
        info["status"], info["detail"] = "skipped", "no alerts in the plan"
        return
    steps = ", ".join(f"{s} {st}" for s, st, _d, _x in r.rec.steps)
    results = await asyncio.to_thread(
        notifier.send,
        "critical",
        f"ROLLBACK of {r.plan.name} completed",
        f"Reason: {r.reason}. Steps: {steps}.",
        {"actor": r.rec.actor, "plan": r.plan.name},
    )
    failed = [d for d in results if not d.ok]
    info["detail"] = f"{len(results) - len(failed)}/{len(results)} channels delivered"
    if failed:
        raise StepFailed("; ".join(f"{d.channel}: {d.error}" for d in failed))


Step = Callable[[Rollbacking, dict[str, str]], Awaitable[None]]

STEPS: dict[RollbackStep, Step] = {
    RollbackStep.TRAFFIC: _traffic,
    RollbackStep.DRAIN: _drain,
    RollbackStep.STOP_GREEN: _stop_green,
    RollbackStep.START_BLUE: _start_blue,
    RollbackStep.HEALTH: _health,
    RollbackStep.INTEGRITY: _integrity,
    RollbackStep.NOTIFY: _notify,
}
