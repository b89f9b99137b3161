"""The live figures of a snapshot: sync lag, traffic per side, system and database health, alarms, and a short trend.

Pure functions of a CockpitState and the plan's thresholds. A figure the snapshot does not have is shown as "–"
(no data yet), never as 0. Each figure is coloured by its level: `ok`, `warning` or `critical` from the plan's
`metrics` thresholds (and `critical` while a rollback trigger's condition holds on it), `missing` without data,
`plain` when the plan sets no threshold. A level is the span style `.metric--LEVEL`, which Textual resolves to the
component class of the panel drawing it (panels.LevelPanel), so the colours live in themes/cockpit.tcss.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from textual.content import Content

from cockpit.core.plan import Plan, Threshold, Trigger, format_duration
from cockpit.core.state import Alarm, CockpitState

MISSING = "–"
LEVELS = ("ok", "warning", "critical", "missing", "plain", "head")
TRIGGER_TAG = "bold reverse $error"  # a component class cannot reverse (Textual's visual styles drop it)
DIRECTIONS = (("blue_to_green", "blue→green"), ("green_to_blue", "green→blue"))
SIDES = ("blue", "green")
LABEL, VALUE = 12, 9  # the label and value columns of the traffic and sync tables
COLUMN = 15  # one health cell, three a line
GAP = 2  # between the two columns of the panel when it is wide enough for both
SPARK = "▁▂▃▄▅▆▇█"
TREND_CELLS = 24
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ALARM_RANK = {"trigger": 0, "critical": 1, "warning": 2}


# ------------------------------------------------------------------------------------------------ levels
class Levels:
    """How alarming a value of a metric is, from the plan's thresholds and rollback triggers."""

    def __init__(self, thresholds: Mapping[str, Threshold], triggers: Iterable[Trigger] = ()):
        self.thresholds = thresholds
        self.triggers: dict[str, list[Trigger]] = {}
        for t in triggers:
            self.triggers.setdefault(t.metric, []).append(t)

    @classmethod
    def of(cls, plan: Plan) -> Levels:
        return cls(plan.metrics, plan.rollback.triggers)

    def threshold(self, key: str) -> Threshold | None:
        """The threshold on `key`; one on `x` applies to `x`, `blue.x` and `green.x` (as the controller's alarms)."""
        if key in self.thresholds:
            return self.thresholds[key]
        side, _, name = key.partition(".")
        return self.thresholds.get(name) if side in SIDES else None

    def level(self, key: str, value: float | None) -> str:
        if value is None:
            return "missing"
        if any(_OPS[t.op](value, t.threshold) for t in self.triggers.get(key, ())):
            return "critical"
        t = self.threshold(key)
        if t is None:
            return "plain"
        if t.critical is not None and value >= t.critical:
            return "critical"
        if t.warning is not None and value >= t.warning:
            return "warning"
        if t.min is not None and value < t.min:
            return "warning"
        return "ok"


