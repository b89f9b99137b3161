"""The writes check: the write ledger against the side(s) that serve, with the conflicts store's versions kept.

Only writes acknowledged before `until` (when the sync was seen settled: a later one may still be on its way to the
other side) are checked; every delete counts, whenever it came. A row its user deleted just before the check is
gone while the delete's 200 may not be in the ledger yet: a missing row is only reported once the requests in
flight at the check have had their answer (the load's timeout) and no acknowledged delete of it came meanwhile.
Presence is not read again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cockpit.cli.rehearsal.measure import live_split, wait_until
from cockpit.core.plan import Plan
from cockpit.drivers.sync.runner import SyncRunner
from cockpit.lab.errors import LabError
from cockpit.lab.ledger import LedgerCheck, check, postgres_present, read_ledger, sqlite_present

LOAD_TIMEOUT_S = 10.0  # the load's HTTP timeout: an answer comes within it, or the request failed


@dataclass
class WritesCheck:
    ledger: LedgerCheck
    missing_on: dict[tuple[str, int], str] = field(
        default_factory=dict
    )  # (table, key) -> "blue", "green", both
    late_deletes: int = 0  # rows gone at the check whose user's delete was answered just after

    def problem(self) -> str | None:
        """'2 acknowledged writes missing (proposals 17 from green at 07:46:12.3, not on blue, ...)', or None."""
        missing = self.ledger.missing
        if not missing:
            return None
        first = ", ".join(
            f"{e.table} {e.key} from {e.side} at {datetime.fromtimestamp(e.at, UTC):%H:%M:%S.%f}"[:-5]
            + f", not on {self.missing_on.get((e.table, e.key), '?')}"
            for e in missing[:3]
        )
        return f"{len(missing)} acknowledged writes missing ({first}{', ...' if len(missing) > 3 else ''})"


def parked(reader: SyncRunner) -> set[tuple[str, int]]:
    """(table, key) of every version the conflicts store holds: kept, not lost."""
    out: set[tuple[str, int]] = set()
    for rec in reader.conflicts(everything=True):
        row = rec.get(rec.get("parked") or "") or {}
        if isinstance(row, dict) and row.get("id") is not None:
            out.add((str(rec["tbl"]), int(row["id"])))
    return out


def check_writes(plan: Plan, ledger: Path, reader: SyncRunner, until: float) -> WritesCheck:
    """Blue always; green too while it serves (the split above 0 %)."""
    entries = [e for e in read_ledger(ledger) if e.op == "delete" or e.at < until]
    kept = parked(reader)
    blue = Path(plan.path(str(plan.blue.database.path)))
    result = WritesCheck(check(entries, sqlite_present(blue), kept))
    missing = result.ledger.missing
    result.missing_on = {(e.table, e.key): "blue" for e in missing}
    if live_split(plan) > 0.0:  # green serves too: every acknowledged write must be there as well
        for e in check(entries, postgres_present(plan.green.database.url), kept).missing:
            where = result.missing_on.get((e.table, e.key))
            if where is None:
                missing.append(e)
            result.missing_on[(e.table, e.key)] = f"{where} and green" if where else "green"
    if missing:
        wanted = {(e.table, e.key) for e in missing}
        deleted: set[tuple[str, int]] = set()

        def answered() -> bool:
            deleted.update((e.table, e.key) for e in read_ledger(ledger) if e.op == "delete")
            return wanted <= deleted

        with contextlib.suppress(LabError):  # not all of them: those stay missing
            wait_until(answered, LOAD_TIMEOUT_S, "the deletes in flight to be answered", step=0.5)
        late = [e for e in missing if (e.table, e.key) in deleted]
        result.ledger.missing = [e for e in missing if (e.table, e.key) not in deleted]
        result.ledger.deleted += len(late)
        result.late_deletes = len(late)
    return result
