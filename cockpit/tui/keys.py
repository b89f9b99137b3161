"""The one registry of the cockpit's actions: it feeds the key bindings, the footer, `check_action` (what can run
now), the help screen and the palette.

Rollback sits on `b` ("back to blue"): a plain key, one press from anywhere on the screen, and not a shifted twin
of `r` (resume), so a slip of the shift key can never turn a resume into a rollback or the other way round. It is
first in the footer and never leaves it (dimmed when it cannot run), with help and quit: at 80 columns too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.binding import Binding, BindingType

from cockpit.core.state import CockpitState
from cockpit.core.vocabulary import same_split


@dataclass(frozen=True)
class Context:
    """What decides whether an action can run now."""

    state: CockpitState | None
    can_act: bool  # a started controller in this process (not read-only, not served)
    has_sync: bool  # the plan syncs blue (SQLite) and green (PostgreSQL): the initial copy exists
    has_backup: bool  # blue is a SQLite file: backups exist


def _busy(ctx: Context) -> str | None:
    s = ctx.state
    if s is None:
        return "no state yet"
    if s.state in ("advancing", "rolling_back"):
        return f"an action is running ({s.state.replace('_', ' ')})"
    return None


def _why_not_advance(ctx: Context) -> str | None:
    s = ctx.state
    if s is None or _busy(ctx):
        return _busy(ctx)
    if s.ended is not None:
        return s.ended.why_not("advance")
    if s.state == "held":
        return f"held ({s.held_reason or 'no reason given'}): resume first (r)"
    if s.state == "complete" or s.next_phase is None:
        return "the migration is complete: every phase is done"
    if s.state == "failed":
        return "the last rollback failed: roll back again (b) until it succeeds"
    return None


def _why_not_hold(ctx: Context) -> str | None:
    s = ctx.state
    if s is None:
        return "no state yet"
    if s.state == "held":
        return f"already held ({s.held_reason})"
    if s.state in ("rolling_back", "rolled_back", "failed"):
        return f"cannot hold while {s.state.replace('_', ' ')}"
    return None


def _why_not_resume(ctx: Context) -> str | None:
    s = ctx.state
    if s is None:
        return "no state yet"
    return None if s.state == "held" else f"not held (state is {s.state.replace('_', ' ')})"


def _why_not_rollback(ctx: Context) -> str | None:
    return "no state yet" if ctx.state is None else None


def _why_not_copy(ctx: Context) -> str | None:
    s = ctx.state
    if not ctx.has_sync:
        return "this plan has no sync to copy with (blue must be sqlite and green postgresql)"
    if s is None or _busy(ctx):
        return _busy(ctx)
    if s.running_action == "copy":
        return "a copy is running"
    if (
        s.phase_index >= 0
        or not same_split(s.green_live or 0.0, 0.0)
        or s.state not in ("ready", "rolled_back")
    ):
        return "users are on green: the initial copy runs before any user is (roll back first)"
    return None


def _why_not_backup(ctx: Context) -> str | None:
    if not ctx.has_backup:
        return "blue is not a SQLite file: nothing to back up"
    if ctx.state is not None and ctx.state.running_action == "backup":
        return "a backup is running"
    return None


def _why_not_end(verb: str) -> Callable[[Context], str | None]:
    """Finalize and abandon: not while an action runs, nor once the other ending has begun; the rest (the last
    phase's soak for finalize) the controller says, refusing with its reason."""

    def why_not(ctx: Context) -> str | None:
        s = ctx.state
        if s is None or _busy(ctx):
            return _busy(ctx)
        if s.ended is not None and (s.ended.done or s.ended.how != verb):
            return s.ended.why_not(verb)
        if verb == "finalize" and s.state != "complete" and s.ended is None:
            return "finalize comes after the last phase and its soak: advance to it first"
        return None

    return why_not


def _always(ctx: Context) -> str | None:
    return None


@dataclass(frozen=True)
class CockpitAction:
    name: str  # the app's `action_<name>`
    key: str  # Textual key name
    label: str  # short, for the footer
    description: str  # for the help screen and the command palette
    display: str | None = None  # how the key is printed, when its name is not the glyph
    acts: bool = False  # calls the controller (never offered read-only or in the browser)
    why_not: Callable[[Context], str | None] = (
        _always  # why it cannot run now (None: it can, with a controller)
    )
    pinned: bool = False  # always in the footer: dimmed, not hidden, when it cannot run
    show: bool = True  # in the footer at all (the help screen and the palette list every action)

    @property
    def shown_key(self) -> str:
        return self.display or self.key

    def available(self, ctx: Context) -> bool:
        return (ctx.can_act or not self.acts) and self.why_not(ctx) is None


ACTIONS: tuple[CockpitAction, ...] = (
    CockpitAction(
        "rollback",
        "b",
        "Rollback",
        "Roll back: all traffic to blue (back to blue); then i immediate or g gradual, with a reason",
        acts=True,
        why_not=_why_not_rollback,
        pinned=True,
    ),
    CockpitAction(
        "advance",
        "a",
        "Advance",
        "Advance to the next phase: confirm from -> to, with the gates and the soak",
        acts=True,
        why_not=_why_not_advance,
    ),
    CockpitAction(
        "hold",
        "h",
        "Hold",
        "Hold the migration where it is (no advance until resumed)",
        acts=True,
        why_not=_why_not_hold,
    ),
    CockpitAction("resume", "r", "Resume", "Resume a held migration", acts=True, why_not=_why_not_resume),
    CockpitAction(
        "copy",
        "c",
        "Copy",
        "Initial copy of blue into green, then change capture on both sides (before any user is on green)",
        acts=True,
        why_not=_why_not_copy,
    ),
    CockpitAction(
        "backup",
        "s",
        "Backup",
        "Save a backup of blue (online copy, gzip, manifest with SHA-256), then verify it",
        acts=True,
        why_not=_why_not_backup,
    ),
    CockpitAction(
        "finalize",
        "f",
        "Finalize",
        "End on green, for good, after the last phase's soak: sync stopped, capture removed, blue archived",
        acts=True,
        why_not=_why_not_end("finalize"),
        show=False,
    ),
    CockpitAction(
        "abandon",
        "x",
        "Abandon",
        "End on blue, for good: all traffic on blue, capture removed (dropping green: CLI only)",
        acts=True,
        why_not=_why_not_end("abandon"),
        show=False,
    ),
    CockpitAction(
        "preflight",
        "p",
        "Preflight",
        "Run the go/no-go checklist (journaled: a phase with `preflight: true` needs a fresh go) and show it",
        acts=True,
        show=False,
    ),
    CockpitAction("theme", "t", "Theme", "Next theme: dark, light, high contrast (remembered)", show=False),
    CockpitAction(
        "help", "question_mark", "Help", "Show the keys and what they do", display="?", pinned=True
    ),
    CockpitAction(
        "quit",
        "q",
        "Quit",
        "Quit the cockpit (the controller stops after a running action ends)",
        pinned=True,
    ),
)
BY_NAME = {a.name: a for a in ACTIONS}

# `cockpit replay` adds these to the same screen (read-only: none of ACTIONS that acts runs there)
REPLAY_ACTIONS: tuple[CockpitAction, ...] = (
    CockpitAction("replay_pause", "space", "Pause", "Replay: pause, or play on", display="␣"),
    CockpitAction("replay_next", "n", "Next", "Replay: jump to the journal's next event"),
    CockpitAction("replay_faster", "plus", "Faster", "Replay: twice as fast", display="+"),
    CockpitAction("replay_slower", "minus", "Slower", "Replay: half as fast", display="-"),
)


def bindings(actions: tuple[CockpitAction, ...] = ACTIONS) -> list[BindingType]:
    return [
        Binding(a.key, a.name, a.label, show=a.show, key_display=a.display, tooltip=a.description, id=a.name)
        for a in actions
    ]


def action(name: str) -> CockpitAction:
    return BY_NAME[name]


def check(name: str, ctx: Context, *, serving: bool = False) -> bool | None:
    """Textual's `check_action` answer: True (offered), None (shown dimmed: pinned, cannot run now), False (not
    in the footer). Served in a browser, no action that acts exists at all."""
    a = BY_NAME.get(name)
    if a is None:
        return True
    if serving and a.acts:
        return False
    if a.available(ctx):
        return True
    return None if a.pinned else False
