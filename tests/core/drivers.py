"""Real-file drivers with hooks for the controller tests: a traffic driver that can be made to block or fail."""

from __future__ import annotations

import threading
from pathlib import Path

from cockpit.drivers.traffic.base import SplitStatus, TrafficError
from cockpit.drivers.traffic.file import FileTrafficDriver


class GatedTraffic(FileTrafficDriver):
    """The file driver; when `gate` is set, apply() waits for it (before or after writing the file)."""

    def __init__(self, path: Path, *, block_after_write: bool = False):
        super().__init__(path)
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.block_after_write = block_after_write
        self.fail_with: str | None = None
        self.applied: list[float] = []

    def apply(self, green_percent: float) -> list[SplitStatus]:
        self.entered.set()
        if self.fail_with:
            raise TrafficError(self.fail_with)
        if self.gate is not None and not self.block_after_write:
            self.gate.wait(30)
        out = super().apply(green_percent)
        self.applied.append(green_percent)
        if self.gate is not None and self.block_after_write:
            self.gate.wait(30)
        return out


class StaticMetrics:
    """A metrics source whose values the test sets."""

    def __init__(self, **values: float):
        self.values: dict[str, float | None] = dict(values)

    def poll(self) -> dict[str, float | None]:
        return dict(self.values)
