"""Figures only the lab knows, as a metrics source for the controller (`poll() -> {name: value}`).

`<side>.db_connection_failure_rate`: the share (%) of the load's requests to that side in the last 10 s that the
service answered 503 because it could not reach its database (the strategy's `database_connection_failure`
trigger); `lab.load.rps` and `lab.load.error_rate`: what the load generator itself sees. Nothing when the load's
figures are missing or stale (older than `max_age_s`), so a trigger's `missing` policy applies.
"""

from __future__ import annotations

import time
from pathlib import Path

from cockpit.lab.load import read_figures


class LabMetrics:
    def __init__(self, stats_path: str | Path, max_age_s: float = 5.0):
        self.stats_path = Path(stats_path)
        self.max_age_s = max_age_s

    def poll(self) -> dict[str, float]:
        fig = read_figures(self.stats_path)
        if not fig or time.time() - float(fig.get("updated", 0)) > self.max_age_s:
            return {}
        recent = fig.get("recent") or {}
        out = {
            f"{side}.db_connection_failure_rate": float(rate)
            for side, rate in (recent.get("db_failure_rate_by_side") or {}).items()
        }
        out["lab.load.rps"] = float(recent.get("rps", 0.0))
        out["lab.load.error_rate"] = float(recent.get("error_rate", 0.0))
        return out
