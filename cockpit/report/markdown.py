"""The report's Markdown: verdict, machine, charts, summaries, timeline and actions. Every string goes through
cockpit.core.redact."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.journal import ActionRecord, Event, format_when
from cockpit.core.redact import redact, redact_text


def _cell(text: object) -> str:
    return redact_text(str(text)).replace("|", "\\|").replace("\n", " ")


def markdown(
    journal: Path, events: list[Event], actions: list[ActionRecord], charts: list[Path], out: Path
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
    for title, pick in (
        ("Alarms", lambda e: e.kind.startswith("alarm")),
        ("Triggers and rollbacks", lambda e: "trigger" in e.kind or "rollback" in e.kind),
        ("Conflicts", lambda e: "conflict" in e.kind or "parked" in e.kind),
    ):
        rows = [e for e in events if pick(e)]
        lines += ["", f"## {title}", ""]
        lines += _table(rows) if rows else ["None."]
    lines += ["", "## Timeline", ""] + (_table(events) if events else ["No events."])
    return "\n".join(lines) + "\n"


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
    rows = ["| time | kind | actor | action | details |", "|---|---|---|---|---|"]
    for e in events:
        details = ", ".join(f"{k}={v}" for k, v in redact(e.payload).items())
        rows.append(
            f"| {format_when(e.ts)} | {_cell(e.kind)} | {_cell(e.actor)} | {_cell(e.action_id or '')} | "
            f"{_cell(details)} |"
        )
    return rows
