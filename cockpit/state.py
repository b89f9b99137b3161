"""Immutable snapshots of the cockpit, for the screen, `status --json` and CI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cockpit.journal import ActionRecord

# Version of the `status --json` object. Bump on any incompatible change (README documents the fields).
STATUS_SCHEMA = 1


@dataclass(frozen=True)
class Lag:
    """One sync direction: the age of the oldest change not yet applied (0 when caught up) and how many wait."""

    age_s: float
    pending: int

    def as_dict(self) -> dict[str, Any]:
        return {"age_s": round(self.age_s, 3), "pending": self.pending}


@dataclass(frozen=True)
class PhaseView:
    name: str
    green: float
    soak_s: float
    description: str = ""


@dataclass(frozen=True)
class Alarm:
    """A metric past a threshold, or a rollback trigger counting down."""

    metric: str
    level: str  # warning | critical | trigger
    value: float | None
    threshold: float
    message: str


@dataclass(frozen=True)
class CockpitState:
    plan: str
    state: str  # ready | active | held | advancing | rolling_back | rolled_back | complete | failed
    phase_index: int  # -1 before the first phase
    phases: tuple[PhaseView, ...]
    phase_since: float  # when the current phase (or state) began, epoch seconds
    green_configured: float  # the share the phase machine wants
    green_live: float | None  # the share the load balancers actually have
    now: float
    held_reason: str = ""
    actions: tuple[ActionRecord, ...] = ()
    running_action: str | None = None  # verb of the action in flight
    metrics: dict[str, float | None] = field(default_factory=dict)
    lag: dict[str, Lag] = field(default_factory=dict)
    alarms: tuple[Alarm, ...] = ()
    gates: tuple[tuple[str, bool, str], ...] = ()  # (gate, met, why) for the next advance
    controller: dict[str, Any] | None = None  # who holds the lock: pid, actor, since
    read_only: bool = False
    message: str = ""

    @property
    def phase(self) -> PhaseView | None:
        return self.phases[self.phase_index] if 0 <= self.phase_index < len(self.phases) else None

    @property
    def next_phase(self) -> PhaseView | None:
        i = self.phase_index + 1
        return self.phases[i] if i < len(self.phases) else None

    @property
    def time_in_phase(self) -> float:
        return max(0.0, self.now - self.phase_since)

    def to_json(self) -> dict[str, Any]:
        """The stable `status --json` object (schema STATUS_SCHEMA, documented in the README)."""
        last = self.actions[-1] if self.actions else None
        phase = self.phase
        return {
            "schema": STATUS_SCHEMA,
            "plan": self.plan,
            "state": self.state,
            "phase": {
                "name": phase.name if phase else None,
                "index": self.phase_index,
                "count": len(self.phases),
                "since": self.phase_since,
                "seconds_in_phase": round(self.time_in_phase, 3),
                "next": self.next_phase.name if self.next_phase else None,
            },
            "green_percent": {"configured": self.green_configured, "live": self.green_live},
            "held_reason": self.held_reason or None,
            "running_action": self.running_action,
            "last_action": None
            if last is None
            else {
                "id": last.action_id,
                "kind": last.verb,
                "actor": last.actor,
                "reason": last.reason,
                "outcome": last.outcome,
                "started": last.started,
                "duration_s": None if last.duration_s is None else round(last.duration_s, 3),
                "message": last.message,
                "steps": [asdict(s) for s in last.steps],
            },
            "sync_lag": {d: v.as_dict() for d, v in self.lag.items()},
            "metrics": self.metrics,
            "alarms": [asdict(a) for a in self.alarms],
            "gates": [{"gate": g, "met": met, "why": why} for g, met, why in self.gates],
            "controller": self.controller,
        }
