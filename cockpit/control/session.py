"""Opening a controller for a plan: journal, drivers, lock, reconciliation, and the sync loop when asked.

`cockpit run`, `cockpit tui` and one-shot CLI actions all open the controller through here (one code path).
`ControllerThread` runs one on its own event loop in a thread, so a screen's loop never waits on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers, build_drivers
from cockpit.core.journal import Journal
from cockpit.core.plan import Plan

T = TypeVar("T")


def journal_for(plan: Plan, readonly: bool = False) -> Journal:
    return Journal(plan.path(plan.journal.path), readonly=readonly)


@asynccontextmanager
async def controller_session(
    plan: Plan, *, run_sync: bool = True, drivers: Drivers | None = None, actor: str | None = None
) -> AsyncIterator[Controller]:
    """A started controller (lock held, crash reconciled); closed, lock released and drivers stopped on exit."""
    journal = journal_for(plan)
    own_drivers = drivers is None
    try:
        events = _Events(journal)
        drivers = drivers if drivers is not None else build_drivers(plan, events=events)
        controller = Controller(plan, drivers, journal, actor=actor)
        events.controller = controller
        await controller.start()
        try:
            if run_sync and drivers.sync is not None:
                drivers.sync.start()
            yield controller
        finally:
            await controller.close()
            if own_drivers:
                await asyncio.to_thread(drivers.close)
    finally:
        journal.close()


class _Events:
    """What the drivers report (sync conflicts, stalls, schema changes, integrity mismatches): journaled, then
    handed to the controller (alerts, alarms). Called from the drivers' threads."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.controller: Controller | None = None

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.journal.event(kind, payload)
        if self.controller is not None:
            self.controller.on_event(kind, payload)


class ControllerThread:
    """A controller with its own event loop in a daemon thread; `call()` runs a controller coroutine from any loop."""

    def __init__(self, plan: Plan, *, drivers: Drivers | None = None, run_sync: bool = True):
        self.plan = plan
        self._drivers = drivers
        self._run_sync = run_sync
        self.loop = asyncio.new_event_loop()
        self.controller: Controller | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="cockpit-controller", daemon=True)

    def start(self, timeout: float = 60.0) -> Controller:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the controller did not start within {timeout:g}s")
        if self.error is not None:
            raise self.error
        assert self.controller is not None
        return self.controller

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            async with controller_session(
                self.plan, run_sync=self._run_sync, drivers=self._drivers
            ) as controller:
                self.controller = controller
                self._ready.set()
                runner = asyncio.ensure_future(controller.run())
                await self._stopped.wait()
                await controller.close()
                await runner
        except BaseException as exc:  # reported to start() or kept for stop()
            self.error = exc
        finally:
            self._ready.set()

    async def call(self, make: Callable[[Controller], Awaitable[T]]) -> T:
        """Run `make(controller)` on the controller's loop and await it from the caller's loop."""
        assert self.controller is not None
        controller = self.controller
        future = asyncio.run_coroutine_threadsafe(_call(make, controller), self.loop)
        return await asyncio.wrap_future(future)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.ident is None:  # never started (the screen quit while it was coming up)
            return
        if self._stopped is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)


async def _call(make: Callable[[Controller], Awaitable[Any]], controller: Controller) -> Any:
    return await make(controller)
