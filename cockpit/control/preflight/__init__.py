"""`cockpit preflight`: the go/no-go checklist before a phase (the strategy's `pre_deployment_check`,
`validate_neon_connection`, `check_system_resources`).

One module per area (green, blue, nginx, services, sync, backup, alerts, system), each a function
`checks(ctx) -> list[Check]` that reads the world through the drivers the plan names and never changes it (the
one exception, on purpose: the alerts area sends a test message, marked as a test, unless `--no-test-message`).
The areas run in parallel threads; each network step is bounded by `preflight.timeout`, and an area that does not
answer within its bound is reported as failed (its thread is left behind, daemonic) so that a run never hangs.
The verdict is journaled as a `preflight` event; a phase with `preflight: true` opens only after a go younger than
`preflight.max_age` (cockpit.control.monitor reads it back).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cockpit.control.factory import Drivers, build_drivers
from cockpit.core.checks import EVENT, FAIL, Check, Verdict
from cockpit.core.journal import Journal, current_actor
from cockpit.core.plan import Plan
from cockpit.core.redact import redact_text


@dataclass
class Context:
    """What every area reads: the plan, its drivers (no sync loop, no metrics), the bound of one network step,
    and whether the alerts may send their test message."""

    plan: Plan
    drivers: Drivers
    timeout: float
    test_message: bool = True
    notes: dict[str, str] = field(default_factory=dict)


Area = Callable[[Context], list[Check]]


def read_blue(ctx: Context) -> sqlite3.Connection:
    """Blue's SQLite file opened read-only (a preflight never writes, nor creates a missing file)."""
    path = ctx.plan.path(ctx.plan.blue.database.path)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite file at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=ctx.timeout, check_same_thread=False)


def areas() -> list[tuple[str, Area]]:
    from cockpit.control.preflight import alerts, backup, blue, green, nginx, services, sync, system

    return [
        ("green", green.checks),
        ("blue", blue.checks),
        ("nginx", nginx.checks),
        ("services", services.checks),
        ("sync", sync.checks),
        ("backup", backup.checks),
        ("alerts", alerts.checks),
        ("system", system.checks),
    ]


def run_preflight(plan: Plan, *, test_message: bool = True, drivers: Drivers | None = None) -> Verdict:
    """Every area's checks, in parallel; the verdict (blocking: for a worker thread or the CLI)."""
    started = time.monotonic()
    timeout = float(plan.preflight.timeout)
    own = drivers is None
    drivers = drivers if drivers is not None else build_drivers(plan, with_sync=False, with_metrics=False)
    ctx = Context(plan, drivers, timeout, test_message)
    try:
        found = _run_areas(ctx, areas(), bound=AREA_BOUND_STEPS * timeout)
    finally:
        if own:
            drivers.close()
    return Verdict(tuple(found), time.time(), time.monotonic() - started)


AREA_BOUND_STEPS = 4  # an area may take a few bounded steps; past that many timeouts it is reported as hung


def _run_areas(ctx: Context, todo: list[tuple[str, Area]], bound: float) -> list[Check]:
    results: dict[str, list[Check]] = {}
    threads: list[tuple[str, threading.Thread]] = []
    for name, area in todo:

        def work(name: str = name, area: Area = area) -> None:
            try:
                results[name] = area(ctx)
            except Exception as exc:  # an area that cannot look is a failed check, not a crash
                results[name] = [
                    Check(
                        name,
                        "could be checked",
                        FAIL,
                        f"{type(exc).__name__}: {redact_text(str(exc))}",
                        "fix what the error says, then run cockpit preflight again",
                    )
                ]

        t = threading.Thread(target=work, name=f"cockpit-preflight-{name}", daemon=True)
        t.start()
        threads.append((name, t))
    deadline = time.monotonic() + bound
    out: list[Check] = []
    for name, t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if name in results:
            out += results[name]
        else:
            out.append(
                Check(
                    name,
                    "answered",
                    FAIL,
                    f"no answer within {bound:g}s",
                    "something it reaches hangs: look at the area's hosts, then run again",
                )
            )
    return out


def record(plan: Plan, verdict: Verdict, actor: str | None = None) -> int:
    """Journal the run (beside a running controller too: the journal takes writers from other processes, as
    its command queue does). Returns the event id."""
    journal = Journal(plan.path(plan.journal.path))
    try:
        return journal.event(EVENT, verdict.as_dict(), actor or current_actor())
    finally:
        journal.close()
