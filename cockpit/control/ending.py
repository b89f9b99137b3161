"""The two ends of a migration, `finalize` (on green) and `abandon` (on blue), each an action journaled step by step.

finalize, once the last phase (100 % green) has soaked (no --force):
    integrity (a full comparison; must pass) - stop_sync - keys (green counts up again) - clean (capture and every
    cockpit object gone from both sides, checked) - archive (blue as a verified backup in `backup.archive_folder`,
    archives older than `backup.archive_keep` removed) - notify - report. The state stays `complete`, for good.
abandon: traffic and drain (the rollback's own steps: every user on blue, green's changes carried back) - clean -
    drop_green (only when asked, with green's database name typed to confirm) - notify - report. The state becomes
    `abandoned`, for good.

The point of no return is the first step that cannot be undone (finalize: stop_sync; abandon: clean). There the
ending is journaled (`Ended`, the journal's state `ended`): from then on no advance or rollback runs, the sync stays
stopped across restarts, and each step done is noted. Every step is idempotent; a finalize or abandon run again
(by hand, or by reconciliation after a crash: cockpit.control.reconcile) skips the steps already done and finishes
the others. A step that fails ends the action `failed` with what to do; before the point of no return the world is
as it was (abandon's traffic step excepted: users stay on blue, as after a rollback).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.control.commands import Abandon, Finalize
from cockpit.control.factory import SyncDriver
from cockpit.control.rollback import Left, Rollbacking, run_sequence
from cockpit.core.phases import Machine, Refused
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.state import Ended
from cockpit.core.vocabulary import AbandonStep, FinalizeStep, Outcome, RollbackStep, State
from cockpit.report import write_report

if TYPE_CHECKING:
    from cockpit.control.controller import Controller

ARCHIVE_LABEL = "final"


@dataclass(frozen=True)
class Ending:
    """What every step of one ending sees."""

    ctl: Controller
    rec: Recorder
    how: str  # finalize | abandon
    drop_green: str = ""

    @property
    def sync(self) -> SyncDriver | None:
        return self.ctl.drivers.sync or self.ctl.retired_sync


Step = Callable[[Ending, dict[str, str]], Awaitable[None]]


# ------------------------------------------------------------------------------------------------ the actions
def _settled(ctl: Controller, rec: Recorder, verb: str) -> Result | None:
    """The answer when an ending already decided this one: the other ending refuses it, this one done says so."""
    ended = ctl.ended
    if ended is not None and ended.how != verb:
        raise Refused(ended.why_not(verb))
    return _already(rec, ended) if ended is not None and ended.done else None


async def finalize(ctl: Controller, rec: Recorder, cmd: Finalize) -> Result:
    if (done := _settled(ctl, rec, Finalize.verb)) is not None:
        return done
    if ctl.ended is None:
        _ready_to_finalize(ctl)
    return await _run(Ending(ctl, rec, Finalize.verb), FINALIZE, FinalizeStep.STOP_SYNC)


async def abandon(ctl: Controller, rec: Recorder, cmd: Abandon) -> Result:
    if (done := _settled(ctl, rec, Abandon.verb)) is not None:
        return done
    if cmd.drop_green:
        _check_drop(ctl, cmd.drop_green)
    e = Ending(ctl, rec, Abandon.verb, cmd.drop_green)
    ended = ctl.ended
    if ended is None:
        failed = await _all_on_blue(e)
        if failed:
            return failed
    else:
        for step in (AbandonStep.TRAFFIC, AbandonStep.DRAIN):
            rec.record_step(step, "skipped", 0.0, f"done already (action {ended.action_id})")
    return await _run(e, ABANDON, AbandonStep.CLEAN)


def _already(rec: Recorder, ended: Ended) -> Result:
    when = dt.datetime.fromtimestamp(ended.finished or ended.since, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return rec.outcome(
        Outcome.OK,
        f"already {ended.word} at {when} by {ended.actor}: nothing to do",
        {"ended": ended.as_dict()},
    )


def _ready_to_finalize(ctl: Controller) -> None:
    """Refused unless the last phase is live and its soak is over (finalize has no --force)."""
    m, plan = ctl.machine, ctl.plan
    last = plan.phases[-1]
    if m.state == State.HELD:
        raise Refused(f"held ({m.held_reason or 'no reason given'}): resume first; finalize has no --force")
    if m.state != State.COMPLETE or m.phase_index != len(plan.phases) - 1:
        where = plan.phases[m.phase_index].name if 0 <= m.phase_index < len(plan.phases) else "no phase"
        raise Refused(
            f"finalize comes after the last phase ({last.name}, {last.green:g}% green) and its soak; the migration "
            f"is {m.state} ({where}): advance to {last.name} first"
        )
    soak = float(last.soak)
    if m.since <= 0:
        raise Refused(
            f"when phase {last.name} began is unknown: its soak of {soak:g}s cannot be shown to be over"
        )
    elapsed = ctl.clock() - m.since
    if elapsed < soak:
        raise Refused(
            f"phase {last.name}'s soak is not over: {elapsed:.0f}s of {soak:g}s ({soak - elapsed:.0f}s left); "
            "finalize has no --force"
        )


def _check_drop(ctl: Controller, typed: str) -> None:
    """Validated before anything moves: the name typed is green's database."""
    from cockpit.drivers.sync.ending import database_name

    green = ctl.plan.green.database
    if green.engine != "postgresql" or not green.url:
        raise Refused("--drop-green: green is no PostgreSQL database in this plan")
    name = database_name(green.url)
    if typed != name:
        raise Refused(f"--drop-green {typed!r} does not match green's database {name!r}: nothing was done")


