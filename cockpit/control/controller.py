"""The one place where actions run: advance, hold, resume, rollback, copy and backup, the tick loop, and crash
reconciliation at start.

The TUI, the CLI and automated triggers all call the controller. Each action is a command (`commands.py`) carried
out by its sequence (`registry.py` maps verb -> command type and sequence: `advance.py`, `rollback.py`,
`hold.py`, `initial_copy.py`, `verified_backup.py`), run one at a time by `acting.py`; the tick's readings live
in `monitor.py`, crash reconciliation in `reconcile.py`, alerts in `alerts.py`, the schema watch in `hold.py`, the
published state in `view.py`. Actions are serialized; a rollback preempts an advance in flight. Blocking
driver calls run in threads, so the controller's loop stays free to preempt. Every action is journaled as
intent -> steps -> outcome. One controller acts at a time (the lock beside the journal); other processes put
commands in the journal's queue, which the running controller takes within one tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import platform
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cockpit.control import acting, reconcile
from cockpit.control.alerts import Alerts, send_alert
from cockpit.control.commands import Advance, Backup, Command, Copy, Hold, Resume, Rollback, RollbackMode
from cockpit.control.factory import Drivers, SyncDriver
from cockpit.control.hold import SchemaWatch
from cockpit.control.initial_copy import CopyTracker
from cockpit.control.monitor import Monitor
from cockpit.control.registry import command
from cockpit.control.stranded import StrandedChanges
from cockpit.control.view import ENDED, AlarmLog, build_state, runtime
from cockpit.core.journal import Command as Queued
from cockpit.core.journal import Journal, current_actor
from cockpit.core.lock import ControllerLock
from cockpit.core.phases import Machine
from cockpit.core.plan import Plan, plan_record
from cockpit.core.recorder import Result
from cockpit.core.state import CockpitState, CopyView, Ended
from cockpit.core.vocabulary import Outcome, State
from cockpit.drivers.traffic.base import SplitStatus, live_percent


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
        self.monitor = Monitor(plan, drivers, journal, self.actor)
        self.copies = CopyTracker()
        self.alerts = Alerts(plan.name, float(plan.alerts.gather), float(plan.alerts.every))
        self.schema_watch = SchemaWatch()  # a schema changed under the sync holds the machine
        self.stranded = StrandedChanges(self)  # changes left on green by a rollback's drain
        self.ended: Ended | None = None  # finalize or abandon, once past its point of no return (journaled)
        self.retired_sync: SyncDriver | None = (
            None  # the sync an ending stopped (its last steps still use it)
        )
        self.latest: CockpitState | None = None  # the last published snapshot (read from any thread)
        self._action_lock = asyncio.Lock()
        self._running: tuple[str, asyncio.Future[Result]] | None = None
        self._traffic_lock = threading.Lock()  # one apply at a time, even when a preempted one still runs
        self._refreshing: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._actions: set[asyncio.Future[Result]] = set()
        self._triggered: asyncio.Future[Any] | None = None  # the rollback a trigger started
        self._stop = asyncio.Event()
        self._listeners: list[Callable[[CockpitState], None]] = []
        self.alarm_log = AlarmLog()  # alarms journaled as alarm.raised / alarm.cleared

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.monitor.metrics

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> list[Result]:
        """Take the lock, load the state, reconcile with the live world. Returns what reconciliation did."""
        self.lock.acquire(self.actor)
        try:
            saved = self.journal.get_state("machine")
            if saved:
                self.machine = Machine.from_dict(saved)
            else:  # the first controller of this journal: `status` from another process reads when it began
                self.set_machine(Machine(since=self.clock()))
            self.ended = Ended.from_dict(self.journal.get_state(ENDED))
            if self.ended is not None:  # the sync stays stopped once an ending has begun
                self.retire_sync()
            pruned = self.monitor.prune(self.clock())
            self.journal.event(
                "controller.start",
                {
                    "pid": os.getpid(),
                    "state": self.machine.as_dict(),
                    "samples_pruned": pruned,
                    "machine": machine_facts(),
                    "plan": plan_record(self.plan),
                },
                self.actor,
            )
            results = await reconcile.reconcile(self)
        except BaseException:
            self.lock.release()
            raise
        self.publish()
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
        await asyncio.to_thread(self.monitor.readiness_probe.stop)
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
            self.spawn(self._execute(cmd))
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_logged())
        else:
            self.publish()  # a slow source (a cold Neon) must not hold up commands or the screen

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the tick loop goes on; the journal says what went wrong
            self.journal.event(
                "controller.error", {"during": "refresh", "error": f"{type(exc).__name__}: {exc}"}
            )

    async def refresh(self) -> None:
        """Read every metrics source, evaluate the rules, journal the samples, publish a snapshot."""
        await self.monitor.poll(self.machine, copying=self.copies.running, now=self.clock())
        fired = self.monitor.evaluate(self.machine, self.clock())
        under_way = self._triggered is not None and not self._triggered.done()
        if fired and not under_way and not self._rolling_back():
            first = fired[0]
            self.journal.event(
                "trigger.fired", {"trigger": first.trigger.name, "reason": first.reason}, self.actor
            )
            rollback = Rollback(reason=first.reason, mode=first.trigger.action)
            self._triggered = self.spawn(self.act(rollback, f"{self.actor} (trigger)"))
        self.schema_watch.check(self)
        self.stranded.tick()
        for alert in self.alerts.due(self.clock()):
            self.spawn(send_alert(self.drivers.notifier, alert, self.plan.name, self.journal, self.actor))
        self.monitor.record(self.clock())
        self.publish()

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        """What a driver reports (journaled by the session already): alerts, and the integrity alarm. Any
        thread."""
        self.alerts.note(kind, payload, self.clock())
        if kind == "integrity.mismatch":
            self.monitor.note_mismatch(payload, self.clock())

    def _rolling_back(self) -> bool:
        running = self._running
        return self.machine.state == State.ROLLING_BACK or (running is not None and running[0] == "rollback")

    # ------------------------------------------------------------------------------------------ actions
    async def advance(
        self, to: str | None = None, *, force: bool = False, reason: str = "", actor: str | None = None
    ) -> Result:
        return await self.act(Advance(to=to, force=force, reason=reason), actor)

    async def hold(self, reason: str = "", *, actor: str | None = None) -> Result:
        return await self.act(Hold(reason=reason), actor)

    async def resume(self, reason: str = "", *, actor: str | None = None) -> Result:
        return await self.act(Resume(reason=reason), actor)

    async def rollback(
        self, reason: str, mode: RollbackMode = "immediate", *, actor: str | None = None, force: bool = False
    ) -> Result:
        return await self.act(Rollback(reason=reason, mode=mode, force=force), actor)

    async def copy(self, reason: str = "", *, jobs: int | None = None, actor: str | None = None) -> Result:
        """The initial copy of blue into green, then capture on both sides; only while no user is on green."""
        return await self.act(Copy(reason=reason, jobs=jobs), actor)

    async def backup(self, reason: str = "", *, label: str = "", actor: str | None = None) -> Result:
        """A backup of blue (online copy, gzip, manifest), then its verification (restore and check)."""
        return await self.act(Backup(reason=reason, label=label), actor)

    async def dispatch(
        self, verb: str, args: Mapping[str, Any], *, actor: str | None = None, queued: int | None = None
    ) -> Result:
        """Run a verb by name with JSON arguments (queued commands and the CLI use this)."""
        return await self.act(command(verb, args), actor, queued=queued)

    async def act(self, cmd: Command, actor: str | None = None, *, queued: int | None = None) -> Result:
        """Carry out one command (`acting.act`): serialized, journaled as intent -> steps -> outcome."""
        return await acting.act(self, cmd, actor, queued=queued)

    async def apply_split(self, green: float) -> list[SplitStatus]:
        """Make `green` % live (one apply at a time, in a thread); the live split is what the balancers say."""
        traffic = self.drivers.traffic
        if traffic is None:
            return []

        def locked() -> list[SplitStatus]:
            with self._traffic_lock:
                return traffic.apply(green)

        statuses = await asyncio.to_thread(locked)
        self.monitor.green_live = live_percent(statuses)
        return statuses

    # ------------------------------------------------------------------------------------------ commands
    async def _execute(self, cmd: Queued) -> None:
        self.journal.event(
            "command.taken", {"command": cmd.id, "verb": cmd.verb, "args": cmd.args}, cmd.actor
        )
        try:
            result = await self.dispatch(cmd.verb, cmd.args, actor=cmd.actor, queued=cmd.id)
        except (ValueError, TypeError) as exc:
            self.journal.finish_command(
                cmd.id, "failed", {"outcome": Outcome.REFUSED, "ok": False, "message": str(exc)}
            )
            return
        self.journal.finish_command(cmd.id, "done" if result.ok else "failed", result.as_dict())

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------------------------------ state
    def set_machine(self, m: Machine) -> None:
        self.machine = m
        self.journal.set_state("machine", m.as_dict())
        self.publish()

    def set_ended(self, ended: Ended) -> None:
        self.ended = ended
        self.journal.set_state(ENDED, ended.as_dict())
        self.publish()

    def retire_sync(self) -> None:
        """Stop the sync loop and the integrity watch for good (an ending): no tick reads them again. Blocking
        (the loop's thread is joined)."""
        sync, integrity = self.drivers.sync, self.drivers.integrity
        if sync is not None:
            sync.stop()
            self.retired_sync, self.drivers.sync = sync, None
        if integrity is not None:
            integrity.stop()
            self.drivers.metrics = [m for m in self.drivers.metrics if m is not integrity]
            self.drivers.integrity = None

    def copy_view(self) -> CopyView | None:
        """The copy under way (its tables as last reported), or how the last one ended. Any thread."""
        return self.copies.view()

    def snapshot(self) -> CockpitState:
        m = self.monitor
        return build_state(
            self.plan,
            self.machine,
            actions=tuple(self.journal.actions(10)),
            green_live=m.green_live,
            metrics=m.metrics,
            lag=m.lag,
            alarms=m.alarms,
            gates=m.gates,
            controller={"pid": os.getpid(), "actor": self.actor},
            running_action=self._running[0] if self._running else None,
            copy=self.copy_view(),
            now=self.clock(),
            readiness=m.readiness,
            sources=m.sources,
            stranded=self.stranded.current,
            ended=self.ended,
        )

    def publish(self) -> None:
        state = self.snapshot()
        self.latest = state
        self.alarm_log.note(state.alarms, self.journal, self.actor)
        self.journal.set_state("runtime", runtime(state))
        for listener in self._listeners:
            listener(state)


def machine_facts() -> dict[str, str]:
    """Where the controller runs (journaled at its start: the report names the machine of the day)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        cockpit_version = version("cockpit")
    except PackageNotFoundError:
        cockpit_version = "unknown"
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (containers)
        user = str(os.getuid())
    return {
        "host": socket.gethostname(),
        "user": user,
        "python": platform.python_version(),
        "cockpit": cockpit_version,
        "platform": platform.platform(),
    }
