"""Rules on metrics: phase gates, DEPLOYMENT_METRICS thresholds and ROLLBACK_CONDITIONS triggers. Pure logic."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cockpit.core.plan import Backup, Gate, Phase, Threshold, Trigger, format_duration
from cockpit.core.state import Alarm

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}

Metrics = Mapping[str, float | None]


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
