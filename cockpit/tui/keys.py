"""The one registry of the cockpit's actions: it feeds the key bindings, the footer, the help screen and the palette.

Rollback sits on `b` ("back to blue"): a plain key, one press from anywhere on the screen, and not a shifted twin
of `r` (resume), so a slip of the shift key can never turn a resume into a rollback or the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class CockpitAction:
    name: str  # the app's `action_<name>`
    key: str  # Textual key name
    label: str  # short, for the footer
    description: str  # for the help screen and the command palette
    display: str | None = None  # how the key is printed, when its name is not the glyph
    acts: bool = False  # calls the controller (refused in a read-only cockpit)

    @property
    def shown_key(self) -> str:
        return self.display or self.key


ACTIONS: tuple[CockpitAction, ...] = (
    CockpitAction(
        "advance",
        "a",
        "Advance",
        "Advance to the next phase: confirm from -> to, with the gates and the soak",
        acts=True,
    ),
    CockpitAction(
        "hold", "h", "Hold", "Hold the migration where it is (no advance until resumed)", acts=True
    ),
    CockpitAction("resume", "r", "Resume", "Resume a held migration", acts=True),
    CockpitAction(
        "rollback",
        "b",
        "Rollback",
        "Roll back: all traffic to blue (back to blue); confirm with a reason and immediate or gradual",
        acts=True,
    ),
    CockpitAction(
        "copy",
        "c",
        "Copy",
        "Initial copy of blue into green, then change capture on both sides (before any user is on green)",
        acts=True,
    ),
    CockpitAction(
        "backup",
        "s",
        "Backup",
        "Save a backup of blue (online copy, gzip, manifest with SHA-256), then verify it",
        acts=True,
    ),
    CockpitAction("help", "question_mark", "Help", "Show the keys and what they do", display="?"),
    CockpitAction("quit", "q", "Quit", "Quit the cockpit (the controller stops after a running action ends)"),
)


def bindings() -> list[BindingType]:
    return [Binding(a.key, a.name, a.label, key_display=a.display, tooltip=a.description) for a in ACTIONS]


def action(name: str) -> CockpitAction:
    for a in ACTIONS:
        if a.name == name:
            return a
    raise KeyError(name)