async def _all_on_blue(e: Ending) -> Result | None:
    """Abandon's first step, the rollback's own: every user on blue, green's changes carried back to blue."""
    ctl, rec = e.ctl, e.rec
    left = Left()
    r = Rollbacking(
        ctl.plan,
        ctl.drivers,
        rec,
        "immediate",
        ctl.machine.phase_index,
        ctl.apply_split,
        rec.reason,
        left=left,
    )
    outcome = await run_sequence(r, (RollbackStep.TRAFFIC, RollbackStep.DRAIN))
    if not outcome.traffic_ok:
        return rec.outcome(Outcome.FAILED, "traffic could not be moved to blue: nothing else was done")
    ctl.set_machine(Machine(State.ROLLED_BACK, -1, ctl.clock()))
    if outcome.failed_steps:
        n = "changes blue may lack" if left.green_only < 0 else f"{left.green_only} changes blue lacks"
        return rec.outcome(
            Outcome.FAILED,
            f"all traffic on blue, but green still holds {n}: capture is left in place (the sync carries them); "
            "run abandon again once `cockpit status` shows green->blue drained",
        )
    return None


async def _run(e: Ending, steps: Sequence[tuple[str, Step]], no_return: str) -> Result:
    ctl, rec = e.ctl, e.rec
    for name, step in steps:
        ended = ctl.ended
        if ended is not None and name in ended.steps:
            rec.record_step(name, "skipped", 0.0, f"done already (action {ended.action_id})")
            continue
        if ended is None and name == no_return:
            ctl.set_ended(Ended(e.how, ctl.clock(), rec.action_id, rec.actor))
            if e.how == Abandon.verb:
                ctl.set_machine(Machine(State.ABANDONED, -1, ctl.clock()))
        try:
            with rec.step(name) as info:
                await step(e, info)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            detail = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            then = (
                f"run `cockpit {e.how} --yes` again to finish (the steps done are skipped)"
                if ctl.ended is not None
                else "nothing was changed"
            )
            return rec.outcome(Outcome.FAILED, f"step {name} failed: {detail}; {then}")
        if ctl.ended is not None:
            ctl.set_ended(replace(ctl.ended, steps=(*ctl.ended.steps, name)))
    if e.sync is not None:  # its connections were opened again by the last steps
        await asyncio.to_thread(e.sync.stop)
    assert ctl.ended is not None
    ctl.set_ended(replace(ctl.ended, done=True, finished=ctl.clock()))
    if e.how == Finalize.verb:
        message = "finalized: green is the system; blue archived" + (
            f" at {ctl.ended.archive}" if ctl.ended.archive else ""
        )
    else:
        message = "abandoned: blue is the system" + (f"; {e.drop_green} dropped" if e.drop_green else "")
    return rec.outcome(Outcome.OK, message, {"ended": ctl.ended.as_dict()})


# ------------------------------------------------------------------------------------------------ the steps
async def _integrity(e: Ending, info: dict[str, str]) -> None:
    integrity = e.ctl.drivers.integrity
    if integrity is None:
        info["status"], info["detail"] = "skipped", "no sync between blue and green in the plan"
        return
    report = await asyncio.to_thread(integrity.check_now, False)
    info["detail"] = f"score {report.score:g}% over {report.compared} rows, every row compared"
    if not report.ok:
        first = [f"{t.table} {d.describe()}" for t in report.tables for d in t.diffs][:5]
        first += [f"{t.table}: {t.note}" for t in report.tables if t.note]
        raise StepFailed(
            "blue and green differ: "
            + "; ".join(first)
            + " (`cockpit integrity`, then `cockpit integrity repair`)"
        )


