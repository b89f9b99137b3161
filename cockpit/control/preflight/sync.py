"""Sync: capture installed on both sides, the lag under the gate, no conflict waiting, no schema change since the
copy (or the last `sync install`), and no problem reported by the running sync.

Everything is read through the sync driver's own functions (`SyncRunner.check_installed`, `status`, the DDL
watch's `sqlite_changes` / `pg_changes`, `read_problem`) with a runner that runs no pass: it writes nothing to
either side and journals nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cockpit.control.preflight import Context, read_blue
from cockpit.core.checks import FAIL, PASS, WARN, Check, counted
from cockpit.core.plan import Plan
from cockpit.core.plan_reading import format_duration
from cockpit.drivers.sync import ddl
from cockpit.drivers.sync.runner import (
    BLUE_TO_GREEN,
    DIRECTIONS,
    GREEN_TO_BLUE,
    SyncRunner,
    connect_pg,
    read_problem,
)

LAG_METRIC = "sync_lag"


def checks(ctx: Context) -> list[Check]:
    plan = ctx.plan
    if plan.blue.database.engine != "sqlite" or plan.green.database.engine != "postgresql":
        return []
    runner = SyncRunner.from_plan(plan, on_event=_quiet)
    runner.connect_timeout = ctx.timeout
    try:
        missing = runner.check_installed()
        if missing:
            return [
                Check(
                    "sync",
                    "capture",
                    FAIL,
                    "; ".join(missing),
                    "cockpit sync copy (first copy) or cockpit sync install (capture only)",
                )
            ]
        names = runner.table_names()
        out = [Check("sync", "capture", PASS, f"installed on both sides for {counted(len(names), 'table')}")]
        status = runner.status()
        out.append(_lag(plan, status["lag"]))
        out.append(_conflicts(int(status.get("conflicts_waiting") or 0)))
        out.append(_schema(ctx, names))
        out.append(_problem(ctx))
        return out
    finally:
        runner.close()


def _quiet(kind: str, payload: dict[str, Any]) -> None:
    """The preflight's runner journals nothing (it runs no pass; a stall it might see is the running sync's)."""


def lag_limits(plan: Plan) -> tuple[float | None, float | None]:
    """(fail, warn) bounds for the sync lag in seconds: the tightest phase gate on `sync_lag` and the metric's
    critical level fail, its warning level warns; None where the plan sets none."""
    gates = [
        float(g.value) for p in plan.phases for g in p.gates if g.metric == LAG_METRIC and g.op in ("<", "<=")
    ]
    t = plan.metrics.get(LAG_METRIC)
    fails = [*gates, *([t.critical] if t is not None and t.critical is not None else [])]
    warn = t.warning if t is not None and t.warning is not None else None
    return (min(fails) if fails else None), warn


def _lag(plan: Plan, lag: dict[str, dict[str, Any]]) -> Check:
    age = max(float(lag[d]["age_s"]) for d in DIRECTIONS)
    found = (
        f"{format_duration(age) if age else '0s'} "
        f"(blue→green {lag[BLUE_TO_GREEN]['pending']} pending, green→blue {lag[GREEN_TO_BLUE]['pending']})"
    )
    fail_at, warn_at = lag_limits(plan)
    do = "is the sync running? cockpit sync status; start the cockpit (it runs the sync) or cockpit sync run"
    if fail_at is not None and age >= fail_at:
        return Check("sync", "lag", FAIL, f"{found} >= gate {format_duration(fail_at)}", do)
    if warn_at is not None and age >= warn_at:
        return Check("sync", "lag", WARN, f"{found} >= warning {format_duration(warn_at)}", do)
    if fail_at is None and warn_at is None:
        return Check("sync", "lag", PASS, f"{found}; no gate or threshold on {LAG_METRIC}")
    return Check("sync", "lag", PASS, found)


def _conflicts(waiting: int) -> Check:
    if waiting:
        return Check(
            "sync",
            "conflicts",
            FAIL,
            f"{waiting} parked version{'s' if waiting != 1 else ''} waiting for a decision",
            "cockpit sync conflicts: keep one side or both for each, then run preflight again",
        )
    return Check("sync", "conflicts", PASS, "none waiting")


def _schema(ctx: Context, names: list[str]) -> Check:
    plan = ctx.plan
    blue = read_blue(ctx)
    try:
        pg = connect_pg(plan.green.database.url, ctx.timeout)
        try:
            changed = {**ddl.sqlite_changes(blue, names, {}), **ddl.pg_changes(pg, names)}
            watching = ddl.pg_watching(pg)
        finally:
            with contextlib.suppress(Exception):
                pg.rollback()
            pg.close()
    finally:
        blue.close()
    how = "event trigger" if watching else "catalog fingerprints (no event trigger)"
    if changed:
        tables = sorted(changed)
        return Check(
            "sync",
            "schema",
            FAIL,
            "; ".join(f"{t}: {changed[t]}" for t in tables[:3])
            + (f" (+{len(tables) - 3})" if len(tables) > 3 else ""),
            "make the schema the same on both sides and run cockpit sync install, or re-seed: "
            f"cockpit sync copy --tables {','.join(tables)}",
        )
    return Check("sync", "schema", PASS, f"no change since the copy ({counted(len(names), 'table')}, {how})")


def _problem(ctx: Context) -> Check:
    blue = read_blue(ctx)
    try:
        said = read_problem(blue)
    finally:
        blue.close()
    if not said:
        return Check("sync", "running sync", PASS, "no problem reported")
    what = said.get("error") or ("stalled" if said.get("stalled") else "a problem")
    return Check(
        "sync",
        "running sync",
        WARN,
        f"the running sync reported: {what}",
        "cockpit sync status; fix what it says before moving users",
    )
