"""System: cpu, memory and disk against the plan's warning (warn) and critical (fail) levels."""

from __future__ import annotations

import threading

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.drivers.metrics.system import SystemMetrics

CPU_SAMPLE_S = 0.5  # cpu is a rate: measured over this long


def checks(ctx: Context) -> list[Check]:
    source = SystemMetrics(ctx.plan)
    threading.Event().wait(CPU_SAMPLE_S)
    out = []
    for name, value in source.poll().items():
        t = ctx.plan.metrics.get(name)
        found = f"{value:.0f}%" if value is not None else "unknown"
        if value is not None and t is not None and t.critical is not None and value >= t.critical:
            out.append(
                Check(
                    "system", name, FAIL, f"{found} >= critical {t.critical:g}", "free it before moving users"
                )
            )
        elif value is not None and t is not None and t.warning is not None and value >= t.warning:
            out.append(
                Check("system", name, WARN, f"{found} >= warning {t.warning:g}", "look at what uses it")
            )
        else:
            out.append(Check("system", name, PASS, found))
    return out
