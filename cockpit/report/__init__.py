"""The report of any Day 0, from its journal alone: Markdown, SVG charts and one self-contained HTML file.

Charts are drawn with matplotlib (Agg backend, SVG output: no display, no external requests); Markdown becomes
HTML with markdown-it-py (already installed with Textual). Every string written goes through cockpit.core.redact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.journal import Journal
from cockpit.report.charts import CHARTS, chart
from cockpit.report.day import BEFORE, bands
from cockpit.report.markdown import actions_table, markdown
from cockpit.report.page import html_page


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
    start = min([e.ts for e in events] + [p[0][0] for p in series.values() if p], default=0.0)
    end = max([e.ts for e in events] + [p[-1][0] for p in series.values() if p], default=0.0)
    phases = bands(actions, start, end, first=BEFORE if since is None else "as the window opened")
    rollbacks = [a.started for a in actions if a.verb.startswith("rollback")]
    charts = [
        out / "charts" / f"{spec.key}.svg"
        for spec in CHARTS
        if chart(out / "charts" / f"{spec.key}.svg", spec, series, phases, rollbacks)
    ]
    md = markdown(Path(journal_path), events, actions, charts, out, series, phases) + actions_table(actions)
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(html_page(md, charts, out))
    return ReportPaths(markdown=md_path, html=html_path, charts=charts, events=len(events))
