"""Immutable snapshots of the cockpit, for the screen, `status --json` and CI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cockpit.core.journal import ActionRecord

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
class TableCopy:
    """One table of the initial copy: rows committed, rows expected, rate and time left (None until a rate is
    known, 0 once done); `done` on the table's last report, when all its rows are committed."""

    table: str
    rows_done: int
    rows_total: int
    rows_per_s: float
    eta_s: float | None
    done: bool = False


@dataclass(frozen=True)
class CopyView:
    """The initial copy (the controller's `copy` action): under way, or how the last one ended."""

    state: str  # running | done | failed
    started: float  # epoch seconds
    tables: tuple[TableCopy, ...] = ()
    seconds: float = 0.0
    message: str = ""

    @property
    def rows_done(self) -> int:
        return sum(t.rows_done for t in self.tables)

    @property
    def rows_total(self) -> int:
        return sum(t.rows_total for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """The slowest table's time left (tables load in parallel); None while a table has no rate yet."""
        if self.state != "running":
            return 0.0
        etas = [t.eta_s for t in self.tables if not t.done]
        return None if any(e is None for e in etas) else max(etas, default=0.0)  # type: ignore[type-var]

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "rows_per_s": round(self.rows_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "message": self.message,
            "tables": [
                {
                    **asdict(t),
                    "rows_per_s": round(t.rows_per_s, 1),
                    "eta_s": None if t.eta_s is None else round(t.eta_s, 1),
                }
                for t in self.tables
            ],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CopyView:
        return cls(
            doc["state"],
            float(doc["started"]),
            tuple(
                TableCopy(
                    t["table"],
                    int(t["rows_done"]),
                    int(t["rows_total"]),
                    float(t["rows_per_s"]),
                    t.get("eta_s"),
                    bool(t.get("done")),
                )
                for t in doc.get("tables", ())
            ),
            float(doc.get("seconds", 0.0)),
            doc.get("message", ""),
        )


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
class Stranded:
    """After a rollback whose drain could not finish: acknowledged changes still on green only. The controller
    keeps draining; green is not stopped while they are there (unless the lead forces it)."""

    green_only: int  # -1: green could not be read (so it may still hold some)
    since: float  # when the rollback left them (epoch seconds)
    stop_green_deferred: bool  # the plan's `stop_green` step waits for the drain
    action_id: str = ""  # the rollback

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Stranded | None:
        if not doc:
            return None
        return cls(
            int(doc["green_only"]),
            float(doc["since"]),
            bool(doc.get("stop_green_deferred")),
            str(doc.get("action_id", "")),
        )


@dataclass(frozen=True)
class Ended:
    """The end of the migration (`cockpit finalize` on green, `cockpit abandon` on blue): recorded when its first
    step that cannot be undone begins, so that no advance or rollback runs after it, even half-way; `done` once
    every step has. `steps`: the steps done so far (a resumed ending skips them)."""

    how: str  # finalize | abandon
    since: float  # when the ending passed its point of no return (epoch seconds)
    action_id: str  # the action that began it
    actor: str
    done: bool = False
    finished: float | None = None
    steps: tuple[str, ...] = ()
    archive: str = ""  # finalize: blue's archive (a verified backup folder)

    @property
    def word(self) -> str:
        return "finalized" if self.how == "finalize" else "abandoned"

    def why_not(self, verb: str) -> str:
        """Why `verb` cannot run now, in words a person acts on."""
        if not self.done:
            return (
                f"cannot {verb}: `cockpit {self.how}` is under way (done: {', '.join(self.steps) or 'nothing yet'});"
                f" run `cockpit {self.how} --yes` again to finish it"
            )
        where = "green is the system now" if self.how == "finalize" else "blue is the system now"
        return f"cannot {verb}: the migration was {self.word} by {self.actor} ({where}); it is over for good"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Ended | None:
        if not doc:
            return None
        return cls(
            str(doc["how"]),
            float(doc["since"]),
            str(doc.get("action_id", "")),
            str(doc.get("actor", "")),
            bool(doc.get("done")),
            None if doc.get("finished") is None else float(doc["finished"]),
            tuple(doc.get("steps") or ()),
            str(doc.get("archive", "")),
        )


READY, FAILED, UNKNOWN, SKIPPED = "ok", "failed", "unknown", "skipped"
SOURCE_TRAFFIC, SOURCE_SYNC = "traffic", "sync"  # the other sources are named by source_name()


def source_name(source: object) -> str:
    """The name a metrics source goes by in CockpitState.sources: its `source_name`, or its class name in lower
    case without a leading underscore (`_AccessLogSource` -> `accesslogsource`)."""
    return getattr(source, "source_name", None) or type(source).__name__.lstrip("_").lower()


@dataclass(frozen=True)
class ReadinessCheck:
    """One condition a rollback needs: `status` ok | failed | unknown (not checked yet, or its source is silent)
    | skipped (the plan has nothing to check here); `detail` says why, in words a person acts on."""

    name: str  # nginx | blue | sync | backup | conflicts
    status: str
    detail: str


@dataclass(frozen=True)
class Readiness:
    """Could a rollback run now and succeed? Computed by cockpit.control.readiness from the plan and readings."""

    checks: tuple[ReadinessCheck, ...] = ()
    at: float = 0.0  # when it was assessed, epoch seconds

    @property
    def ready(self) -> bool:
        return bool(self.checks) and all(c.status in (READY, SKIPPED) for c in self.checks)

    @property
    def blocking(self) -> tuple[ReadinessCheck, ...]:
        """The checks that keep it from being ready (failed first, then unknown)."""
        bad = [c for c in self.checks if c.status == FAILED]
        return tuple(bad + [c for c in self.checks if c.status == UNKNOWN])

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "at": self.at, "checks": [asdict(c) for c in self.checks]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Readiness | None:
        if not doc:
            return None
        checks = tuple(ReadinessCheck(c["name"], c["status"], c.get("detail", "")) for c in doc["checks"])
        return cls(checks, float(doc.get("at", 0.0)))


@dataclass(frozen=True)
class CockpitState:
    plan: str
    state: str  # ready | active | held | advancing | rolling_back | rolled_back | complete | failed
    phase_index: int  # -1 before the first phase
    phases: tuple[PhaseView, ...]
    phase_since: (
        float  # when the current phase (or state) began, epoch seconds; 0: unknown (nothing journaled it)
    )
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
    copy: CopyView | None = None  # the initial copy under way, or the last one this controller ran
    read_only: bool = False
    message: str = ""
    readiness: Readiness | None = None  # the rollback-readiness light; None until the controller assessed it
    # source -> epoch seconds of its last good reading (traffic, sync, metrics.<Source>...): the screen greys
    # what a silent source last said, with its age
    sources: dict[str, float] = field(default_factory=dict)
    stranded: Stranded | None = None  # changes still on green only after a rollback
    ended: Ended | None = None  # finalize or abandon: under way (done false) or done, for good

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

    @property
    def since_known(self) -> bool:
        return self.phase_since > 0

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
                "since": self.phase_since if self.since_known else None,
                "seconds_in_phase": round(self.time_in_phase, 3) if self.since_known else None,
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
            "copy": None if self.copy is None else self.copy.as_dict(),
            "rollback_readiness": None if self.readiness is None else self.readiness.as_dict(),
            "sources": {k: round(v, 3) for k, v in self.sources.items()},
            "stranded": None if self.stranded is None else self.stranded.as_dict(),
            "ended": None if self.ended is None else self.ended.as_dict(),
        }
