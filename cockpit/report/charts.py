"""The report's charts: matplotlib (Agg backend, SVG output: no display, no external requests).

Each chart draws named metrics (the names the controller journals, cockpit/core/metric_names.py) over the phases
of the day: a shaded band per phase, labelled with its name, and a red dashed line at each rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.redact import redact_text
from cockpit.report.day import Band

Series = list[tuple[float, float | None]]


@dataclass(frozen=True)
class ChartSpec:
    key: str  # the file's stem
    title: str
    unit: str
    lines: tuple[tuple[str, str], ...]  # (metric, label), drawn when the journal has samples of it


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "split",
        "Green share",
        "%",
        (
            ("green_configured", "configured (the phase)"),
            ("split_green_live", "live (nginx)"),
            ("traffic_distribution", "observed (access log)"),
        ),
    ),
    ChartSpec(
        "error", "Error rate per side", "%", (("blue.error_rate", "blue"), ("green.error_rate", "green"))
    ),
    ChartSpec(
        "p95",
        "p95 latency per side",
        "ms",
        (("blue.response_time_p95", "blue"), ("green.response_time_p95", "green")),
    ),
    ChartSpec(
        "lag",
        "Sync lag both ways",
        "s",
        (("sync.blue_to_green.age_s", "blue → green"), ("sync.green_to_blue.age_s", "green → blue")),
    ),
    ChartSpec(
        "integrity",
        "Integrity score",
        "%",
        (("data_integrity_score", "full check"), ("data_integrity_touched_score", "rows the sync touched")),
    ),
)

COLORS = {"blue": "#1f77b4", "green": "#2ca02c"}
BAND_COLORS = ("#f0f0f0", "#e0e8f0")


def chart(
    path: Path, spec: ChartSpec, series: dict[str, Series], bands: Sequence[Band], rollbacks: Sequence[float]
) -> bool:
    """Draw `spec` from `series` into `path`; False (nothing written) when none of its metrics has a value."""
    lines: list[tuple[str, list[tuple[float, float]]]] = []
    for metric, label in spec.lines:
        points = [(t, v) for t, v in series.get(metric) or [] if v is not None]
        if points:
            lines.append((label, points))
    if not lines:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(pts[0][0] for _, pts in lines)
    t1 = max(pts[-1][0] for _, pts in lines)
    unit, scale = ("minutes", 60.0) if t1 - t0 >= 300 else ("seconds", 1.0)
    fig, ax = plt.subplots(figsize=(9, 3))
    for i, band in enumerate(bands):
        lo, hi = max(band.start, t0), min(band.end, t1)
        if hi <= lo:
            continue
        ax.axvspan((lo - t0) / scale, (hi - t0) / scale, color=BAND_COLORS[i % 2], zorder=0, linewidth=0)
        if hi - lo < 0.06 * (t1 - t0):  # too narrow to hold its name
            continue
        ax.text(
            (lo - t0) / scale,
            1.0,
            f" {redact_text(band.name)}",
            transform=ax.get_xaxis_transform(),
            fontsize="x-small",
            va="top",
            color="#555555",
        )
    for label, pts in lines:
        color = COLORS.get(label.split()[0])
        ax.plot(
            [(t - t0) / scale for t, _ in pts],
            [v for _, v in pts],
            label=redact_text(label),
            color=color,
            linewidth=1,
        )
    for m in rollbacks:
        if t0 <= m <= t1:
            ax.axvline((m - t0) / scale, color="red", linestyle="--", linewidth=0.8)
    ax.set_title(spec.title)
    ax.set_xlabel(unit)
    ax.set_ylabel(spec.unit)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return True
