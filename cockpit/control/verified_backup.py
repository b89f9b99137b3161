"""The `backup` action: a backup of blue (online copy, gzip, manifest), then its verification (restore and check);
the backup gate reads the new age at once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cockpit.control.commands import Backup
from cockpit.core.phases import Refused
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.vocabulary import Outcome

if TYPE_CHECKING:
    from cockpit.control.controller import Controller


async def run(ctl: Controller, rec: Recorder, cmd: Backup) -> Result:
    backup = ctl.drivers.backup
    if backup is None:
        raise Refused("this plan has no blue SQLite file to back up (blue.database: engine sqlite, path)")
    with rec.step("backup") as info:
        manifest = await asyncio.to_thread(backup.take, cmd.label)
        info["detail"] = manifest.summary()
        if not manifest.ok:
            raise StepFailed(
                f"the copy of blue fails SQLite's integrity check: {'; '.join(manifest.integrity[:3])}"
            )
    with rec.step("verify") as info:
        report = await asyncio.to_thread(backup.verify, manifest.path)
        info["detail"] = report.summary()
        if not report.ok:
            raise StepFailed(report.summary())
    # backup_age now, not at the next tick: the first advance's gate reads it
    monitor = ctl.monitor
    monitor.metrics = {**monitor.metrics, **await asyncio.to_thread(backup.poll)}
    monitor.gates = monitor.ready_gates(ctl.machine) or monitor.gates
    return rec.outcome(
        Outcome.OK,
        f"backup {manifest.name}: {manifest.total_rows:,} rows, verified",
        {"backup": manifest.as_dict()},
    )
