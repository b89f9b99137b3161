"""What the command line shows a person, drawn with rich: the status, the journal, the backups, an integrity
report, the sync's status, and the copy's progress bar.

Only the text forms: `--json` outputs never come through here. Every string shown goes through
`cockpit.core.redact` and is drawn as plain text (never read as rich markup). Piped or redirected, the output
has no colours and no width limit, so scripts and `grep` see one line per row.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from cockpit.core.journal import Event, describe_event, format_when
from cockpit.core.redact import redact_text
from cockpit.core.state import CockpitState, TableCopy

if TYPE_CHECKING:  # the drivers are imported by the commands that use them
    from cockpit.drivers.backup import Manifest
    from cockpit.drivers.integrity import IntegrityReport

PIPED_WIDTH = 1000  # no wrapping when nobody reads the lines on a terminal


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr), resolved now: tests and callers may have replaced it."""
    file = sys.stderr if stderr else sys.stdout
    tty = file.isatty()
    return Console(file=file, highlight=False, width=None if tty else PIPED_WIDTH, soft_wrap=not tty)


def show(*renderables: RenderableType | str) -> None:
    """Print on stdout: drawn for a terminal; for a pipe, plain lines without the cells' trailing padding."""
    out = console()
    with out.capture() as captured:
        for r in renderables:
            out.print(_plain(r) if isinstance(r, str) else r)
    text = captured.get()
    if not out.is_terminal:
        text = "".join(line.rstrip() + "\n" for line in text.splitlines())
    out.file.write(text)
    out.file.flush()


def _plain(text: str, style: str = "") -> Text:
    return Text(redact_text(text), style=style)


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    return grid


# ------------------------------------------------------------------------------------------------ status
def status(s: CockpitState) -> RenderableType:
    state_style = {
        "held": "yellow",
        "failed": "red",
        "rolling_back": "yellow",
        "complete": "green",
        "abandoned": "yellow",
    }
    head = Text.assemble(
        (f"plan {s.plan}: ", "bold"), (s.state, state_style.get(s.state, "cyan")), _paren(s.held_reason)
    )
    grid = _grid()
    phase = s.phase
    where = f"phase {s.phase_index + 1}/{len(s.phases)} {phase.name}" if phase else "before the first phase"
    spent = f"{duration(s.time_in_phase)} in this state" if s.since_known else "time in this state unknown"
    grid.add_row("phase", f"{where}, {spent}")
    if s.ended is not None:
        e = s.ended
        done = (
            f"{e.word} (for good)"
            if e.done
            else f"{e.how} under way, done: {', '.join(e.steps) or 'nothing yet'}"
        )
        grid.add_row("ended", _plain(done + (f"; blue archived at {e.archive}" if e.archive else "")))
    live = "unknown" if s.green_live is None else f"{s.green_live:g}%"
    grid.add_row("green", f"configured {s.green_configured:g}%, live {live}")
    if s.next_phase:
        grid.add_row("next", f"{s.next_phase.name} ({s.next_phase.green:g}%)")
    for direction, lag in s.lag.items():
        grid.add_row("sync", f"{direction}: lag {lag.age_s:.1f}s, {lag.pending} pending")
    for label, text in sync_notes(s):
        grid.add_row(label, _plain(text))
    if s.copy is not None:
        c = s.copy
        eta = "" if c.state != "running" else f", ETA {'?' if c.eta_s is None else f'{c.eta_s:.0f}s'}"
        grid.add_row(
            "copy",
            _plain(
                f"initial copy {c.state}: {c.rows_done:,}/{c.rows_total:,} rows in {len(c.tables)} tables, "
                f"{c.seconds:.1f}s{eta}" + (f" ({c.message})" if c.message else "")
            ),
        )
    for gate, met, why in s.gates:
        grid.add_row(
            "gate", Text.assemble(("ok " if met else "NO ", "green" if met else "red"), f"{gate} ({why})")
        )
    for a in s.alarms:
        grid.add_row(Text(a.level.upper(), "red" if a.level == "critical" else "yellow"), _plain(a.message))
    if s.actions:
        last = s.actions[-1]
        dur = f" in {last.duration_s:.2f}s" if last.duration_s is not None else " (running)"
        grid.add_row(
            "last action",
            _plain(
                f"{last.verb} by {last.actor}: {last.outcome or 'running'}{dur}"
                + (f": {last.message}" if last.message else "")
            ),
        )
    ctl = s.controller
    grid.add_row("controller", f"pid {ctl.get('pid')} ({ctl.get('actor')})" if ctl else "none running")
    parts: list[RenderableType] = [head, grid]
    if s.message:
        parts.append(_plain(s.message))
    return Group(*parts)


