"""`cockpit rehearse`: the whole Day 0 in a fresh lab, under load, with the write ledger.

The lab comes up (private PostgreSQL, services, nginx, the load writing to the ledger) on the lab's plan or on a
given one (`--plan`: a plan template with the lab's ${COCKPIT_LAB_*} placeholders, checked before anything
starts); its alerts are pointed at the rehearsal's own webhook (`webhook.py`). The controller runs in this process
(`ControllerThread`, the same one the screen uses), except in the scenarios that kill it, which run it as a child
process (`cockpit run`). It advances through every phase to 100 % (with `fast`, each advance is forced past its
soak, journaled as such), then each scenario starts from a split of its choice and plays (`scenarios.py`).

The fault's window, which decides whether a failed request counts as inside or outside:
- it opens when the fault is injected;
- it closes when the world is healthy again: the fault taken back, the rollback (if one ran) ended in the journal
  with the split at 0 %, the front door answering /health with 200 and green's database accepting connections
  (a stopped PostgreSQL counts as recovered once it answers again, not once `pg_ctl start` returned).
- Outside is the rest of the scenario: from its start (including the advance to its split) to the moment the
  sync has nothing pending either way. Failures are read from nginx's access log by their own time (`measure`).
After settling, the ledger is checked against blue (the side that serves after a rollback) and, while green serves
too, against green; rows parked in the conflicts store count as kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cockpit.cli.rehearsal.measure import (
    Outcome,
    access_log,
    failures,
    lag_text,
    live_split,
    wait_until,
)
from cockpit.cli.rehearsal.scenarios import Scenario
from cockpit.cli.rehearsal.webhook import Webhook
from cockpit.cli.rehearsal.writes import WritesCheck, check_writes, parked
from cockpit.control.controller import Controller
from cockpit.control.session import ControllerThread
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan, load_plan
from cockpit.core.recorder import Result
from cockpit.core.rules import holds
from cockpit.drivers.sync.runner import SyncRunner
from cockpit.lab.errors import LabError
from cockpit.lab.lab import LOAD_UNIT, LabOptions, down, load_driver, read_state, up
from cockpit.lab.load import read_figures


class Rehearsal:
    def __init__(
        self,
        root: Path,
        *,
        fast: bool,
        rate: float = 20.0,
        rows: int = 1000,
        say: Callable[[str], None],
        template: Path | None = None,
    ):
        self.root = root.resolve()
        self.fast = fast
        self.opts = LabOptions(root=self.root, rate=rate, users=100, rows=rows, quiet=True, template=template)
        self.say = say
        self.plan: Plan | None = None
        self.ct: ControllerThread | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.reader: SyncRunner | None = None  # reads the lag and the conflicts store, whoever runs the sync
        self.webhook = Webhook()
        self.scratch: dict[str, Any] = {}  # what a scenario keeps between its fault and taking it back

    # -- the world ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if read_state(self.root) is not None:
            down(self.root, quiet=True)
        self.webhook.start()
        up(self.opts)
        self.plan = self._alerts_to_webhook(self.root / "plan.yaml")
        self.reader = SyncRunner.from_plan(self.plan)
        self.start_controller()

    def _alerts_to_webhook(self, path: Path) -> Plan:
        """The resolved plan's alerts go to the rehearsal's webhook only (no e-mail, no real channel)."""
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["alerts"] = {
            **(doc.get("alerts") or {}),
            "webhook": {"url": self.webhook.url, "min_level": "info"},
        }
        doc["alerts"].pop("email", None)
        text = "# Resolved by `cockpit rehearse`: the lab's plan, alerts to the rehearsal's webhook.\n"
        path.write_text(text + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return load_plan(path)

    def stop(self) -> None:
        self.stop_child()
        if self.ct is not None:
            self.ct.stop()
        if self.reader is not None:
            self.reader.close()
        self.webhook.stop()
        down(self.root, quiet=True)

    def start_controller(self) -> None:
        assert self.plan is not None
        self.ct = ControllerThread(self.plan)
        self.ct.start()

    def stop_controller(self) -> None:
        if self.ct is not None:
            self.ct.stop()
            self.ct = None

    def spawn_child(self) -> subprocess.Popen[bytes]:
        """The controller as its own process (`cockpit run`, sync included), once its start is journaled."""
        assert self.plan is not None
        since = self.last_event()
        log = (self.root / "run" / "rehearsal-controller.log").open("ab")
        self.child = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "-p", str(self.root / "plan.yaml"), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(lambda: self.has_event(since, "controller.start"), 60, "the controller process to start")
        return self.child

    def kill_child(self) -> None:
        assert self.child is not None
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait(30)
        self.child = None

    def stop_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(float(self.plan.rollback.max_duration) if self.plan else 60)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(10)
        self.child = None

    def advance(self, name: str, force: bool | None = None) -> Result:
        assert self.ct is not None
        forced = self.fast if force is None else force

        async def go(c: Controller) -> Result:
            return await c.advance(name, force=forced, reason="rehearsal", actor="rehearsal")

        return asyncio.run(self.ct.call(go))

    def journal(self) -> Journal:
        assert self.plan is not None
        return Journal(self.plan.path(self.plan.journal.path), readonly=True)

    def last_event(self) -> int:
        with self.journal() as j:
            return j.last_event_id()

    def has_event(self, since: int, kind: str) -> bool:
        with self.journal() as j:
            return any(e.kind == kind for e in j.events(since_id=since))

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
                res = self.advance(name)
                if res.outcome == "ok":
                    self.say(f"advanced to {name} ({live_split(self.plan):g}% green)")
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"rehearsal: could not advance to {name}: {res.message}")
                time.sleep(2)

    def run_scenario(self, sc: Scenario) -> Outcome:
        assert self.plan is not None
        plan = self.plan
        out = Outcome(sc.name, expect=sc.expect)
        if sc.trigger:
            trig = next(t for t in plan.rollback.triggers if t.name == sc.trigger)
            out.trigger_for_s = float(trig.for_)
        # each scenario from a quiet world: no trigger's condition still holds from the one before (a probe's
        # window remembers an outage for its whole length), so what fires is this scenario's own doing
        wait_until(self._quiet, 120, f"{sc.name}: the figures to settle before the fault")
        span_start = time.time()
        if (
            live_split(plan) == 0.0
        ):  # a rolled-back day is advanced again first (a plan without that phase: its middle)
            names = [p.name for p in plan.phases]
            self.advance_to(sc.start_split if sc.start_split in names else names[len(names) // 2])
        since = self.last_event()
        out.fault_at = time.time()
        try:
            sc.play(self, out)
        finally:
            if self.ct is None:  # a scenario that ran the controller as a child hands it back
                self.stop_child()
                self.start_controller()
        if not out.recovered_at:
            out.recovered_at = time.time()
        out.window_s = round(out.recovered_at - out.fault_at, 1)
        lag = self.lag()
        settled_from = (
            time.time()
        )  # every write acknowledged before the settled reading began is on both sides

        def settled() -> bool:
            nonlocal settled_from
            settled_from = time.time()
            return self._sync_settled()

        settle = wait_until(settled, 180, f"{sc.name}: the sync to settle", step=0.5)
        out.lag_after = lag_text(lag, settle)
        span_end = time.time()
        log = access_log(plan)
        out.failed_inside = len(failures(log, out.fault_at, out.recovered_at))
        out.failed_outside = len(failures(log, span_start, out.fault_at)) + len(
            failures(log, out.recovered_at + 1e-3, span_end)
        )
        self._read_journal(out, since, sc)
        writes = self.check_writes(settled_from)
        out.ledger = writes.ledger
        if writes.late_deletes:
            out.facts.append(
                f"{writes.late_deletes} rows gone at the check were deleted by their users (200 just after)"
            )
        self._judge(out, sc, writes)
        return out

    def final_check(self) -> Outcome:
        """The load stopped and the sync settled: the whole ledger against the serving side(s)."""
        assert self.plan is not None
        out = Outcome("all writes", expect="load stopped, sync settled: every acknowledged write kept")
        state = read_state(self.root) or {}
        load_driver(self.root, str(state.get("front_door")), self.opts, self.plan).stop([LOAD_UNIT])
        t0 = time.time()
        lag = self.lag()
        out.lag_after = lag_text(lag, wait_until(self._sync_settled, 180, "the sync to settle", step=0.5))
        writes = self.check_writes(time.time())
        out.ledger = writes.ledger
        if problem := writes.problem():
            out.problems.append(problem)
        # the users' own count: a failure the front door never logged (a refused connection) would be missed above
        seen = int(((read_figures(self.root / "load.json") or {}).get("total") or {}).get("errors", 0))
        logged = len(failures(access_log(self.plan), 0.0, time.time()))
        out.facts.append(f"the load saw {seen} failed requests in all, the front door's log {logged}")
        if seen > logged:
            out.problems.append(
                f"{seen - logged} requests failed where the front door's log does not see them"
            )
        out.fault_at = out.recovered_at = t0
        return out

    def _read_journal(self, out: Outcome, since: int, sc: Scenario) -> None:
        with self.journal() as j:
            evs = j.events(since_id=since)
        for e in evs:
            if e.kind == "trigger.fired":
                name = str(e.payload.get("trigger"))
                out.fired.append(name)
                if name == sc.trigger and out.trigger_s is None:
                    out.trigger_s = round(e.ts - out.fault_at, 1)
        ids = {e.action_id for e in evs if e.kind == "action.intent" and e.payload.get("verb") == "rollback"}
        acts = [e for e in evs if e.action_id in ids]
        out.rollback_steps = sum(1 for e in acts if e.kind == "action.step")
        ends = [e.ts for e in acts]
        out.rollback_s = round(max(ends) - min(ends), 1) if ends else None
        zero = [e.ts for e in acts if e.kind == "action.step" and e.payload.get("step") == "traffic"]
        if out.zero_s is None and zero and sc.rolls_back:
            out.zero_s = round(min(zero) - out.fault_at, 1)

    def _judge(self, out: Outcome, sc: Scenario, writes: WritesCheck) -> None:
        assert self.plan is not None and out.ledger is not None
        if sc.trigger and sc.trigger not in out.fired:
            out.problems.append(f"{sc.trigger} did not fire")
        if not sc.rolls_back and out.rollback_s is not None:
            out.problems.append("a rollback ran where none should")
        if sc.rolls_back and out.rollback_s is None:
            out.problems.append("no rollback ran")
        if problem := writes.problem():
            out.problems.append(problem)
        if out.failed_outside:
            out.problems.append(f"{out.failed_outside} requests failed outside the fault's window")
        if not sc.may_fail and out.failed_inside:
            out.problems.append(f"{out.failed_inside} requests failed (none should)")
        budget = float(self.plan.rollback.max_duration)
        if out.rollback_s is not None and out.rollback_s > budget:
            out.problems.append(f"rollback took {out.rollback_s}s, over the budget {budget:g}s")

    def _quiet(self) -> bool:
        """No trigger of the plan is breached by the controller's current figures (a missing figure is quiet)."""
        assert self.plan is not None and self.ct is not None and self.ct.controller is not None
        metrics = self.ct.controller.metrics
        return not any(
            (value := metrics.get(t.metric)) is not None and holds(t.op, value, t.threshold)
            for t in self.plan.rollback.triggers
        )

    def idle(self) -> bool:
        """No action under way: the in-process controller's, or in the journal (a child's)."""
        if self.ct is not None and self.ct.controller is not None:
            return self.ct.controller._running is None
        with self.journal() as j:
            return not j.open_actions()

    def healthy(self) -> bool:
        """The front door answers /health with 200 and green's database accepts connections."""
        import http.client

        import psycopg

        assert self.plan is not None
        state = read_state(self.root) or {}
        try:
            host, port = str(state["front_door"]).removeprefix("http://").rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status != 200:
                return False
            with psycopg.connect(self.plan.green.database.url, connect_timeout=2) as pg:
                pg.execute("SELECT 1")
            return True
        except (OSError, KeyError, ValueError, psycopg.Error):
            return False

    def lag(self) -> dict[str, dict[str, float]]:
        assert self.reader is not None
        try:
            return {d: lag.as_dict() for d, lag in self.reader.lag().items()}
        except Exception:
            return {}

    def _sync_settled(self) -> bool:
        lag = self.lag()
        return bool(lag) and all(int(v.get("pending", 1)) == 0 for v in lag.values())

    def check_writes(self, until: float) -> WritesCheck:
        assert self.plan is not None and self.reader is not None
        return check_writes(self.plan, self.root / "ledger.jsonl", self.reader, until)

    def parked(self) -> set[tuple[str, int]]:
        assert self.reader is not None
        return parked(self.reader)
