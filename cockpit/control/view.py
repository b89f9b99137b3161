"""Building CockpitState snapshots: from a running controller's memory, or read back from the journal.

`status`, `--read-only` screens and CI read the journal; the live split is read from the world (the traffic
driver's own file) when no controller is running to publish it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from cockpit.core.journal import ActionRecord, Journal
from cockpit.core.lock import ControllerLock
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan
from cockpit.core.state import Alarm, CockpitState, CopyView, Ended, Lag, PhaseView, Readiness, Stranded
from cockpit.drivers.traffic.base import TrafficDriver, live_percent


def phase_views(plan: Plan) -> tuple[PhaseView, ...]:
    return tuple(PhaseView(p.name, float(p.green), float(p.soak), p.description) for p in plan.phases)


def build_state(
    plan: Plan,
    machine: Machine,
    *,
    actions: tuple[ActionRecord, ...] = (),
    green_live: float | None = None,
    metrics: Mapping[str, float | None] | None = None,
    lag: Mapping[str, Lag] | None = None,
    alarms: tuple[Alarm, ...] = (),
    gates: tuple[tuple[str, bool, str], ...] = (),
    controller: dict[str, Any] | None = None,
    running_action: str | None = None,
    read_only: bool = False,
    copy: CopyView | None = None,
    now: float | None = None,
    message: str = "",
    readiness: Readiness | None = None,
    sources: Mapping[str, float] | None = None,
    stranded: Stranded | None = None,
    ended: Ended | None = None,
) -> CockpitState:
    return CockpitState(
        plan=plan.name,
        state=machine.state,
        phase_index=machine.phase_index,
        phases=phase_views(plan),
        phase_since=machine.since,
        green_configured=machine.green(plan),
        green_live=green_live,
        now=time.time() if now is None else now,
        held_reason=machine.held_reason,
        actions=actions,
        running_action=running_action,
        metrics=dict(metrics or {}),
        lag=dict(lag or {}),
        alarms=alarms,
        gates=gates,
        controller=controller,
        read_only=read_only,
        copy=copy,
        message=message,
        readiness=readiness,
        sources=dict(sources or {}),
        stranded=stranded,
        ended=ended,
    )


def read_state(plan: Plan, journal: Journal, traffic: TrafficDriver | None = None) -> CockpitState:
    """The state as another process sees it: the running controller's last publication, or the journal alone."""
    holder = ControllerLock(journal.path).holder()
    machine = Machine.from_dict(journal.get_state("machine"))
    runtime = journal.get_state("runtime") or {}
    actions = tuple(journal.actions(10))
    if holder is not None and runtime:
        green_live = runtime.get("green_live")
    else:
        green_live = live_percent(traffic.live()) if traffic is not None else None
        runtime = {}
    return build_state(
        plan,
        machine,
        actions=actions,
        green_live=green_live,
        metrics=runtime.get("metrics") or {},
        lag={k: Lag(v["age_s"], v["pending"]) for k, v in (runtime.get("lag") or {}).items()},
        alarms=tuple(Alarm(**a) for a in runtime.get("alarms", [])),
        gates=tuple((g["gate"], g["met"], g["why"]) for g in runtime.get("gates", [])),
        controller=holder,
        running_action=runtime.get("running_action") if holder else None,
        read_only=True,
        copy=CopyView.from_dict(runtime["copy"]) if runtime.get("copy") else None,
        readiness=Readiness.from_dict(runtime.get("readiness")),
        sources={k: float(v) for k, v in (runtime.get("sources") or {}).items()},
        stranded=Stranded.from_dict(journal.get_state(STRANDED)),  # journaled: true with no controller too
        ended=Ended.from_dict(journal.get_state(ENDED)),
    )


STRANDED = "stranded"  # the journal's state key: cockpit.core.state.Stranded, {} when none
ENDED = "ended"  # the journal's state key: cockpit.core.state.Ended (finalize or abandon), absent before


def runtime(state: CockpitState) -> dict[str, Any]:
    """What the controller keeps in the journal's `runtime` state for other processes (`status`, the screen of
    a CLI without the lock) to read."""
    doc = state.to_json()
    return {
        "green_live": state.green_live,
        "metrics": doc["metrics"],
        "lag": doc["sync_lag"],
        "alarms": doc["alarms"],
        "gates": doc["gates"],
        "running_action": state.running_action,
        "copy": None if state.copy is None else state.copy.as_dict(),
        "readiness": doc["rollback_readiness"],
        "sources": doc["sources"],
    }


class AlarmLog:
    """One journal event when an alarm starts and one when it ends (the report and the replay read them)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], Alarm] = {}

    def note(self, alarms: tuple[Alarm, ...], journal: Journal, actor: str) -> None:
        now = {(a.metric, a.level): a for a in alarms}
        for key in now.keys() - self.seen.keys():
            journal.event("alarm.raised", asdict(now[key]), actor)
        for key in self.seen.keys() - now.keys():
            journal.event("alarm.cleared", asdict(self.seen[key]), actor)
        self.seen = now
