"""Rules on metrics: phase gates, DEPLOYMENT_METRICS thresholds, ROLLBACK_CONDITIONS triggers, and the sync's own
alarms (conflicts waiting, key headroom, a stall, a schema change, changes stranded on green, rows that differ
after the sync drained). Pure logic."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cockpit.core.plan import Backup, Gate, Phase, Sync, Threshold, Trigger, format_duration
from cockpit.core.state import Alarm

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}

Metrics = Mapping[str, float | None]


def holds(op: str, value: float, threshold: float) -> bool:
    """`value op threshold`, with a plan's comparison operator."""
    return _OPS[op](value, threshold)


def gate_label(g: Gate) -> str:
    return f"{g.metric} {g.op} {g.value:g}"


def check_gates(phase: Phase, metrics: Metrics) -> list[tuple[str, bool, str]]:
    """Each gate of `phase` with whether it is met now and why not."""
    out = []
    for g in phase.gates:
        value = metrics.get(g.metric)
        if value is None:
            met = g.missing == "pass"
            out.append((gate_label(g), met, "no data yet" + (" (counts as met)" if met else "")))
        else:
            met = _OPS[g.op](value, g.value)
            out.append((gate_label(g), met, f"now {value:.4g}"))
    return out


def backup_gate(spec: Backup, metrics: Metrics) -> tuple[str, bool, str] | None:
    """The first advance's gate when the plan requires a fresh backup of blue (`backup_age`, seconds)."""
    if not spec.required:
        return None
    label = f"backup of blue younger than {format_duration(float(spec.max_age))}"
    age = metrics.get("backup_age")
    if age is None:
        return label, False, "none taken yet: cockpit backup, or s"
    return label, age <= float(spec.max_age), f"newest is {format_duration(age)} old"


def threshold_alarms(thresholds: Mapping[str, Threshold], metrics: Metrics) -> list[Alarm]:
    """Metrics past their warning or critical level. A threshold on `x` applies to `x`, `blue.x` and `green.x`."""
    alarms: list[Alarm] = []
    for name, t in thresholds.items():
        for key in (name, f"blue.{name}", f"green.{name}"):
            value = metrics.get(key)
            if value is None:
                continue
            if t.critical is not None and value >= t.critical:
                alarms.append(
                    Alarm(
                        key,
                        "critical",
                        value,
                        t.critical,
                        f"{key} {value:.4g}{t.unit} >= critical {t.critical:g}{t.unit}",
                    )
                )
            elif t.warning is not None and value >= t.warning:
                alarms.append(
                    Alarm(
                        key,
                        "warning",
                        value,
                        t.warning,
                        f"{key} {value:.4g}{t.unit} >= warning {t.warning:g}{t.unit}",
                    )
                )
            elif t.min is not None and value < t.min:
                alarms.append(
                    Alarm(
                        key, "warning", value, t.min, f"{key} {value:.4g}{t.unit} < minimum {t.min:g}{t.unit}"
                    )
                )
    return alarms


@dataclass(frozen=True)
class Fired:
    trigger: Trigger
    value: float | None
    held_for: float

    @property
    def reason(self) -> str:
        t = self.trigger
        v = "no data" if self.value is None else f"{self.value:.4g}"
        return f"trigger {t.name}: {t.metric} {t.op} {t.threshold:g} for {self.held_for:.0f}s (now {v})"


class TriggerTracker:
    """Tracks how long each rollback trigger's condition has held; fires once it has held for its duration."""

    def __init__(self, triggers: list[Trigger]):
        self.triggers = triggers
        self._since: dict[str, float] = {}

    def reset(self) -> None:
        self._since.clear()

    def update(self, metrics: Metrics, now: float) -> tuple[list[Fired], list[Alarm]]:
        """Fired triggers, and the ones counting down (as alarms for the screen)."""
        fired: list[Fired] = []
        pending: list[Alarm] = []
        for t in self.triggers:
            value = metrics.get(t.metric)
            if value is None:
                if t.missing == "ignore":
                    self._since.pop(t.name, None)
                    continue
                if t.missing == "hold":
                    if t.name not in self._since:
                        continue
                    breached = True
                else:  # trigger: no data counts as breached
                    breached = True
            else:
                breached = _OPS[t.op](value, t.threshold)
            if not breached:
                self._since.pop(t.name, None)
                continue
            start = self._since.setdefault(t.name, now)
            held = now - start
            if held >= t.for_:
                fired.append(Fired(t, value, held))
            else:
                pending.append(
                    Alarm(
                        t.metric,
                        "trigger",
                        value,
                        t.threshold,
                        f"{t.name}: {t.metric} {t.op} {t.threshold:g}, rollback ({t.action}) in {t.for_ - held:.0f}s",
                    )
                )
        return fired, pending


