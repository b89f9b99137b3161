"""The `advance` action: the gates (soak and metrics, unless forced), then green made ready and the split moved
to the next phase, each step timed in the journal:

gates - green_services (green must serve before users go there, after a rollback too) - green_health - traffic -
verify (the live split read back from the world).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from cockpit.control.commands import Advance
from cockpit.control.sides import check_health, set_services
from cockpit.core import phases
from cockpit.core.phases import Machine, Refused
from cockpit.core.plan import Phase
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.vocabulary import AdvanceStep, Outcome, State, same_split
from cockpit.drivers.services.factory import service_units
from cockpit.drivers.traffic.base import SplitStatus

if TYPE_CHECKING:
    from cockpit.control.controller import Controller

Step = Callable[["Controller", Phase, dict[str, str]], Awaitable[None]]


async def run(ctl: Controller, rec: Recorder, cmd: Advance) -> Result:
    target = phases.advance_target(ctl.machine, ctl.plan, cmd.to)
    if target >= len(ctl.plan.phases):
        raise Refused("there is no phase after the last one")
    phase = ctl.plan.phases[target]
    with rec.step(AdvanceStep.GATES) as info:
        problems = ctl.monitor.gate_problems(ctl.machine, ctl.clock())
        for i in range(max(1, ctl.machine.phase_index + 1), target + 1):  # phase 0's: a ready gate already
            pre = ctl.monitor.preflight_gate(i, time.time())
            if pre is not None and not pre[1]:
                problems.append(f"{pre[0]} for {ctl.plan.phases[i].name} ({pre[2]})")
        if problems and not cmd.force:
            info["detail"] = "; ".join(problems)
            raise Refused("gates not met: " + "; ".join(problems) + " (--force overrides, and is journaled)")
        info["detail"] = ("forced past: " + "; ".join(problems)) if problems else "all met"
    ctl.set_machine(replace(ctl.machine, state=State.ADVANCING))
    for name, step in MOVE:
        with rec.step(name) as info:
            await step(ctl, phase, info)
    ctl.monitor.triggers.reset()
    ctl.set_machine(phases.settled(Machine(phase_index=target), ctl.plan, ctl.clock()))
    return rec.outcome(
        Outcome.OK,
        f"now in phase {phase.name} ({phase.green:g}% green)",
        {"phase": phase.name, "green": float(phase.green)},
    )


async def _green_services(ctl: Controller, phase: Phase, info: dict[str, str]) -> None:
    units = service_units(ctl.plan.green.services)
    await set_services(ctl.drivers.green_services, units, "start", info)


async def _green_health(ctl: Controller, phase: Phase, info: dict[str, str]) -> None:
    await check_health(ctl.plan, ctl.drivers, ("green",), info)


async def _traffic(ctl: Controller, phase: Phase, info: dict[str, str]) -> None:
    info["detail"] = describe(await ctl.apply_split(float(phase.green)))


async def _verify(ctl: Controller, phase: Phase, info: dict[str, str]) -> None:
    want = float(phase.green)
    live = await ctl.monitor.read_split() if ctl.drivers.traffic else want
    ctl.monitor.green_live = live
    if live is None or not same_split(live, want):
        raise StepFailed(f"live split is {live}, expected {phase.green:g}%")
    info["detail"] = f"{live:g}% green live"


# after the gates, in order: green made ready, then the users moved
MOVE: tuple[tuple[AdvanceStep, Step], ...] = (
    (AdvanceStep.GREEN_SERVICES, _green_services),
    (AdvanceStep.GREEN_HEALTH, _green_health),
    (AdvanceStep.TRAFFIC, _traffic),
    (AdvanceStep.VERIFY, _verify),
)


def describe(statuses: list[SplitStatus]) -> str:
    return (
        ", ".join(
            f"{s.balancer} {s.green_percent:g}%" if s.green_percent is not None else f"{s.balancer} ?"
            for s in statuses
        )
        or "no balancers"
    )
