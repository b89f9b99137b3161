"""The action registry: every verb the controller acts on, its command type and the sequence that carries it out.

Queued commands, the CLI and the screen all reach an action through here (`Controller.act`). To add an action:
a command type in `commands.py`, a module holding its sequence (`async def run(ctl, rec, cmd) -> Result`,
steps as data where it has several, like `rollback.py`), one `Action` below, and, for callers in Python, a thin
method on the Controller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cockpit.control import advance, ending, hold, initial_copy, repair, rollback, verified_backup
from cockpit.control.commands import (
    Abandon,
    Advance,
    Backup,
    Command,
    Copy,
    Finalize,
    Hold,
    Repair,
    Resume,
    Rollback,
    StopGreen,
    from_json,
)
from cockpit.core.recorder import Recorder, Result

if TYPE_CHECKING:
    from cockpit.control.controller import Controller

C = TypeVar("C", bound=Command)


@dataclass(frozen=True)
class Action(Generic[C]):
    command: type[C]
    body: Callable[[Controller, Recorder, C], Awaitable[Result]]
    preempts: frozenset[str] = frozenset()  # verbs this one cancels when it finds them under way
    joins: bool = False  # a second one asked while one runs waits for that one's result instead of running
    after_end: bool = (
        False  # may run once the migration has ended (finalize, abandon); the others are refused
    )


ACTIONS: dict[str, Action[Any]] = {
    a.command.verb: a
    for a in (
        Action(Advance, advance.run),
        Action(Hold, hold.hold),
        Action(Resume, hold.resume),
        Action(Rollback, rollback.run, preempts=frozenset({Advance.verb}), joins=True),
        Action(Copy, initial_copy.run),
        Action(Backup, verified_backup.run, after_end=True),
        Action(StopGreen, rollback.stop_green),
        Action(Repair, repair.run),
        Action(Finalize, ending.finalize, joins=True, after_end=True),
        Action(Abandon, ending.abandon, joins=True, after_end=True),
    )
}
VERBS = tuple(ACTIONS)


def command(verb: str, args: Mapping[str, Any]) -> Command:
    """The command a queued `verb` with JSON `args` stands for; ValueError for an unknown verb or bad args."""
    action = ACTIONS.get(verb)
    if action is None:
        raise ValueError(f"unknown command {verb!r}; expected one of {', '.join(VERBS)}")
    made: Command = from_json(action.command, args)
    return made
