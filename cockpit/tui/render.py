"""Pure rendering of CockpitState snapshots into Textual Content, one function per panel.

Every time shown is relative to the snapshot's own `now`, so a snapshot renders the same way whenever it is drawn.
Colours are theme variables (`$success`, `$error`, ...), so the theme in themes/ decides what they look like.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content

from cockpit.core.journal import ActionRecord
from cockpit.core.plan import format_duration
from cockpit.core.state import CockpitState

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


# ------------------------------------------------------------------------------------------------ timeline
def timeline(state: CockpitState) -> Content:
    """ready → each phase with its share; done, current and ahead; then time in phase, soak and what is next."""
    current = state.phase_index + 1  # 0 is `ready`
    stops = [("ready", None)] + [(p.name, p.green) for p in state.phases]
    row: list[Content | str | tuple[str, str]] = []
    for i, (name, green) in enumerate(stops):
        label = name if green is None else f"{name} {green:g}%"
        if i:
            row.append((" ── ", MUTED))
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
    return _lines([Content.assemble(*row), _phase_info(state), Content.styled(_description(state), MUTED)])


def _phase_info(state: CockpitState) -> Content:
    phase, nxt = state.phase, state.next_phase
    spent = format_duration(state.time_in_phase)
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
    one (the share of requests green served, from the access log).

    `width` is the room the panel has: the bars take what the labels leave (BAR_WIDTH when unknown).
    """
    cells = max(6, min(BAR_WIDTH, width - 38)) if width else BAR_WIDTH
    conf = state.green_configured
    configured = Content.assemble(
        ("configured ", "bold"), bar(conf, cells), f" {conf:g}% green · {100 - conf:g}% blue"
    )
    live_value = state.green_live
    if live_value is None:
        note: tuple[str, str] = (" unknown (balancers disagree or unreadable)", WARN)
        live = Content.assemble(("live       ", "bold"), bar(None, cells), note)
    else:
        differs = abs(live_value - conf) > 0.05
        note = ("  ≠ configured", WARN) if differs else ("  ✓ as configured", OK)
        live = Content.assemble(
            ("live       ", "bold"), bar(live_value, cells), f" {live_value:g}% green", note
        )
    seen = state.metrics.get("traffic_distribution")
    observed = Content.assemble(
        ("observed   ", "bold"),
        bar(seen, cells),
        (" – no requests counted yet", MUTED) if seen is None else f" {seen:.1f}% green",
        ("  (access log)", MUTED) if seen is not None else "",
    )
    legend = Content.assemble(("█", OK), (" green (new)  ", MUTED), ("█", BLUE), (" blue (old)", MUTED))
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
