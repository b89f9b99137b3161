"""The preflight's results: one `Check` per fact looked at (pass, warn or fail, what was found, what to do) and
the `Verdict` over them all (go when nothing failed). Pure data: `cockpit.control.preflight` gathers the checks,
the journal keeps the verdict (a `preflight` event), and the phase gate reads it back with `fresh_go`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cockpit.core.plan_reading import format_duration

Status = Literal["pass", "warn", "fail"]
PASS: Status = "pass"
WARN: Status = "warn"
FAIL: Status = "fail"
GO, NO_GO = "go", "no-go"
EVENT = "preflight"  # the journal's event kind for a run


@dataclass(frozen=True)
class Check:
    """One fact: `area` (green, blue, nginx, services, sync, backup, alerts, system), `name`, its status, what
    was `found` and, unless it passed, what to `do`."""

    area: str
    name: str
    status: Status
    found: str
    do: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "area": self.area,
            "name": self.name,
            "status": self.status,
            "found": self.found,
            "do": self.do,
        }


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    at: float  # epoch seconds when the run ended
    duration_s: float = 0.0

    @property
    def go(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    @property
    def word(self) -> str:
        return GO if self.go else NO_GO

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status == status)

    def summary(self) -> str:
        return (
            f"{self.word}: {self.count(PASS)} pass, {self.count(WARN)} warn, {self.count(FAIL)} fail "
            f"in {self.duration_s:.1f}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.word,
            "go": self.go,
            "at": self.at,
            "duration_s": round(self.duration_s, 3),
            "counts": {s: self.count(s) for s in (PASS, WARN, FAIL)},
            "checks": [c.as_dict() for c in self.checks],
        }


def fresh_go(
    last: Mapping[str, Any] | None, at: float | None, now: float, max_age: float
) -> tuple[bool, str]:
    """Whether the last journaled run (`last`, its payload, journaled `at`) opens a phase that needs a preflight
    now: a go no older than `max_age` seconds. Returns (met, why)."""
    if last is None or at is None:
        return False, "none journaled: run cockpit preflight"
    age = max(0.0, now - at)
    when = f"{format_duration(age)} ago"
    if last.get("verdict") != GO:
        failed = [
            f"{c.get('area')}/{c.get('name')}" for c in last.get("checks", []) if c.get("status") == FAIL
        ]
        return False, f"last run {when} was no-go ({', '.join(failed[:3]) or 'failed'}): fix, run it again"
    if age > max_age:
        return False, f"last go is {when}, older than {format_duration(max_age)}: run cockpit preflight again"
    return True, f"go {when}"


def counted(n: int, noun: str) -> str:
    """`1 table`, `3 tables`: a count for a check's `found`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def failed(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
