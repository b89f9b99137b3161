"""`cockpit replay`: a journal played back on the screen, read-only.

Keys: space pause/play, n jump to the next event, + / - double or halve the speed, q quit. The journal is read
once in a thread (ReplayClock.load); each tick then asks the clock for the view at the replay time, from memory,
so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import os

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.control.replay import ReplayClock, ReplayView
from cockpit.core.journal import format_event, format_when
from cockpit.core.redact import redact_text

TICK_S = 0.1


class ReplayApp(App[int]):
    BINDINGS = [
        Binding("space", "pause_play", "pause/play"),
        Binding("n", "next_event", "next event"),
        Binding("plus,+", "faster", "faster"),
        Binding("minus,-", "slower", "slower"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, journal: str | os.PathLike[str], *, speed: float = 60.0, at: float | None = None):
        super().__init__()
        self.journal = journal
        self.speed = speed
        self.start_at = at
        self.paused = False
        self.clock: ReplayClock | None = None
        self.now = 0.0
        self.view: ReplayView | None = None

    def compose(self) -> ComposeResult:
        yield Static("loading the journal…", id="replay-title")
        yield Static("", id="replay-metrics")
        yield Static("", id="replay-alarms")
        yield Static("", id="replay-events")

    async def on_mount(self) -> None:
        self.clock = await asyncio.to_thread(ReplayClock.load, self.journal)
        self.now = self.clock.start if self.start_at is None else self.start_at
        self.set_interval(TICK_S, self._tick)
        self._draw()

    def _tick(self) -> None:
        if self.clock is None or self.paused:
            return
        self.now = min(self.now + TICK_S * self.speed, self.clock.end)
        self._draw()

    def _draw(self) -> None:
        if self.clock is None:
            return
        self.view = v = self.clock.at(self.now)
        state = "paused" if self.paused else f"×{self.speed:g}"
        self.query_one("#replay-title", Static).update(
            f"REPLAY {format_when(v.ts)} ({state}) phase {v.phase or '?'}; {v.events_so_far} events"
        )
        metrics = "\n".join(f"{k}: {'—' if x is None else f'{x:g}'}" for k, x in sorted(v.metrics.items()))
        self.query_one("#replay-metrics", Static).update(redact_text(metrics) or "no samples yet")
        alarms = "\n".join(f"{a.get('level')}: {a.get('message', a.get('metric'))}" for a in v.alarms)
        self.query_one("#replay-alarms", Static).update(redact_text(alarms) or "no alarm")
        self.query_one("#replay-events", Static).update(
            redact_text("\n".join(format_event(e) for e in v.recent)) or "no event yet"
        )

    def action_pause_play(self) -> None:
        self.paused = not self.paused
        self._draw()

    def action_next_event(self) -> None:
        if self.clock is not None:
            nxt = self.clock.next_event_after(self.now)
            if nxt is not None:
                self.now = nxt
            self._draw()

    def action_faster(self) -> None:
        self.speed *= 2
        self._draw()

    def action_slower(self) -> None:
        self.speed = max(self.speed / 2, 0.25)
        self._draw()
