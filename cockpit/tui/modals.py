"""Confirmation dialogs (advance, rollback, copy) and the help screen. Cancel (or Escape) changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from cockpit.control.commands import RollbackMode
from cockpit.core.plan import Plan, format_duration
from cockpit.core.redact import redact_text
from cockpit.core.state import CockpitState
from cockpit.tui import render
from cockpit.tui.keys import ACTIONS

DEFAULT_ROLLBACK_REASON = "manual rollback from the cockpit"


@dataclass(frozen=True)
class AdvanceChoice:
    force: bool
    seen: CockpitState  # the state the person confirmed; the app checks nothing moved meanwhile


@dataclass(frozen=True)
class RollbackChoice:
    reason: str
    mode: RollbackMode


class _Dialog(ModalScreen):
    """A centred dialog; Escape cancels (dismisses with None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancelled(self) -> None:
        self.dismiss(None)


def _where(state: CockpitState) -> str:
    phase = state.phase
    if phase is None:
        return f"{render.state_label(state.state)} (all on blue)"
    return f"{phase.name} ({phase.green:g}% green)"


class AdvanceModal(_Dialog):
    def __init__(self, state: CockpitState):
        super().__init__(classes="dialog-screen")
        self.state = state

    def compose(self) -> ComposeResult:
        s = self.state
        nxt = s.next_phase
        with Vertical(id="dialog", classes="advance"):
            yield Label("Advance", classes="dialog-title")
            target = (
                f"{nxt.name} ({nxt.green:g}% green)" if nxt else "nothing: there is no phase after this one"
            )
            yield Static(
                Content.assemble("from ", (_where(s), "bold"), "  →  to ", (target, "bold")), id="from-to"
            )
            if nxt is not None and nxt.description:
                yield Static(Content.styled(nxt.description, "$text-muted"), classes="muted")
            yield Static(render.gates(s), id="advance-gates")
            if s.state == "held":
                yield Static(
                    f"Held ({s.held_reason or 'no reason given'}): the controller refuses to advance until "
                    "you resume (r).",
                    classes="warning",
                    id="held-warning",
                )
            if not render.gates_met(s):
                yield Static(
                    "Not every condition is met: the controller refuses unless you force it.",
                    classes="warning",
                )
                yield Checkbox("force past the unmet conditions (journaled)", id="force")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Advance", id="confirm", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # Enter on a fresh dialog does nothing harmful

    @on(Button.Pressed, "#confirm")
    def _confirmed(self) -> None:
        force = bool(self.query("#force") and self.query_one("#force", Checkbox).value)
        self.dismiss(AdvanceChoice(force=force, seen=self.state))


class RollbackModal(_Dialog):
    def __init__(self, state: CockpitState, steps: list[str], gradual_soak_s: float):
        super().__init__(classes="dialog-screen")
        self.state = state
        self.steps = steps
        self.gradual_soak_s = gradual_soak_s

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="rollback"):
            yield Label("Roll back to blue", classes="dialog-title")
            yield Static(
                Content.assemble(
                    "from ", (_where(self.state), "bold"), "  →  ", ("all traffic on blue", "bold")
                )
            )
            yield Static(
                Content.assemble(("steps: ", "$text-muted"), " → ".join(self.steps)), id="rollback-steps"
            )
            yield Label("Reason (journaled)")
            yield Input(value=DEFAULT_ROLLBACK_REASON, id="reason")
            with RadioSet(id="mode"):
                yield RadioButton("immediate: all traffic to blue in one reload", value=True, id="immediate")
                yield RadioButton(
                    f"gradual: step down through the phases, {format_duration(self.gradual_soak_s)} "
                    "soak each",
                    id="gradual",
                )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Roll back", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Button.Pressed, "#confirm")
    @on(Input.Submitted, "#reason")
    def _confirmed(self) -> None:
        reason = self.query_one("#reason", Input).value.strip() or DEFAULT_ROLLBACK_REASON
        pressed = self.query_one("#mode", RadioSet).pressed_button
        mode: RollbackMode = "gradual" if pressed is not None and pressed.id == "gradual" else "immediate"
        self.dismiss(RollbackChoice(reason=reason, mode=mode))


class CopyModal(_Dialog):
    """Confirm the initial copy: from which file to which database, which tables, how many in parallel."""

    def __init__(self, plan: Plan):
        super().__init__(classes="dialog-screen")
        self.plan = plan

    def compose(self) -> ComposeResult:
        p = self.plan
        tables = "all of blue's tables" if p.sync.tables == "all" else ", ".join(p.sync.tables)
        with Vertical(id="dialog", classes="copy"):
            yield Label("Initial copy: blue → green", classes="dialog-title")
            yield Static(
                Content.assemble(
                    "from ",
                    (str(p.path(p.blue.database.path or "?")), "bold"),
                    "  →  ",
                    (redact_text(p.green.database.url or "?"), "bold"),
                ),
                id="copy-from-to",
            )
            yield Static(
                Content.assemble(
                    ("tables: ", "$text-muted"),
                    tables,
                    (f"  ({p.sync.copy_jobs} in parallel)", "$text-muted"),
                )
            )
            yield Static(
                "Capture goes on blue first, then one snapshot is copied and capture goes on green. The "
                "copy writes new tables only: it refuses if green already has them, and a failed copy "
                "drops what it made.",
                classes="muted",
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Copy", id="confirm", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirmed(self) -> None:
        self.dismiss(True)


class HelpModal(_Dialog):
    BINDINGS = [
        Binding("escape", "cancel", "Close"),
        Binding("q", "cancel", "Close"),
        Binding("question_mark", "cancel", "Close"),
    ]

    def compose(self) -> ComposeResult:
        rows = [
            Content.assemble(
                (f"{a.shown_key:>5}  ", "bold $accent"), (f"{a.label:<10}", "bold"), a.description
            )
            for a in ACTIONS
        ]
        notes = [
            "",
            "Rollback is on b (back to blue): not a shifted twin of r (resume).",
            "Advance, rollback and copy ask first; Escape or Cancel changes nothing.",
            "ctrl+p opens the command palette with the same actions.",
        ]
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", classes="dialog-title")
            yield Static(
                Content("\n").join([*rows, *(Content.styled(n, "$text-muted") for n in notes)]),
                id="help-keys",
            )
            with Horizontal(classes="buttons"):
                yield Button("Close", id="cancel")
