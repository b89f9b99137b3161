"""`cockpit rehearse`: the whole Day 0 in a fresh lab, under load, with the write ledger.

The lab comes up (private PostgreSQL, services, nginx, the load writing to the ledger), the controller runs in
this process (`ControllerThread`, the same one the screen uses), advances through every phase to 100 % (with
`fast`, each advance is forced past its soak, journaled as such), then each scenario starts from a split of its
choice, injects its fault through the lab's own machinery (`set_fault`, the private cluster's stop), and waits for
the plan's trigger to fire and the split to reach 0 %. After the fault is cleared and the sync has settled, the
ledger is checked against the side that serves (blue, after a rollback).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from cockpit.cli.rehearsal.measure import Outcome, errors_so_far, live_split, wait_until
from cockpit.cli.rehearsal.scenarios import DIVERGED_ROWS, Scenario
from cockpit.control.controller import Controller
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.core.recorder import Result
from cockpit.core.rules import holds
from cockpit.lab.cluster import ClusterInfo, start_cluster, stop_cluster
from cockpit.lab.errors import LabError
from cockpit.lab.lab import LabOptions, down, read_state, set_fault, up
from cockpit.lab.ledger import LedgerCheck, check, read_ledger, sqlite_present


class Rehearsal:
    def __init__(
        self, root: Path, *, fast: bool, rate: float = 20.0, rows: int = 1000, say: Callable[[str], None]
    ):
        self.root = root.resolve()
        self.fast = fast
        self.opts = LabOptions(root=self.root, rate=rate, users=100, rows=rows, quiet=True)
        self.say = say
        self.plan: Plan | None = None
        self.ct: ControllerThread | None = None
        self._diverged: list[
            tuple[int, str | None]
        ] = []  # the rows the diverging scenario changed, as they were

    # -- the world ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if read_state(self.root) is not None:
            down(self.root, quiet=True)
        up(self.opts)
        self.plan = load_plan(self.root / "plan.yaml")
        self.ct = ControllerThread(self.plan)
        self.ct.start()

    def stop(self) -> None:
        if self.ct is not None:
            self.ct.stop()
        down(self.root, quiet=True)

    def _advance(self, name: str) -> Result:
        assert self.ct is not None
        fast = self.fast

        async def go(c: Controller) -> Result:
            return await c.advance(name, force=fast, reason="rehearsal", actor="rehearsal")

        return asyncio.run(self.ct.call(go))

    def journal(self) -> Journal:
        assert self.plan is not None
        return Journal(self.plan.path(self.plan.journal.path), readonly=True)

    # -- the day -----------------------------------------------------------------------------------------
    def advance_to(self, phase: str | None) -> None:
        """Advance phase by phase (to `phase`, or to the end), waiting for the gates unless fast."""
        assert self.plan is not None
        names = [p.name for p in self.plan.phases]
        for name in names:
            if phase is not None and names.index(name) > names.index(phase):
                return
            deadline = time.monotonic() + 600
            while True:
                res = self._advance(name)
                if res.outcome == "ok":
                    self.say(f"advanced to {name} ({live_split(self.plan):g}% green)")
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"rehearsal: could not advance to {name}: {res.message}")
                time.sleep(2)

    def run_scenario(self, sc: Scenario) -> Outcome:
        assert self.plan is not None
        out = Outcome(sc.name)
        trig = next(t for t in self.plan.rollback.triggers if t.name == sc.trigger)
        out.trigger_for_s = float(trig.for_)
        # each scenario from a quiet world: no trigger's condition still holds from the one before (a probe's
        # window remembers an outage for its whole length), so what fires is this scenario's own doing
        wait_until(self._quiet, 120, f"{sc.name}: the figures to settle before the fault")
        # from where the day stands (100 % after the advance; a rolled-back day is advanced again first)
        if live_split(self.plan) == 0.0:
            self.advance_to(sc.start_split)
        with self.journal() as j:
            since = j.last_event_id()
        errors_before = errors_so_far(self.root)
        t0 = time.time()
        self._inject(sc, True)
        try:
            zero = wait_until(lambda: live_split(self.plan) == 0.0, 300, f"{sc.name}: the split at 0 %")  # type: ignore[arg-type]
            out.zero_s = round(zero, 1)
        except LabError as exc:
            out.problems.append(str(exc))
        finally:
            self._inject(sc, False)
        out.failed_inside = errors_so_far(self.root) - errors_before
        # settle: the rollback ends, the sync carries green's writes home
        wait_until(lambda: self._idle(), 120, "the rollback to end")
        with self.journal() as j:
            evs = j.events(since_id=since)
        for e in evs:
            if e.kind == "trigger.fired":
                name = str(e.payload.get("trigger"))
                out.fired.append(name)
                if name == sc.trigger and out.trigger_s is None:
                    out.trigger_s = round(e.ts - t0, 1)
        ids = {e.action_id for e in evs if e.kind == "action.intent" and e.payload.get("verb") == "rollback"}
        acts = [e for e in evs if e.action_id in ids]
        out.rollback_steps = sum(1 for e in acts if e.kind == "action.step")
        ends = [e.ts for e in acts]
        out.rollback_s = round(max(ends) - min(ends), 1) if ends else None
        if sc.trigger not in out.fired:
            out.problems.append(f"{sc.trigger} did not fire")
        errors_settled = errors_so_far(self.root)
        self._settle_sync()
        out.failed_outside = errors_so_far(self.root) - errors_settled
        out.ledger = self.ledger_check()
        if out.ledger.missing:
            out.problems.append(f"{len(out.ledger.missing)} acknowledged writes missing")
        if out.failed_outside:
            out.problems.append(f"{out.failed_outside} requests failed outside the fault's window")
        budget = float(self.plan.rollback.max_duration)
        if out.rollback_s is not None and out.rollback_s > budget:
            out.problems.append(f"rollback took {out.rollback_s}s, over the budget {budget:g}s")
        return out

    def _quiet(self) -> bool:
        """No trigger of the plan is breached by the controller's current figures (a missing figure is quiet)."""
        assert self.plan is not None and self.ct is not None and self.ct.controller is not None
        metrics = self.ct.controller.metrics
        return not any(
            (value := metrics.get(t.metric)) is not None and holds(t.op, value, t.threshold)
            for t in self.plan.rollback.triggers
        )

    def _idle(self) -> bool:
        assert self.ct is not None and self.ct.controller is not None
        return self.ct.controller._running is None

    def _inject(self, sc: Scenario, on: bool) -> None:
        if sc.name == "error-spike":
            set_fault(self.root, "green", errors=50.0 if on else 0.0)
        elif sc.name == "slow":
            set_fault(self.root, "green", latency_ms=6000.0 if on else 0.0)
        elif sc.name == "diverging":
            self._diverge(on)
        elif sc.name == "neon-down":
            state = read_state(self.root) or {}
            pg = state.get("postgres") or {}
            if pg.get("mode") != "private":
                raise LabError("neon-down needs the lab's private PostgreSQL cluster")
            info = ClusterInfo(**pg["cluster"])
            (stop_cluster if on else start_cluster)(info)

    def _diverge(self, on: bool) -> None:
        """Change rows on green as an operator with psql would, out of the sync's sight (its capture skips the
        applier's own writes, tagged cockpit.applying); off puts the same rows back the same way."""
        assert self.plan is not None
        import psycopg

        with psycopg.connect(self.plan.green.database.url) as conn, conn.transaction():
            conn.execute("SELECT set_config('cockpit.applying', 'on', true)")
            if on:
                self._diverged = conn.execute(
                    "SELECT id, notes FROM proposals ORDER BY id LIMIT %s", (DIVERGED_ROWS,)
                ).fetchall()
                conn.execute(
                    "UPDATE proposals SET notes = coalesce(notes, '') || ' (changed on green by hand)'"
                    " WHERE id = ANY(%s)",
                    ([k for k, _ in self._diverged],),
                )
            else:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE proposals SET notes = %s WHERE id = %s", [(n, k) for k, n in self._diverged]
                    )

    def _settle_sync(self) -> None:
        """Wait until the sync has nothing pending either way (the lab's status reads it)."""
        from cockpit.lab.lab import status

        def settled() -> bool:
            sync = status(self.root).get("sync") or {}
            return (
                bool(sync)
                and not sync.get("error")
                and all(int(v.get("pending", 1)) == 0 for v in sync.values() if isinstance(v, dict))
            )

        wait_until(settled, 120, "the sync to settle", step=1.0)

    def ledger_check(self) -> LedgerCheck:
        assert self.plan is not None
        blue = self.plan.blue.database.path
        return check(read_ledger(self.root / "ledger.jsonl"), sqlite_present(Path(self.plan.path(str(blue)))))
