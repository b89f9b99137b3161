"""Crash reconciliation at start: the actions a crash cut short are settled against the live world (the split on
disk), each closed with its own outcome, then the machine is matched to the live split; every queued command the
dead controller had taken gets its answer.

An interrupted rollback, finalize or abandon is run again; an interrupted advance settles on the phase the live split matches (held
when none does); an interrupted copy is reported (green may hold a partial copy); hold and resume changed nothing
in the world, so the saved machine is the truth.

A queued command is answered with what its action came to: the settlement (the rollback run again: its real
outcome), the outcome the action had journaled before the crash, or, for a command taken but never started,
"nothing was done" (a rollback is run now: the lead asked for it and it is always safe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cockpit.control.commands import Abandon, Finalize, Rollback, from_json
from cockpit.core import phases
from cockpit.core.journal import ActionRecord
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan
from cockpit.core.recorder import Recorder, Result
from cockpit.core.vocabulary import MOVING, SUCCESS, Outcome, State, same_split

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


@dataclass(frozen=True)
class Cut:
    """An action a crash cut short, as reconciliation found it."""

    action: ActionRecord
    rec: Recorder  # closes the original action
    detail: str
    live: float | None  # the live split when the controller started


Settle = Callable[["Controller", Cut], Awaitable[Result]]


async def reconcile(ctl: Controller) -> list[Result]:
    """Settle what a crash cut short; returns what each settlement came to."""
    results: list[Result] = []
    live = await ctl.monitor.read_split()
    for action in ctl.journal.open_actions():
        rec = Recorder(ctl.journal, action.verb, ctl.actor, "reconcile after restart", {})
        rec.action_id = action.action_id
        detail = f"cut short (last step: {action.steps[-1].name if action.steps else 'none'})"
        settle = SETTLE.get(action.verb, _nothing_moved)
        result = await settle(ctl, Cut(action, rec, detail, live))
        results.append(result)
        queued = action.args.get("command")
        if isinstance(queued, int):
            answer(ctl, queued, result)
    results += await _answer_taken(ctl)
    if ctl.machine.state in MOVING:
        ctl.set_machine(phases.settled(ctl.machine, ctl.plan, ctl.clock()))
    if results:  # what reconciliation did may have moved the split
        live = await ctl.monitor.read_split()
    if (
        live is not None
        and ctl.ended is None  # after an ending the machine stays where it ended, whatever the split says
        and ctl.machine.state not in (State.FAILED, State.HELD)
        and not same_split(live, ctl.machine.green(ctl.plan))
    ):
        matched = phase_for(ctl.plan, live)
        ctl.journal.event(
            "reconcile.split",
            {"journal_green": ctl.machine.green(ctl.plan), "live_green": live, "phase_index": matched},
            ctl.actor,
        )
        ctl.set_machine(_machine_for(ctl, matched, f"live split {live:g}% matches no phase"))
    return results


async def _rollback(ctl: Controller, cut: Cut) -> Result:
    cut.rec.outcome(Outcome.INTERRUPTED, cut.detail + "; the rollback is run again")
    ctl.set_machine(replace(ctl.machine, state=State.ACTIVE if ctl.machine.phase_index >= 0 else State.READY))
    again = Rollback(
        reason=f"resume interrupted rollback {cut.action.action_id}: {cut.action.reason}",
        mode=cut.action.args.get("mode", "immediate"),
    )
    return await ctl.act(again, ctl.actor)


async def _ending(ctl: Controller, cut: Cut) -> Result:
    """An interrupted finalize or abandon is run again: its steps are idempotent and the ones done are skipped."""
    verb = cut.action.verb
    cut.rec.outcome(Outcome.INTERRUPTED, f"{cut.detail}; {verb} is run again")
    kind = Finalize if verb == Finalize.verb else Abandon
    again = from_json(
        kind,
        {
            **cut.action.args,
            "reason": f"resume interrupted {verb} {cut.action.action_id}: {cut.action.reason}",
        },
    )
    return await ctl.act(again, ctl.actor)


async def _advance(ctl: Controller, cut: Cut) -> Result:
    live = cut.live
    matched = phase_for(ctl.plan, live)
    why = f"live split {live}% matches no phase after an interrupted advance"
    ctl.set_machine(_machine_for(ctl, matched, why))
    if matched is None:
        return cut.rec.outcome(Outcome.RECONCILED, f"{cut.detail}; live split {live}% matches no phase: held")
    name = ctl.plan.phases[matched].name if matched >= 0 else "ready"
    return cut.rec.outcome(Outcome.RECONCILED, f"{cut.detail}; live split {live:g}% is {name}")


async def _copy(ctl: Controller, cut: Cut) -> Result:
    # the copy drops what it made when it fails, but not when it is killed
    return cut.rec.outcome(
        Outcome.INTERRUPTED,
        f"{cut.detail}; green may hold a partial copy: check it with "
        "`cockpit sync status`, drop those tables and copy again",
    )


async def _nothing_moved(ctl: Controller, cut: Cut) -> Result:
    return cut.rec.outcome(Outcome.RECONCILED, cut.detail)


def answer(ctl: Controller, queued: int, result: Result) -> None:
    ctl.journal.finish_command(queued, "done" if result.ok else "failed", result.as_dict())


async def _answer_taken(ctl: Controller) -> list[Result]:
    """The commands taken and not answered whose actions are settled by now: answered from the journal."""
    ran: list[Result] = []
    for cmd in ctl.journal.taken_commands():
        action = ctl.journal.action_of_command(cmd.id)
        if action is not None and action.outcome is not None:
            outcome = Outcome(action.outcome)
            ctl.journal.finish_command(
                cmd.id,
                "done" if outcome in SUCCESS else "failed",
                {
                    "action_id": action.action_id,
                    "verb": action.verb,
                    "outcome": outcome,
                    "ok": outcome in SUCCESS,
                    "message": action.message,
                    "duration_s": None if action.duration_s is None else round(action.duration_s, 3),
                    "steps": [
                        {"step": s.name, "status": s.status, "duration_s": s.duration_s, "detail": s.detail}
                        for s in action.steps
                    ],
                },
            )
        elif action is None and cmd.verb == Rollback.verb:
            try:
                result = await ctl.dispatch(cmd.verb, cmd.args, actor=cmd.actor, queued=cmd.id)
            except (ValueError, TypeError) as exc:  # arguments no command can be made of
                ctl.journal.finish_command(
                    cmd.id,
                    "failed",
                    {"verb": cmd.verb, "outcome": Outcome.REFUSED, "ok": False, "message": str(exc)},
                )
                continue
            answer(ctl, cmd.id, result)
            ran.append(result)
        elif action is None:
            ctl.journal.finish_command(
                cmd.id,
                "failed",
                {
                    "verb": cmd.verb,
                    "outcome": Outcome.INTERRUPTED,
                    "ok": False,
                    "message": "the controller stopped before it started this command: nothing was done; "
                    "ask again",
                },
            )
    return ran


SETTLE: dict[str, Settle] = {
    "rollback": _rollback,
    "advance": _advance,
    "copy": _copy,
    Finalize.verb: _ending,
    Abandon.verb: _ending,
}


def _machine_for(ctl: Controller, matched: int | None, held_reason: str) -> Machine:
    """The settled machine of the matched phase, or held where it is when the live split matches none."""
    if matched is None:
        return Machine(State.HELD, ctl.machine.phase_index, ctl.clock(), held_reason)
    return phases.settled(Machine(phase_index=matched), ctl.plan, ctl.clock())


def phase_for(plan: Plan, live: float | None) -> int | None:
    """The phase whose split is live (-1: all on blue), or None."""
    if live is None:
        return None
    if same_split(live, 0.0):
        return -1
    for i, p in enumerate(plan.phases):
        if same_split(float(p.green), live):
            return i
    return None
