"""`cockpit replay`: the cockpit's own screen, its panels fed by a recorded journal instead of a controller.

The screen is CockpitApp, read-only, with a ReplaySource for its state (tui/source.py: the journal read once in a
thread, then cockpit.control.replay rebuilds the snapshot the controller published at the replay's time). The
title bar carries the replay's clock: played or paused, speed, time and how far through the journal. Keys (the
registry's REPLAY_ACTIONS, in the footer, help and palette): space pause/play, n the next event, + / - twice or
half the speed; every key that acts is refused with "replay: read-only".
"""

from __future__ import annotations

import contextlib
import os
import time

from textual.content import Content
from textual.css.query import NoMatches

from cockpit.control.replay import Playback
from cockpit.core.plan import Plan
from cockpit.core.state import CockpitState
from cockpit.tui import render, themes
from cockpit.tui.app import CockpitApp
from cockpit.tui.keys import ACTIONS, REPLAY_ACTIONS, bindings
from cockpit.tui.panels import TitleBar
from cockpit.tui.source import ReplaySource

READ_ONLY = "replay: read-only (a recorded journal; nothing is sent to any controller)"


def replay_bar(playback: Playback | None, at: float | None) -> str:
    """`REPLAY ▶ ×60 · 2026-12-05 14:03:07 · 35%`: played or paused, speed, the time shown, how far through."""
    if playback is None or at is None:
        return "REPLAY · reading the journal…"
    sign = "‖" if playback.paused else "▶"
    span = playback.end - playback.start
    done = 1.0 if span <= 0 else (at - playback.start) / span
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"REPLAY {sign} ×{playback.speed:g} · {when} · {done:.0%}"


class ReplayApp(CockpitApp):
    """The cockpit screen over a recorded journal: the same panels, read-only, with pause, step and speed keys."""

    BINDINGS = bindings(REPLAY_ACTIONS)  # Textual adds them to CockpitApp's
    KEY_ACTIONS = (*ACTIONS, *REPLAY_ACTIONS)

    def __init__(
        self,
        plan: Plan,
        journal: str | os.PathLike[str],
        *,
        speed: float = 60.0,
        at: float | None = None,
        paused: bool = False,
        poll_interval: float = 0.25,
        settings: themes.Settings | None = None,
    ):
        self.source = ReplaySource(plan, journal, speed=speed, at=at, paused=paused)
        super().__init__(
            plan, read_only=True, state_source=self.source, poll_interval=poll_interval, settings=settings
        )
        self.sub_title = "replay"

    # ------------------------------------------------------------------------------------------ what differs
    def on_mount(self) -> None:
        super().on_mount()
        # a figure the journal holds no sample of shows as –, as a silent source does live: say which it is here
        self.main_screen.query_one("#metrics").border_title = "Metrics (recorded; – not recorded)"

    def readiness_text(self, state: CockpitState | None) -> Content:
        return Content.assemble(
            ("◌ rollback readiness ", "bold"), ("not recorded in the journal (replay)", render.MUTED)
        )

    def _tag(self) -> str:
        return replay_bar(self.source.playback, self.state.now if self.state is not None else None)

    def _show_status(self) -> None:
        super()._show_status()
        screen = getattr(self, "main_screen", None)
        if screen is not None and self.is_running:
            with contextlib.suppress(NoMatches):
                screen.query_one("#title", TitleBar).retag(self._tag())

    def _cannot_act(self, verb: str) -> bool:
        self._report(verb, "refused", READ_ONLY)
        return True

    # ------------------------------------------------------------------------------------------ replay keys
    def _playback(self) -> Playback | None:
        playback = self.source.playback
        if playback is None:
            self.notify("still reading the journal…", timeout=3)
        return playback

    def _moved(self) -> None:
        """Show the move now: a poll (in a thread) and the bar."""
        self._tick()

    def action_replay_pause(self) -> None:
        playback = self._playback()
        if playback is not None:
            playback.toggle()
            self._moved()

    def action_replay_next(self) -> None:
        playback, clock = self._playback(), self.source.clock
        if playback is None or clock is None:
            return
        nxt = clock.next_event_after(playback.position())
        if nxt is None:
            self.notify("no event after this one: the end of the journal", timeout=3)
            return
        playback.jump(nxt)
        self._moved()

    def action_replay_faster(self) -> None:
        playback = self._playback()
        if playback is not None:
            playback.set_speed(playback.speed * 2)
            self._moved()

    def action_replay_slower(self) -> None:
        playback = self._playback()
        if playback is not None:
            playback.set_speed(playback.speed / 2)
            self._moved()
