"""The `hold` and `resume` actions: they change the phase machine only, never the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cockpit.control.commands import Hold, Resume
from cockpit.core import phases
from cockpit.core.recorder import Recorder, Result
from cockpit.core.vocabulary import Outcome

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


async def hold(ctl: Controller, rec: Recorder, cmd: Hold) -> Result:
    ctl.set_machine(phases.hold(ctl.machine, cmd.reason, ctl.clock()))
    return rec.outcome(Outcome.OK, f"held: {ctl.machine.held_reason}")


async def resume(ctl: Controller, rec: Recorder, cmd: Resume) -> Result:
    ctl.set_machine(phases.resume(ctl.machine, ctl.plan, ctl.clock()))
    return rec.outcome(Outcome.OK, f"resumed in state {ctl.machine.state}")
