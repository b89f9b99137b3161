"""Report and replay on synthetic 1 h and 4 h journals (samples every second, through the real writer).

Run: .venv/bin/python -m tests.bench.bench_report   Prints report time and size, and replay rebuild time.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from cockpit.control.replay import ReplayClock
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from cockpit.report import write_report
from cockpit.report.charts import CHARTS
from tests.core.plans import write_plan

# every series the report charts (the names the controller journals), so each chart is really drawn
METRICS = tuple(metric for spec in CHARTS for metric, _label in spec.lines)


def synthetic(path: Path, hours: float) -> None:
    t0 = time.time() - hours * 3600
    with Journal(path) as j:
        for s in range(int(hours * 3600)):
            ts = t0 + s
            j.samples({m: float((s * (i + 1)) % 97) for i, m in enumerate(METRICS)}, ts=ts)
        for k in range(int(hours * 60)):  # an event a minute
            j.event(
                "phase.advanced" if k % 10 else "alarm.raised",
                {"metric": "green.error_rate", "level": "warning"},
            )


def main() -> None:
    for hours in (1, 4):
        with tempfile.TemporaryDirectory() as tmp:
            journal = Path(tmp) / "journal.db"
            synthetic(journal, hours)
            started = time.perf_counter()
            paths = write_report(journal, Path(tmp) / "out")
            took = time.perf_counter() - started
            size = sum(p.stat().st_size for p in (paths.markdown, paths.html, *paths.charts)) / 1e6
            began = time.perf_counter()
            clock = ReplayClock.load(journal, load_plan(write_plan(Path(tmp))))
            load_ms = (time.perf_counter() - began) * 1000
            times = []
            for i in range(50):
                t = clock.start + (clock.end - clock.start) * i / 49
                began = time.perf_counter()
                clock.state_at(t)
                times.append((time.perf_counter() - began) * 1000)
            print(
                f"{hours} h journal: report {took:.2f} s, {size:.2f} MB, {len(paths.charts)} charts; "
                f"replay view median {statistics.median(times):.2f} ms (journal loaded in {load_ms:.0f} ms)"
            )


if __name__ == "__main__":
    main()
