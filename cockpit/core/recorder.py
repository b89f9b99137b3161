"""Journaling of one action: intent before it starts, each step with its timing, the outcome at its end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cockpit.core.errors import CockpitError
from cockpit.core.journal import Journal
from cockpit.core.vocabulary import SUCCESS, Outcome


@dataclass(frozen=True)
class Result:
    """What an action came to: `ok`, or refused/failed/preempted with a message."""

    action_id: str
    verb: str
    outcome: Outcome
    message: str = ""
    duration_s: float = 0.0
    steps: tuple[tuple[str, str, float, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    def as_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "verb": self.verb,
            "outcome": self.outcome,
            "ok": self.ok,
            "message": self.message,
            "duration_s": round(self.duration_s, 3),
            "steps": [
                {"step": s, "status": st, "duration_s": round(d, 3), "detail": det}
                for s, st, d, det in self.steps
            ],
            **({"extra": self.extra} if self.extra else {}),
        }


class StepFailed(CockpitError):
    """Raised inside a step to mark it failed with a message (the recorder journals it)."""


class Recorder:
    def __init__(
        self, journal: Journal, verb: str, actor: str, reason: str = "", args: dict[str, Any] | None = None
    ):
        self.journal = journal
        self.verb = verb
        self.actor = actor
        self.reason = reason
        self.args = args or {}
        self.action_id = uuid.uuid4().hex[:10]
        self.started = time.monotonic()
        self.steps: list[tuple[str, str, float, str]] = []
        self.current_step: str | None = None

    def intent(self) -> None:
        self.journal.event(
            "action.intent",
            {"verb": self.verb, "reason": self.reason, "args": self.args},
            self.actor,
            self.action_id,
        )

    def record_step(self, name: str, status: str, duration_s: float, detail: str = "") -> None:
        self.steps.append((name, status, duration_s, detail))
        self.journal.event(
            "action.step",
            {"step": name, "status": status, "duration_s": round(duration_s, 4), "detail": detail},
            self.actor,
            self.action_id,
        )

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        """Time a step. Put a `detail` in the yielded dict; raise StepFailed (or anything) to fail it."""
        info: dict[str, str] = {"detail": ""}
        t0 = time.monotonic()
        self.current_step = name
        try:
            yield info
        except BaseException as exc:
            status = "cancelled" if _is_cancel(exc) else "failed"
            detail = "; ".join(x for x in (info["detail"], str(exc)) if x) or type(exc).__name__
            self.record_step(name, status, time.monotonic() - t0, detail)
            raise
        else:
            self.record_step(name, info.get("status", "ok"), time.monotonic() - t0, info["detail"])
        finally:
            self.current_step = None

    def outcome(self, outcome: Outcome, message: str = "", extra: dict[str, Any] | None = None) -> Result:
        duration = time.monotonic() - self.started
        payload = {
            "verb": self.verb,
            "outcome": outcome,
            "message": message,
            "duration_s": round(duration, 4),
        }
        if extra:
            payload["extra"] = extra
        self.journal.event("action.outcome", payload, self.actor, self.action_id)
        return Result(self.action_id, self.verb, outcome, message, duration, tuple(self.steps), extra or {})


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)
