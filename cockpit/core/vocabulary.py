"""The controller's vocabulary, spelled once: machine states, action outcomes, step names, and when two traffic
splits are the same.

They are `StrEnum`s, so they compare equal to their strings and serialize as them: the journal, `--json`
outputs and the screen see the same words as before. Pure; imports nothing of the project.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where the phase machine stands (see cockpit.core.phases)."""

    READY = "ready"
    ACTIVE = "active"
    HELD = "held"
    ADVANCING = "advancing"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETE = "complete"
    FAILED = "failed"
    ABANDONED = "abandoned"  # `cockpit abandon`: the migration ended on blue, for good


# users may be on green in these states (rollback triggers are armed)
EXPOSED = frozenset({State.ACTIVE, State.HELD, State.COMPLETE, State.ADVANCING})
# an action is moving the world in these states
MOVING = frozenset({State.ADVANCING, State.ROLLING_BACK})


class Outcome(StrEnum):
    """How an action ended."""

    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    PREEMPTED = "preempted"
    RECONCILED = "reconciled"
    PARTIAL = "partial"
    INTERRUPTED = "interrupted"


SUCCESS = frozenset({Outcome.OK, Outcome.RECONCILED})


class RollbackStep(StrEnum):
    """The rollback sequence's steps, in their default order (DESIGN "The rollback sequence")."""

    TRAFFIC = "traffic"
    DRAIN = "drain"
    STOP_GREEN = "stop_green"
    START_BLUE = "start_blue"
    HEALTH = "health"
    INTEGRITY = "integrity"
    NOTIFY = "notify"


class FinalizeStep(StrEnum):
    """`cockpit finalize`'s steps, in order (the end of the migration on green)."""

    INTEGRITY = "integrity"
    STOP_SYNC = "stop_sync"
    KEYS = "keys"
    CLEAN = "clean"
    ARCHIVE = "archive"
    NOTIFY = "notify"
    REPORT = "report"


class AbandonStep(StrEnum):
    """`cockpit abandon`'s steps, in order (the end of the migration on blue); traffic and drain are the
    rollback's own."""

    TRAFFIC = "traffic"
    DRAIN = "drain"
    CLEAN = "clean"
    DROP_GREEN = "drop_green"
    NOTIFY = "notify"
    REPORT = "report"


class AdvanceStep(StrEnum):
    """The advance's steps, in order."""

    GATES = "gates"
    GREEN_SERVICES = "green_services"
    GREEN_HEALTH = "green_health"
    TRAFFIC = "traffic"
    VERIFY = "verify"


SPLIT_TOLERANCE = 0.05  # percent of green: nginx weights are integers, a phase's share is a float


def same_split(a: float, b: float) -> bool:
    """Whether two shares of green (in %) are the same split."""
    return abs(a - b) <= SPLIT_TOLERANCE
