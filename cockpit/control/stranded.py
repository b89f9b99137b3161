"""Changes stranded on green after a rollback: acknowledged writes green holds and blue lacks because the
rollback's drain could not finish in its bound.

They are kept in the journal's state (so `status` shows them with no controller running, and the next controller
takes over), counted on the screen and in `status --json` (`stranded`), raised as a critical alarm and an alert.
While they last the controller keeps draining, a slice at a time in a thread, never two at once; when green->blue
has carried them all it journals `rollback.drained` and, if the rollback deferred its `stop_green` step, stops
green then (the `stop_green` action). Leaving `rolled_back` (an advance) ends the watch: the changes are then
ordinary sync lag, and green serves users again.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from cockpit.control.commands import StopGreen
from cockpit.control.view import STRANDED
from cockpit.core.recorder import Recorder
from cockpit.core.state import Stranded
from cockpit.core.vocabulary import RollbackStep, State

if TYPE_CHECKING:
    from cockpit.control.controller import Controller

DRAIN_SLICE_S = 5.0  # one slice of the drain that goes on (bounded: the controller's close waits for it)


class StrandedChanges:
    def __init__(self, ctl: Controller):
        self.ctl = ctl
        self.current: Stranded | None = Stranded.from_dict(ctl.journal.get_state(STRANDED))
        self._draining: asyncio.Future[None] | None = None
        self._publish()

    def strand(self, stranded: Stranded) -> None:
        """A rollback left `stranded` on green (journaled, alerted)."""
        self._set(stranded)
        payload = {"green_only": stranded.green_only, "stop_green_deferred": stranded.stop_green_deferred}
        self.ctl.journal.event("rollback.stranded", payload, self.ctl.actor, stranded.action_id)
        self.ctl.alerts.note("rollback.stranded", payload, self.ctl.clock())

    def forced(self, rec: Recorder) -> None:
        """Green was stopped anyway (the lead forced it): journaled; the drain goes on."""
        if self.current is None:
            return
        rec.journal.event(
            "rollback.forced", {"green_only": self.current.green_only}, rec.actor, rec.action_id
        )
        self._set(replace(self.current, stop_green_deferred=False))

    def tick(self) -> None:
        """From the controller's tick: end the watch when the machine left `rolled_back`, else start the next
        slice of the drain unless one is under way."""
        if self.current is None:
            return
        if self.ctl.machine.state not in (State.ROLLED_BACK, State.ROLLING_BACK):
            self.ctl.journal.event(
                "rollback.stranded_ended",
                {"green_only": self.current.green_only, "state": self.ctl.machine.state},
                self.ctl.actor,
            )
            self._set(None)
            return
        if self.ctl.drivers.sync is not None and (self._draining is None or self._draining.done()):
            self._draining = self.ctl.spawn(self._drain_slice())

    async def _drain_slice(self) -> None:
        sync = self.ctl.drivers.sync
        assert sync is not None
        bound = min(DRAIN_SLICE_S, float(self.ctl.plan.rollback.drain_timeout))
        try:
            await asyncio.to_thread(sync.drain, bound)
            left = await asyncio.to_thread(sync.green_only_pending)
        except Exception:  # green unreachable: the sync's own trouble is journaled; try again next tick
            return
        current = self.current
        if current is None:
            return
        if left:
            if left != current.green_only:
                self._set(replace(current, green_only=left))
            return
        self.ctl.journal.event(
            "rollback.drained",
            {
                "after_s": round(self.ctl.clock() - current.since, 3),
                "stop_green": current.stop_green_deferred,
            },
            self.ctl.actor,
            current.action_id,
        )
        self._set(None)
        if current.stop_green_deferred and RollbackStep.STOP_GREEN in self.ctl.plan.rollback.steps:
            await self.ctl.act(
                StopGreen(reason=f"the drain of rollback {current.action_id} finished"),
                f"{self.ctl.actor} (drain)",
            )

    def _set(self, stranded: Stranded | None) -> None:
        self.current = stranded
        self.ctl.journal.set_state(STRANDED, {} if stranded is None else stranded.as_dict())
        self._publish()

    def _publish(self) -> None:
        self.ctl.monitor.stranded = 0 if self.current is None else self.current.green_only
