"""Rollback readiness: could a rollback run now and succeed? A pure function of the plan and readings (no I/O).

The checks, one per thing a rollback leans on:

- `nginx`: `nginx -t` passes for every balancer (the rollback rewrites only the split of these very files);
- `blue`: blue's services run and its health checks pass (the rollback sends every user there);
- `sync`: green->blue flows, its lag under the rollback's drain bound (`rollback.drain_timeout`), so the drain
  step can bring blue every acknowledged write in time;
- `backup`: a verified backup of blue younger than `backup.max_age`;
- `conflicts`: no sync conflict waiting for a person (an optional reading: skipped while nothing counts them).

A check is `unknown` until its reading arrives (and then the light is not green: it never claims what it has not
seen), `skipped` when the plan has nothing of the kind (a file traffic driver, no sync). The readings are gathered
by cockpit.control.readiness_probe; the controller passes them here once a tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cockpit.core.plan import Plan, format_duration
from cockpit.core.state import FAILED, READY, SKIPPED, UNKNOWN, Lag, Readiness, ReadinessCheck


@dataclass(frozen=True)
class Probe:
    """One observed fact: `ok`, and in words what was seen (`nginx: [emerg] ...`, `lab-blue-1 stopped`)."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ReadinessInputs:
    """The readings, each None while not read yet."""

    nginx: Sequence[Probe] | None = None  # one per balancer: its `nginx -t`
    blue: Sequence[Probe] | None = None  # one per blue unit and per blue health check
    lag: Mapping[str, Lag] | None = (
        None  # the sync's lag by direction (green_to_blue is the one that matters)
    )
    sync_error: str | None = None  # the sync's last error, when reading its lag failed
    backup_age_s: float | None = None  # the newest verified backup of blue (the `backup_age` metric)
    conflicts: int | None = None  # sync conflicts waiting for a decision (None: nothing counts them)
    has_backups: bool = True  # the plan has a blue SQLite file to back up
    extra: Mapping[str, Probe] = field(default_factory=dict)  # room for more checks, by name


def assess(plan: Plan, inputs: ReadinessInputs, now: float) -> Readiness:
    """The rollback-readiness light for `plan` from `inputs`, as of `now`."""
    checks = [
        _nginx(plan, inputs.nginx),
        _blue(plan, inputs.blue),
        _sync(plan, inputs),
        _backup(plan, inputs),
        _conflicts(inputs.conflicts),
    ]
    checks += [ReadinessCheck(n, READY if p.ok else FAILED, p.detail) for n, p in inputs.extra.items()]
    return Readiness(tuple(checks), now)


def has_sync(plan: Plan) -> bool:
    return plan.blue.database.engine == "sqlite" and plan.green.database.engine == "postgresql"


def _failed(probes: Sequence[Probe]) -> list[str]:
    return [p.detail for p in probes if not p.ok]


def _nginx(plan: Plan, probes: Sequence[Probe] | None) -> ReadinessCheck:
    if plan.traffic.driver != "nginx":
        return ReadinessCheck("nginx", SKIPPED, f"traffic driver {plan.traffic.driver}: no nginx to test")
    if probes is None:
        return ReadinessCheck("nginx", UNKNOWN, "nginx -t not run yet")
    bad = _failed(probes)
    if bad:
        return ReadinessCheck("nginx", FAILED, "nginx -t fails: " + "; ".join(bad))
    return ReadinessCheck(
        "nginx", READY, f"nginx -t passes ({len(probes)} balancer{'s' * (len(probes) != 1)})"
    )


def _blue(plan: Plan, probes: Sequence[Probe] | None) -> ReadinessCheck:
    watched = plan.blue.services.units or any(c.side == "blue" for c in plan.health_checks)
    if not watched:
        return ReadinessCheck("blue", SKIPPED, "no blue services or health checks in the plan")
    if probes is None:
        return ReadinessCheck("blue", UNKNOWN, "blue not checked yet")
    bad = _failed(probes)
    if bad:
        return ReadinessCheck("blue", FAILED, "blue unhealthy: " + "; ".join(bad))
    return ReadinessCheck("blue", READY, f"blue healthy ({len(probes)} checks)")


def _sync(plan: Plan, inputs: ReadinessInputs) -> ReadinessCheck:
    if not has_sync(plan):
        return ReadinessCheck("sync", SKIPPED, "no sync in the plan (blue sqlite, green postgresql)")
    if inputs.sync_error:
        return ReadinessCheck("sync", FAILED, f"sync not flowing: {inputs.sync_error}")
    lag = (inputs.lag or {}).get("green_to_blue")
    if lag is None:
        return ReadinessCheck("sync", UNKNOWN, "green→blue lag not read yet")
    bound = float(plan.rollback.drain_timeout)
    if lag.age_s >= bound:
        return ReadinessCheck(
            "sync",
            FAILED,
            f"green→blue {format_duration(lag.age_s)} behind ({lag.pending} waiting): "
            f"the drain allows {format_duration(bound)}",
        )
    return ReadinessCheck(
        "sync", READY, f"green→blue lag {lag.age_s:.1f}s < drain bound {format_duration(bound)}"
    )


def _backup(plan: Plan, inputs: ReadinessInputs) -> ReadinessCheck:
    if not inputs.has_backups:
        return ReadinessCheck("backup", SKIPPED, "blue is not a SQLite file: no backup to take")
    limit = float(plan.backup.max_age)
    age = inputs.backup_age_s
    if age is None:
        return ReadinessCheck("backup", FAILED, "no verified backup of blue: take one (s, or cockpit backup)")
    if age > limit:
        return ReadinessCheck(
            "backup", FAILED, f"newest backup {format_duration(age)} old > limit {format_duration(limit)}"
        )
    return ReadinessCheck(
        "backup", READY, f"backup {format_duration(age)} old (limit {format_duration(limit)})"
    )


def _conflicts(count: int | None) -> ReadinessCheck:
    if count is None:
        return ReadinessCheck("conflicts", SKIPPED, "conflicts not counted by this sync")
    if count:
        return ReadinessCheck("conflicts", FAILED, f"{count} sync conflict{'s' * (count != 1)} waiting")
    return ReadinessCheck("conflicts", READY, "no conflict waiting")
