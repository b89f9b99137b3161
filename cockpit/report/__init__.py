"""The report of any Day 0, from its journal alone: Markdown, SVG charts and one self-contained HTML file.

Charts are drawn with matplotlib (Agg backend, SVG output: no display, no external requests); Markdown becomes
HTML with markdown-it-py (already installed with Textual). Every string written goes through cockpit.core.redact.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.journal import ActionRecord, Event, Journal, format_when
from cockpit.core.redact import redact, redact_text

# metric name fragments charted, in this order, each with its title
CHARTS: tuple[tuple[str, str], ...] = (
    ("split", "Green share (%)"),
    ("error", "Error rate"),
    ("p95", "p95 latency"),
    ("lag", "Sync lag"),
    ("integrity", "Integrity score"),
)


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    charts: list[Path] = field(default_factory=list)
    events: int = 0


def write_report(
    journal_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
) -> ReportPaths:
    """Read the journal (read-only) and write report.md, charts/*.svg and report.html into `out_dir`."""
    out = Path(out_dir)
    (out / "charts").mkdir(parents=True, exist_ok=True)
    with Journal(journal_path, readonly=True) as j:
        events = j.events_between(since, until)
        actions = [
            a
            for a in j.actions(limit=1_000_000)
            if (since is None or a.started >= since) and (until is None or a.started <= until)
        ]
        names = j.sample_names()
        series = {n: j.sample_series(n, since, until) for n in names}
    rollbacks = [a.started for a in actions if a.verb.startswith("rollback")]
    advances = [a.ended for a in actions if a.verb == "advance" and a.outcome == "ok" and a.ended is not None]
    charts: list[Path] = []
    for key, title in CHARTS:
        chosen = {n: s for n, s in series.items() if key in n and s}
        if chosen:
            path = out / "charts" / f"{key}.svg"
            _chart(path, title, chosen, rollbacks, advances)
            charts.append(path)
    md = _markdown(Path(journal_path), events, actions, charts, out) + _actions(actions)
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(_html(md, charts, out))
    return ReportPaths(markdown=md_path, html=html_path, charts=charts, events=len(events))


def _chart(
    path: Path,
    title: str,
    series: dict[str, list[tuple[float, float | None]]],
    marks: list[float],
    phases: list[float],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(s[0][0] for s in series.values())
    fig, ax = plt.subplots(figsize=(9, 3))
    for name, points in series.items():
        xs = [(t - t0) / 60 for t, v in points if v is not None]
        ys = [v for _, v in points if v is not None]
        ax.plot(xs, ys, label=redact_text(name), linewidth=1)
    for m in marks:  # rollbacks
        ax.axvline((m - t0) / 60, color="red", linestyle="--", linewidth=0.8)
    for m in phases:  # each phase advanced: a band boundary
        ax.axvline((m - t0) / 60, color="grey", linestyle=":", linewidth=0.8)
    ax.set_title(title)
    ax.set_xlabel("minutes")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def _cell(text: object) -> str:
    return redact_text(str(text)).replace("|", "\\|").replace("\n", " ")


def _markdown(
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


def _actions(actions: list[ActionRecord]) -> str:
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


def _html(md: str, charts: list[Path], out: Path) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md)
    for c in charts:  # inline every chart: the file makes no external request
        svg = c.read_text()
        svg = svg[svg.index("<svg") :]
        rel = re.escape(html.escape(c.relative_to(out).as_posix()))
        block = f'<div class="chart">{svg}</div>'
        body = re.sub(f'<img src="{rel}"[^>]*>', lambda _m: block, body)  # noqa: B023 (used at once)
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    return f'<!doctype html><html><head><meta charset="utf-8"><title>Day 0 report</title><style>{style}</style></head><body>{body}</body></html>\n'
