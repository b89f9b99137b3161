"""The replay clock: the controller's view at any time t of a journal, rebuilt from the journal alone.

The journal is read once (events, and each metric's samples); `at(t)` then answers from memory by bisection, so
stepping or scrubbing through a 4 h journal costs milliseconds and never touches the disk again.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from typing import Any

from cockpit.core.journal import Event, Journal


@dataclass(frozen=True)
class ReplayView:
    """What the screen showed at `ts`: the last value of each metric, the open alarms, the last events."""

    ts: float
    metrics: dict[str, float | None]
    alarms: tuple[dict[str, Any], ...]
    recent: tuple[Event, ...]
    phase: str | None = None
    events_so_far: int = 0


@dataclass
class ReplayClock:
    events: list[Event]
    series: dict[str, tuple[list[float], list[float | None]]]
    start: float = 0.0
    end: float = 0.0
    _event_ts: list[float] = field(default_factory=list)

    @classmethod
    def load(cls, journal_path: str | os.PathLike[str]) -> ReplayClock:
        with Journal(journal_path, readonly=True) as j:
            events = j.events_between()
            series: dict[str, tuple[list[float], list[float | None]]] = {}
            for name in j.sample_names():
                points = j.sample_series(name)
                series[name] = ([t for t, _ in points], [v for _, v in points])
        stamps = [e.ts for e in events] + [ts[0] for ts, _ in series.values() if ts]
        ends = [e.ts for e in events] + [ts[-1] for ts, _ in series.values() if ts]
        clock = cls(events, series, min(stamps, default=0.0), max(ends, default=0.0))
        clock._event_ts = [e.ts for e in events]
        return clock

    def next_event_after(self, ts: float) -> float | None:
        i = bisect.bisect_right(self._event_ts, ts)
        return self._event_ts[i] if i < len(self._event_ts) else None

    def at(self, ts: float, recent: int = 10) -> ReplayView:
        n = bisect.bisect_right(self._event_ts, ts)
        metrics: dict[str, float | None] = {}
        for name, (stamps, values) in self.series.items():
            i = bisect.bisect_right(stamps, ts)
            if i:
                metrics[name] = values[i - 1]
        alarms: dict[tuple[str, str], dict[str, Any]] = {}
        phase: str | None = None
        for e in self.events[:n]:
            if e.kind == "alarm.raised":
                alarms[(str(e.payload.get("metric")), str(e.payload.get("level")))] = e.payload
            elif e.kind == "alarm.cleared":
                alarms.pop((str(e.payload.get("metric")), str(e.payload.get("level"))), None)
            state = e.payload.get("state")
            if isinstance(state, dict) and "phase" in state:
                phase = str(state["phase"])
        return ReplayView(
            ts=ts,
            metrics=metrics,
            alarms=tuple(alarms.values()),
            recent=tuple(self.events[max(0, n - recent) : n]),
            phase=phase,
            events_so_far=n,
        )
