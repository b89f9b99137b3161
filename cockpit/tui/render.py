"""Pure rendering of CockpitState snapshots into Textual Content, one function per panel.

Every time shown is relative to the snapshot's own `now`, so a snapshot renders the same way whenever it is drawn.
Colours are theme variables (`$success`, `$error`, ...), so the theme in themes/ decides what they look like.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content

from cockpit.core.journal import ActionRecord
from cockpit.core.plan import format_duration
from cockpit.core.state import FAILED, UNKNOWN, CockpitState, Readiness
from cockpit.core.vocabulary import same_split
from cockpit.tui.readings import SOURCE_ACCESS_LOG, SOURCE_TRAFFIC, stale_age, window

BAR_WIDTH = 30
OK, BAD, WARN, MUTED, ACCENT, BLUE = "$success", "$error", "$warning", "$text-muted", "$accent", "$primary"
OUTCOME_STYLE = {
    "ok": OK,
    "reconciled": ACCENT,
    "refused": WARN,
    "preempted": WARN,
    "partial": WARN,
    "interrupted": WARN,
    "failed": BAD,
}
STATE_LABEL = {"rolling_back": "rolling back", "rolled_back": "rolled back"}


def state_label(state: str) -> str:
    return STATE_LABEL.get(state, state)


def duration(seconds: float | None) -> str:
    """Short durations for steps and actions: 12ms, 3.4s, 2m5s."""
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(seconds)


def ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"


def _lines(lines: Iterable[Content | str]) -> Content:
    return Content("\n").join(lines)


# ------------------------------------------------------------------------------------------------ status line
def status(state: CockpitState | None, *, read_only: bool, note: str = "") -> Content:
    """Where we are and who acts: phase and share, controller or read-only, held reason, the running action."""
    if state is None:
        return Content.styled(note or "waiting for the first state...", MUTED)
    phase = state.phase
    parts: list[Content | str | tuple[str, str]] = [
        (
            f"{phase.name} ({state.phase_index + 1}/{len(state.phases)})"
            if phase
            else "before the first phase",
            "bold",
        ),
        f" · {state.green_configured:g}% green",
    ]
    holder = state.controller or {}
    if read_only:
        parts.append(("  │  read-only", WARN))
        parts.append(
            f" · controller pid {holder.get('pid')} {holder.get('actor', '')}".rstrip()
            if holder
            else " · no controller running (journal only)"
        )
    elif holder:
        parts.append(f"  │  controller pid {holder.get('pid')} {holder.get('actor', '')}".rstrip())
    if state.held_reason and state.state == "held":
        parts += ["  │  ", ("held: ", WARN), state.held_reason]
    if state.running_action:
        parts += ["  │  ", (f"{state.running_action} running", ACCENT)]
    if note:
        parts += ["  │  ", (note, MUTED)]
    return Content.assemble(*parts)


def result_line(verb: str, outcome: str, message: str, duration_s: float | None = None) -> Content:
    """The last action this screen sent, and what it came to (stays visible after the toast is gone)."""
    took = f" in {duration(duration_s)}" if duration_s is not None else ""
    return Content.assemble(
        ("last: ", MUTED),
        (f"{verb} {outcome}", f"bold {OUTCOME_STYLE.get(outcome, ACCENT)}"),
        took,
        (": " + message) if message else "",
    )


# ------------------------------------------------------------------------------------------------ title
def title(name: str, description: str = "", *, tag: str = "", width: int = 0) -> Content:
    """`◆ cockpit · NAME — DESCRIPTION  TAG`, in the longest form that fits `width`: the description loses whole
    words (with …) before it goes, then `cockpit · `; never a word cut in half (0: no limit)."""
    tail = Content.styled(f"  {tag}", WARN) if tag else Content("")
    head = Content.assemble(("◆ ", ACCENT), ("cockpit · ", "bold"), (name, "bold"))
    words = description.split()
    forms = [
        Content.assemble(head, (" — " + " ".join(words[:n]) + ("" if n == len(words) else " …"), MUTED))
        for n in range(len(words), 0, -1)
    ]
    forms += [head, Content.assemble(("◆ ", ACCENT), (name, "bold"))]
    for form in forms:
        if not width or form.cell_length + tail.cell_length <= width:
            return form + tail
    return Content.styled(name, "bold")


# ------------------------------------------------------------------------------------------------ readiness
READINESS_STALE_S = 30.0  # an assessment older than this says its age


def readiness(state: CockpitState | None) -> Content:
    """The rollback-readiness light: ready (and what was checked), or NOT ready and why, worst first."""
    r: Readiness | None = state.readiness if state is not None else None
    if r is None:
        return Content.assemble(
            ("◌ rollback readiness ", "bold"), ("not assessed yet (the controller publishes it)", MUTED)
        )
    age = (state.now - r.at) if state is not None and r.at else 0.0
    old = Content.styled(f"  (assessed {format_duration(age)} ago)", WARN) if age > READINESS_STALE_S else ""
    if r.ready:
        seen = " · ".join(f"{c.name} ✓" for c in r.checks if c.status == "ok")
        return Content.assemble(("● rollback ready", f"bold {OK}"), (f"  {seen}", MUTED), old)
    why = "; ".join(
        c.detail if c.status == FAILED else f"{c.detail} (unknown)"
        for c in r.blocking
        if c.status in (FAILED, UNKNOWN)
    )
    return Content.assemble(("✗ rollback NOT ready", f"bold reverse {BAD}"), " ", (why, BAD), old)


# ------------------------------------------------------------------------------------------------ journal line
def journal_line(state: CockpitState) -> Content:
    """The journal folded to one line: its newest action (the panel opens on a screen of 110x34 or more)."""
    if not state.actions:
        return Content.assemble(("journal ", "bold"), ("no actions yet", MUTED))
    record = state.actions[-1]
    outcome = record.outcome or "running"
    said = record.message or record.reason
    return Content.assemble(
        ("journal ", "bold"),
        (f"{ago(max(0.0, state.now - record.started))} ", MUTED),
        (f"{record.verb} ", "bold"),
        (outcome, f"bold {OUTCOME_STYLE.get(outcome, ACCENT)}"),
        (f" {record.actor}", MUTED),
        f"  {said}" if said else "",
    )


# ------------------------------------------------------------------------------------------------ timeline
def timeline(state: CockpitState, width: int = 0) -> Content:
    """ready → each phase with its share; done, current and ahead; then time in phase, soak and what is next.

    Where the row does not fit `width`, the phases other than the current one show only their share."""
    row = _phase_row(state, names=True)
    if width and row.cell_length > width:
        row = _phase_row(state, names=False)
    info = _phase_info(state)
    if width and info.cell_length > width:
        info = _phase_info(state, short=True)
    return _lines([row, info, Content.styled(_description(state), MUTED)])


def _phase_row(state: CockpitState, *, names: bool) -> Content:
    current = state.phase_index + 1  # 0 is `ready`
    stops = [("ready", None)] + [(p.name, p.green) for p in state.phases]
    row: list[Content | str | tuple[str, str]] = []
    for i, (name, green) in enumerate(stops):
        if green is None:
            label = name
        elif names or i == current:
            label = f"{name} {green:g}%"
        else:
            label = f"{green:g}%"
        if i:
            row.append((" ── " if names else " ─ ", MUTED))
        if i < current:
            row.append((f"✓ {label}", OK))
        elif i == current:
            style = (
                BAD
                if state.state == "failed"
                else WARN
                if state.state in ("held", "rolling_back")
                else ACCENT
            )
            row.append((f" ● {label} ", f"bold reverse {style}"))
        elif i == current + 1 and state.state == "advancing":
            row.append((f"» {label}", f"bold {WARN}"))
        else:
            row.append((f"○ {label}", MUTED))
    return Content.assemble(*row)


def _phase_info(state: CockpitState, *, short: bool = False) -> Content:
    """Where the phase stands: time in it, the soak, what is next (`short`: the same in fewer words)."""
    phase, nxt = state.phase, state.next_phase
    # a journal that never recorded a change of state has no start time: say so rather than count from 1970
    spent = format_duration(state.time_in_phase) if state.phase_since > 0 else "an unknown time"
    if short:
        after = f"next {nxt.name} {nxt.green:g}%" if nxt else "last phase"
        if phase is None:
            return Content.assemble((state_label(state.state), "bold"), f" · all on blue {spent} · {after}")
        left = phase.soak_s - state.time_in_phase
        soak = (
            Content.styled("soaked", OK)
            if left <= 0
            else Content.styled(f"soak {format_duration(left)} left", WARN)
        )
        return Content.assemble(
            (f"{phase.name} {state.phase_index + 1}/{len(state.phases)}", "bold"),
            f" · {spent} in · ",
            soak,
            f" · {after}",
        )
    if phase is None:
        where = Content.assemble(
            (state_label(state.state), "bold"), f" · all traffic on blue · {spent} in this state"
        )
    else:
        left = phase.soak_s - state.time_in_phase
        soak = (
            Content.styled(f"soak {format_duration(phase.soak_s)} done", OK)
            if left <= 0
            else Content.assemble(
                f"soak {format_duration(phase.soak_s)}: ", (f"{format_duration(left)} left", WARN)
            )
        )
        where = Content.assemble(
            (f"{phase.name} ({state.phase_index + 1}/{len(state.phases)})", "bold"),
            f" · {phase.green:g}% green · {spent} in phase · ",
            soak,
        )
    after = f"next: {nxt.name} {nxt.green:g}%" if nxt else "no phase after this one"
    return Content.assemble(where, " · ", after)


def _description(state: CockpitState) -> str:
    phase = state.phase
    if phase is not None:
        return phase.description
    nxt = state.next_phase
    return f"the first advance moves {nxt.green:g}% of the users to green ({nxt.name})" if nxt else ""


# ------------------------------------------------------------------------------------------------ split
def bar(green: float | None, width: int = BAR_WIDTH) -> Content:
    if green is None:
        return Content.styled("░" * width, MUTED)
    cells = round(max(0.0, min(100.0, green)) / 100 * width)
    return Content.assemble(("█" * cells, OK), ("█" * (width - cells), BLUE))


def split(state: CockpitState, width: int = 0) -> Content:
    """The configured split (what the phase machine wants), the live one (what the balancers have) and the observed
    one (the share of requests green served, from the access log, over the window it says: since the last split
    change, up to the access log's window). A source silent for long is greyed with its age.

    `width` is the room the panel has: the bars take what the labels leave (BAR_WIDTH when unknown).
    """
    narrow = bool(width) and width < 50  # the words shorten before the bars shrink below 6 cells
    cells = max(6, min(BAR_WIDTH, width - (24 if narrow else 38))) if width else BAR_WIDTH
    conf = state.green_configured
    configured = Content.assemble(
        ("configured ", "bold"),
        bar(conf, cells),
        f" {conf:g}% green" + ("" if narrow else f" · {100 - conf:g}% blue"),
    )
    live_value = state.green_live
    live_silent = stale_age(state, SOURCE_TRAFFIC)
    if live_value is None:
        note: tuple[str, str] = (" unknown (balancers disagree or unreadable)", WARN)
        live = Content.assemble(("live       ", "bold"), bar(None, cells), note)
    elif live_silent is not None:
        live = Content.assemble(
            ("live       ", "bold"),
            bar(None, cells),
            (f" {live_value:g}% green, read {format_duration(live_silent)} ago", MUTED),
        )
    else:
        differs = not same_split(live_value, conf)
        note = (
            (" ≠" if narrow else "  ≠ configured", WARN)
            if differs
            else (" ✓" if narrow else "  ✓ as configured", OK)
        )
        live = Content.assemble(
            ("live       ", "bold"), bar(live_value, cells), f" {live_value:g}% green", note
        )
    seen = state.metrics.get("traffic_distribution")
    seen_silent = stale_age(state, SOURCE_ACCESS_LOG)
    span = window(state, "traffic_distribution.window_s")
    since = state.metrics.get("traffic_distribution.restarted")
    if seen is None:
        observed = Content.assemble(
            ("observed   ", "bold"), bar(None, cells), (f" – no requests counted {span or 'yet'}", MUTED)
        )
    elif seen_silent is not None:
        observed = Content.assemble(
            ("observed   ", "bold"),
            bar(None, cells),
            (f" {seen:.1f}% green, {format_duration(seen_silent)} old", MUTED),
        )
    else:
        observed = Content.assemble(("observed   ", "bold"), bar(seen, cells), f" {seen:.1f}% green")
        for said in (f" · {span}, since the change" if since else "", f" · {span}", f" {span}"):
            if span and said and (not width or observed.cell_length + len(said) <= width):
                observed += Content.styled(said, MUTED)
                break
    legend = Content.assemble(
        ("█", OK),
        (" green (new)  ", MUTED),
        ("█", BLUE),
        (" blue (old)", MUTED),
        ("" if narrow else "  observed: access log", MUTED),
    )
    return _lines([configured, live, observed, legend])


# ------------------------------------------------------------------------------------------------ gates
def gates(state: CockpitState) -> Content:
    """What the next advance needs: the soak of the current phase and its gates, met or not, with why."""
    nxt, phase = state.next_phase, state.phase
    if nxt is None:
        return Content.styled("no phase after this one: the migration is complete", MUTED)
    head = Content.assemble("next advance: ", (f"{nxt.name} {nxt.green:g}%", "bold"))
    if phase is None or state.state == "rolled_back":
        if state.gates:  # before the first phase: a backup the plan requires
            return _lines([head, *(_check(met, gate, why) for gate, met, why in state.gates)])
        return _lines([head, Content.styled("from here the first step needs only the confirmation", MUTED)])
    lines: list[Content] = [head]
    left = phase.soak_s - state.time_in_phase
    lines.append(
        _check(
            left <= 0,
            f"soak {format_duration(phase.soak_s)}",
            "done" if left <= 0 else f"{format_duration(left)} left",
        )
    )
    lines += [_check(met, gate, why) for gate, met, why in state.gates]
    if not state.gates:
        lines.append(Content.styled("  no metric gates in this phase", MUTED))
    return _lines(lines)


def gates_met(state: CockpitState) -> bool:
    phase = state.phase
    soaked = phase is None or state.state == "rolled_back" or state.time_in_phase >= phase.soak_s
    return soaked and all(met for _g, met, _w in state.gates)


def _check(met: bool, what: str, why: str) -> Content:
    return Content.assemble(("✓ " if met else "✗ ", OK if met else BAD), what, (f"  {why}", MUTED))


# ------------------------------------------------------------------------------------------------ actions
def actions(state: CockpitState) -> Content:
    """The last actions, newest first, each with its steps and their timings."""
    if not state.actions:
        return Content.styled("no actions yet", MUTED)
    lines: list[Content] = []
    for record in reversed(state.actions):
        lines += action_lines(record, state.now)
    return _lines(lines)


def action_lines(record: ActionRecord, now: float) -> list[Content]:
    outcome = record.outcome or "running"
    took = record.duration_s if record.outcome else max(0.0, now - record.started)
    said = record.message or record.reason
    head = Content.assemble(
        (f"{ago(max(0.0, now - record.started)):>12}  ", MUTED),
        (f"{record.verb:<9}", "bold"),
        (f"{outcome:<11}", f"bold {OUTCOME_STYLE.get(outcome, ACCENT)}"),
        f"{duration(took):>7}  ",
        (record.actor, MUTED),
        f"  {said}" if said else "",
    )
    lines = [head]
    if record.reason and record.message:
        lines.append(Content.assemble(" " * 14, ("reason: ", MUTED), record.reason))
    for step in record.steps:
        lines.append(
            Content.assemble(
                " " * 14,
                ("· ", MUTED),
                f"{step.name:<15}",
                (f"{step.status:<10}", OUTCOME_STYLE.get(step.status, MUTED)),
                f"{duration(step.duration_s):>7}  ",
                (step.detail, MUTED),
            )
        )
    return lines
