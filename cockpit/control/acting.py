"""How the controller carries out one command: serialized with the others, journaled as intent -> steps ->
outcome, in its own task (a caller that goes away neither stops it half-way nor lets the next action start before
it ends). A rollback preempts an advance in flight; a second rollback joins the one under way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from cockpit.control.commands import Command
from cockpit.control.registry import ACTIONS
from cockpit.core.phases import Refused
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.vocabulary import Outcome, State
from cockpit.drivers.traffic.base import TrafficError

if TYPE_CHECKING:
    from cockpit.control.controller import Controller

Body = Callable[[Recorder], Awaitable[Result]]


async def act(
    ctl: Controller, cmd: Command, actor: str | None = None, *, queued: int | None = None
) -> Result:
    """Carry out `cmd`. `queued`: the journal's command this action answers (its intent names it, so that a
    controller reconciling after a crash answers it)."""
    action = ACTIONS[cmd.verb]
    cmd = cmd.resolved(ctl.plan)
    running = ctl._running
    if running is not None and running[0] == cmd.verb and action.joins:
        return await asyncio.shield(running[1])  # one at a time: join the one under way
    if running is not None and running[0] in action.preempts:
        running[1].cancel()

    async def body(rec: Recorder) -> Result:
        if ctl.ended is not None and not action.after_end:
            raise Refused(ctl.ended.why_not(cmd.verb))
        return await action.body(ctl, rec, cmd)

    task = asyncio.ensure_future(_serialized(ctl, cmd, actor, body, queued))
    ctl._actions.add(task)
    task.add_done_callback(ctl._actions.discard)
    return await asyncio.shield(task)


async def _serialized(
    ctl: Controller, cmd: Command, actor: str | None, body: Body, queued: int | None
) -> Result:
    async with ctl._action_lock:
        args = cmd.journaled() if queued is None else {**cmd.journaled(), "command": queued}
        rec = Recorder(ctl.journal, cmd.verb, actor or ctl.actor, cmd.reason, args)
        rec.intent()
        me = asyncio.current_task()
        assert me is not None
        ctl._running = (cmd.verb, me)
        ctl.publish()
        try:
            return await _guarded(ctl, rec, body)
        finally:
            ctl._running = None
            ctl.publish()


async def _guarded(ctl: Controller, rec: Recorder, body: Body) -> Result:
    before = ctl.machine
    try:
        return await body(rec)
    except Refused as exc:
        ctl.set_machine(before)
        return rec.outcome(Outcome.REFUSED, str(exc))
    except asyncio.CancelledError:
        # preempted (by a rollback): the machine stays where the world is; the rollback takes it from here
        ctl.set_machine(replace(before, state=State.ACTIVE if before.phase_index >= 0 else State.READY))
        step = rec.steps[-1][0] if rec.steps else "?"
        return rec.outcome(Outcome.PREEMPTED, f"preempted by a rollback during step {step}")
    except Exception as exc:
        ctl.set_machine(before)
        known = isinstance(exc, (StepFailed, TrafficError))
        return rec.outcome(Outcome.FAILED, str(exc) if known else f"{type(exc).__name__}: {exc}")
