"""The replay: the controller's CockpitState at any time t of a recorded journal, rebuilt from the journal alone,
and the playback that moves t (pause, step to the next event, speed).

What the journal records, and so what a replay shows:
- every tick's metrics, as one batch of samples with one time stamp (`Monitor.record`), with the live split
  (`split_green_live`) and the sync's lag per direction (`sync.<direction>.age_s` and `.pending`): the state at t
  carries the last batch at or before t, and each source's last good reading is the last batch that held its
  figures (the screen greys a silent one, as it does live);
- the machine (state, phase, since) at each `controller.start` and `controller.stop`, and in between as the
  actions moved it (their intents, steps and outcomes, folded with the phase machine's own rules);
- the actions with their steps, the alarms raised and cleared, who held the controller.

Changes a rollback stranded on green follow the `rollback.stranded` / `.forced` / `.drained` events (their count
as the rollback left it); an ending (finalize or abandon) shows from its outcome, which carries it. The gates of
the next advance are worked out again from the recorded figures by the controller's own rules. Not recorded, so
never shown as if it were: the rollback-readiness light, the initial copy's progress, an ending still under way.

The journal is read once (`ReplayClock.load`, blocking: call it in a thread); `state_at(t)` then answers from
memory by bisection and folds nothing again, so a 4 h journal steps in milliseconds.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cockpit.control.view import build_state
from cockpit.core import phases
from cockpit.core.checks import EVENT as PREFLIGHT_EVENT
from cockpit.core.checks import fresh_go
from cockpit.core.journal import ActionRecord, Event, Journal, _fold_actions
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan, format_duration
from cockpit.core.rules import backup_gate, check_gates
from cockpit.core.state import SOURCE_SYNC, SOURCE_TRAFFIC, Alarm, CockpitState, Ended, Lag, Stranded
from cockpit.core.vocabulary import MOVING, State

LIVE_SPLIT = "split_green_live"  # Monitor.record journals the live split under this name
DIRECTIONS = ("blue_to_green", "green_to_blue")
# each source (as CockpitState.sources names it) and the figures that say it read well on a tick
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    SOURCE_TRAFFIC: (LIVE_SPLIT,),
    SOURCE_SYNC: ("sync_lag",),
    "accesslogsource": ("access_log.window_s", "throughput"),
    "systemmetrics": ("cpu_usage", "memory_usage", "disk_usage"),
    "databasemetrics": ("green.db_up", "connection_pool_usage"),
    "bluebackup": ("backup_age",),
    "integritywatch": ("data_integrity_score", "data_integrity_touched_score"),
    "prometheussource": ("prometheus.up",),
}
RECENT_ACTIONS = 10  # as many as the live screen shows


@dataclass(frozen=True)
class Moment:
    """What the journal says held just after one event: the machine, the open alarms, who held the controller,
    the action under way."""

    machine: Machine
    alarms: tuple[Alarm, ...] = ()
    controller: dict[str, Any] | None = None
    running: str | None = None
    stranded: Stranded | None = None
    ended: Ended | None = None


class _Fold:
    """Folds events into Moments, one event at a time (the phase machine's rules, applied to what was journaled)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.machine = Machine()
        self.alarms: dict[tuple[str, str], Alarm] = {}
        self.controller: dict[str, Any] | None = None
        self.open: dict[str, tuple[str, str, Machine]] = {}  # action id -> (verb, reason, machine before)
        self.stranded: Stranded | None = None
        self.ended: Ended | None = None

    def moment(self) -> Moment:
        running = next(reversed(self.open.values()))[0] if self.open else None
        alarms = tuple(self.alarms.values())
        return Moment(self.machine, alarms, self.controller, running, self.stranded, self.ended)

    def add(self, e: Event) -> None:
        p = e.payload
        if e.kind in ("controller.start", "controller.stop"):
            if isinstance(p.get("state"), dict):
                self.machine = Machine.from_dict(p["state"])
            self.controller = (
                {"pid": p.get("pid"), "actor": e.actor} if e.kind == "controller.start" else None
            )
            if e.kind == "controller.stop":
                self.open.clear()
        elif e.kind in ("alarm.raised", "alarm.cleared"):
            key = (str(p.get("metric")), str(p.get("level")))
            if e.kind == "alarm.cleared":
                self.alarms.pop(key, None)
            else:
                self.alarms[key] = Alarm(
                    str(p.get("metric")),
                    str(p.get("level")),
                    p.get("value"),
                    float(p.get("threshold") or 0.0),
                    str(p.get("message", "")),
                )
        elif e.kind == "reconcile.split":  # a restart found another split live than the journal's phase
            matched = p.get("phase_index")
            if matched is None:
                live = p.get("live_green")
                why = f"live split {'?' if live is None else format(float(live), 'g')}% matches no phase"
                self.machine = Machine(State.HELD, self.machine.phase_index, e.ts, why)
            else:
                self.machine = phases.settled(Machine(phase_index=int(matched)), self.plan, e.ts)
        elif e.kind.startswith("rollback."):
            self._stranded(e)
        elif e.action_id is not None:
            self._action(e)

    def _stranded(self, e: Event) -> None:
        """Changes left on green only by a rollback (cockpit/control/stranded.py journals each change of it)."""
        p = e.payload
        if e.kind == "rollback.stranded":
            deferred = bool(p.get("stop_green_deferred"))
            self.stranded = Stranded(int(p.get("green_only", -1)), e.ts, deferred, str(e.action_id or ""))
        elif e.kind == "rollback.forced" and self.stranded is not None:
            self.stranded = replace(self.stranded, stop_green_deferred=False)
        elif e.kind in ("rollback.drained", "rollback.stranded_ended"):
            self.stranded = None

    def _action(self, e: Event) -> None:
        p, aid = e.payload, str(e.action_id)
        if e.kind == "action.intent":
            verb = str(p.get("verb", "?"))
            self.open[aid] = (verb, str(p.get("reason", "")), self.machine)
            if verb == "rollback":
                self.machine = replace(self.machine, state=State.ROLLING_BACK, since=e.ts)
            return
        if aid not in self.open:
            return
        verb, reason, before = self.open[aid]
        if e.kind == "action.step":
            if verb == "advance" and p.get("step") == "gates" and p.get("status") == "ok":
                self.machine = replace(self.machine, state=State.ADVANCING)
            return
        if e.kind != "action.outcome":
            return
        del self.open[aid]
        if isinstance((p.get("extra") or {}).get("ended"), dict):  # finalize or abandon: its end, as it was
            self.ended = Ended.from_dict(p["extra"]["ended"])
        self.machine = self._after(verb, reason, before, str(p.get("outcome")), p.get("extra") or {}, e.ts)

    def _after(
        self, verb: str, reason: str, before: Machine, outcome: str, extra: dict[str, Any], ts: float
    ) -> Machine:
        """The machine after an action's outcome, as the action itself set it (cockpit/control/*.py)."""
        try:
            if outcome in (
                "reconciled",
                "interrupted",
            ):  # settled after a restart (cockpit/control/reconcile.py)
                moving = self.machine.state in MOVING and not self.open
                return phases.settled(self.machine, self.plan, ts) if moving else self.machine
            if outcome == "preempted":
                return replace(before, state=State.ACTIVE if before.phase_index >= 0 else State.READY)
            if verb == "rollback":
                if outcome in ("ok", "partial"):
                    return Machine(State.ROLLED_BACK, -1, ts)
                return Machine(State.FAILED, before.phase_index, ts) if outcome == "failed" else before
            if outcome != "ok":
                return before
            if verb == "advance" and extra.get("phase"):
                target = self.plan.phase_index(str(extra["phase"]))
                return phases.settled(Machine(phase_index=target), self.plan, ts)
            if verb == "hold":
                return phases.hold(before, reason, ts)
            if verb == "resume":
                return phases.resume(before, self.plan, ts)
            if verb == "abandon":
                return Machine(State.ABANDONED, -1, ts)
        except Exception:  # a journal of another plan (a phase it does not name): keep what was known
            return self.machine
        return self.machine


@dataclass
class ReplayClock:
    """A journal in memory: its events, one Moment after each, and the metric batches by time."""

    plan: Plan
    events: list[Event]
    moments: list[Moment]  # moments[i]: after the first i events (moments[0]: before any)
    batch_ts: list[float]  # the time of each tick's batch of samples, ascending
    batches: list[dict[str, float | None]]
    start: float = 0.0
    end: float = 0.0
    _event_ts: list[float] = field(default_factory=list)
    _seen: dict[str, list[float]] = field(default_factory=dict)  # source -> times of the batches it read in

    @classmethod
    def load(cls, journal_path: str | os.PathLike[str], plan: Plan) -> ReplayClock:
        """Read the whole journal (read-only). Blocking: call it in a thread."""
        with Journal(journal_path, readonly=True) as j:
            events = j.events_between()
            by_ts: dict[float, dict[str, float | None]] = {}
            for name in j.sample_names():
                for ts, value in j.sample_series(name):
                    by_ts.setdefault(ts, {})[name] = value
        events.sort(key=lambda e: (e.ts, e.id))
        fold = _Fold(plan)
        moments = [fold.moment()]
        for e in events:
            fold.add(e)
            moments.append(fold.moment())
        batch_ts = sorted(by_ts)
        stamps = [*(e.ts for e in events), *batch_ts[:1], *batch_ts[-1:]]
        clock = cls(
            plan,
            events,
            moments,
            batch_ts,
            [by_ts[t] for t in batch_ts],
            min(stamps, default=0.0),
            max(stamps, default=0.0),
        )
        clock._event_ts = [e.ts for e in events]
        clock._seen = {
            source: [t for t, b in zip(batch_ts, clock.batches, strict=True) if any(k in b for k in keys)]
            for source, keys in SOURCE_KEYS.items()
        }
        return clock

    def next_event_after(self, ts: float) -> float | None:
        i = bisect.bisect_right(self._event_ts, ts)
        return self._event_ts[i] if i < len(self._event_ts) else None

    def events_until(self, ts: float) -> int:
        """How many events happened at or before `ts`."""
        return bisect.bisect_right(self._event_ts, ts)

    def metrics_at(self, ts: float) -> tuple[dict[str, float | None], float | None]:
        """The last tick's batch at or before `ts` and its time ({} and None before the first)."""
        i = bisect.bisect_right(self.batch_ts, ts)
        return (dict(self.batches[i - 1]), self.batch_ts[i - 1]) if i else ({}, None)

    def state_at(self, ts: float) -> CockpitState:
        """The screen's snapshot at `ts`, as the controller published it then (read-only)."""
        n = self.events_until(ts)
        moment = self.moments[n]
        metrics, _at = self.metrics_at(ts)
        lag = {
            d: Lag(float(metrics[f"sync.{d}.age_s"] or 0.0), int(metrics.get(f"sync.{d}.pending") or 0))
            for d in DIRECTIONS
            if metrics.get(f"sync.{d}.age_s") is not None
        }
        sources = {}
        for source, seen in self._seen.items():
            i = bisect.bisect_right(seen, ts)
            if i:
                sources[source] = seen[i - 1]
        return build_state(
            self.plan,
            moment.machine,
            actions=self._actions(n),
            green_live=metrics.get(LIVE_SPLIT),
            metrics={k: v for k, v in metrics.items() if k != LIVE_SPLIT},
            lag=lag,
            alarms=moment.alarms,
            gates=self._gates(moment.machine, metrics, n, ts),
            controller=moment.controller,
            running_action=moment.running,
            read_only=True,
            now=ts,
            sources=sources,
            stranded=moment.stranded,
            ended=moment.ended,
        )

    def _actions(self, n: int) -> tuple[ActionRecord, ...]:
        """The last actions begun among the first `n` events, each as far as it had gone."""
        ids: list[str] = []
        for e in reversed(self.events[:n]):
            if e.kind == "action.intent" and e.action_id:
                ids.append(e.action_id)
                if len(ids) == RECENT_ACTIONS:
                    break
        wanted = set(ids)
        return tuple(_fold_actions([e for e in self.events[:n] if e.action_id in wanted]))

    def _gates(
        self, machine: Machine, metrics: dict[str, float | None], n: int, ts: float
    ) -> tuple[tuple[str, bool, str], ...]:
        """The gates of the next advance from the recorded figures, by the controller's rules (Monitor.evaluate)."""
        i = machine.phase_index
        if 0 <= i < len(self.plan.phases):
            return tuple(check_gates(self.plan.phases[i], metrics))
        if machine.state != State.READY:
            return ()
        found = [g for g in (backup_gate(self.plan.backup, metrics),) if g]
        if self.plan.phases and self.plan.phases[0].preflight:
            last = next((e for e in reversed(self.events[:n]) if e.kind == PREFLIGHT_EVENT), None)
            max_age = float(self.plan.preflight.max_age)
            met, why = fresh_go(last.payload if last else None, last.ts if last else None, ts, max_age)
            found.append((f"preflight go within {format_duration(max_age)}", met, why))
        return tuple(found)


SPEEDS = (0.25, 4096.0)  # the slowest and fastest replay, replay seconds per real second


class Playback:
    """Where a replay is: its time, moving at `speed` replay seconds per real second unless paused; it stops (and
    pauses) at the journal's end. Thread-safe: keys move it on the screen's loop, polls read it in a thread."""

    def __init__(
        self,
        start: float,
        end: float,
        *,
        speed: float = 60.0,
        at: float | None = None,
        paused: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.start, self.end = start, end
        self.speed = min(max(speed, SPEEDS[0]), SPEEDS[1])
        self.paused = paused
        self._clock = clock
        self._lock = threading.Lock()
        self._at = min(max(start if at is None else at, start), end)
        self._since = clock()

    def position(self) -> float:
        with self._lock:
            return self._position()

    def _position(self) -> float:
        if self.paused:
            return self._at
        t = self._at + (self._clock() - self._since) * self.speed
        if t >= self.end:
            self._at, self._since, self.paused = self.end, self._clock(), True
            return self.end
        return t

    def _set(self, at: float) -> None:
        self._at, self._since = min(max(at, self.start), self.end), self._clock()

    def toggle(self) -> bool:
        """Pause, or play (from the start again when at the end). Returns whether it is paused now."""
        with self._lock:
            now = self._position()
            if self.paused and now >= self.end:
                now = self.start
            self._set(now)
            self.paused = not self.paused
            return self.paused

    def jump(self, at: float) -> None:
        with self._lock:
            self._set(at)

    def set_speed(self, speed: float) -> float:
        with self._lock:
            self._set(self._position())
            self.speed = min(max(speed, SPEEDS[0]), SPEEDS[1])
            return self.speed

    @property
    def fraction(self) -> float:
        span = self.end - self.start
        return 1.0 if span <= 0 else (self.position() - self.start) / span
