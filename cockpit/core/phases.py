"""The phase machine: where the migration stands and which moves are allowed. Pure logic, no I/O.

ready -> (advance) -> active(phase i) ... -> complete (the last phase);  active/complete/ready <-> held;
any -> rolling_back -> rolled_back (or failed when traffic could not be moved back); rolled_back -> advance again.
`advancing` and `rolling_back` are the states while an action runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cockpit.core.errors import CockpitError
from cockpit.core.plan import Plan
from cockpit.core.vocabulary import MOVING, State


@dataclass(frozen=True)
class Machine:
    state: State = State.READY
    phase_index: int = -1
    since: float = 0.0
    held_reason: str = ""

    def green(self, plan: Plan) -> float:
        """The share of green the machine wants live."""
        if self.phase_index < 0:
            return 0.0
        return float(plan.phases[self.phase_index].green)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "phase_index": self.phase_index,
            "since": self.since,
            "held_reason": self.held_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Machine:
        if not d:
            return cls()
        return cls(
            State(d.get("state", State.READY)),
            int(d.get("phase_index", -1)),
            float(d.get("since", 0.0)),
            d.get("held_reason", ""),
        )


class Refused(CockpitError):
    """The move is not allowed now; the message says why and what to do."""


def settled(m: Machine, plan: Plan, now: float) -> Machine:
    """The resting state for a phase index (after an action ends or after a restart)."""
    if m.phase_index < 0:
        state = State.READY
    elif m.phase_index == len(plan.phases) - 1:
        state = State.COMPLETE
    else:
        state = State.ACTIVE
    return Machine(state, m.phase_index, now)


def advance_target(m: Machine, plan: Plan, to: str | None) -> int:
    """The phase index an advance goes to, or Refused."""
    if m.state == State.HELD:
        raise Refused(f"held ({m.held_reason or 'no reason given'}): resume first")
    if m.state == State.COMPLETE:
        raise Refused("the migration is complete: every phase is done")
    if m.state == State.FAILED:
        raise Refused("the last rollback failed: run rollback again until it succeeds before advancing")
    if m.state in MOVING:
        raise Refused(f"an action is running ({m.state})")
    current = -1 if m.state == State.ROLLED_BACK else m.phase_index
    if to is None:
        return current + 1
    try:
        target = plan.phase_index(to)
    except KeyError:
        names = ", ".join(p.name for p in plan.phases)
        raise Refused(f"no phase named {to!r}; phases are: {names}") from None
    if target <= current:
        raise Refused(
            f"phase {to!r} is not ahead of the current phase; to go back, use rollback (--mode gradual steps down)"
        )
    return target


def hold(m: Machine, reason: str, now: float) -> Machine:
    if m.state == State.HELD:
        raise Refused(f"already held ({m.held_reason})")
    if m.state in (State.ROLLING_BACK, State.ROLLED_BACK, State.FAILED):
        raise Refused(f"cannot hold while {m.state.replace('_', ' ')}")
    return replace(m, state=State.HELD, held_reason=reason or "held", since=m.since or now)


def resume(m: Machine, plan: Plan, now: float) -> Machine:
    if m.state != State.HELD:
        raise Refused(f"not held (state is {m.state})")
    return replace(settled(m, plan, now), since=m.since)