# ------------------------------------------------------------------------------------------------ the sync's alarms
@dataclass(frozen=True)
class SyncFacts:
    """What the sync and the integrity watch say beyond the tick's figures."""

    problem: str | None = None  # why the sync is not moving: its last error, or a held table
    schema_changed: Mapping[str, str] = field(default_factory=dict)  # table -> what changed under the sync
    stranded: int = 0  # after a rollback: acknowledged changes still on green only
    # rows that differ after the sync drained: table -> (their keys as shown, how many)
    mismatched: Mapping[str, tuple[Sequence[str], int]] = field(default_factory=dict)


def schema_advice(tables: Sequence[str]) -> str:
    """What to do when the schema of `tables` changed under the sync."""
    names = ",".join(tables)
    return (
        "make the schema the same on both sides and run `cockpit sync install`, or re-seed from blue: "
        f"`cockpit sync copy --tables {names}`; then resume"
    )


def sync_alarms(spec: Sync, metrics: Metrics, facts: SyncFacts) -> list[Alarm]:
    """The sync's alarms: a conflict waiting (critical: an acknowledged write waits for a person), keys running
    out (warning under `sync.key_alarm`, critical under a tenth), a stall (critical: an error, or pending changes
    that do not go down), a schema change (critical: advances are held), changes stranded on green after a
    rollback, rows that differ after the sync drained (critical, naming the keys however few)."""
    alarms: list[Alarm] = []
    waiting = metrics.get("sync.conflicts_waiting")
    if waiting:
        n = int(waiting)
        alarms.append(
            Alarm(
                "sync.conflicts_waiting",
                "critical",
                waiting,
                0,
                f"{n} sync conflict{'s' * (n != 1)} waiting: `cockpit sync conflicts`, then "
                "`cockpit sync conflicts resolve ID --keep blue|green|both`",
            )
        )
    left = metrics.get("sync.keys_left_min")
    if left is not None and left < spec.key_alarm:
        critical = left < spec.key_alarm / 10
        alarms.append(
            Alarm(
                "sync.keys_left_min",
                "critical" if critical else "warning",
                left,
                spec.key_alarm / 10 if critical else spec.key_alarm,
                f"{int(left):,} keys left before green's ceiling in a table (`cockpit sync keys`)",
            )
        )
    if metrics.get("sync.stalled"):
        for_s = metrics.get("sync.stalled_s") or 0.0
        pending = sum(int(metrics.get(f"sync.{d}.pending") or 0) for d in ("blue_to_green", "green_to_blue"))
        why = facts.problem or f"{pending} changes pending, not going down for {format_duration(for_s)}"
        alarms.append(Alarm("sync.stalled", "critical", for_s, 0, f"sync stalled: {why}"))
    if facts.schema_changed:
        tables = sorted(facts.schema_changed)
        what = "; ".join(f"{t}: {facts.schema_changed[t]}" for t in tables)
        alarms.append(
            Alarm(
                "sync.schema_changed",
                "critical",
                float(len(tables)),
                0,
                f"schema changed under the sync ({what}): its changes are held and so are advances; "
                + schema_advice(tables),
            )
        )
    if facts.stranded:
        count = "changes (how many: green unreadable)" if facts.stranded < 0 else f"{facts.stranded} changes"
        alarms.append(
            Alarm(
                "sync.green_only_pending",
                "critical",
                float(facts.stranded),
                0,
                f"{count} still on green only after the rollback: the drain goes on, green is not stopped until it "
                "ends (`cockpit rollback --force` stops it anyway)",
            )
        )
    if facts.mismatched:
        total = sum(n for _keys, n in facts.mismatched.values())
        named = "; ".join(
            f"{t} " + ", ".join(keys) + (f" and {n - len(keys)} more" if n > len(keys) else "")
            for t, (keys, n) in sorted(facts.mismatched.items())
        )
        alarms.append(
            Alarm(
                "data_integrity_score",
                "critical",
                float(total),
                0,
                f"{total} row{'s' * (total != 1)} differ after the sync drained (changed behind its back): {named}; "
                "`cockpit integrity repair --prefer blue|green`",
            )
        )
    return alarms
