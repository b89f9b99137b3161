"""System health from psutil: cpu, memory and the disk that holds the databases and the journal."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import psutil

from cockpit.core.plan import Plan


class SystemMetrics:
    def __init__(self, plan: Plan):
        paths = [plan.path(plan.journal.path).parent]
        if plan.blue.database.engine == "sqlite":
            paths.append(plan.path(plan.blue.database.path).parent)
        self._paths = [_existing(p) for p in paths]
        psutil.cpu_percent(None)  # the first call only primes the counter

    def poll(self) -> Mapping[str, float | None]:
        disk = max(psutil.disk_usage(str(p)).percent for p in self._paths)
        return {
            "cpu_usage": psutil.cpu_percent(None),
            "memory_usage": psutil.virtual_memory().percent,
            "disk_usage": disk,
        }


def _existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
