"""A controller process for the crash tests: it starts an action whose traffic step never returns, says so in a
marker file, and waits to be killed with SIGKILL.

    python -m tests.core.crash_controller PLAN {advance|rollback}-{before|after}-write
    python -m tests.core.crash_controller PLAN rollback-queued

`rollback-queued`: the controller runs its tick loop (file `ready` once it does) and the rollback is the one a CLI
queues; `in-flight` once that rollback's traffic step has begun.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from tests.core.drivers import GatedTraffic


async def main(plan_path: str, mode: str) -> None:
    plan = load_plan(plan_path)
    folder = Path(plan_path).parent
    traffic = GatedTraffic(folder / "split.json", block_after_write=mode.endswith("after-write"))
    controller = Controller(
        plan, Drivers(traffic=traffic), Journal(folder / "journal.db"), actor="victim@host"
    )
    await controller.start()
    if mode.startswith("rollback"):
        assert (await controller.advance()).ok
    traffic.gate = threading.Event()  # never set: the step hangs until the process is killed
    traffic.entered, traffic.applied = threading.Event(), []  # only what the action under test does counts
    if mode == "rollback-queued":
        loop = asyncio.ensure_future(controller.run())
        (folder / "ready").write_text(mode)
        while not traffic.entered.is_set():
            await asyncio.sleep(0.01)
        (folder / "in-flight").write_text(mode)
        await loop  # never returns
    verb = controller.rollback("drill", "immediate") if mode.startswith("rollback") else controller.advance()
    task = asyncio.ensure_future(verb)
    while not traffic.entered.is_set() or (traffic.block_after_write and not traffic.applied):
        await asyncio.sleep(0.01)
    (folder / "in-flight").write_text(mode)
    await task  # never returns


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
