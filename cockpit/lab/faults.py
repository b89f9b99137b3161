"""Fault switches for the demo services: a small JSON file per side that each service reads on every request.

`errors` is the share of API requests answered 500, `latency_ms` a delay added to each API request, `db_down`
makes every database access answer 503 (health included), as when the database is unreachable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Faults:
    errors: float = 0.0  # percent of API requests answered 500
    latency_ms: float = 0.0
    db_down: bool = False

    @property
    def active(self) -> bool:
        return bool(self.errors or self.latency_ms or self.db_down)

    def describe(self) -> str:
        parts = []
        if self.errors:
            parts.append(f"errors {self.errors:g}%")
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g}ms")
        if self.db_down:
            parts.append("database down")
        return ", ".join(parts) or "none"


def parse_percent(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    if not m or not 0 <= float(m.group(1)) <= 100:
        raise ValueError(f"{text!r} is not a share from 0% to 100% (e.g. 10%)")
    return float(m.group(1))


def parse_latency(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a latency (e.g. 800ms or 2s)")
    value = float(m.group(1))
    return value * 1000 if m.group(2) == "s" else value


def write_faults(path: Path, faults: Faults) -> None:
    """Atomically replace the fault file (services read it on each request)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(faults)), encoding="utf-8")
    os.replace(tmp, path)


def read_faults(path: Path) -> Faults:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Faults()
    return Faults(
        errors=float(data.get("errors", 0) or 0),
        latency_ms=float(data.get("latency_ms", 0) or 0),
        db_down=bool(data.get("db_down", False)),
    )


class FaultReader:
    """Reads the fault file when it changed (one stat per request)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._faults = Faults()

    def current(self) -> Faults:
        if self.path is None:
            return self._faults
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._faults = None, Faults()
            return self._faults
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            self._faults = read_faults(self.path)
            self._stamp = stamp
        return self._faults
