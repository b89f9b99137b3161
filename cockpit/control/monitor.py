"""The tick's readings: every metrics source, the sync's lag and the live split polled (in threads, never
overlapping), a source's failure journaled once and each source's last good reading timed (the screen greys a
silent one), the rules evaluated (alarms, gates, rollback triggers), the rollback-readiness light assessed (its
costly probes run in their own thread), the samples journaled and old ones pruned hourly.

The controller owns one Monitor; actions read its figures (the gates of an advance, the live split) and the
screen sees them in every snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cockpit.control.factory import Drivers
from cockpit.control.readiness_probe import ReadinessProbe
from cockpit.core.checks import EVENT as PREFLIGHT_EVENT
from cockpit.core.checks import fresh_go
from cockpit.core.journal import Journal
from cockpit.core.metric_names import SIDES
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan, format_duration
from cockpit.core.rules import (
    Fired,
    SyncFacts,
    TriggerTracker,
    backup_gate,
    check_gates,
    schema_advice,
    sync_alarms,
    threshold_alarms,
)
from cockpit.core.state import SOURCE_SYNC, SOURCE_TRAFFIC, Alarm, Lag, Readiness, source_name
from cockpit.core.vocabulary import EXPOSED, State
from cockpit.drivers.traffic.base import live_percent

PRUNE_EVERY_S = 3600.0  # old metric samples are dropped at start and then hourly (journal.keep_samples)

GateReading = tuple[str, bool, str]  # (gate, met, why)


class Monitor:
    def __init__(self, plan: Plan, drivers: Drivers, journal: Journal, actor: str):
        self.plan = plan
        self.drivers = drivers
        self.journal = journal
        self.actor = actor
        self.metrics: dict[str, float | None] = {}
        self.lag: dict[str, Lag] = {}
        self.alarms: tuple[Alarm, ...] = ()
        self.gates: tuple[GateReading, ...] = ()
        self.green_live: float | None = None  # the live split, as last read or applied
        self.triggers = TriggerTracker(plan.rollback.triggers)
        self.next_prune = 0.0
        self.readiness_probe = ReadinessProbe(plan, drivers)
        self.readiness: Readiness | None = None
        self.sources: dict[str, float] = {}  # source -> when it last read well (epoch seconds)
        self._troubles: dict[str, str] = {}  # source -> its current error, journaled once
        self.stranded = 0  # after a rollback: changes still on green only (the controller keeps it)
        # rows that differ after the sync drained (the integrity watch's last report): table -> (keys, count)
        self.mismatched: dict[str, tuple[Sequence[str], int]] = {}
        self._mismatch_at = 0.0

    async def poll(self, machine: Machine, *, copying: bool, now: float) -> None:
        """Read every source once (blocking reads in threads); a failing source is journaled, not raised."""
        metrics: dict[str, float | None] = {}
        sources = self.drivers.metrics
        results = await asyncio.gather(*(asyncio.to_thread(s.poll) for s in sources), return_exceptions=True)
        for src, res in zip(sources, results, strict=True):
            if isinstance(res, BaseException):
                self.trouble(f"metrics.{type(src).__name__}", res)
            else:
                problem = getattr(src, "problem", None)  # answered, but could not read its figures
                self.trouble(f"metrics.{type(src).__name__}", problem)
                metrics.update(res)
                if problem is None:
                    self.sources[source_name(src)] = now
        if self.drivers.sync is not None and not copying:  # no change log on green until the copy is done
            try:
                self.lag = dict(await asyncio.to_thread(self.drivers.sync.lag))
                metrics["sync_lag"] = max((v.age_s for v in self.lag.values()), default=0.0)
                for direction, v in self.lag.items():
                    metrics[f"sync.{direction}.age_s"] = v.age_s
                    metrics[f"sync.{direction}.pending"] = float(v.pending)
                metrics.update(self.drivers.sync.metrics())  # as of the lag just read
                self.trouble("sync", None)
                self.sources[SOURCE_SYNC] = now
            except Exception as exc:
                self.trouble("sync", exc)
        if self.drivers.traffic is not None:
            try:
                self.green_live = live_percent(await asyncio.to_thread(self.drivers.traffic.live))
                self.trouble("traffic", None)
                self.sources[SOURCE_TRAFFIC] = now
            except Exception as exc:
                self.trouble("traffic", exc)
        metrics["green_configured"] = machine.green(self.plan)
        for (
            side
        ) in SIDES:  # a database out of reach, seen by the users (502/503/504) or by the cockpit's probe
            seen = [
                metrics.get(f"{side}.{n}") for n in ("connection_failure_rate", "db_connection_failure_rate")
            ]
            if any(v is not None for v in seen):
                metrics[f"{side}.connection_failures"] = max(v for v in seen if v is not None)
        self.metrics = metrics

    async def read_split(self) -> float | None:
        """The live split read from the world now (None without a traffic driver)."""
        if self.drivers.traffic is not None:
            self.green_live = live_percent(await asyncio.to_thread(self.drivers.traffic.live))
        return self.green_live

    def trouble(self, source: str, exc: BaseException | None) -> None:
        """Journal a source's failure when it starts or changes, and its recovery: not once a tick."""
        now = None if exc is None else f"{type(exc).__name__}: {exc}"
        if self._troubles.get(source) == now:
            return
        if now is None:
            self.journal.event("source.recovered", {"source": source}, self.actor)
            self._troubles.pop(source, None)
        else:
            self.journal.event("source.error", {"source": source, "error": now}, self.actor)
            self._troubles[source] = now

    def evaluate(self, machine: Machine, now: float) -> list[Fired]:
        """Alarms and gates from the last poll; the rollback triggers that fired (armed while users may be on
        green)."""
        alarms = threshold_alarms(self.plan.metrics, self.metrics)
        nxt = machine.phase_index
        current = self.plan.phases[nxt] if 0 <= nxt < len(self.plan.phases) else None
        self.gates = tuple(check_gates(current, self.metrics)) if current else self.ready_gates(machine)
        fired: list[Fired] = []
        if machine.phase_index >= 0 and machine.state in EXPOSED:
            fired, pending = self.triggers.update(self.metrics, now)
            alarms += pending
        else:
            self.triggers.reset()
        self._clear_mismatch()
        alarms += sync_alarms(self.plan.sync, self.metrics, self.facts())
        self.alarms = tuple(alarms)
        self.readiness = self.assess(now)
        return fired

    def facts(self) -> SyncFacts:
        sync = self.drivers.sync
        return SyncFacts(
            problem=sync.problem() if sync is not None else None,
            schema_changed=dict(sync.schema_changed) if sync is not None else {},
            stranded=self.stranded,
            mismatched=dict(self.mismatched),
        )

    def note_mismatch(self, report: Mapping[str, Any], now: float) -> None:
        """An integrity report with rows that differ after the sync drained (any thread)."""
        found: dict[str, tuple[Sequence[str], int]] = {}
        for t in report.get("tables") or []:
            if t.get("diff_count"):
                keys = ["(" + ", ".join(str(k) for k in d["key"]) + ")" for d in (t.get("diffs") or [])[:5]]
                found[t["table"]] = (keys, int(t["diff_count"]))
            elif t.get("note"):
                found[t["table"]] = ([str(t["note"])], 1)
        self.mismatched, self._mismatch_at = found, now

    def _clear_mismatch(self) -> None:
        """A full check that found the sides equal since the mismatch clears it."""
        at = self.metrics.get("data_integrity_checked_at")
        equal = self.metrics.get("data_integrity_score") == 100.0
        if self.mismatched and equal and at is not None and at > self._mismatch_at:
            self.mismatched = {}

    def assess(self, now: float) -> Readiness:
        """The rollback-readiness light from this tick's readings and the probe's last round (never waits)."""
        sync = self.drivers.sync is not None
        conflicts = self.metrics.get("sync.conflicts_waiting") if sync else None
        return self.readiness_probe.assess(
            self.metrics,
            self.lag if sync else None,
            self._troubles.get("sync") or (self.drivers.sync.problem() if self.drivers.sync else None),
            now,
            conflicts=None if conflicts is None else int(conflicts),
        )

    def ready_gates(self, machine: Machine) -> tuple[GateReading, ...]:
        """Before the first phase: a fresh backup of blue, when the plan requires one; a fresh preflight go when
        the first phase requires one."""
        if machine.phase_index >= 0 or machine.state != State.READY:
            return ()
        gate = backup_gate(self.plan.backup, self.metrics)
        pre = self.preflight_gate(0, time.time())
        return tuple(g for g in (gate, pre) if g)

    def preflight_gate(self, target: int, now: float) -> GateReading | None:
        """Phase `target` with `preflight: true`: a go journaled within `preflight.max_age` (the CLI journals
        every run; reading it back here keeps the gate cheap: the run itself takes seconds)."""
        if not (0 <= target < len(self.plan.phases)) or not self.plan.phases[target].preflight:
            return None
        found = self.journal.events(kinds=[PREFLIGHT_EVENT], limit=1)
        last = found[0] if found else None
        met, why = fresh_go(
            last.payload if last else None, last.ts if last else None, now, float(self.plan.preflight.max_age)
        )
        return f"preflight go within {format_duration(float(self.plan.preflight.max_age))}", met, why

    def gate_problems(self, machine: Machine, now: float) -> list[str]:
        """What stops an advance from `machine` now: a schema changed under the sync, soak time, unmet gates."""
        changed = self.facts().schema_changed
        if changed:
            return [
                f"schema changed under the sync ({', '.join(sorted(changed))}): {schema_advice(sorted(changed))}"
            ]
        if machine.phase_index < 0 and machine.state == State.READY:
            return [f"{g} ({why})" for g, met, why in self.ready_gates(machine) if not met]
        if machine.phase_index < 0 or machine.state == State.ROLLED_BACK:
            return []
        phase = self.plan.phases[machine.phase_index]
        problems = []
        in_phase = now - machine.since
        if in_phase < phase.soak:
            problems.append(f"soak: {in_phase:.0f}s of {phase.soak:.0f}s in {phase.name}")
        problems += [f"{g} ({why})" for g, met, why in check_gates(phase, self.metrics) if not met]
        return problems

    def record(self, now: float) -> None:
        """Journal the last poll's samples; prune old ones when due."""
        if self.metrics:
            live = (
                {} if self.green_live is None else {"split_green_live": self.green_live}
            )  # the report charts it
            self.journal.samples({**{k: v for k, v in self.metrics.items() if v is not None}, **live})
        if now >= self.next_prune:
            self.prune(now)

    def prune(self, now: float) -> int:
        """Drop the samples older than `journal.keep_samples` (events are never dropped); then again in an hour."""
        self.next_prune = now + PRUNE_EVERY_S
        return self.journal.prune_samples(now - float(self.plan.journal.keep_samples))
