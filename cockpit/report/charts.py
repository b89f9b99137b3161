"""The report's charts: matplotlib (Agg backend, SVG output: no display, no external requests)."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.redact import redact_text


def chart(
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
