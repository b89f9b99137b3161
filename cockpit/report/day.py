"""The shape of the day read from its actions: which phase held when (the charts' bands, the Phases table)."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.core.journal import ActionRecord

# what each ending verb leaves the day in (an advance leaves it in the phase it names)
AFTER = {
    "rollback": "rolled back (blue)",
    "finalize": "complete (green for good)",
    "abandon": "abandoned (blue)",
}
BEFORE = "before phase 1 (blue)"


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    name: str
    actor: str = ""
    reason: str = ""

    @property
    def seconds(self) -> float:
        return self.end - self.start


def bands(actions: list[ActionRecord], start: float, end: float, first: str = BEFORE) -> list[Band]:
    """One band per stretch between two changes of phase, from `start` to `end` (the report's window). A change
    is an advance, a rollback, finalize or abandon that ended ok; the first band is the one before them."""
    changes: list[tuple[float, str, ActionRecord]] = []
    for a in actions:
        if a.outcome != "ok" or a.ended is None:
            continue
        if a.verb == "advance":
            changes.append((a.ended, str(a.args.get("to") or a.args.get("phase") or "next phase"), a))
        elif a.verb.split("_")[0] in AFTER:
            changes.append((a.ended, AFTER[a.verb.split("_")[0]], a))
    changes.sort(key=lambda c: c[0])
    out: list[Band] = []
    at, name, who, why = start, first, "", ""
    for ts, to, a in changes:
        if ts > end:
            break
        if ts > at:
            out.append(Band(at, ts, name, who, why))
        at, name, who, why = max(ts, start), to, a.actor, a.reason
    out.append(Band(at, max(at, end), name, who, why))  # where the window ends (held 0 s if it ended there)
    return out
