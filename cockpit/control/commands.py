"""One command type per verb: what each action takes, checked when the command is made.

A queued command (the journal's queue, a one-shot CLI) arrives as a verb and a JSON object; `from_json` makes
the verb's command of it, or raises ValueError (the command is refused). `journaled()` is what the action's intent
records besides its reason. Pure: no I/O, nothing of the controller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from cockpit.core.plan import Plan
from cockpit.core.plan import RollbackMode as RollbackMode


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every verb takes: why (journaled)."""

    verb: ClassVar[str]
    reason: str = ""

    def journaled(self) -> dict[str, Any]:
        """The arguments the journal keeps (the reason has its own field)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "reason"}

    def resolved(self, plan: Plan) -> Self:
        """The command with the plan's defaults filled in (what the journal records)."""
        return self


@dataclass(frozen=True, kw_only=True)
class Advance(Command):
    verb: ClassVar[str] = "advance"
    to: str | None = None
    force: bool = False


@dataclass(frozen=True, kw_only=True)
class Hold(Command):
    verb: ClassVar[str] = "hold"


@dataclass(frozen=True, kw_only=True)
class Resume(Command):
    verb: ClassVar[str] = "resume"


@dataclass(frozen=True, kw_only=True)
class Rollback(Command):
    verb: ClassVar[str] = "rollback"
    reason: str = "manual"
    mode: RollbackMode = "immediate"
    force: bool = False  # stop green even while it holds changes blue lacks (journaled)

    def __post_init__(self) -> None:
        if self.mode not in ("immediate", "gradual"):
            raise ValueError(f"rollback mode {self.mode!r} is not immediate or gradual")

    def journaled(self) -> dict[str, Any]:
        return {k: v for k, v in super().journaled().items() if k != "force" or v}  # force only when given


@dataclass(frozen=True, kw_only=True)
class Copy(Command):
    """The initial copy; `jobs`: tables loaded in parallel (default: the plan's `sync.copy_jobs`)."""

    verb: ClassVar[str] = "copy"
    jobs: int | None = None

    def __post_init__(self) -> None:
        if self.jobs is not None and int(self.jobs) < 1:
            raise ValueError(f"copy jobs must be at least 1, not {self.jobs}")

    def resolved(self, plan: Plan) -> Self:
        return dataclasses.replace(
            self, jobs=int(self.jobs if self.jobs is not None else plan.sync.copy_jobs)
        )


@dataclass(frozen=True, kw_only=True)
class Backup(Command):
    verb: ClassVar[str] = "backup"
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class StopGreen(Command):
    """Green's services stopped after a rollback (the step a rollback deferred while green held changes blue
    lacked); `force` even while it still holds some."""

    verb: ClassVar[str] = "stop_green"
    force: bool = False


@dataclass(frozen=True, kw_only=True)
class Repair(Command):
    """Rows that differ after the sync drained brought back in line through the sync: `prefer` the side whose
    version stays; `keys` (comma-separated TABLE:KEY, a composite key's parts joined by /) or `all`."""

    verb: ClassVar[str] = "repair"
    prefer: str = ""
    keys: str = ""
    all: bool = False

    def __post_init__(self) -> None:
        if self.prefer not in ("blue", "green"):
            raise ValueError(f"repair: --prefer blue or green, not {self.prefer!r}")
        if bool(self.keys) == bool(self.all):
            raise ValueError("repair: give the rows (--keys TABLE:KEY,...) or --all, one of the two")
        for item in self.wanted():
            if not item[0] or not item[1]:
                raise ValueError(f"repair: {':'.join(item)!r} is not TABLE:KEY")

    def wanted(self) -> list[tuple[str, str]]:
        """(table, key) of each row asked for, the key as `RowDiff.key` prints joined by /."""
        out = []
        for item in filter(None, (k.strip() for k in self.keys.split(","))):
            table, _, key = item.partition(":")
            out.append((table, key))
        return out


@dataclass(frozen=True, kw_only=True)
class Finalize(Command):
    """The end of the migration on green, after the last phase's soak (cockpit.control.ending)."""

    verb: ClassVar[str] = "finalize"
    reason: str = "finalize"


@dataclass(frozen=True, kw_only=True)
class Abandon(Command):
    """The end of the migration on blue (cockpit.control.ending); `drop_green`: green's database name, typed to
    confirm that its copy is dropped too."""

    verb: ClassVar[str] = "abandon"
    reason: str = "abandon"
    drop_green: str = ""


C = TypeVar("C", bound=Command)


def from_json(kind: type[C], args: Mapping[str, Any]) -> C:
    """The command of a queued verb with JSON `args`. Unknown keys are ignored and a null or empty value takes
    the default (an older CLI, a hand-written queue entry); ValueError or TypeError when it cannot be made."""
    given = {f.name: args[f.name] for f in dataclasses.fields(kind) if args.get(f.name) not in (None, "")}
    for flag in ("force", "all"):
        if flag in given:
            given[flag] = bool(given[flag])
    return kind(**given)