def sync_notes(s: CockpitState) -> list[tuple[str, str]]:
    """Conflicts waiting, keys left and changes stranded on green, when the sync reports them."""
    notes = []
    waiting = s.metrics.get("sync.conflicts_waiting")
    if waiting is not None:
        notes.append(
            ("conflicts", f"{int(waiting)} waiting" + (" (`cockpit sync conflicts`)" if waiting else ""))
        )
    left = s.metrics.get("sync.keys_left_min")
    if left is not None:
        notes.append(("keys left", f"{int(left):,} (the fewest of a table; `cockpit sync keys`)"))
    if s.stranded is not None:
        n = "some (green unreadable)" if s.stranded.green_only < 0 else str(s.stranded.green_only)
        deferred = ", green left running until then" if s.stranded.stop_green_deferred else ""
        notes.append(("green only", f"{n} changes not on blue yet after the rollback: draining{deferred}"))
    return notes


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


def duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ------------------------------------------------------------------------------------------------ journal
def journal(events: Iterable[Event]) -> Table:
    """The flight recorder's events, one row each (the timeline of `cockpit journal`)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for e in events:
        tag = f" [{e.action_id}]" if e.action_id else ""
        table.add_row(
            format_when(e.ts), _plain(f"{e.actor}{tag}"), _plain(describe_event(e), _event_style(e))
        )
    return table


def _event_style(e: Event) -> str:
    if e.kind == "action.outcome":
        return "green" if e.payload.get("outcome") in ("ok", "reconciled") else "bold red"
    if e.kind in ("source.error", "trigger.fired", "controller.error", "integrity.mismatch"):
        return "red"
    return "dim" if e.kind == "action.step" else ""


# ------------------------------------------------------------------------------------------------ backups
def backups(found: Sequence[Manifest]) -> Table:
    """The backups of a plan's folder, newest first."""
    from cockpit.drivers.backup import human_size

    table = Table(show_edge=False, header_style="bold")
    table.add_column("backup")
    table.add_column("created")
    table.add_column("tables", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("gzip", justify="right")
    table.add_column("integrity")
    for m in found:
        gz = m.file("blue.db.gz")
        table.add_row(
            _plain(m.name),
            _plain(m.created),
            str(len(m.tables)),
            f"{m.total_rows:,}",
            human_size(gz.size if gz else 0),
            Text("ok", "green") if m.ok else Text(f"FAILED ({len(m.integrity)})", "red"),
        )
    return table


# ------------------------------------------------------------------------------------------------ integrity
def integrity(report: IntegrityReport, unmask: bool = False) -> RenderableType:
    """An IntegrityReport: a row a table, the rows that differ under it, then the score."""
    from cockpit.drivers.integrity import MAX_LISTED
    from cockpit.drivers.integrity.report import human_bytes

    table = Table(show_edge=False, header_style="bold")
    table.add_column("")
    table.add_column("table")
    table.add_column("blue rows", justify="right")
    table.add_column("green rows", justify="right")
    table.add_column("segments", justify="right")
    table.add_column("note")
    for t in report.tables:
        mark = Text("ok", "green") if t.ok else Text("DIFF", "bold red")
        segments = (
            f"{t.mismatched_segments}/{t.segments} differ" if t.mismatched_segments else str(t.segments)
        )
        table.add_row(
            mark, _plain(t.table), f"{t.blue_rows:,}", f"{t.green_rows:,}", segments, _plain(t.note)
        )
    lines: list[RenderableType] = [table]
    for t in report.tables:
        for d in t.diffs[:MAX_LISTED]:
            lines.append(_plain(f"  {t.table} {d.describe(unmask)}", "red"))
        if len(t.diffs) > MAX_LISTED:
            lines.append(_plain(f"  {t.table}: ... and {len(t.diffs) - MAX_LISTED} more", "red"))
    settled = (
        f"; {report.settled_keys} rows caught up while checking (in flight)" if report.settled_keys else ""
    )
    lines.append(
        _plain(
            f"score {report.score:g}% over {report.compared} rows in {report.duration_s:.2f}s, "
            f"{human_bytes(report.bytes)} moved{settled}"
        )
    )
    lines += [_plain(f"note: {n}") for n in report.notes]
    return Group(*lines)


# ------------------------------------------------------------------------------------------------ sync
def sync_status(doc: dict[str, Any], directions: Sequence[str]) -> RenderableType:
    """`cockpit sync status` as a person reads it (the document of its --json)."""
    grid = _grid()
    grid.add_row("blue", _plain(doc["blue"]))
    green = Text(redact_text(doc["green"]))
    if not doc["reachable"]:
        green.append(f"  (unreachable: {redact_text(str(doc['error']))})", "red")
    grid.add_row("green", green)
    installed = doc["installed"]
    grid.add_row("capture on blue", _plain(", ".join(installed["blue"]) or "not installed"))
    if installed["green"] is not None:
        grid.add_row("capture on green", _plain(", ".join(installed["green"]) or "not installed"))
    lag = Table(show_edge=False, header_style="bold")
    lag.add_column("direction")
    lag.add_column("lag", justify="right")
    lag.add_column("pending", justify="right")
    for d in directions:
        v = doc["lag"][d]
        age, pending = ("unknown", "unknown") if v is None else (f"{v['age_s']:.2f}s", str(v["pending"]))
        lag.add_row(d.replace("_to_", "→"), age, pending)
    notes = _grid()
    if doc.get("sync_error"):
        state = "stalled" if doc.get("stalled") else "running"
        notes.add_row(Text("sync", "red"), _plain(f"{state}: {doc['sync_error'].get('error') or ''}"))
    if doc.get("conflicts_waiting"):
        notes.add_row("conflicts", f"{doc['conflicts_waiting']} waiting (`cockpit sync conflicts`)")
    if doc.get("keys_left"):
        table, left = min(doc["keys_left"].items(), key=lambda kv: kv[1])
        notes.add_row("keys left", _plain(f"{left:,} ({table}, the fewest)"))
    for table, what in (doc.get("schema_changed") or {}).items():
        notes.add_row(
            Text("schema", "yellow"),
            _plain(f"{table}: {what} (its changes are held; `cockpit sync copy --tables {table}`)"),
        )
    return Group(grid, lag, notes)


# ------------------------------------------------------------------------------------------------ progress
class CopyProgress:
    """The initial copy's progress as bars on stderr (a terminal only): one per table from a copy run here
    (per-table reports from the writer threads), or one for the whole copy from a controller's snapshots."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._lock = threading.Lock()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def _progress(self) -> Progress:
        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=False,
            )
            self._bars.start()
        return self._bars

    def _update(self, name: str, done: int, total: int, rate: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            bars = self._progress()
            if name not in self._tasks:
                self._tasks[name] = bars.add_task(redact_text(name), total=max(total, 1), rate="")
            bars.update(self._tasks[name], completed=done, total=max(total, 1), rate=f"{rate:,.0f} rows/s")

    def __call__(self, item: TableCopy) -> None:
        """A table's report, from a writer thread."""
        self._update(item.table, item.rows_done, item.rows_total, item.rows_per_s)

    def state(self, state: CockpitState) -> None:
        """A controller's snapshot while its copy runs."""
        view = state.copy
        if view is None or view.state != "running":
            return
        self._update("copy", view.rows_done, view.rows_total, view.rows_per_s)

    def done(self) -> None:
        with self._lock:
            if self._bars is not None:
                self._bars.stop()
                self._bars = None
