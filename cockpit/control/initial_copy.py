"""The `copy` action: the initial copy of blue into green, then capture on both sides, only while no user is on
green; and the copy's progress as every snapshot shows it (the writer threads report per table).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from cockpit.control.commands import Copy
from cockpit.core.phases import Refused
from cockpit.core.recorder import Recorder, Result
from cockpit.core.state import CopyView, TableCopy
from cockpit.core.vocabulary import Outcome, same_split

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


class CopyTracker:
    """The copy under way (its tables as the writer threads last reported them), or how the last one ended.
    Read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view: CopyView | None = None
        self._tables: dict[str, TableCopy] = {}
        self._t0 = 0.0

    def started(self, now: float) -> None:
        with self._lock:
            self._tables = {}
            self._t0 = time.monotonic()
            self._view = CopyView("running", now)

    def progressed(self, p: TableCopy) -> None:
        """A writer thread's progress report."""
        with self._lock:
            self._tables[p.table] = p

    def ended(self, state: str, message: str) -> None:
        view = self.view()
        if view is not None:
            self._view = replace(view, state=state, message=message)

    @property
    def running(self) -> bool:
        view = self._view
        return view is not None and view.state == "running"

    def view(self) -> CopyView | None:
        view = self._view
        if view is None or view.state != "running":
            return view
        with self._lock:
            tables = tuple(self._tables[t] for t in sorted(self._tables))
        return replace(view, tables=tables, seconds=time.monotonic() - self._t0)


async def run(ctl: Controller, rec: Recorder, cmd: Copy) -> Result:
    sync = ctl.drivers.sync
    if sync is None:
        raise Refused("this plan has no sync to copy with (blue must be sqlite and green postgresql)")
    index, live = ctl.machine.phase_index, ctl.monitor.green_live
    if index >= 0 or not same_split(live or 0.0, 0.0):
        where = ctl.plan.phases[index].name if index >= 0 else "live"
        raise Refused(
            f"the initial copy runs before any user is on green (now {where}, "
            f"{live if live is not None else '?'}% live): roll back first"
        )
    jobs = int(cmd.jobs or ctl.plan.sync.copy_jobs)
    ctl.copies.started(ctl.clock())
    ctl.publish()
    try:
        with rec.step("copy") as info:
            report, tables = await asyncio.to_thread(sync.initial_copy, jobs, ctl.copies.progressed)
            info["detail"] = (
                f"{report.rows:,} rows in {len(report.tables)} tables, {report.seconds:.2f}s "
                f"({report.rows_per_s:,.0f} rows/s); capture on both sides for {len(tables)} "
                f"tables; change-log position {report.sqlite_position}"
            )
    except BaseException as exc:
        ctl.copies.ended("failed", f"{type(exc).__name__}: {exc}")
        ctl.publish()
        raise
    ctl.copies.ended("done", "; ".join(report.warnings[:3]))
    ctl.publish()
    message = f"copied {report.rows:,} rows in {len(report.tables)} tables in {report.seconds:.2f}s"
    if report.not_valid:
        message += "; foreign keys left NOT VALID: " + ", ".join(f.constraint for f in report.not_valid)
    return rec.outcome(Outcome.OK, message, {"copy": report.as_dict(), "capture": {"tables": tables}})
