"""Backup: a verified backup of blue younger than `backup.max_age` (a fail when the plan requires one, else a
warning)."""

from __future__ import annotations

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.core.plan import format_duration


def checks(ctx: Context) -> list[Check]:
    if ctx.drivers.backup is None:
        return [Check("backup", "fresh backup", WARN, "blue is no SQLite file: nothing to back up")]
    spec = ctx.plan.backup
    limit = float(spec.max_age)
    age = ctx.drivers.backup.poll().get("backup_age")
    if age is not None and age <= limit:
        return [Check("backup", "fresh backup", PASS, f"newest verified is {format_duration(age)} old")]
    found = "no verified backup" if age is None else f"newest verified is {format_duration(age)} old"
    status = FAIL if spec.required else WARN
    return [
        Check(
            "backup",
            "fresh backup",
            status,
            f"{found} (limit {format_duration(limit)})",
            "cockpit backup take",
        )
    ]
