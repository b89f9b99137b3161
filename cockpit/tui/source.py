"""Where a read-only cockpit gets its state (blocking; the screen calls it in a thread): the journal another
controller writes now (JournalSource), or a recorded journal played back (ReplaySource)."""

from __future__ import annotations

import os
import threading

from cockpit.control.factory import build_traffic
from cockpit.control.replay import Playback, ReplayClock
from cockpit.control.view import read_state
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan
from cockpit.core.state import CockpitState
from cockpit.drivers.traffic.base import TrafficDriver


class JournalSource:
    """Calling it reads the plan's journal (opened read-only on first use) into a CockpitState.

    Raises FileNotFoundError while no controller has ever written the journal; the caller shows that and retries.
    """

    def __init__(self, plan: Plan, traffic: TrafficDriver | None = None):
        self.plan = plan
        self._traffic = traffic if traffic is not None else build_traffic(plan)
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def __call__(self) -> CockpitState:
        with self._lock:
            if self._journal is None:
                self._journal = Journal(self.plan.path(self.plan.journal.path), readonly=True)
            return read_state(self.plan, self._journal, self._traffic)

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None


class ReplaySource:
    """Calling it gives the recorded state at the replay's time (`cockpit replay`): the journal is read on the first
    call (blocking: the screen calls it in a thread), then every call answers from memory.

    The keys move `playback` from the screen's loop; they never wait for the load (None until it is done).
    """

    def __init__(
        self,
        plan: Plan,
        journal: str | os.PathLike[str],
        *,
        speed: float = 60.0,
        at: float | None = None,
        paused: bool = False,
    ):
        self.plan = plan
        self.journal = journal
        self._speed, self._at, self._paused = speed, at, paused
        self.clock: ReplayClock | None = None
        self.playback: Playback | None = None
        self.calls = 0  # polls answered (tests watch a paused replay stay put across polls)
        self._loading = threading.Lock()
        self._error: Exception | None = None
        self._last: CockpitState | None = None

    def __call__(self) -> CockpitState:
        with self._loading:
            if self._error is not None:
                raise self._error  # a journal that cannot be read is read once, not once a tick
            if self.clock is None:
                try:
                    clock = ReplayClock.load(self.journal, self.plan)
                except Exception as exc:
                    self._error = exc
                    raise
                self.playback = Playback(
                    clock.start, clock.end, speed=self._speed, at=self._at, paused=self._paused
                )
                self.clock = clock
        assert self.playback is not None
        self.calls += 1
        t = self.playback.position()
        last = self._last
        if last is not None and last.now == t:
            return last  # the same snapshot: the screen redraws nothing
        self._last = self.clock.state_at(t)
        return self._last

    def close(self) -> None:
        """Nothing stays open: the journal was read once and closed."""
