"""The panels of the first screen. Each one re-renders only when what it shows has changed."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

from cockpit.core.state import CockpitState
from cockpit.tui import readings, render


def _key(content: Content) -> tuple[object, ...]:
    return (content.plain, tuple(content.spans))


class Panel(Static):
    """A Static fed by a render function of the state; `renders` counts the updates that really happened.

    With `sized=True` the render function also gets the panel's content width (and runs again on a resize).
    """

    def __init__(
        self, draw: Callable[..., Content], *, title: str = "", id: str | None = None, sized: bool = False
    ):
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
            width = self.content_size.width
            # not laid out yet: the first resize draws it at its real width (no flash of the wrong layout)
            return self.show_content(self._draw(state, width)) if width else False
        return self.show_content(self._draw(state))

    def on_resize(self, event: events.Resize) -> None:
        if self._sized and self._state is not None:
            # after this layout pass: an update made inside it would keep the height measured before it
            self.call_after_refresh(self._redraw)

    def _redraw(self) -> None:
        if self._state is not None:
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


class TitleBar(Panel):
    """The plan's name and description in the longest form that fits (see render.title); never cut mid-word."""

    def __init__(self, name: str, description: str, *, tag: str = "", id: str | None = None):
        super().__init__(self._draw_title, id=id, sized=True)
        self._name, self._description, self.tag = name, description, tag

    def _draw_title(self, state: CockpitState | None, width: int) -> Content:
        # Widget._name is Textual's own (str | None): this panel's name shadows it
        return render.title(self._name, self._description, tag=self.tag, width=width)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self._state = None
        self.call_after_refresh(self._redraw_title)

    def _redraw_title(self) -> None:
        width = self.content_size.width
        if width:
            self.show_content(self._draw_title(None, width))

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._redraw_title)

    def retag(self, tag: str) -> None:
        self.tag = tag
        self._redraw_title()


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
        self.query_one("#status-text", Panel).show_content(
            render.status(state, read_only=read_only, note=note)
        )


class ActionsPanel(VerticalScroll):
    """The journal's last actions with their steps; scrolls when they do not fit."""

    def compose(self) -> ComposeResult:
        yield Panel(render.actions, id="actions-text")

    def show(self, state: CockpitState) -> bool:
        return self.query_one("#actions-text", Panel).show(state)


class LevelPanel(Panel):
    """A Panel whose figures take their colours from the `.metric--LEVEL` component classes of the theme (a span
    styled ".metric--ok" resolves to the component class of the widget drawing it)."""

    COMPONENT_CLASSES = {f"metric--{level}" for level in readings.LEVELS}


class MetricsText(LevelPanel):
    """Sync, traffic, health and the green trend, drawn for the width it has (two columns when there is room)."""

    def __init__(self, levels: readings.Levels, trend: readings.Trend | None, *, id: str | None = None):
        super().__init__(self._draw_metrics, id=id, sized=True)
        self.levels = levels
        self.trend = trend

    def _draw_metrics(self, state: CockpitState, width: int) -> Content:
        return readings.metrics(state, self.levels, self.trend, width)


class MetricsPanel(VerticalScroll):
    """The live figures of the snapshot; scrolls when they do not fit."""

    def __init__(
        self, levels: readings.Levels, trend: readings.Trend | None = None, *, id: str | None = None
    ):
        super().__init__(id=id)
        self._text = MetricsText(levels, trend, id="metrics-text")

    def compose(self) -> ComposeResult:
        yield self._text

    def show(self, state: CockpitState) -> bool:
        return self._text.show(state)


class AlarmsPanel(LevelPanel):
    """Every alarm of the snapshot, the worst first; hidden when all is well."""

    LIMIT = 4  # lines; 2 on a narrow screen (themes/cockpit.tcss gives the panel as much room)
    NARROW_LIMIT = 2

    def __init__(self, *, id: str | None = None):
        super().__init__(self._draw_alarms, title="Alarms", id=id, sized=True)  # sized: redrawn on a resize
        self.set_class(True, "-none")

    def _draw_alarms(self, state: CockpitState, width: int) -> Content:
        narrow = self.is_mounted and self.screen.has_class("-narrow")
        return readings.alarms(state, self.NARROW_LIMIT if narrow else self.LIMIT)

    def show(self, state: CockpitState) -> bool:
        changed = super().show(state)
        count = len(state.alarms)
        self.set_class(count == 0, "-none")
        title = f"Alarms ({count})"
        if self.border_title != title:
            self.border_title = title
        worst = readings.sorted_alarms(state.alarms)[0].level if count else ""
        self.set_class(worst in ("trigger", "critical"), "-critical")
        return changed
