"""What a rehearsal measures per scenario (`Outcome`) and the readings it takes of the lab."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.plan import Plan
from cockpit.lab.errors import LabError
from cockpit.lab.ledger import LedgerCheck
from cockpit.lab.load import read_figures


@dataclass
class Outcome:
    scenario: str
    fired: list[str] = field(default_factory=list)
    trigger_s: float | None = None  # fault -> the scenario's trigger fired
    trigger_for_s: float = 0.0  # the plan's `for`
    zero_s: float | None = None  # fault -> the split at 0 %
    rollback_steps: int = 0
    rollback_s: float | None = None
    failed_inside: int = 0
    failed_outside: int = 0
    ledger: LedgerCheck | None = None
    sync_lag_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def wait_until(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    raise LabError(f"rehearsal: {what} did not happen within {timeout:g}s")


def live_split(plan: Plan) -> float:
    from cockpit.drivers.traffic.nginx import NginxDriver

    return float(NginxDriver.from_plan(plan).live()[0].green_percent or 0.0)


def errors_so_far(root: Path) -> int:
    fig = read_figures(root / "load.json") or {}
    return int((fig.get("total") or {}).get("errors", 0))
