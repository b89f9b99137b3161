"""The rehearsal's scenarios: what each one breaks, what it must come to, the split it starts from, and how it plays.

A scenario's `play` injects its fault (at `out.fault_at`), waits for what it expects, takes the fault back and
sets `out.recovered_at`, the end of the fault's window (see `day`): the rollback ended, the world healthy again.
The strategy's four fire their own trigger and roll back; the others are judged by their own expectations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cockpit.cli.rehearsal import chaos
from cockpit.cli.rehearsal.measure import Outcome, live_split, wait_until
from cockpit.lab.errors import LabError
from cockpit.lab.lab import set_fault

if TYPE_CHECKING:
    from cockpit.cli.rehearsal.day import Rehearsal

Play = Callable[["Rehearsal", Outcome], None]
Switch = Callable[["Rehearsal", bool], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    expect: str  # the outcome it must come to, shown in the table
    trigger: str | None  # the plan's trigger it must fire (None: no trigger is its doing)
    start_split: str  # the phase it starts from, when the day stands at 0 %
    play: Play
    rolls_back: bool = True
    may_fail: bool = True  # requests may fail inside its window (a fault users see)


def rolled_back_by_fault(fault: Switch) -> Play:
    """Inject, wait for the split at 0 %, take the fault back, wait for the rollback to end and health."""

    def play(r: Rehearsal, out: Outcome) -> None:
        assert r.plan is not None
        plan = r.plan
        fault(r, True)
        try:
            out.zero_s = round(wait_until(lambda: live_split(plan) == 0.0, 300, f"{out.scenario}: 0 %"), 1)
        except LabError as exc:
            out.problems.append(str(exc))
        finally:
            fault(r, False)
        wait_until(r.idle, 300, "the rollback to end")
        wait_until(r.healthy, 120, "the world to be healthy again", step=0.2)
        out.recovered_at = time.time()

    return play


def _errors(r: Rehearsal, on: bool) -> None:
    set_fault(r.root, "green", errors=50.0 if on else 0.0)


def _slow(r: Rehearsal, on: bool) -> None:
    set_fault(r.root, "green", latency_ms=6000.0 if on else 0.0)


def _hanging_webhook(r: Rehearsal, out: Outcome) -> None:
    r.webhook.set_hanging(True)
    try:
        rolled_back_by_fault(_errors)(r, out)
    finally:
        r.webhook.set_hanging(False)
    notify = chaos.rollback_step(r, out.fault_at, "notify")
    if notify is None:
        out.problems.append("the rollback has no notify step")
        return
    out.facts.append(
        f"notify {notify['status']} after {notify['duration_s']:.1f}s: {notify.get('detail', '')}"
    )
    if notify["status"] == "ok":
        out.problems.append("the hanging webhook was reported delivered")


DIVERGED_ROWS = chaos.DIVERGED_ROWS

SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "error-spike",
            "50% of green's answers are 500",
            "error_rate_spike fires, rolled back",
            "error_rate_spike",
            "ab-test",
            rolled_back_by_fault(_errors),
        ),
        Scenario(
            "neon-down",
            "the lab's PostgreSQL really stopped",
            "database_connection_failure fires, rolled back",
            "database_connection_failure",
            "ab-test",
            rolled_back_by_fault(chaos.neon),
        ),
        Scenario(
            "slow",
            "green answers 6 s late",
            "response_time_degradation fires, gradual rollback",
            "response_time_degradation",
            "ab-test",
            rolled_back_by_fault(_slow),
        ),
        Scenario(
            "webhook-hangs",
            "the alert webhook accepts and never answers; 50% of green's answers are 500",
            "rolled back within budget; notify times out, not delivered",
            "error_rate_spike",
            "ab-test",
            _hanging_webhook,
        ),
        Scenario(
            "controller-killed",
            "the controller (a child process) SIGKILLed mid-rollback, then mid-advance, restarted each time",
            "the cut actions settle on restart (rollback run again, advance to the live split)",
            None,
            "ab-test",
            chaos.controller_killed,
            may_fail=False,
        ),
        Scenario(
            "nginx-t-fails",
            "nginx's configuration broken, so `nginx -t` fails on the next split",
            "advance refused, split and include unchanged, nginx serving",
            None,
            "validation",
            chaos.nginx_test_fails,
            rolls_back=False,
            may_fail=False,
        ),
        Scenario(
            "applier-killed",
            "the sync's process SIGKILLed while it applies a batch of 4000 rows, then restarted",
            "nothing lost, nothing applied twice (counts equal, each row once)",
            None,
            "validation",
            chaos.applier_killed,
            rolls_back=False,
            may_fail=False,
        ),
        Scenario(
            "duplicates",
            "the same CNPJs posted on blue and on green at the same instant",
            "one of each pair parked in the conflicts store, 0 lost",
            None,
            "ab-test",
            chaos.duplicates,
            rolls_back=False,
            may_fail=False,
        ),
        # last: the rows stay different until the fault is taken back, and the next check sees it
        Scenario(
            "diverging",
            f"{DIVERGED_ROWS} proposals changed on green behind the sync's back",
            "data_integrity_failure fires, rolled back",
            "data_integrity_failure",
            "ab-test",
            rolled_back_by_fault(chaos.diverge),
        ),
    )
}
