"""Where a read-only cockpit gets its state: the journal another controller writes (blocking; call it in a thread)."""

from __future__ import annotations

import threading

from cockpit.control.factory import build_traffic
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