# ------------------------------------------------------------------------------------------------ numbers
def number(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    return MISSING if value is None else f"{value:{fmt}}{unit}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def _fig(text: str, level: str) -> Content:
    return Content(text) if level == "plain" else Content.styled(text, f".metric--{level}")


def _head(title: str, *columns: str, note: Content | str = "") -> Content:
    return Content.assemble(
        _fig(f"{title:<{LABEL + 1}}" + "".join(f"{c:>{VALUE}}" for c in columns), "head"), note
    )


# ------------------------------------------------------------------------------------------------ sources
# The controller's name for each source (cockpit.core.state.CockpitState.sources): the balancers' live split, the
# sync's lag, and each metrics source by its class name (lower case, no leading underscore).
SOURCE_TRAFFIC, SOURCE_SYNC, SOURCE_ACCESS_LOG = "traffic", "sync", "accesslogsource"
SOURCE_OF = {
    "cpu_usage": "systemmetrics",
    "memory_usage": "systemmetrics",
    "disk_usage": "systemmetrics",
    "green.db_up": "databasemetrics",
    "green.query_execution_time": "databasemetrics",
    "connection_pool_usage": "databasemetrics",
    "cache_hit_ratio": "databasemetrics",
    "green.db_connection_failure_rate": "databasemetrics",
    "backup_age": "bluebackup",
    "data_integrity_score": "integritywatch",
    "data_integrity_touched_score": "integritywatch",
}
STALE_AFTER_S = 10.0  # a source silent for longer is greyed, with its age


def stale_age(state: CockpitState, source: str) -> float | None:
    """How long `source` has been silent, when that is long enough to grey what it last said; else None."""
    at = state.sources.get(source)
    if at is None:
        return None
    silent = state.now - at
    return silent if silent > STALE_AFTER_S else None


def stale_note(silent: float | None) -> Content:
    return (
        Content("") if silent is None else Content.styled(f"  stale: {age(silent)} old", ".metric--missing")
    )


def window(state: CockpitState, key: str = "access_log.window_s") -> str:
    """`last 30s`: the window a figure covers, as its source says (blank when it does not say)."""
    seconds = state.metrics.get(key)
    return "" if seconds is None else f"last {format_duration(seconds)}"


# ------------------------------------------------------------------------------------------------ sections
def sync_lines(state: CockpitState, levels: Levels) -> list[Content]:
    """Lag per direction: age of the oldest change not applied (coloured by `sync_lag`) and how many wait."""
    silent = stale_age(state, SOURCE_SYNC)
    lines = [_head("Sync lag", "age", "pending", note=stale_note(silent))]
    for key, label in DIRECTIONS:
        lag = state.lag.get(key)
        age_s = None if lag is None else lag.age_s
        pending = None if lag is None else lag.pending
        pend_level = "missing" if pending is None else "plain" if pending else "missing"
        lines.append(
            Content.assemble(
                f" {label:<{LABEL}}",
                _fig(f"{age(age_s):>{VALUE}}", "missing" if silent else levels.level("sync_lag", age_s)),
                _fig(f"{number(pending, 'd'):>{VALUE}}", "missing" if silent else pend_level),
            )
        )
    return lines + sync_health_lines(state)


def sync_health_lines(state: CockpitState) -> list[Content]:
    """Conflicts waiting, the fewest keys left and changes stranded on green, when the sync reports them;
    coloured by the controller's alarm on each (ok without one)."""
    raised = {a.metric: a.level for a in state.alarms}

    def line(label: str, text: str, metric: str) -> Content:
        return Content.assemble(f" {label:<{LABEL}}", _fig(f"{text:>{VALUE}}", raised.get(metric, "ok")))

    out = []
    waiting = state.metrics.get("sync.conflicts_waiting")
    if waiting is not None:
        out.append(line("conflicts", f"{int(waiting)}", "sync.conflicts_waiting"))
    left = state.metrics.get("sync.keys_left_min")
    if left is not None:
        shown = count(int(left)) if left < 1e9 else f"{left:.1e}"
        out.append(line("keys left", shown, "sync.keys_left_min"))
    if state.stranded is not None:
        n = state.stranded.green_only
        out.append(line("green only", "?" if n < 0 else f"{n}", "sync.green_only_pending"))
    return out


def count(n: int | None) -> str:
    """Rows in at most 6 cells: 9,999 / 523k / 1.05M."""
    if n is None:
        return MISSING
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.2f}M"


COPY_TABLES = 5  # table lines of a copy under way (the ones with the most left first)


def copy_lines(state: CockpitState) -> list[Content]:
    """The initial copy: per table rows done, % and time left while it runs; one line once it has ended."""
    view = state.copy
    if view is None:
        return []
    if view.state != "running":
        level = "ok" if view.state == "done" else "critical"
        text = (
            f"{count(view.rows_done)} rows in {age(view.seconds)}" if view.state == "done" else view.message
        )
        return [_fig(f"{'Initial copy':<{LABEL + 1}}", "head") + _fig(f"{view.state}: {text}"[:60], level)]
    eta = "?" if view.eta_s is None else age(view.eta_s)
    lines = [_head("Initial copy", "rows", "%", "ETA")]
    left = sorted(view.tables, key=lambda t: (t.done, -(t.rows_total - t.rows_done)))
    for t in left[:COPY_TABLES]:
        pct = 100.0 * t.rows_done / t.rows_total if t.rows_total else 100.0
        lines.append(
            Content.assemble(
                f" {t.table[:LABEL]:<{LABEL}}",
                f"{count(t.rows_done):>{VALUE}}",
                f"{pct:>{VALUE - 1}.0f}%",
                _fig(
                    f"{'done' if t.done else MISSING if t.eta_s is None else age(t.eta_s):>{VALUE}}",
                    "ok" if t.done else "plain",
                ),
            )
        )
    total_pct = 100.0 * view.rows_done / view.rows_total if view.rows_total else 0.0
    lines.append(
        Content.assemble(
            _fig(f" {'all':<{LABEL}}", "head"),
            f"{count(view.rows_done):>{VALUE}}",
            f"{total_pct:>{VALUE - 1}.0f}%",
            f"{eta:>{VALUE}}",
            Content.styled(f"  {count(int(view.rows_per_s))} rows/s", "$text-muted"),
        )
    )
    return lines


