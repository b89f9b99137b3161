"""Confirmation dialogs (advance, rollback, copy, finalize, abandon) and the help screen, all in one grammar:

- Esc cancels (changes nothing);
- one named letter confirms, printed on its button and in the hint line at the bottom (`y` for advance, copy, finalize and abandon;
  `i` immediate or `g` gradual for a rollback: the mode is the confirmation, so it is always chosen, and the
  emergency path stays two keys, `b` then `i`);
- nothing has focus when a dialog opens, so Enter alone never confirms (a button reached with Tab is pressed with
  Enter or Space, as anywhere); Enter in the rollback's reason field only leaves the field.

Every dialog fits an 80x24 terminal with its buttons and its hints (compact buttons and inputs, a width that
follows the screen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from cockpit.control.commands import RollbackMode
from cockpit.core.checks import Verdict
from cockpit.core.plan import Plan, format_duration
from cockpit.core.redact import redact_text
from cockpit.core.state import CockpitState
from cockpit.tui import render
from cockpit.tui.keys import ACTIONS, CockpitAction

DEFAULT_ROLLBACK_REASON = "manual rollback from the cockpit"
ROLLBACK_MODES = ("immediate", "gradual")


@dataclass(frozen=True)
class AdvanceChoice:
    force: bool
    seen: CockpitState  # the state the person confirmed; the app checks nothing moved meanwhile


@dataclass(frozen=True)
class RollbackChoice:
    reason: str
    mode: RollbackMode


@dataclass(frozen=True)
class Hint:
    key: str  # as printed
    what: str


def hint_line(hints: list[Hint]) -> Content:
    return Content(" · ").join(
        Content.assemble((h.key, "bold $accent"), " ", (h.what, "$text-muted")) for h in hints
    )


class _Dialog(ModalScreen[Any]):
    """A centred dialog: Escape cancels (dismisses with None); nothing is focused when it opens."""

    AUTO_FOCUS = ""  # Enter on a fresh dialog does nothing
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    CANCEL_HINT = Hint("Esc", "cancel")

    def __init__(self, kind: str) -> None:
        super().__init__(classes="dialog-screen")
        self.kind = kind

    def hints(self) -> list[Hint]:
        return [self.CANCEL_HINT]

    def buttons(self) -> list[Button]:
        return [Button("Cancel  Esc", id="cancel", compact=True)]

    def body(self) -> ComposeResult:
        yield from ()

    CHROME = 6  # rows around the body: the border, the button row with its margin, the hint line

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes=self.kind):
            with VerticalScroll(id="dialog-body", can_focus=False):
                yield from self.body()
            with Horizontal(classes="buttons"):
                yield from self.buttons()
            yield Static(hint_line(self.hints()), id="hints")

    def on_mount(self) -> None:
        self._fit(self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """The body scrolls in what the screen leaves: the buttons and the hints are always on screen."""
        self.query_one("#dialog-body").styles.max_height = max(3, height - self.CHROME)

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
    BINDINGS = [
        Binding("y", "confirm", "Advance", show=False),
        Binding("f", "force", "Force", show=False),
    ]

    def __init__(self, state: CockpitState):
        super().__init__("advance")
        self.state = state
        self.unmet = not render.gates_met(state)

    def body(self) -> ComposeResult:
        s = self.state
        nxt = s.next_phase
        yield Label("Advance", classes="dialog-title")
        target = f"{nxt.name} ({nxt.green:g}% green)" if nxt else "nothing: there is no phase after this one"
        yield Static(
            Content.assemble("from ", (_where(s), "bold"), "  →  to ", (target, "bold")), id="from-to"
        )
        if nxt is not None and nxt.description:
            yield Static(Content.styled(nxt.description, "$text-muted"), classes="muted")
        yield Static(render.gates(s), id="advance-gates")
        if s.state == "held":
            yield Static(
                f"Held ({s.held_reason or 'no reason given'}): the controller refuses to advance until you "
                "resume (r).",
                classes="warning",
                id="held-warning",
            )
        if self.unmet:
            yield Static(
                "Not every condition is met: the controller refuses unless you force it.", classes="warning"
            )
            yield Checkbox("force past the unmet conditions (journaled)", id="force", compact=True)

    def buttons(self) -> list[Button]:
        return [*super().buttons(), Button("Advance  y", id="confirm", variant="primary", compact=True)]

    def hints(self) -> list[Hint]:
        force = [Hint("f", "force past unmet conditions")] if self.unmet else []
        return [Hint("y", "advance"), *force, self.CANCEL_HINT]

    def action_force(self) -> None:
        if self.query("#force"):
            box = self.query_one("#force", Checkbox)
            box.value = not box.value

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        force = bool(self.query("#force") and self.query_one("#force", Checkbox).value)
        self.dismiss(AdvanceChoice(force=force, seen=self.state))


class RollbackModal(_Dialog):
    """The emergency path is `b` then `i` (immediate) or `g` (gradual): the mode is the confirming key."""

    BINDINGS = [
        Binding("i", "confirm('immediate')", "Immediate", show=False),
        Binding("g", "confirm('gradual')", "Gradual", show=False),
    ]

    def __init__(self, state: CockpitState, steps: list[str], gradual_soak_s: float):
        super().__init__("rollback")
        self.state = state
        self.steps = steps
        self.gradual_soak_s = gradual_soak_s

    def body(self) -> ComposeResult:
        yield Label("Roll back to blue", classes="dialog-title")
        yield Static(
            Content.assemble("from ", (_where(self.state), "bold"), "  →  ", ("all traffic on blue", "bold")),
            id="rollback-from-to",
        )
        yield Static(
            Content.assemble(("steps: ", "$text-muted"), " → ".join(self.steps)), id="rollback-steps"
        )
        with Horizontal(id="reason-row"):
            yield Label("reason ", id="reason-label")
            yield Input(
                value=DEFAULT_ROLLBACK_REASON, id="reason", compact=True
            )  # Tab selects it: typing replaces
        soak = format_duration(self.gradual_soak_s)
        yield Static(
            Content.assemble(
                ("i ", "bold $accent"),
                "immediate: all traffic to blue in one reload\n",
                ("g ", "bold $accent"),
                f"gradual: step down through the phases, {soak} soak each",
            ),
            id="modes",
        )

    def buttons(self) -> list[Button]:
        return [
            *super().buttons(),
            Button("Gradual  g", id="gradual", variant="warning", compact=True),
            Button("Immediate  i", id="immediate", variant="error", compact=True),
        ]

    def hints(self) -> list[Hint]:
        return [
            Hint("i", "immediate"),
            Hint("g", "gradual"),
            Hint("Tab", "edit the reason"),
            self.CANCEL_HINT,
        ]

    @on(Input.Submitted, "#reason")
    def _reason_done(self) -> None:
        self.set_focus(None)  # Enter only leaves the field: the rollback still needs i or g

    def on_key(self, event: events.Key) -> None:
        """Typing anything but the confirming keys starts the reason (in place of the default one): a reason
        typed without Tab first is not lost, and its letters never confirm."""
        if self.focused is not None or not event.is_printable or event.character in (None, "i", "g"):
            return
        reason = self.query_one("#reason", Input)
        reason.value = (
            event.character if reason.value == DEFAULT_ROLLBACK_REASON else reason.value + event.character
        )
        reason.cursor_position = len(reason.value)
        reason.select_on_focus = False  # a typed reason is kept (a Tab into the default one selects it)
        reason.focus()
        event.stop()
        event.prevent_default()

    @on(Button.Pressed, "#immediate")
    def _immediate(self) -> None:
        self.action_confirm("immediate")

    @on(Button.Pressed, "#gradual")
    def _gradual(self) -> None:
        self.action_confirm("gradual")

    def action_confirm(self, mode: str) -> None:
        if mode not in ROLLBACK_MODES:
            return
        reason = self.query_one("#reason", Input).value.strip() or DEFAULT_ROLLBACK_REASON
        self.dismiss(RollbackChoice(reason=reason, mode=cast(RollbackMode, mode)))


class _YesDialog(_Dialog):
    """A dialog confirmed by `y` alone (copy, finalize, abandon): dismisses with True."""

    BINDINGS = [Binding("y", "confirm", "Confirm", show=False)]
    VERB = ""  # on the button and in the hints
    VARIANT: Any = "primary"

    def buttons(self) -> list[Button]:
        return [
            *super().buttons(),
            Button(f"{self.VERB.capitalize()}  y", id="confirm", variant=self.VARIANT, compact=True),
        ]

    def hints(self) -> list[Hint]:
        return [Hint("y", self.VERB), self.CANCEL_HINT]

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)


class CopyModal(_YesDialog):
    """Confirm the initial copy: from which file to which database, which tables, how many in parallel."""

    VERB = "copy"

    def __init__(self, plan: Plan):
        super().__init__("copy")
        self.plan = plan

    def body(self) -> ComposeResult:
        p = self.plan
        tables = "all of blue's tables" if p.sync.tables == "all" else ", ".join(p.sync.tables)
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
                ("tables: ", "$text-muted"), tables, (f"  ({p.sync.copy_jobs} in parallel)", "$text-muted")
            )
        )
        yield Static(
            "Capture goes on blue first, then one snapshot is copied and capture goes on green. The copy writes "
            "new tables only: it refuses if green already has them, and a failed copy drops what it made.",
            classes="muted",
        )


ENDING_STEPS = {
    "finalize": "integrity check → stop the sync → green's keys count up → capture and every cockpit object "
    "removed from green → blue archived (verified backup) → notify → report",
    "abandon": "all traffic on blue and drained → capture removed from both sides → notify → report",
}


class EndingModal(_YesDialog):
    """Confirm finalize (end on green) or abandon (end on blue): the steps, and that it is for good."""

    VARIANT = "error"

    def __init__(self, plan: Plan, verb: str):
        super().__init__(verb)
        self.plan = plan
        self.VERB = verb

    def body(self) -> ComposeResult:
        green = self.VERB == "finalize"
        title = "Finalize: end on green" if green else "Abandon: end on blue"
        yield Label(title, classes="dialog-title")
        yield Static(Content.assemble(("steps: ", "$text-muted"), ENDING_STEPS[self.VERB]), id="ending-steps")
        if not green:
            yield Static(
                "Green's copy is kept: dropping it is CLI only (cockpit abandon --yes --drop-green DBNAME).",
                classes="muted",
                id="ending-drop",
            )
        yield Static(
            "This cannot be undone: after it no advance or rollback runs. Journaled step by step; a crash "
            "resumes where it stopped.",
            classes="warning",
        )


GRAMMAR = (
    "In every dialog: Esc cancels; the key on the button confirms (y; a rollback's i or g); Enter alone never does.",
    "Rollback is on b (back to blue), not a shifted twin of r (resume): b then i rolls back at once.",
    "ctrl+p opens the command palette with the same actions (and the themes; t switches theme).",
)


class PreflightModal(_Dialog):
    """The go/no-go checklist just run (and journaled): failures first, then warnings, then passes."""

    BINDINGS = [Binding("q", "cancel", "Close", show=False)]
    CANCEL_HINT = Hint("Esc", "close")
    ORDER = {"fail": 0, "warn": 1, "pass": 2}
    STYLE = {"fail": "bold $error", "warn": "bold $warning", "pass": "$success"}

    def __init__(self, verdict: Verdict) -> None:
        super().__init__("preflight")
        self.verdict = verdict

    def body(self) -> ComposeResult:
        v = self.verdict
        yield Label(f"Preflight: {v.summary()}", classes="dialog-title", id="preflight-verdict")
        rows = [
            Content.assemble(
                (f"{c.status:<4} ", self.STYLE[c.status]),
                (f"{c.area:<8} ", "$text-muted"),
                (redact_text(c.name), "bold"),
                f": {redact_text(c.found)}",
                *(((f"  → {redact_text(c.do)}", "$text-muted"),) if c.do and c.status != "pass" else ()),
            )
            for c in sorted(v.checks, key=lambda c: self.ORDER.get(c.status, 3))
        ]
        yield Static(Content("\n").join(rows), id="preflight-checks")

    def buttons(self) -> list[Button]:
        return [Button("Close  Esc", id="cancel", compact=True)]


class HelpModal(_Dialog):
    BINDINGS = [
        Binding("q", "cancel", "Close", show=False),
        Binding("question_mark", "cancel", "Close", show=False),
    ]
    CANCEL_HINT = Hint("Esc", "close")

    def __init__(self, actions: tuple[CockpitAction, ...] = ACTIONS) -> None:
        super().__init__("help")
        self.actions = actions

    def body(self) -> ComposeResult:
        rows = [
            Content.assemble(
                (f"{a.shown_key:>3}  ", "bold $accent"), (f"{a.label:<9}", "bold"), a.description
            )
            for a in self.actions
        ]
        yield Label("Keys", classes="dialog-title")
        yield Static(
            Content("\n").join([*rows, Content(""), *(Content.styled(n, "$text-muted") for n in GRAMMAR)]),
            id="help-keys",
        )

    def buttons(self) -> list[Button]:
        return [Button("Close  Esc", id="cancel", compact=True)]
