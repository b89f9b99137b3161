"""The panels of the first screen. Each one re-renders only when what it shows has changed."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

from cockpit.state import CockpitState
from cockpit.tui import render


def _key(content: Content) -> tuple[object, ...]:
    return (content.plain, tuple(content.spans))


class Panel(Static):
    """A Static fed by a render function of the state; `renders` counts the updates that really happened.

    With `sized=True` the render function also gets the panel's content width (and runs again on a resize).
    """

    def __init__(self, draw: Callable[..., Content], *, title: str = "", id: str | None = None, sized: bool = False):
        super().__init__("", id=id, classes="panel")
        self._draw = draw
        self._sized = sized
        self._state: CockpitState | None = None
        self._shown: tuple[object, ...] | None = None
        self.renders = 0
        if title:
            self.border_title = title

    def show(self, state: CockpitState) -> bool:
        self._state = state
        if self._sized:
            return self.show_content(self._draw(state, self.content_size.width))
        return self.show_content(self._draw(state))

    def on_resize(self, event: events.Resize) -> None:
        if self._sized and self._state is not None:
            self.show(self._state)

    def show_content(self, content: Content) -> bool:
        key = _key(content)
        if key == self._shown:
            return False
        self._shown = key
        self.update(content)
        self.renders += 1
        return True

    @property
    def text(self) -> str:
        """What the panel shows, as plain text (tests and screen readers)."""
        content = self.content
        return content.plain if isinstance(content, Content) else str(content)


class StatusBar(Horizontal):
    """State badge, where we are, who acts; and below it the last result of an action sent from this screen."""

    def compose(self) -> ComposeResult:
        yield Label("…", id="badge")
        yield Panel(lambda s: Content(""), id="status-text")

    def show(self, state: CockpitState | None, *, read_only: bool, note: str = "") -> None:
        badge = self.query_one("#badge", Label)
        label = render.state_label(state.state).upper() if state else "STARTING"
        if str(badge.content) != f" {label} ":
            badge.update(f" {label} ")
            for cls in list(badge.classes):
                if cls.startswith("-state-"):
                    badge.remove_class(cls)
            badge.add_class(f"-state-{state.state if state else 'starting'}")
        self.query_one("#status-text", Panel).show_content(render.status(state, read_only=read_only, note=note))


class ActionsPanel(VerticalScroll):
    """The journal's last actions with their steps; scrolls when they do not fit."""

    def compose(self) -> ComposeResult:
        yield Panel(render.actions, id="actions-text")

    def show(self, state: CockpitState) -> bool:
        return self.query_one("#actions-text", Panel).show(state)