def traffic_lines(state: CockpitState, levels: Levels) -> list[Content]:
    """Blue | green from the access log over its window (said in the heading): req/s (and the total), error %,
    p95 ms."""
    m = state.metrics
    silent = stale_age(state, SOURCE_ACCESS_LOG)
    span = window(state)
    lines = [
        _head(
            "Traffic",
            "blue",
            "green",
            note=Content.assemble(
                Content.styled(f"  {span}" if span else "", "$text-muted"), stale_note(silent)
            ),
        )
    ]
    for label, name, fmt in (
        ("req/s", "rps", ".1f"),
        ("error %", "error_rate", ".2f"),
        ("p95 ms", "response_time_p95", ".0f"),
    ):
        cells = []
        for side in SIDES:
            key = f"{side}.{name}"
            level = "missing" if silent else levels.level(key, m.get(key))
            cells.append(_fig(f"{number(m.get(key), fmt):>{VALUE}}", level))
        if name == "rps":
            total = m.get("throughput")
            cells += [
                Content.styled("  total ", "$text-muted"),
                _fig(number(total, ".1f"), levels.level("throughput", total)),
            ]
        lines.append(Content.assemble(f" {label:<{LABEL}}", *cells))
    return lines


def _pct(v: float | None) -> str:
    return number(v, ".4g", "%")


def _ms(v: float | None) -> str:
    return number(v, ".1f", "ms")


def _up(v: float | None) -> str:
    return MISSING if v is None else "up" if v >= 1 else "DOWN"


HEALTH: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("cpu", "cpu_usage", _pct),
    ("memory", "memory_usage", _pct),
    ("disk", "disk_usage", _pct),
    ("green db", "green.db_up", _up),
    ("query", "green.query_execution_time", _ms),
    ("pool", "connection_pool_usage", _pct),
    ("cache hit", "cache_hit_ratio", _pct),
    ("conn fail", "green.db_connection_failure_rate", _pct),
    ("backup", "backup_age", lambda v: MISSING if v is None else f"{age(v)} ago"),
)
# What each integrity figure covers: the periodic full comparison, and the rollback's check of the rows the sync
# touched (a superset of what changed since the split began, not the whole database). Kept apart, never merged.
INTEGRITY: tuple[tuple[str, str, str], ...] = (
    ("full check", "data_integrity_score", "data_integrity_checked_at"),
    ("touched rows", "data_integrity_touched_score", "data_integrity_touched_at"),
)


def health_lines(state: CockpitState, levels: Levels) -> list[Content]:
    """System and database health, three figures a line."""
    lines = [_fig("System & database", "head")]
    cells: list[Content] = []
    silent: dict[str, float] = {}
    for label, key, show in HEALTH:
        value = state.metrics.get(key)
        quiet = stale_age(state, SOURCE_OF.get(key, ""))
        if quiet is not None:
            silent[SOURCE_OF[key]] = quiet
        level = (
            "missing"
            if quiet is not None
            else ("missing" if value is None else "ok" if value >= 1 else "critical")
            if key == "green.db_up"
            else levels.level(key, value)
        )
        cell = Content.assemble((f"{label} ", "$text-muted"), _fig(show(value), level))
        cells.append(cell.pad_right(max(1, COLUMN - cell.cell_length)))
    for i in range(0, len(cells), 3):
        lines.append(Content.assemble(" ", *cells[i : i + 3]).rstrip())
    lines.append(integrity_line(state, levels))
    if silent:
        said = ", ".join(
            f"{name.removesuffix('metrics') or name} {age(a)}" for name, a in sorted(silent.items())
        )
        lines.append(_fig(f" stale: {said} old", "missing"))
    return lines


def integrity_line(state: CockpitState, levels: Levels) -> Content:
    """`integrity  full check 100% 4m ago · touched rows 99.5% 1m ago`: each score with what it covers."""
    parts: list[Content] = []
    for label, key, at_key in INTEGRITY:
        value = state.metrics.get(key)
        if value is None and key != "data_integrity_score":
            continue  # no rollback has checked the touched rows: nothing to say
        at = state.metrics.get(at_key)
        when = "" if at is None else f" {age(max(0.0, state.now - at))} ago"
        quiet = stale_age(state, SOURCE_OF[key]) is not None
        parts.append(
            Content.assemble(
                (f"{label} ", "$text-muted"),
                _fig(_pct(value), "missing" if quiet else levels.level("data_integrity_score", value)),
                (when, "$text-muted"),
            )
        )
    return Content.assemble((" integrity ", "$text-muted"), Content(" · ").join(parts))


