"""A controller process for the ending crash tests: it runs `finalize` or `abandon` until one step blocks (after
doing part of its work), says so in a marker file, and waits to be killed with SIGKILL.

    python -m tests.control.crash_ending PLAN finalize   # blocks in archive, once the archive is taken
    python -m tests.control.crash_ending PLAN abandon    # blocks in clean, once blue's capture is removed;
                                                          # it asked to drop green's database too
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

from cockpit.control.commands import Abandon, Command, Finalize
from cockpit.control.factory import build_drivers
from cockpit.control.session import controller_session
from cockpit.core.plan import load_plan
from cockpit.drivers.sync.ending import database_name


async def main(plan_path: str, mode: str) -> None:
    plan = load_plan(plan_path)
    marker = Path(plan_path).parent / "in-flight"
    drivers = build_drivers(plan)

    def block() -> None:
        marker.write_text(mode)
        threading.Event().wait()  # until SIGKILL

    cmd: Command
    if mode == "finalize":
        backup: Any = drivers.backup
        take = backup.archive

        def archive(*args: Any) -> Any:
            take(*args)
            block()

        backup.archive = archive
        cmd = Finalize(reason="drill")
    else:
        sync: Any = drivers.sync

        def uninstall() -> Any:
            sync.uninstall_blue()
            block()

        sync.uninstall = uninstall
        cmd = Abandon(reason="drill", drop_green=database_name(plan.green.database.url))
    async with controller_session(plan, run_sync=False, drivers=drivers) as controller:
        await controller.act(cmd)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
