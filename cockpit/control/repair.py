"""The `repair` action: rows that differ after the sync drained (changed behind its back) brought back in line
through the sync, each step timed in the journal:

check (a full comparison, rows in flight settled) - mark (each differing row asked for put into the preferred
side's change log: cockpit.drivers.sync.repair) - carry (passes of the sync until both directions are caught up,
bounded) - verify (a full comparison again: what still differs is named).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from cockpit.control.commands import Repair
from cockpit.core.phases import Refused
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.vocabulary import Outcome

if TYPE_CHECKING:
    from cockpit.control.controller import Controller
    from cockpit.control.factory import SyncDriver
    from cockpit.drivers.integrity.report import IntegrityReport, RowDiff


def _shown(d: RowDiff) -> str:
    return "/".join(str(k) for k in d.key)


def chosen(report: IntegrityReport, cmd: Repair) -> dict[str, list[RowDiff]]:
    """The differing rows the command asks for (all of them with `all`)."""
    wanted = set(cmd.wanted())
    out: dict[str, list[RowDiff]] = {}
    for t in report.tables:
        rows = [d for d in t.diffs if cmd.all or (t.table, _shown(d)) in wanted]
        if rows:
            out[t.table] = rows
    return out


def carry(sync: SyncDriver, timeout_s: float) -> bool:
    """Passes of the sync until neither direction has anything pending, or the deadline. Blocking."""
    deadline = time.monotonic() + timeout_s
    while True:
        sync.run_once()
        if not any(v.pending for v in sync.lag().values()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


async def run(ctl: Controller, rec: Recorder, cmd: Repair) -> Result:
    sync, integrity = ctl.drivers.sync, ctl.drivers.integrity
    if sync is None or integrity is None:
        raise Refused("no sync between blue and green in the plan: nothing to repair through")
    with rec.step("check") as info:
        report = await asyncio.to_thread(integrity.check_now)
        rows = chosen(report, cmd)
        differing = sum(len(t.diffs) for t in report.tables)
        info["detail"] = f"{differing} rows differ; {sum(map(len, rows.values()))} of them asked for"
    if not rows:
        asked = "" if cmd.all else f" among {cmd.keys}"
        return rec.outcome(Outcome.OK, f"nothing to repair: no row differs{asked}")
    with rec.step("mark") as info:
        done: dict[str, Any] = dict(await asyncio.to_thread(sync.repair, cmd.prefer, rows))
        info["detail"] = (
            ", ".join(f"{t} {n} rows" for t, n in done["logged"].items()) + f" logged on {cmd.prefer}"
        )
        if done["skipped"]:
            info["detail"] += "; skipped: " + "; ".join(f"{t}: {why}" for t, why in done["skipped"].items())
    with rec.step("carry") as info:
        bound = float(ctl.plan.sync.drain_timeout)
        if not await asyncio.to_thread(carry, sync, bound):
            raise StepFailed(f"the sync has not caught up after {bound:g}s; `cockpit sync status`")
        info["detail"] = "both directions caught up"
    with rec.step("verify") as info:
        after = await asyncio.to_thread(integrity.check_now)
        still = {t: [_shown(d) for d in ds] for t, ds in chosen(after, cmd).items()}
        left = {t: keys for t, keys in still.items() if t in done["logged"]}
        if left:
            raise StepFailed(
                "still different: " + "; ".join(f"{t} ({', '.join(k[:10])})" for t, k in left.items())
            )
        info["detail"] = f"score {after.score:g}%"
    repaired = sum(done["logged"].values())
    return rec.outcome(
        Outcome.OK if not done["skipped"] else Outcome.PARTIAL,
        f"{repaired} rows brought in line with {cmd.prefer}"
        + (f"; not repaired: {', '.join(done['skipped'])}" if done["skipped"] else ""),
        {"logged": done["logged"], "skipped": done["skipped"]},
    )
