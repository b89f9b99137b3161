"""The report's Markdown: verdict, machine, charts, summaries, timeline and actions. Every string goes through
cockpit.core.redact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cockpit.core.journal import UNSHOWN, ActionRecord, Event, format_when
from cockpit.core.plan_reading import format_duration
from cockpit.core.redact import redact, redact_text
from cockpit.report.charts import Series
from cockpit.report.day import Band


def _cell(text: object) -> str:
    return redact_text(str(text)).replace("|", "\\|").replace("\n", " ")


def markdown(
    journal: Path,
    events: list[Event],
    actions: list[ActionRecord],
    charts: list[Path],
    out: Path,
    series: dict[str, Series],
    phases: list[Band],
) -> str:
    lines = [f"# Day 0 report: {_cell(journal.name)}", ""]
    if events:
        lines += [
            f"From {format_when(events[0].ts)} to {format_when(events[-1].ts)}, {len(events)} events.",
            "",
        ]
    rollbacks = [a for a in actions if a.verb.startswith("rollback")]
    failed = [a for a in actions if a.outcome not in (None, "ok")]
    raised = sum(1 for e in events if e.kind == "alarm.raised")
    lines += [
        "## Verdict",
        "",
        f"{len(rollbacks)} rollback(s), {len(failed)} action(s) not ok, {raised} alarm(s) raised.",
        "",
    ]
    if rollbacks:
        lines += ["### Rollbacks (time to 0 %)", ""]
        lines += [
            f"- {format_when(a.started)} by {_cell(a.actor)} ({_cell(a.reason)}): "
            + ("still open" if a.duration_s is None else f"{a.duration_s:.2f} s, {_cell(a.outcome)}")
            for a in rollbacks
        ]
        lines.append("")
    lines += _phases(phases)
    starts = [
        e for e in events if e.kind == "controller.start" and isinstance(e.payload.get("machine"), dict)
    ]
    if starts:
        lines += ["## Machine", ""]
        lines += [
            f"- {format_when(e.ts)}: " + ", ".join(f"{k} {_cell(v)}" for k, v in e.payload["machine"].items())
            for e in starts
        ]
        lines.append("")
    lines += ["## Charts", ""]
    lines += [f"![{c.stem}]({c.relative_to(out).as_posix()})" for c in charts] or ["No samples."]
    lines += ["", "## Alarms", ""] + _alarms([e for e in events if e.kind.startswith("alarm")])
    lines += ["", "## Triggers and rollbacks", ""]
    lines += _table([e for e in events if "trigger" in e.kind or "rollback" in e.kind]) or ["None."]
    lines += ["", "## Conflicts", ""] + _conflicts(
        [e for e in events if "conflict" in e.kind or "parked" in e.kind]
    )
    lines += ["", "## Backups", ""] + _backups([a for a in actions if a.verb == "backup"])
    lines += ["", "## Integrity checks", ""] + _integrity(events, actions, series)
    lines += ["", "## Timeline", ""] + (_table(events) or ["No events."])
    return "\n".join(lines) + "\n"


def _phases(phases: list[Band]) -> list[str]:
    if not phases:
        return []
    rows = ["## Phases", "", "| from | phase | held | by | why |", "|---|---|---|---|---|"]
    rows += [
        f"| {format_when(b.start)} | {_cell(b.name)} | {format_duration(b.seconds)} | {_cell(b.actor)} | "
        f"{_cell(b.reason)} |"
        for b in phases
    ]
    return [*rows, ""]


def _alarms(events: list[Event]) -> list[str]:
    """How often each metric alarmed, at which level, then every raise and clear."""
    raised = [e for e in events if e.kind == "alarm.raised"]
    if not events:
        return ["None."]
    counts = Counter(
        (str(e.payload.get("metric") or e.payload.get("rule") or "?"), str(e.payload.get("level") or "-"))
        for e in raised
    )
    rows = ["| metric | level | raised |", "|---|---|---|"]
    rows += [f"| {_cell(m)} | {_cell(level)} | {n} |" for (m, level), n in counts.most_common()]
    return [*rows, "", *_table(events)]


def _conflicts(events: list[Event]) -> list[str]:
    if not events:
        return ["None."]
    resolved = sum(1 for e in events if e.kind.endswith("resolved"))
    return [f"{len(events) - resolved} parked, {resolved} resolved.", "", *_table(events)]


def _backups(backups: list[ActionRecord]) -> list[str]:
    if not backups:
        return ["None in this window."]
    rows = ["| started | who | outcome | took | what |", "|---|---|---|---|---|"]
    for a in backups:
        took = "open" if a.duration_s is None else f"{a.duration_s:.1f} s"
        what = "; ".join(f"{s.name}: {s.detail}" if s.detail else s.name for s in a.steps)
        rows.append(
            f"| {format_when(a.started)} | {_cell(a.actor)} | {_cell(a.outcome or 'open')} | {took} | {_cell(what)} |"
        )
    return rows


def _integrity(events: list[Event], actions: list[ActionRecord], series: dict[str, Series]) -> list[str]:
    """The full checks that ended in the window (their end times are journaled with each sample), the lowest
    and the last score, the mismatches raised and the repairs run."""
    scores = [(t, v) for t, v in series.get("data_integrity_score", []) if v is not None]
    ends = {v for _, v in series.get("data_integrity_checked_at", []) if v is not None}
    mismatches = [e for e in events if e.kind == "integrity.mismatch"]
    repairs = [a for a in actions if a.verb == "repair"]
    if not scores and not mismatches and not repairs:
        return ["No integrity check in this window."]
    rows = [f"{len(ends)} full check(s) ended, {len(mismatches)} mismatch(es), {len(repairs)} repair(s)."]
    if scores:
        low_t, low = min(scores, key=lambda p: p[1])
        rows += [
            "",
            f"- lowest score {low:g} % at {format_when(low_t)}",
            f"- last score {scores[-1][1]:g} % at {format_when(scores[-1][0])}",
        ]
    if mismatches:
        rows += ["", *_table(mismatches)]
    return rows


def actions_table(actions: list[ActionRecord]) -> str:
    lines = ["", "## Actions", ""]
    if not actions:
        return "\n".join([*lines, "None.", ""])
    lines += ["| started | action | who | why | outcome | took | steps |", "|---|---|---|---|---|---|---|"]
    for a in actions:
        took = "open" if a.duration_s is None else f"{a.duration_s:.1f} s"
        steps = "; ".join(
            f"{s.name} {s.status}" + ("" if s.duration_s is None else f" {s.duration_s:.2f} s")
            for s in a.steps
        )
        lines.append(
            f"| {format_when(a.started)} | {_cell(a.verb)} | {_cell(a.actor)} | {_cell(a.reason)} | "
            f"{_cell(a.outcome or '')} | {took} | {_cell(steps)} |"
        )
    return "\n".join(lines) + "\n"


def _table(events: list[Event]) -> list[str]:
    """The events as a table; empty (no header) when there are none."""
    if not events:
        return []
    rows = ["| time | kind | actor | action | details |", "|---|---|---|---|---|"]
    for e in events:
        details = ", ".join(f"{k}={v}" for k, v in redact(e.payload).items() if k not in UNSHOWN)
        rows.append(
            f"| {format_when(e.ts)} | {_cell(e.kind)} | {_cell(e.actor)} | {_cell(e.action_id or '')} | "
            f"{_cell(details)} |"
        )
    return rows
