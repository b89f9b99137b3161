"""The cockpit's first screen: phases, split (configured, live, observed), gates for the next advance, the
rollback-readiness light, alarms, the journal's last actions, the live metrics (sync lag, traffic per side, system
and database health, green's trend), and the keys. Every figure comes from the snapshot; a panel redraws only when
what it shows changed.

The screen never blocks its event loop. A Textual thread worker starts the controller (ControllerThread: its own
event loop in its own thread); the screen reads `controller.latest` (an in-memory snapshot) on a timer and calls
the controller through ControllerThread.call, which runs the action on the controller's loop. Read-only, it reads
the journal in a thread, one poll at a time (a tick is skipped while one runs).

From 80x24 up: the panels fold in a fixed order (themes/cockpit.tcss): the journal first (to one line), then the
metrics (they scroll); phases, split, next advance, alarms and the readiness light stay. The footer offers only
what can run now (`check_action`, from the registry in tui/keys.py), rollback first, help and quit always.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Container, Horizontal
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from cockpit.control.commands import Abandon, Finalize
from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers
from cockpit.control.readiness import has_sync
from cockpit.control.session import ControllerThread
from cockpit.core import resources
from cockpit.core.lock import LockHeld
from cockpit.core.plan import Plan, load_plan
from cockpit.core.recorder import Result
from cockpit.core.state import CockpitState
from cockpit.core.vocabulary import same_split
from cockpit.tui import keys, render, themes
from cockpit.tui.keys import ACTIONS, Context, bindings
from cockpit.tui.modals import (
    AdvanceChoice,
    AdvanceModal,
    CopyModal,
    EndingModal,
    HelpModal,
    PreflightModal,
    RollbackChoice,
    RollbackModal,
)
from cockpit.tui.panels import ActionsPanel, AlarmsPanel, MetricsPanel, Panel, StatusBar, TitleBar
from cockpit.tui.readings import Levels, Trend
from cockpit.tui.source import JournalSource

THEMES = themes.THEMES
StateSource = Callable[[], CockpitState]

_SEVERITY = {
    "ok": "information",
    "reconciled": "information",
    "refused": "warning",
    "preempted": "warning",
    "partial": "warning",
}


class CockpitApp(App[int]):
    """The cockpit for one plan.

    - `controller_thread`: a ControllerThread; the app starts it (in a thread) unless it is already started, and
      stops it on exit when it started it. Without one (and not read-only, no `state_source`) the app builds one
      from the plan's drivers.
    - `read_only`: never acts; shows the journal that another controller writes.
    - `state_source`: a blocking callable returning a CockpitState, read in a thread once a tick (the read-only
      default reads the journal; tests pass a fixed state for snapshots).
    - `serving`: the browser view (`cockpit serve`): read-only, and no key that acts exists at all.
    """

    CSS_PATH = str(resources.theme("cockpit.tcss"))
    TITLE = "cockpit"
    BINDINGS = bindings()
    KEY_ACTIONS = ACTIONS  # every key of this screen, for help and the palette (a replay adds its own)
    # themes/cockpit.tcss folds panels: the journal to one line when narrow or short, the metrics scroll
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(
        self,
        plan: Plan,
        *,
        read_only: bool = False,
        controller_thread: ControllerThread | None = None,
        state_source: StateSource | None = None,
        poll_interval: float = 0.25,
        serving: bool = False,
        settings: themes.Settings | None = None,
        quit_requested: threading.Event | None = None,
    ):
        super().__init__()
        self.plan = plan
        self.quit_requested = quit_requested  # set by a signal that came before the screen could take it
        self.serving = serving
        read_only = read_only or serving
        self.read_only = read_only
        self.settings = settings if settings is not None else themes.Settings.load()
        if controller_thread is None and not read_only and state_source is None:
            controller_thread = ControllerThread(plan)
        self.thread = None if read_only else controller_thread
        self._owns_thread = self.thread is not None and self.thread.controller is None
        if state_source is None and (read_only or self.thread is None):
            state_source = JournalSource(plan)
        self.state_source = state_source
        self.poll_interval = poll_interval
        self.state: CockpitState | None = None
        self.levels = Levels.of(plan)  # the plan's thresholds and triggers colour the figures
        self.trend = Trend()  # green error rate and p95 over the last minutes, from successive snapshots
        self.states_seen = 0  # snapshots taken in (tests watch the screen keep refreshing)
        self.skipped_polls = 0  # ticks skipped because the previous read-only poll still ran
        self.last_result: tuple[str, str, str, float | None] | None = (
            None  # verb, outcome, message of the last action sent here
        )
        self.note = ""
        self._start_worker: Worker[Controller] | None = None
        self._start_done = threading.Event()  # set when the start worker's thread has returned
        self._poll_worker: Worker[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._exit_code = 0
        self._bindings_key: tuple[object, ...] | None = None
        self.title = f"cockpit · {plan.name}"
        self.sub_title = "read-only" if read_only else plan.description
        self._has_sync = has_sync(plan)
        self._has_backup = plan.blue.database.engine == "sqlite" and bool(plan.blue.database.path)
        themes.register(self)

    # --------------------------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield TitleBar(self.plan.name, self.plan.description, tag=self._tag(), id="title")
        yield StatusBar(id="status")
        readiness = Panel(self.readiness_text, id="readiness")
        readiness.show_content(self.readiness_text(None))
        yield readiness
        yield Panel(lambda s: Content(""), id="result")
        yield Panel(render.timeline, title="Phases", id="timeline", sized=True)
        with Horizontal(id="middle"):
            yield Panel(render.split, title="Traffic split (green share)", id="split", sized=True)
            yield Panel(render.gates, title="Next advance", id="gates")
        yield AlarmsPanel(id="alarms")
        with Container(id="bottom"):
            actions = ActionsPanel(id="actions")
            actions.border_title = "Last actions (journal)"
            yield actions
            figures = MetricsPanel(self.levels, self.trend, id="metrics")
            figures.border_title = "Metrics"
            yield figures
        yield Panel(render.journal_line, id="journal-line")
        yield Footer(compact=True)

    def readiness_text(self, state: CockpitState | None) -> Content:
        """The rollback-readiness light (a replay says it was not recorded)."""
        return render.readiness(state)

    def _tag(self) -> str:
        return "read-only · browser" if self.serving else "read-only" if self.read_only else ""

    def on_mount(self) -> None:
        self._catch_sigterm()
        if self.quit_requested is not None and self.quit_requested.is_set():
            self.call_later(self.action_quit)
        self.main_screen = self.screen  # the panels live here, whatever dialog is on top
        self._fit_footer(self.size.width)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else themes.DEFAULT
        self._theme_changed(self.current_theme)  # the classes of the theme in use
        if self.thread is not None and self._owns_thread:
            self.note = "starting the controller (lock, journal, reconciliation)..."
            self._start_worker = self._start_controller()
        self.set_interval(self.poll_interval, self._tick)
        self._tick()

    def on_resize(self, event: events.Resize) -> None:
        self._fit_footer(event.size.width)

    def _fit_footer(self, width: int) -> None:
        # a narrow footer drops the palette key (ctrl+p still works; help says so) to keep help and quit in view
        screen = getattr(self, "main_screen", None)
        if screen is not None:
            for footer in screen.query(Footer):
                footer.show_command_palette = width >= 100

    # --------------------------------------------------------------------------------------------- refresh
    def _tick(self) -> None:
        controller = self.thread.controller if self.thread is not None else None
        if controller is not None:
            self._show(controller.latest)  # in memory: no I/O on this loop
        elif self.state_source is not None:
            if self._poll_worker is not None and not self._poll_worker.is_finished:
                self.skipped_polls += 1  # never two polls at once
            else:
                self._poll_worker = self.run_worker(self._poll(), group="poll", exit_on_error=False)
        self._show_status()

    async def _poll(self) -> None:
        assert self.state_source is not None
        try:
            state = await asyncio.to_thread(self.state_source)
        except FileNotFoundError as exc:
            self.note = str(exc)
        except Exception as exc:  # a journal being rotated, a plan path gone: say so and keep trying
            self.note = f"cannot read the state: {type(exc).__name__}: {exc}"
        else:
            self.note = ""
            self._show(state)
        self._show_status()

    def _show(self, state: CockpitState | None) -> None:
        if state is None or state is self.state or not self.is_running:
            return
        self.state = state
        self.states_seen += 1
        self.trend.add(state)
        with contextlib.suppress(NoMatches):  # a poll that ends while the app closes has nothing left to draw
            for panel_id in ("timeline", "split", "gates", "readiness", "journal-line"):
                self.main_screen.query_one(f"#{panel_id}", Panel).show(state)
            self.main_screen.query_one("#actions", ActionsPanel).show(state)
            self.main_screen.query_one("#alarms", AlarmsPanel).show(state)
            self.main_screen.query_one("#metrics", MetricsPanel).show(state)
        self._offer_keys()
        self._show_status()

    # --------------------------------------------------------------------------------------------- keys
    def _key_context(self) -> Context:
        can_act = not self.read_only and self.thread is not None and self.thread.controller is not None
        return Context(self.state, can_act, self._has_sync, self._has_backup)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers only what can run now (tui/keys.py decides, from the state)."""
        return keys.check(action, self._key_context(), serving=self.serving)

    def _offer_keys(self) -> None:
        """Refresh the footer when what decides the keys changed (not on every snapshot)."""
        ctx = self._key_context()
        s = ctx.state
        key = (
            ctx.can_act,
            None
            if s is None
            else (
                s.state,
                s.phase_index,
                s.running_action,
                not same_split(s.green_live or 0.0, 0.0),
                s.ended,
            ),
        )
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    def on_key(self, event: events.Key) -> None:
        """A key whose action cannot run now says why (its binding did not fire; the footer does not offer it)."""
        if self.screen is not getattr(self, "main_screen", None):
            return
        for a in ACTIONS:
            if (
                a.key == event.key
                and keys.check(a.name, self._key_context(), serving=self.serving) is not True
            ):
                if self.serving:
                    return
                if a.acts and self._cannot_act(a.name):
                    return
                self._report(a.name, "refused", a.why_not(self._key_context()) or "not offered now")
                return

    def _show_status(self) -> None:
        if not self.is_running:
            return
        with contextlib.suppress(NoMatches):
            self.main_screen.query_one("#status", StatusBar).show(
                self.state, read_only=self.read_only, note=self.note
            )
            if self.last_result is not None:
                result = self.main_screen.query_one("#result", Panel)
                result.show_content(render.result_line(*self.last_result))
                result.add_class("-shown")

    # --------------------------------------------------------------------------------------------- controller
    @work(thread=True, exclusive=True, group="controller", exit_on_error=False)
    def _start_controller(self) -> Controller:
        """In a worker thread: ControllerThread.start blocks until the controller holds the lock and reconciled
        (the controller then runs on its own loop, in its own thread)."""
        assert self.thread is not None
        try:
            return self.thread.start()
        finally:
            self._start_done.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's end in one place: the controller's start (ok, lock held elsewhere, failed)."""
        if event.worker is not self._start_worker or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
        ):
            return
        exc = event.worker.error if event.state == WorkerState.ERROR else None
        if exc is None:
            self.note = ""
        elif isinstance(exc, LockHeld):
            # another process drives this plan: show its journal instead of refusing to open
            self.thread = None
            self.read_only = True
            self.sub_title = "read-only"
            self.state_source = JournalSource(self.plan)
            self.note = ""
            with contextlib.suppress(NoMatches):
                self.main_screen.query_one("#title", TitleBar).retag(self._tag())
            self.notify(
                f"{exc}: this cockpit is read-only",
                title="controller already running",
                severity="warning",
                timeout=15,
            )
        else:
            self._exit_code = 1
            self.note = f"the controller did not start: {type(exc).__name__}: {exc}"
            self.notify(self.note, title="controller failed", severity="error", timeout=30)
        self._offer_keys()
        self._show_status()

    async def _shutdown_controller(self) -> None:
        """Stop the controller this app started (it finishes a running action first). Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_controller())
        await asyncio.shield(self._stopping)

    async def _stop_controller(self) -> None:
        if self._start_worker is not None:  # a start under way ends first (a thread cannot be cancelled)
            await asyncio.to_thread(self._start_done.wait, 120)
        if self.thread is not None and self._owns_thread:
            await asyncio.to_thread(self.thread.stop)
        if isinstance(self.state_source, JournalSource):
            await asyncio.to_thread(self.state_source.close)

    async def on_unmount(self) -> None:
        await self._shutdown_controller()
        self._release_sigterm()

    def _catch_sigterm(self) -> None:
        """SIGTERM quits as the quit key does (the controller ends its action first), on this loop.

        Not left to a SIGINT's cancellation of the app's task: Textual can swallow that while it starts, and the
        screen then runs on. The handler that was there comes back when the screen goes."""
        self._old_sigterm: Any = signal.getsignal(signal.SIGTERM)
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            self._old_sigterm = None

    def _on_sigterm(self) -> None:
        self.call_later(self.action_quit)

    def _release_sigterm(self) -> None:
        if getattr(self, "_old_sigterm", None) is None:
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._old_sigterm)
        self._old_sigterm = None

    def _cannot_act(self, verb: str) -> bool:
        """True (with a message) when this screen may not act: read-only, or no controller (yet)."""
        if self.read_only or self.thread is None:
            holder = self.state.controller if self.state else None
            how = (
                f"the controller is pid {holder.get('pid')} ({holder.get('actor', '?')}); "
                f"queue the action with `cockpit {verb}` from a shell"
                if holder
                else "no controller is running: open the cockpit without --read-only to act"
            )
            self._report(verb, "refused", f"read-only cockpit: {how}")
            return True
        if self.thread.controller is None:
            self._report(
                verb, "refused", self.note or "the controller is still starting; try again in a moment"
            )
            return True
        return False

    def _send(self, verb: str, make: Callable[[Controller], Awaitable[Result]]) -> None:
        self.run_worker(self._call(verb, make), group="actions", exit_on_error=False)

    async def _call(self, verb: str, make: Callable[[Controller], Awaitable[Result]]) -> None:
        assert self.thread is not None
        # shielded: leaving the screen never cancels an action under way on the controller's loop
        try:
            result = await asyncio.shield(asyncio.ensure_future(self.thread.call(make)))
        except Exception as exc:
            self._report(verb, "failed", f"{type(exc).__name__}: {exc}")
            return
        self._report(result.verb, result.outcome, result.message, result.duration_s)

    def _report(self, verb: str, outcome: str, message: str, duration_s: float | None = None) -> None:
        self.last_result = (verb, outcome, message, duration_s)
        severity = _SEVERITY.get(outcome, "error")
        self.notify(
            message or outcome,
            title=f"{verb} {outcome}",
            severity=severity,  # type: ignore[arg-type]
            timeout=5 if severity == "information" else 12,
            markup=False,
        )
        self._show_status()

    # --------------------------------------------------------------------------------------------- actions
    def action_advance(self) -> None:
        if self._cannot_act("advance"):
            return
        state = self.state
        if state is None or state.next_phase is None:
            self._send("advance", lambda c: c.advance())  # nothing to confirm: the controller says why not
            return
        self._dialog(AdvanceModal(state), self._advance_confirmed)

    def _advance_confirmed(self, choice: AdvanceChoice | None) -> None:
        if choice is None:
            self.notify("advance cancelled: nothing changed", timeout=3)
            return
        now, seen = self.state, choice.seen
        if now is None or (now.state, now.phase_index) != (seen.state, seen.phase_index):
            where = render.state_label(now.state) if now else "unknown"
            self._report(
                "advance",
                "refused",
                f"the state changed while the confirmation was open (now {where}): "
                "nothing done; press a again",
            )
            return
        reason = "forced past unmet conditions from the cockpit" if choice.force else ""
        self._send("advance", lambda c: c.advance(force=choice.force, reason=reason))

    def action_hold(self) -> None:
        if not self._cannot_act("hold"):
            self._send("hold", lambda c: c.hold("held from the cockpit"))

    def action_resume(self) -> None:
        if not self._cannot_act("resume"):
            self._send("resume", lambda c: c.resume())

    def action_rollback(self) -> None:
        if self._cannot_act("rollback"):
            return
        state = self.state
        if state is None:
            self._report("rollback", "refused", "no state yet; try again in a moment")
            return
        rb = self.plan.rollback
        self._dialog(RollbackModal(state, list(rb.steps), float(rb.gradual_soak)), self._rollback_confirmed)

    def _rollback_confirmed(self, choice: RollbackChoice | None) -> None:
        if choice is None:
            self.notify("rollback cancelled: nothing changed", timeout=3)
            return
        self._send("rollback", lambda c: c.rollback(choice.reason, choice.mode))

    def action_copy(self) -> None:
        if not self._cannot_act("copy"):
            self._dialog(CopyModal(self.plan), self._copy_confirmed)

    def _copy_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            self.notify("copy cancelled: nothing changed", timeout=3)
            return
        self._send("copy", lambda c: c.copy("from the cockpit"))

    def action_finalize(self) -> None:
        self._end("finalize")

    def action_abandon(self) -> None:
        self._end("abandon")

    def _end(self, verb: str) -> None:
        """Finalize or abandon: one dialog, then the command queued like the CLI's (abandon never drops green
        from here: that is `cockpit abandon --yes --drop-green DBNAME`, the name typed)."""
        if self._cannot_act(verb):
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                self.notify(f"{verb} cancelled: nothing changed", timeout=3)
                return
            kind = Finalize if verb == "finalize" else Abandon
            self._send(verb, lambda c: c.act(kind(reason=f"{verb} from the cockpit")))

        self._dialog(EndingModal(self.plan, verb), confirmed)

    def action_backup(self) -> None:
        if not self._cannot_act(
            "backup"
        ):  # nothing to confirm: it only adds a backup (the plan's keep prunes)
            self._send("backup", lambda c: c.backup("from the cockpit"))

    def action_preflight(self) -> None:
        """The checklist in a worker thread (it sends a marked test message and reads both databases), journaled
        like `cockpit preflight`, then shown; the screen keeps drawing meanwhile."""
        if self._cannot_act("preflight"):
            return
        self.notify("preflight: running the checks…", timeout=3)
        self.run_worker(self._preflight(), group="preflight", exclusive=True, exit_on_error=False)

    async def _preflight(self) -> None:
        from cockpit.control.preflight import record, run_preflight

        try:
            verdict = await asyncio.to_thread(run_preflight, self.plan)
            await asyncio.to_thread(record, self.plan, verdict)
        except Exception as exc:
            self._report("preflight", "failed", f"{type(exc).__name__}: {exc}")
            return
        self._report("preflight", "ok" if verdict.go else "refused", verdict.summary())
        self._dialog(PreflightModal(verdict), None)

    def action_help(self) -> None:
        self._dialog(HelpModal(self.KEY_ACTIONS), None)

    def _dialog(self, screen: Screen[Any], done: Callable[[Any], None] | None) -> None:
        """A dialog has the screen to itself: toasts go (the last result stays on the main screen), so none can
        cover its buttons."""
        self.clear_notifications()
        self.push_screen(screen, done)

    def action_theme(self) -> None:
        self.theme = themes.next_theme(self.theme)

    def _theme_changed(self, theme: Any) -> None:
        """Whatever changed the theme (t, the palette), it is remembered for the next run."""
        for name in themes.ORDER:
            self.set_class(theme.name == name, f"-theme-{name}")
        if theme.name != self.settings.theme and not self.serving:  # a browser's choice is its page's alone
            self.settings.remember(theme.name)
            self.notify(f"theme: {themes.label(theme.name)} (remembered)", timeout=3)

    async def action_quit(self) -> None:
        if self._stopping is None and self.thread is not None and self.thread.controller is not None:
            running = self.state.running_action if self.state else None
            self.note = (
                f"stopping: the controller ends the running {running} first..." if running else "stopping..."
            )
            self._show_status()
        self.run_worker(self._quit(), group="quit", exclusive=True)

    async def _quit(self) -> None:
        await self._shutdown_controller()
        self.exit(self._exit_code, return_code=self._exit_code)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        titles = set()
        for a in self.KEY_ACTIONS:
            if a.acts and self.serving:
                continue  # the browser view has no action at all, not even in the palette
            titles.add(a.label)
            yield SystemCommand(a.label, f"[{a.shown_key}] {a.description}", partial(self.run_action, a.name))
        for command in super().get_system_commands(screen):
            if command.title not in titles:
                yield command


def run_tui(
    plan_path: str,
    read_only: bool = False,
    drivers: Drivers | None = None,
    quit_requested: threading.Event | None = None,
) -> int:
    """Load the plan, run the cockpit until the person quits; the exit code (1 when the controller failed).

    A wrong plan raises cockpit.plan.PlanError (the CLI prints it and exits 2). `quit_requested`, set before the
    screen is up (a SIGTERM while it starts), makes it quit as soon as it is.
    """
    plan = load_plan(plan_path)
    thread = None if read_only else ControllerThread(plan, drivers=drivers)
    app = CockpitApp(plan, read_only=read_only, controller_thread=thread, quit_requested=quit_requested)
    app.run()
    return app.return_code or 0