# ------------------------------------------------------------------------------------------------ trend
class Trend:
    """Green error rate and p95 over the last minutes, one bucket of `step_s` seconds (the worst value seen in it)
    per cell; kept in memory from successive snapshots, at most `window_s / step_s` buckets."""

    KEYS = ("green.error_rate", "green.response_time_p95")

    def __init__(self, window_s: float = 240.0, step_s: float = 10.0):
        self.step_s = step_s
        self.window_s = window_s
        self.buckets: deque[tuple[int, dict[str, float | None]]] = deque(
            maxlen=max(1, int(window_s / step_s))
        )

    def add(self, state: CockpitState) -> None:
        bucket = int(state.now // self.step_s)
        values = {k: state.metrics.get(k) for k in self.KEYS}
        if self.buckets and bucket < self.buckets[-1][0]:
            self.buckets.clear()  # the clock (or the source) went back: start again
        if self.buckets and self.buckets[-1][0] == bucket:
            last = self.buckets[-1][1]
            for k, v in values.items():
                if v is not None and (last[k] is None or v > last[k]):  # type: ignore[operator]
                    last[k] = v
            return
        self.buckets.append((bucket, values))

    def series(self, key: str, last_bucket: int, cells: int) -> list[float | None]:
        """The last `cells` buckets up to `last_bucket`, None where no snapshot (or no value) fell."""
        by_bucket = {b: v.get(key) for b, v in self.buckets}
        return [by_bucket.get(b) for b in range(last_bucket - cells + 1, last_bucket + 1)]


def sparkline(values: Sequence[float | None], key: str, levels: Levels) -> Content:
    """One cell per value, scaled to the largest one; a gap where there is none."""
    top = max((v for v in values if v is not None), default=0.0)
    parts: list[Content] = []
    for v in values:
        if v is None:
            parts.append(Content(" "))
            continue
        i = 0 if top <= 0 else min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))
        parts.append(_fig(SPARK[i], levels.level(key, v)))
    return Content.assemble(*parts)


def trend_lines(state: CockpitState, trend: Trend, levels: Levels) -> list[Content]:
    cells = min(TREND_CELLS, trend.buckets.maxlen or TREND_CELLS)
    minutes = format_duration(cells * trend.step_s)
    lines = [_fig(f"Green trend, last {minutes}", "head")]
    last = int(state.now // trend.step_s)
    for label, key, fmt in (
        ("error %", "green.error_rate", ".2f"),
        ("p95 ms", "green.response_time_p95", ".0f"),
    ):
        values = trend.series(key, last, cells)
        top = max((v for v in values if v is not None), default=None)
        lines.append(
            Content.assemble(
                f" {label:<9}", sparkline(values, key, levels), (f" max {number(top, fmt)}", "$text-muted")
            )
        )
    return lines


# ------------------------------------------------------------------------------------------------ panel
def metrics(state: CockpitState, levels: Levels, trend: Trend | None = None, width: int = 0) -> Content:
    """The metrics panel: traffic and sync, then health and the trend; side by side when `width` has room."""
    left = traffic_lines(state, levels) + sync_lines(state, levels) + copy_lines(state)
    right = health_lines(state, levels)
    if trend is not None:
        right += trend_lines(state, trend, levels)
    left_width = max(line.cell_length for line in left)
    if width and left_width + GAP + max(line.cell_length for line in right) <= width:
        rows = []
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else Content("")
            b = right[i] if i < len(right) else Content("")
            rows.append(Content.assemble(a.pad_right(left_width + GAP - a.cell_length), b).rstrip())
        return Content("\n").join(rows)
    return Content("\n").join(left + right)


# ------------------------------------------------------------------------------------------------ alarms
def sorted_alarms(alarms: Iterable[Alarm]) -> list[Alarm]:
    """Rollback triggers counting down first, then critical, then warnings (stable within a level)."""
    return sorted(alarms, key=lambda a: _ALARM_RANK.get(a.level, 3))


def alarms(state: CockpitState, limit: int = 4) -> Content:
    """Every alarm of the snapshot, one a line, the worst first; at most `limit` lines (the last says how many
    more). Empty when all is well."""
    ordered = sorted_alarms(state.alarms)
    if len(ordered) > limit:
        shown, rest = ordered[: limit - 1], ordered[limit - 1 :]
    else:
        shown, rest = ordered, []
    lines: list[Content] = []
    for a in shown:
        if a.level == "trigger":
            lines.append(Content.assemble((" ROLLBACK ", TRIGGER_TAG), " ", _fig(a.message, "critical")))
        else:
            tag = "CRITICAL" if a.level == "critical" else "warning "
            level = a.level if a.level in ("critical", "warning") else "plain"
            lines.append(Content.assemble(_fig(f" {tag} ", level), " ", a.message))
    if rest:
        worst = "critical" if any(a.level != "warning" for a in rest) else "warning"
        lines.append(_fig(f" … {len(rest)} more ({', '.join(sorted({a.metric for a in rest}))})", worst))
    return Content("\n").join(lines)
