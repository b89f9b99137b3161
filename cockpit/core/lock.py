"""One controller acts at a time: an advisory lock file beside the journal.

The kernel drops a `flock` when its process dies, so a controller killed with SIGKILL never leaves a stale lock.
The file also says who holds it (pid, actor, since), for `status` and for the message a second process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from cockpit.core.errors import CockpitError


class LockHeld(CockpitError, RuntimeError):
    """A controller holds the plan's lock. `doing`: the command refused because of it, and `advice` the way
    through."""

    def __init__(self, holder: dict[str, Any] | None, doing: str = "", advice: str = ""):
        self.holder = holder or {}
        who = self.holder.get("actor", "another process")
        pid = self.holder.get("pid", "?")
        running = f"a controller is already running this plan ({who}, pid {pid})"
        message = f"{doing} refused: {running}" if doing else running
        super().__init__(f"{message}; {advice}" if advice else message)


def refuse_beside_controller(journal_path: str | os.PathLike[str], doing: str, advice: str) -> None:
    """One path per action: a command that changes what a plan drives refuses while a controller holds that
    plan's lock (the controller does it, or is asked to through the journal's queue)."""
    holder = ControllerLock(journal_path).holder()
    if holder is not None:
        raise LockHeld(holder, doing, advice)


class ControllerLock:
    def __init__(self, journal_path: str | os.PathLike[str]):
        self.path = Path(f"{journal_path}.lock")
        self._fd: int | None = None

    def acquire(self, actor: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self.holder()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "actor": actor, "since": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now, or None when nobody does (probed without taking it for long)."""
        if self._fd is not None:
            return self._read()
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._read() or {"pid": None}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
