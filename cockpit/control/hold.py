"""The `hold` and `resume` actions (they change the phase machine only, never the world), and the schema watch
that holds the machine when a table changes under the sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cockpit.control.commands import Hold, Resume
from cockpit.core import phases
from cockpit.core.recorder import Recorder, Result
from cockpit.core.rules import schema_advice
from cockpit.core.vocabulary import Outcome, State

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


async def hold(ctl: Controller, rec: Recorder, cmd: Hold) -> Result:
    ctl.set_machine(phases.hold(ctl.machine, cmd.reason, ctl.clock()))
    return rec.outcome(Outcome.OK, f"held: {ctl.machine.held_reason}")


async def resume(ctl: Controller, rec: Recorder, cmd: Resume) -> Result:
    ctl.set_machine(phases.resume(ctl.machine, ctl.plan, ctl.clock()))
    return rec.outcome(Outcome.OK, f"resumed in state {ctl.machine.state}")


class SchemaWatch:
    """A table whose schema changed under the sync holds the machine, once per change (the gates refuse advances
    while it lasts, held or not)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()  # tables whose schema change has held the machine already

    def check(self, ctl: Controller) -> None:
        changed = ctl.monitor.facts().schema_changed
        new = sorted(set(changed) - self.seen)
        self.seen = set(changed)
        if new and ctl.machine.state in (State.READY, State.ACTIVE, State.COMPLETE) and ctl._running is None:
            what = "; ".join(f"{t}: {changed[t]}" for t in new)
            reason = f"schema changed under the sync ({what}): " + schema_advice(sorted(changed))
            ctl.spawn(ctl.act(Hold(reason=reason), f"{ctl.actor} (schema watch)"))
