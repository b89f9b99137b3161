"""The one place where actions live: advance, hold, resume, rollback, the tick loop and crash reconciliation.

The TUI, the CLI and automated triggers all call these methods. `copy` (the initial copy of blue into green,
then capture on both sides) and `backup` (of blue, verified) are actions too: journaled, serialized with the
others, and the copy's progress is in every snapshot. Actions are serialized; a rollback preempts an advance in
flight. Blocking driver calls run in threads, so the controller's loop stays free to preempt. Every
action is journaled as intent -> steps -> outcome. One controller acts at a time (the lock beside the journal);
other processes put commands in the journal's queue, which the running controller takes within one tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from cockpit.control.factory import Drivers
from cockpit.control.rollback import run_sequence
from cockpit.control.sides import check_health, set_services
from cockpit.control.view import build_state
from cockpit.core import phases
from cockpit.core.journal import Command, Journal, current_actor
from cockpit.core.lock import ControllerLock
from cockpit.core.phases import Machine, Refused
from cockpit.core.plan import Plan
from cockpit.core.recorder import Recorder, Result, StepFailed
from cockpit.core.rules import TriggerTracker, backup_gate, check_gates, threshold_alarms
from cockpit.core.state import Alarm, CockpitState, CopyView, Lag, TableCopy
from cockpit.drivers.services.factory import service_units
from cockpit.drivers.traffic.base import SplitStatus, TrafficError, live_percent

VERBS = ("advance", "hold", "resume", "rollback", "copy", "backup")
PRUNE_EVERY_S = 3600.0  # old metric samples are dropped at start and then hourly (journal.keep_samples)


class Controller:
    def __init__(
        self,
        plan: Plan,
        drivers: Drivers,
        journal: Journal,
        *,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.plan = plan
        self.drivers = drivers
        self.journal = journal
        self.actor = actor or current_actor()
        self.clock = clock
        self.lock = ControllerLock(journal.path)
        self.machine = Machine(since=clock())
        self.triggers = TriggerTracker(plan.rollback.triggers)
        self.metrics: dict[str, float | None] = {}
        self.lag: dict[str, Lag] = {}
        self.alarms: tuple[Alarm, ...] = ()
        self.gates: tuple[tuple[str, bool, str], ...] = ()
        self.green_live: float | None = None
        self.latest: CockpitState | None = None  # the last published snapshot (read from any thread)
        self._action_lock = asyncio.Lock()
        self._running: tuple[str, asyncio.Task[Result]] | None = None
        self._traffic_lock = threading.Lock()  # one apply at a time, even when a preempted one still runs
        self._refreshing: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._actions: set[asyncio.Future[Result]] = set()
        self._triggered: asyncio.Future[Any] | None = None  # the rollback a trigger started
        self._troubles: dict[str, str] = {}  # source -> its current error, journaled once
        self._stop = asyncio.Event()
        self._listeners: list[Callable[[CockpitState], None]] = []
        self._copy_lock = threading.Lock()  # the copy's writer threads report progress from their threads
        self._copy: CopyView | None = None  # the copy under way (tables filled from the progress reports)
        self._copy_tables: dict[str, TableCopy] = {}
        self._copy_t0 = 0.0
        self._next_prune = 0.0

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> list[Result]:
        """Take the lock, load the state, reconcile with the live world. Returns what reconciliation did."""
        self.lock.acquire(self.actor)
        try:
            self.machine = (
                Machine.from_dict(self.journal.get_state("machine"))
                if self.journal.get_state("machine")
                else Machine(since=self.clock())
            )
            pruned = self._prune()
            self.journal.event(
                "controller.start",
                {"pid": _pid(), "state": self.machine.as_dict(), "samples_pruned": pruned},
                self.actor,
            )
            results = await self._reconcile()
        except BaseException:
            self.lock.release()
            raise
        self._publish()
        return results

    async def close(self) -> None:
        self._stop.set()
        # actions (and the commands waiting for them) end first, bounded: never leave the world half-changed
        under_way = [*self._actions, *self._tasks]
        if under_way:
            await asyncio.wait(under_way, timeout=float(self.plan.rollback.max_duration))
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.lock.held:
            self.journal.event("controller.stop", {"state": self.machine.as_dict()}, self.actor)
            self.lock.release()

    def subscribe(self, listener: Callable[[CockpitState], None]) -> None:
        self._listeners.append(listener)

    async def run(self) -> None:
        """The tick loop, until close()."""
        while not self._stop.is_set():
            started = time.monotonic()
            await self.tick()
            delay = max(0.0, float(self.plan.tick) - (time.monotonic() - started))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    # ------------------------------------------------------------------------------------------ the tick
    async def tick(self) -> None:
        """Take queued commands; start a refresh unless the last one is still out (polls never overlap)."""
        for cmd in self.journal.take_commands():
            self._spawn(self._execute(cmd))
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_logged())
        else:
            self._publish()  # a slow source (a cold Neon) must not hold up commands or the screen

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the tick loop goes on; the journal says what went wrong
            self.journal.event(
                "controller.error", {"during": "refresh", "error": f"{type(exc).__name__}: {exc}"}
            )

    async def refresh(self) -> None:
        """Read every metrics source, evaluate the rules, journal the samples, publish a snapshot."""
        await self._poll()
        self._evaluate()
        if self.metrics:
            self.journal.samples({k: v for k, v in self.metrics.items() if v is not None})
        if self.clock() >= self._next_prune:
            self._prune()
        self._publish()

    def _prune(self) -> int:
        """Drop the samples older than `journal.keep_samples` (events are never dropped); then again in an hour."""
        self._next_prune = self.clock() + PRUNE_EVERY_S
        return self.journal.prune_samples(self.clock() - float(self.plan.journal.keep_samples))

    async def _poll(self) -> None:
        metrics: dict[str, float | None] = {}
        results = await asyncio.gather(
            *(asyncio.to_thread(src.poll) for src in self.drivers.metrics), return_exceptions=True
        )
        for src, res in zip(self.drivers.metrics, results, strict=True):
            self._trouble(f"metrics.{type(src).__name__}", res if isinstance(res, BaseException) else None)
            if not isinstance(res, BaseException):
                metrics.update(res)
        if self.drivers.sync is not None and not self._copying():  # no change log on green until it is done
            try:
                self.lag = dict(await asyncio.to_thread(self.drivers.sync.lag))
                metrics["sync_lag"] = max((v.age_s for v in self.lag.values()), default=0.0)
                for direction, v in self.lag.items():
                    metrics[f"sync.{direction}.age_s"] = v.age_s
                    metrics[f"sync.{direction}.pending"] = float(v.pending)
                self._trouble("sync", None)
            except Exception as exc:
                self._trouble("sync", exc)
        if self.drivers.traffic is not None:
            try:
                self.green_live = live_percent(await asyncio.to_thread(self.drivers.traffic.live))
                self._trouble("traffic", None)
            except Exception as exc:
                self._trouble("traffic", exc)
        metrics["green_configured"] = self.machine.green(self.plan)
        self.metrics = metrics

    def _trouble(self, source: str, exc: BaseException | None) -> None:
        """Journal a source's failure when it starts or changes, and its recovery: not once a tick."""
        now = None if exc is None else f"{type(exc).__name__}: {exc}"
        if self._troubles.get(source) == now:
            return
        if now is None:
            self.journal.event("source.recovered", {"source": source}, self.actor)
            self._troubles.pop(source, None)
        else:
            self.journal.event("source.error", {"source": source, "error": now}, self.actor)
            self._troubles[source] = now

    def _evaluate(self) -> None:
        now = self.clock()
        alarms = threshold_alarms(self.plan.metrics, self.metrics)
        nxt = self.machine.phase_index
        current = self.plan.phases[nxt] if 0 <= nxt < len(self.plan.phases) else None
        self.gates = tuple(check_gates(current, self.metrics)) if current else self._ready_gates()
        exposed = self.machine.phase_index >= 0 and self.machine.state in (
            "active",
            "held",
            "complete",
            "advancing",
        )
        if exposed:
            fired, pending = self.triggers.update(self.metrics, now)
            alarms += pending
            under_way = self._triggered is not None and not self._triggered.done()
            if fired and not under_way and not self._rolling_back():
                first = fired[0]
                self.journal.event(
                    "trigger.fired", {"trigger": first.trigger.name, "reason": first.reason}, self.actor
                )
                self._triggered = self._spawn(
                    self.rollback(first.reason, first.trigger.action, actor=f"{self.actor} (trigger)")
                )
        else:
            self.triggers.reset()
        self.alarms = tuple(alarms)

    def _rolling_back(self) -> bool:
        return self.machine.state == "rolling_back" or (
            self._running is not None and self._running[0] == "rollback"
        )

    # ------------------------------------------------------------------------------------------ actions
    async def advance(
        self, to: str | None = None, *, force: bool = False, reason: str = "", actor: str | None = None
    ) -> Result:
        args = {"to": to, "force": force}
        return await self._act("advance", actor, reason, args, lambda rec: self._advance(rec, to, force))

    async def hold(self, reason: str = "", *, actor: str | None = None) -> Result:
        return await self._act("hold", actor, reason, {}, lambda rec: self._hold(rec, reason))

    async def resume(self, reason: str = "", *, actor: str | None = None) -> Result:
        return await self._act("resume", actor, reason, {}, self._resume)

    async def rollback(self, reason: str, mode: str = "immediate", *, actor: str | None = None) -> Result:
        if mode not in ("immediate", "gradual"):
            raise ValueError(f"rollback mode {mode!r} is not immediate or gradual")
        running = self._running
        if running is not None and running[0] == "rollback":
            return await asyncio.shield(running[1])  # one rollback at a time: join the one under way
        if running is not None and running[0] == "advance":
            running[1].cancel()  # rollback preempts an advance in flight
        return await self._act(
            "rollback", actor, reason, {"mode": mode}, lambda rec: self._rollback(rec, mode, reason)
        )

    async def copy(self, reason: str = "", *, jobs: int | None = None, actor: str | None = None) -> Result:
        """The initial copy of blue into green, then capture on both sides; only while no user is on green.
        `jobs`: tables loaded in parallel (default: the plan's `sync.copy_jobs`)."""
        if jobs is not None and int(jobs) < 1:
            raise ValueError(f"copy jobs must be at least 1, not {jobs}")
        n = int(jobs) if jobs is not None else int(self.plan.sync.copy_jobs)
        return await self._act("copy", actor, reason, {"jobs": n}, lambda rec: self._initial_copy(rec, n))

    async def backup(self, reason: str = "", *, label: str = "", actor: str | None = None) -> Result:
        """A backup of blue (online copy, gzip, manifest), then its verification (restore and check)."""
        return await self._act(
            "backup", actor, reason, {"label": label}, lambda rec: self._backup(rec, label)
        )

    async def _act(
        self,
        verb: str,
        actor: str | None,
        reason: str,
        args: dict[str, Any],
        body: Callable[[Recorder], Awaitable[Result]],
    ) -> Result:
        # The action runs in its own task: a caller that goes away (a closed screen, a cancelled CLI) neither
        # stops it half-way nor lets the next action start before it ends.
        task = asyncio.ensure_future(self._serialized(verb, actor, reason, args, body))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)
        return await asyncio.shield(task)

    async def _serialized(
        self,
        verb: str,
        actor: str | None,
        reason: str,
        args: dict[str, Any],
        body: Callable[[Recorder], Awaitable[Result]],
    ) -> Result:
        async with self._action_lock:
            rec = Recorder(self.journal, verb, actor or self.actor, reason, args)
            rec.intent()
            me = asyncio.current_task()
            assert me is not None
            self._running = (verb, me)  # type: ignore[assignment]
            self._publish()
            try:
                return await self._guarded(rec, body)
            finally:
                self._running = None
                self._publish()

    async def _guarded(self, rec: Recorder, body: Callable[[Recorder], Awaitable[Result]]) -> Result:
        before = self.machine
        try:
            return await body(rec)
        except Refused as exc:
            self._set_machine(before)
            return rec.outcome("refused", str(exc))
        except asyncio.CancelledError:
            # preempted (by a rollback): the machine stays where the world is; the rollback takes it from here
            self._set_machine(replace(before, state="active" if before.phase_index >= 0 else "ready"))
            step = rec.steps[-1][0] if rec.steps else "?"
            return rec.outcome("preempted", f"preempted by a rollback during step {step}")
        except Exception as exc:
            self._set_machine(before)
            return rec.outcome(
                "failed",
                f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, (StepFailed, TrafficError))
                else str(exc),
            )

    async def _advance(self, rec: Recorder, to: str | None, force: bool) -> Result:
        target = phases.advance_target(self.machine, self.plan, to)
        if target >= len(self.plan.phases):
            raise Refused("there is no phase after the last one")
        phase = self.plan.phases[target]
        current = self.machine
        with rec.step("gates") as info:
            problems = self._gate_problems(current)
            if problems and not force:
                info["detail"] = "; ".join(problems)
                raise Refused(
                    "gates not met: " + "; ".join(problems) + " (--force overrides, and is journaled)"
                )
            info["detail"] = ("forced past: " + "; ".join(problems)) if problems else "all met"
        self._set_machine(replace(current, state="advancing"))
        with rec.step(
            "green_services"
        ) as info:  # green must serve before users go there (after a rollback too)
            await set_services(
                self.drivers.green_services, service_units(self.plan.green.services), "start", info
            )
        with rec.step("green_health") as info:
            await check_health(self.plan, self.drivers, ("green",), info)
        with rec.step("traffic") as info:
            statuses = await self._apply_split(float(phase.green))
            info["detail"] = _describe(statuses)
        with rec.step("verify") as info:
            live = (
                live_percent(await asyncio.to_thread(self.drivers.traffic.live))
                if self.drivers.traffic
                else float(phase.green)
            )
            self.green_live = live
            if live is None or abs(live - float(phase.green)) > 0.05:
                raise StepFailed(f"live split is {live}, expected {phase.green:g}%")
            info["detail"] = f"{live:g}% green live"
        self.triggers.reset()
        self._set_machine(phases.settled(Machine(phase_index=target), self.plan, self.clock()))
        return rec.outcome(
            "ok",
            f"now in phase {phase.name} ({phase.green:g}% green)",
            {"phase": phase.name, "green": float(phase.green)},
        )

    def _gate_problems(self, m: Machine) -> list[str]:
        if m.phase_index < 0 and m.state == "ready":
            return [f"{g} ({why})" for g, met, why in self._ready_gates() if not met]
        if m.phase_index < 0 or m.state == "rolled_back":
            return []
        phase = self.plan.phases[m.phase_index]
        problems = []
        in_phase = self.clock() - m.since
        if in_phase < phase.soak:
            problems.append(f"soak: {in_phase:.0f}s of {phase.soak:.0f}s in {phase.name}")
        problems += [f"{g} ({why})" for g, met, why in check_gates(phase, self.metrics) if not met]
        return problems

    def _ready_gates(self) -> tuple[tuple[str, bool, str], ...]:
        """Before the first phase: a fresh backup of blue, when the plan requires one."""
        if self.machine.phase_index >= 0 or self.machine.state != "ready":
            return ()
        gate = backup_gate(self.plan.backup, self.metrics)
        return (gate,) if gate else ()

    async def _initial_copy(self, rec: Recorder, jobs: int) -> Result:
        sync = self.drivers.sync
        if sync is None or not hasattr(sync, "initial_copy"):
            raise Refused("this plan has no sync to copy with (blue must be sqlite and green postgresql)")
        if self.machine.phase_index >= 0 or (self.green_live or 0.0) > 0.05:
            where = (
                self.plan.phases[self.machine.phase_index].name if self.machine.phase_index >= 0 else "live"
            )
            raise Refused(
                f"the initial copy runs before any user is on green (now {where}, "
                f"{self.green_live if self.green_live is not None else '?'}% live): roll back first"
            )
        with self._copy_lock:
            self._copy_tables = {}
            self._copy_t0 = time.monotonic()
            self._copy = CopyView("running", self.clock())
        self._publish()
        try:
            with rec.step("copy") as info:
                report, tables = await asyncio.to_thread(sync.initial_copy, jobs, self._copy_progressed)
                info["detail"] = (
                    f"{report.rows:,} rows in {len(report.tables)} tables, {report.seconds:.2f}s "
                    f"({report.rows_per_s:,.0f} rows/s); capture on both sides for {len(tables)} "
                    f"tables; change-log position {report.sqlite_position}"
                )
        except BaseException as exc:
            self._copy_ended("failed", f"{type(exc).__name__}: {exc}")
            raise
        self._copy_ended("done", "; ".join(report.warnings[:3]))
        message = f"copied {report.rows:,} rows in {len(report.tables)} tables in {report.seconds:.2f}s"
        if report.not_valid:
            message += "; foreign keys left NOT VALID: " + ", ".join(f.constraint for f in report.not_valid)
        return rec.outcome("ok", message, {"copy": report.as_dict(), "capture": {"tables": tables}})

    async def _backup(self, rec: Recorder, label: str) -> Result:
        backup = self.drivers.backup
        if backup is None:
            raise Refused("this plan has no blue SQLite file to back up (blue.database: engine sqlite, path)")
        with rec.step("backup") as info:
            manifest = await asyncio.to_thread(backup.take, label)
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
        poll = getattr(backup, "poll", None)
        if callable(poll):  # backup_age now, not at the next tick: the first advance's gate reads it
            self.metrics = {**self.metrics, **await asyncio.to_thread(poll)}
            self.gates = self._ready_gates() or self.gates
        return rec.outcome(
            "ok",
            f"backup {manifest.name}: {manifest.total_rows:,} rows, verified",
            {"backup": manifest.as_dict()},
        )

    def _copy_progressed(self, p: TableCopy) -> None:
        """A writer thread's progress report."""
        with self._copy_lock:
            self._copy_tables[p.table] = p

    def _copy_ended(self, state: str, message: str) -> None:
        view = self.copy_view()
        if view is not None:
            self._copy = replace(view, state=state, message=message)
        self._publish()

    def _copying(self) -> bool:
        view = self._copy
        return view is not None and view.state == "running"

    def copy_view(self) -> CopyView | None:
        """The copy under way (its tables as last reported), or how the last one ended. Any thread."""
        view = self._copy
        if view is None or view.state != "running":
            return view
        with self._copy_lock:
            tables = tuple(self._copy_tables[t] for t in sorted(self._copy_tables))
        return replace(view, tables=tables, seconds=time.monotonic() - self._copy_t0)

    async def _hold(self, rec: Recorder, reason: str) -> Result:
        self._set_machine(phases.hold(self.machine, reason, self.clock()))
        return rec.outcome("ok", f"held: {self.machine.held_reason}")

    async def _resume(self, rec: Recorder) -> Result:
        self._set_machine(phases.resume(self.machine, self.plan, self.clock()))
        return rec.outcome("ok", f"resumed in state {self.machine.state}")

    async def _rollback(self, rec: Recorder, mode: str, reason: str) -> Result:
        from_index = self.machine.phase_index
        self._set_machine(replace(self.machine, state="rolling_back", since=self.clock()))
        outcome = await run_sequence(
            self.plan, self.drivers, rec, mode, from_index, self._apply_split, reason
        )
        self.triggers.reset()
        if not outcome.traffic_ok:
            self._set_machine(Machine("failed", from_index, self.clock()))
            return rec.outcome(
                "failed", "traffic could not be moved back to blue: " + _failed_detail(rec, "traffic")
            )
        self._set_machine(Machine("rolled_back", -1, self.clock()))
        if outcome.failed_steps:
            return rec.outcome(
                "partial", "all traffic on blue; failed steps: " + ", ".join(outcome.failed_steps)
            )
        return rec.outcome("ok", "all traffic on blue")

    async def _apply_split(self, green: float) -> list[SplitStatus]:
        if self.drivers.traffic is None:
            return []
        traffic = self.drivers.traffic

        def locked() -> list[SplitStatus]:
            with self._traffic_lock:
                return traffic.apply(green)

        statuses = await asyncio.to_thread(locked)
        self.green_live = live_percent(statuses)
        return statuses

    # ------------------------------------------------------------------------------------------ commands
    async def _execute(self, cmd: Command) -> None:
        self.journal.event(
            "command.taken", {"command": cmd.id, "verb": cmd.verb, "args": cmd.args}, cmd.actor
        )
        try:
            result = await self.dispatch(cmd.verb, cmd.args, actor=cmd.actor)
        except (ValueError, TypeError) as exc:
            self.journal.finish_command(
                cmd.id, "failed", {"outcome": "refused", "ok": False, "message": str(exc)}
            )
            return
        self.journal.finish_command(cmd.id, "done" if result.ok else "failed", result.as_dict())

    async def dispatch(self, verb: str, args: Mapping[str, Any], *, actor: str | None = None) -> Result:
        """Run a verb by name (queued commands and the CLI use this)."""
        if verb == "advance":
            return await self.advance(
                args.get("to"), force=bool(args.get("force")), reason=args.get("reason", ""), actor=actor
            )
        if verb == "hold":
            return await self.hold(args.get("reason", ""), actor=actor)
        if verb == "resume":
            return await self.resume(args.get("reason", ""), actor=actor)
        if verb == "rollback":
            return await self.rollback(
                args.get("reason") or "manual", args.get("mode", "immediate"), actor=actor
            )
        if verb == "backup":
            return await self.backup(args.get("reason", ""), label=args.get("label") or "", actor=actor)
        if verb == "copy":
            return await self.copy(args.get("reason", ""), jobs=args.get("jobs"), actor=actor)
        raise ValueError(f"unknown command {verb!r}; expected one of {', '.join(VERBS)}")

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------------------------------ reconcile
    async def _reconcile(self) -> list[Result]:
        """Find actions a crash cut short and settle them against the live world (the include on disk)."""
        results: list[Result] = []
        live = None
        if self.drivers.traffic is not None:
            live = live_percent(await asyncio.to_thread(self.drivers.traffic.live))
        self.green_live = live
        for action in self.journal.open_actions():
            rec = Recorder(self.journal, action.verb, self.actor, "reconcile after restart", {})
            rec.action_id = action.action_id  # the outcome closes the original action
            detail = f"cut short (last step: {action.steps[-1].name if action.steps else 'none'})"
            if action.verb == "rollback":
                rec.outcome("interrupted", detail + "; the rollback is run again")
                self._set_machine(
                    replace(self.machine, state="active" if self.machine.phase_index >= 0 else "ready")
                )
                results.append(
                    await self.rollback(
                        f"resume interrupted rollback {action.action_id}: {action.reason}",
                        action.args.get("mode", "immediate"),
                        actor=self.actor,
                    )
                )
                continue
            if action.verb == "advance":
                matched = self._phase_for(live)
                if matched is None:
                    self._set_machine(
                        Machine(
                            "held",
                            self.machine.phase_index,
                            self.clock(),
                            f"live split {live}% matches no phase after an interrupted advance",
                        )
                    )
                    results.append(
                        rec.outcome("reconciled", f"{detail}; live split {live}% matches no phase: held")
                    )
                else:
                    self._set_machine(phases.settled(Machine(phase_index=matched), self.plan, self.clock()))
                    name = self.plan.phases[matched].name if matched >= 0 else "ready"
                    results.append(rec.outcome("reconciled", f"{detail}; live split {live:g}% is {name}"))
                continue
            if action.verb == "copy":  # the copy drops what it made when it fails, but not when it is killed
                results.append(
                    rec.outcome(
                        "interrupted",
                        f"{detail}; green may hold a partial copy: check it with "
                        "`cockpit sync status`, drop those tables and copy again",
                    )
                )
                continue
            # hold/resume change nothing in the world: the saved machine is the truth
            results.append(rec.outcome("reconciled", detail))
        if self.machine.state in ("advancing", "rolling_back"):
            self._set_machine(phases.settled(self.machine, self.plan, self.clock()))
        if results and self.drivers.traffic is not None:  # what reconciliation did may have moved the split
            live = live_percent(await asyncio.to_thread(self.drivers.traffic.live))
            self.green_live = live
        if (
            live is not None
            and self.machine.state not in ("failed", "held")
            and abs(live - self.machine.green(self.plan)) > 0.05
        ):
            matched = self._phase_for(live)
            self.journal.event(
                "reconcile.split",
                {"journal_green": self.machine.green(self.plan), "live_green": live, "phase_index": matched},
                self.actor,
            )
            if matched is not None:
                self._set_machine(phases.settled(Machine(phase_index=matched), self.plan, self.clock()))
            else:
                self._set_machine(
                    Machine(
                        "held",
                        self.machine.phase_index,
                        self.clock(),
                        f"live split {live:g}% matches no phase",
                    )
                )
        return results

    def _phase_for(self, live: float | None) -> int | None:
        if live is None:
            return None
        if abs(live) < 0.05:
            return -1
        for i, p in enumerate(self.plan.phases):
            if abs(float(p.green) - live) < 0.05:
                return i
        return None

    # ------------------------------------------------------------------------------------------ state
    def _set_machine(self, m: Machine) -> None:
        self.machine = m
        self.journal.set_state("machine", m.as_dict())
        self._publish()

    def snapshot(self) -> CockpitState:
        return build_state(
            self.plan,
            self.machine,
            actions=tuple(self.journal.actions(10)),
            green_live=self.green_live,
            metrics=self.metrics,
            lag=self.lag,
            alarms=self.alarms,
            gates=self.gates,
            controller={"pid": _pid(), "actor": self.actor},
            running_action=self._running[0] if self._running else None,
            copy=self.copy_view(),
            now=self.clock(),
        )

    def _publish(self) -> None:
        state = self.snapshot()
        self.latest = state
        doc = state.to_json()
        self.journal.set_state(
            "runtime",
            {
                "green_live": state.green_live,
                "metrics": doc["metrics"],
                "lag": doc["sync_lag"],
                "alarms": doc["alarms"],
                "gates": doc["gates"],
                "running_action": state.running_action,
                "copy": None if state.copy is None else state.copy.as_dict(),
            },
        )
        for listener in self._listeners:
            listener(state)


def _describe(statuses: list[SplitStatus]) -> str:
    return (
        ", ".join(
            f"{s.balancer} {s.green_percent:g}%" if s.green_percent is not None else f"{s.balancer} ?"
            for s in statuses
        )
        or "no balancers"
    )


def _failed_detail(rec: Recorder, step: str) -> str:
    for name, status, _d, detail in rec.steps:
        if name == step and status == "failed":
            return detail
    return "?"


def _pid() -> int:
    import os

    return os.getpid()