async def _stop_sync(e: Ending, info: dict[str, str]) -> None:
    """The last changes carried in both directions, then the sync loop and the integrity watch stopped for good."""
    sync = e.sync
    if sync is None:
        info["status"], info["detail"] = "skipped", "no sync in the plan"
        return
    timeout = float(e.ctl.plan.sync.drain_timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await asyncio.to_thread(sync.run_once)
        lag = await asyncio.to_thread(sync.lag)
        pending = {d: v.pending for d, v in lag.items() if v.pending}
        if not pending or loop.time() >= deadline:
            break
        await asyncio.sleep(0.1)
    if pending:
        raise StepFailed(
            "changes still pending after "
            + f"{timeout:g}s: "
            + ", ".join(f"{d} {n}" for d, n in pending.items())
        )
    await asyncio.to_thread(e.ctl.retire_sync)
    info["detail"] = "both directions caught up; sync and integrity watch stopped"


async def _keys(e: Ending, info: dict[str, str]) -> None:
    sync = e.sync
    if sync is None:
        info["status"], info["detail"] = "skipped", "no sync in the plan"
        return
    states = await asyncio.to_thread(sync.restore_keys)
    down = [s.table for s in states if s.state != "up"]
    if down:
        raise StepFailed("green still counts down for: " + ", ".join(down))
    info["detail"] = ", ".join(f"{s.table} next {s.green_next}" for s in states) or "no database-chosen keys"


async def _clean(e: Ending, info: dict[str, str]) -> None:
    """Capture and every cockpit object gone from both sides, then looked for again."""
    from cockpit.drivers.sync.ending import pg_leftovers, sqlite_leftovers

    sync = e.sync
    if sync is None:
        info["status"], info["detail"] = "skipped", "no sync in the plan"
        return
    await asyncio.to_thread(e.ctl.retire_sync)  # abandon: the sync stops here (finalize stopped it already)
    dropped = await asyncio.to_thread(sync.uninstall)
    plan = e.ctl.plan
    left = await asyncio.to_thread(pg_leftovers, plan.green.database.url)
    left += [
        f"blue {x}" for x in await asyncio.to_thread(sqlite_leftovers, plan.path(plan.blue.database.path))
    ]
    if left:
        raise StepFailed("cockpit objects left: " + ", ".join(left))
    info["detail"] = (
        "; ".join(f"{side}: {len(what)} removed" for side, what in dropped.items()) + "; none left"
    )


async def _archive(e: Ending, info: dict[str, str]) -> None:
    ctl = e.ctl
    backup = ctl.drivers.backup
    if backup is None:
        info["status"], info["detail"] = "skipped", "this plan has no blue SQLite file to archive"
        return
    assert ctl.ended is not None
    folder = str(ctl.plan.path(ctl.plan.backup.archive_folder))
    manifest = await asyncio.to_thread(backup.archive, folder, ARCHIVE_LABEL, ctl.ended.since)
    report = await asyncio.to_thread(backup.verify, manifest.path)
    if not report.ok:
        raise StepFailed(f"the archive {manifest.path} does not verify: {report.summary()}")
    keep = float(ctl.plan.backup.archive_keep)
    pruned = await asyncio.to_thread(backup.prune_archives, folder, keep, (manifest.path,))
    ctl.set_ended(replace(ctl.ended, archive=manifest.path))
    info["detail"] = (
        f"{manifest.path}: {manifest.total_rows:,} rows, verified; kept {keep / 86400:g} days"
        f"; {len(pruned)} older archives removed"
    )


async def _notify(e: Ending, info: dict[str, str]) -> None:
    notifier = e.ctl.drivers.notifier
    if notifier is None:
        info["status"], info["detail"] = "skipped", "no alerts in the plan"
        return
    plan = e.ctl.plan.name
    title = (
        f"{plan}: migration finalized on green" if e.how == Finalize.verb else f"{plan}: migration abandoned"
    )
    steps = ", ".join(f"{s} {st}" for s, st, _d, _x in e.rec.steps)
    results = await asyncio.to_thread(
        notifier.send, "info", title, f"Steps: {steps}.", {"actor": e.rec.actor, "plan": plan}
    )
    failed = [d for d in results if not d.ok]
    info["detail"] = f"{len(results) - len(failed)}/{len(results)} channels delivered"
    if failed:
        raise StepFailed("; ".join(f"{d.channel}: {d.error}" for d in failed))


async def _report(e: Ending, info: dict[str, str]) -> None:
    """The migration's report (cockpit.report): Markdown, charts and HTML beside the journal, in reports/."""
    journal = Path(e.ctl.journal.path)
    written = await asyncio.to_thread(write_report, journal, journal.parent / "reports")
    info["detail"] = f"{written.html} ({written.events} events, {len(written.charts)} charts)"


async def _drop_green(e: Ending, info: dict[str, str]) -> None:
    from cockpit.drivers.sync.ending import drop_database

    if not e.drop_green:
        info["status"], info["detail"] = "skipped", "green's copy kept (--drop-green NAME drops it)"
        return
    info["detail"] = await asyncio.to_thread(drop_database, e.ctl.plan.green.database.url, e.drop_green)


FINALIZE: tuple[tuple[str, Step], ...] = (
    (FinalizeStep.INTEGRITY, _integrity),
    (FinalizeStep.STOP_SYNC, _stop_sync),
    (FinalizeStep.KEYS, _keys),
    (FinalizeStep.CLEAN, _clean),
    (FinalizeStep.ARCHIVE, _archive),
    (FinalizeStep.NOTIFY, _notify),
    (FinalizeStep.REPORT, _report),
)

# after the rollback's traffic and drain steps
ABANDON: tuple[tuple[str, Step], ...] = (
    (AbandonStep.CLEAN, _clean),
    (AbandonStep.DROP_GREEN, _drop_green),
    (AbandonStep.NOTIFY, _notify),
    (AbandonStep.REPORT, _report),
)
