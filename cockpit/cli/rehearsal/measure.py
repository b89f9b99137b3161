"""What a rehearsal measures per scenario (`Outcome`) and the readings it takes of the lab.

Failed requests are read from nginx's access log (the front door's JSON lines: time, status, side), so each failure
is placed by when it happened, not by when a figures file was last written: 5xx answers, and 499 (the client gave
up waiting). The load's own connection failures never reach nginx; nginx is never the thing broken here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.plan import Plan
from cockpit.lab.errors import LabError
from cockpit.lab.ledger import LedgerCheck


@dataclass
class Outcome:
    scenario: str
    expect: str = ""
    fired: list[str] = field(default_factory=list)
    trigger_s: float | None = None  # fault -> the scenario's trigger fired
    trigger_for_s: float | None = None  # the plan's `for`
    zero_s: float | None = None  # fault -> the split at 0 %
    rollback_steps: int = 0
    rollback_s: float | None = None
    window_s: float | None = None  # fault -> the world healthy again (the end of the fault's window)
    failed_inside: int = 0
    failed_outside: int = 0
    ledger: LedgerCheck | None = None
    lag_after: str = "-"  # both directions at the end of the window, and how long they took to reach 0
    facts: list[str] = field(default_factory=list)  # what the scenario saw that the columns do not say
    problems: list[str] = field(default_factory=list)
    # set by the scenario: the start of the fault, the end of its window (epoch seconds)
    fault_at: float = 0.0
    recovered_at: float = 0.0

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


def access_log(plan: Plan) -> Path:
    return Path(plan.path(plan.traffic.balancers[0].access_log))


def failures(log: Path, since: float, until: float) -> list[float]:
    """The times of the front door's failed answers (5xx, 499) between `since` and `until`."""
    out: list[float] = []
    try:
        fh = log.open(encoding="utf-8")
    except FileNotFoundError:
        return out
    with fh:
        for line in fh:
            if '"s":5' not in line and '"s":499' not in line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            t = float(row.get("t", 0))
            if since <= t <= until and (int(row.get("s", 0)) >= 500 or int(row.get("s", 0)) == 499):
                out.append(t)
    return out


def lag_text(lag: dict[str, dict[str, float]], settle_s: float) -> str:
    """'b→g 0.4s/3, g→b 0s/0; 0 in 1.2s': each direction's age/pending at the window's end, then the settling."""

    def one(d: str) -> str:
        x = lag.get(d) or {}
        return f"{float(x.get('age_s', 0)):.1f}s/{int(x.get('pending', 0))}"

    return f"b→g {one('blue_to_green')}, g→b {one('green_to_blue')}; 0 in {settle_s:.1f}s"
