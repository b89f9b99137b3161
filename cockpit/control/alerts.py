"""Alerts from what the drivers and the controller report (sync conflicts, stalls, schema changes, rows that
differ, changes stranded on green), gathered so that a storm is one alert with a count.

The first event of a kind waits `gather` seconds for the others of its burst and goes out with their count; later
ones go at most once per `every` seconds, as one alert. Which events alert, and at which level, is `KINDS`.
`note()` is called from any thread (the sync's, the integrity watch's); the controller sends what `due()` returns
from its tick, in a thread. Personal data (e-mails, CPF/CNPJ) is masked in what leaves the process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cockpit.core.plan import format_duration
from cockpit.drivers.integrity.report import mask

if TYPE_CHECKING:
    from cockpit.control.factory import Notifier
    from cockpit.core.journal import Journal

Level = Literal["info", "warning", "critical"]
Describe = Callable[[Mapping[str, Any]], str]


def _key(p: Mapping[str, Any]) -> str:
    return ", ".join(str(k) for k in p.get("key") or [])


def _conflict(p: Mapping[str, Any]) -> str:
    why = p.get("constraint") or p.get("policy") or p.get("kind")
    return (
        f"{p.get('table')} key ({_key(p)}): kept {p.get('winner')}, parked the {p.get('parked')} version ({why}); "
        "`cockpit sync conflicts` lists them, `cockpit sync conflicts resolve ID --keep blue|green|both` decides"
    )


def _mismatch(p: Mapping[str, Any]) -> str:
    parts = []
    for t in p.get("tables") or []:
        if t.get("diff_count"):
            keys = ", ".join("(" + ", ".join(str(k) for k in d["key"]) + ")" for d in t.get("diffs") or [])
            parts.append(f"{t['table']}: {t['diff_count']} rows ({keys})")
        elif t.get("note"):
            parts.append(f"{t['table']}: {t['note']}")
    return "; ".join(parts) + "; `cockpit integrity repair --prefer blue|green`"


# kind -> (level, what the alert is called, what one event says)
KINDS: dict[str, tuple[Level, str, Describe]] = {
    "sync.conflict": ("warning", "sync conflict parked", _conflict),
    "sync.schema_changed": (
        "critical",
        "schema changed under the sync: advances held",
        lambda p: f"{p.get('table')}: {p.get('change')}; {p.get('action')}",
    ),
    "sync.stalled": (
        "critical",
        "sync stalled",
        lambda p: str(p.get("error") or f"pending {p.get('pending')} for {p.get('for_s')}s"),
    ),
    "sync.revert_failed": (
        "critical",
        "sync could not revert a parked change",
        lambda p: f"{p.get('table')} key ({_key(p)}): {p.get('error')}",
    ),
    "integrity.mismatch": ("critical", "rows differ after the sync drained", _mismatch),
    "rollback.stranded": (
        "critical",
        "changes still on green only after the rollback",
        lambda p: (
            f"{p.get('green_only')} acknowledged changes not on blue yet: the drain goes on, green left "
            "running"
        ),
    ),
}


@dataclass(frozen=True)
class Alert:
    level: Level
    title: str
    text: str
    count: int  # events it stands for
    kind: str


@dataclass
class _Batch:
    first_at: float
    texts: list[str] = field(default_factory=list)
    count: int = 0


class Alerts:
    def __init__(self, plan_name: str, gather_s: float, every_s: float):
        self.plan_name = plan_name
        self.gather_s = gather_s
        self.every_s = every_s
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self._sent: dict[str, float] = {}  # kind -> when its last alert went

    def note(self, kind: str, payload: Mapping[str, Any], now: float) -> bool:
        """Count one event; False when its kind does not alert."""
        spec = KINDS.get(kind)
        if spec is None:
            return False
        text = mask(spec[2](payload))
        with self._lock:
            batch = self._batches.setdefault(kind, _Batch(now))
            batch.count += 1
            if len(batch.texts) < 3:  # the first few, word for word; the count says the rest
                batch.texts.append(text)
        return True

    def due(self, now: float) -> list[Alert]:
        """The alerts to send now (each batch once its gathering time and its kind's pace allow)."""
        out: list[Alert] = []
        with self._lock:
            for kind, batch in list(self._batches.items()):
                ready = max(
                    batch.first_at + self.gather_s, self._sent.get(kind, -self.every_s) + self.every_s
                )
                if now < ready:
                    continue
                del self._batches[kind]
                self._sent[kind] = now
                level, name, _describe = KINDS[kind]
                since = now - batch.first_at
                title = f"{self.plan_name}: {name}" + (
                    f" ({batch.count} in {format_duration(max(1.0, since))})" if batch.count > 1 else ""
                )
                more = batch.count - len(batch.texts)
                text = "\n".join(batch.texts) + (f"\n… and {more} more" if more > 0 else "")
                out.append(Alert(level, title, text, batch.count, kind))
        return out


async def send_alert(
    notifier: Notifier | None, alert: Alert, plan: str, journal: Journal, actor: str
) -> None:
    """Send one gathered alert through every channel (in a thread), and journal what was delivered."""
    if notifier is None:
        return
    results = await asyncio.to_thread(
        notifier.send, alert.level, alert.title, alert.text, {"plan": plan, "count": alert.count}
    )
    journal.event(
        "alert.sent",
        {
            "kind": alert.kind,
            "level": alert.level,
            "title": alert.title,
            "count": alert.count,
            "delivered": f"{sum(r.ok for r in results)}/{len(results)}",
            "errors": [f"{r.channel}: {r.error}" for r in results if not r.ok],
        },
        actor,
    )
