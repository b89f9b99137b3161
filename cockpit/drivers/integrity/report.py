"""What an integrity check found: per table counts, segments and the rows that differ, masked for display."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 20
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_CNPJ = re.compile(r"\b\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?(\d{2})\b")
_CPF = re.compile(r"\b\d{3}\.?\d{3}\.?\d{3}-?(\d{2})\b")


def human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e3:.1f} kB" if n < 1_000_000 else f"{n / 1e6:.1f} MB"


def mask(text: str) -> str:
    """E-mails, CNPJs and CPFs in `text`, masked (LGPD): `a***@x.com`, `**.***.***/****-12`, `***.***.***-12`."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)
    text = _CNPJ.sub(lambda m: f"**.***.***/****-{m.group(1)}", text)
    return _CPF.sub(lambda m: f"***.***.***-{m.group(1)}", text)


@dataclass(frozen=True)
class RowDiff:
    key: tuple[Any, ...]
    kind: str  # missing_on_green | missing_on_blue | different
    columns: tuple[str, ...] = ()
    blue: tuple[Any, ...] | None = None
    green: tuple[Any, ...] | None = None

    def describe(self, unmask: bool = False) -> str:
        show = (lambda v: repr(v)) if unmask else (lambda v: mask(repr(v)))
        key = ", ".join(show(k) for k in self.key)
        if self.kind != "different":
            return f"({key}) {self.kind.replace('_', ' ')}"
        return f"({key}) differs in {', '.join(self.columns)}"


@dataclass(frozen=True)
class TableIntegrity:
    table: str
    blue_rows: int
    green_rows: int
    segments: int
    mismatched_segments: int
    diffs: tuple[RowDiff, ...] = ()
    compared: int = 0  # distinct keys compared
    note: str = ""
    bytes: int = 0  # moved to and from green for this table (see `green`)

    @property
    def ok(self) -> bool:
        # With a key, the row-by-row comparison decides; the counts, read a moment apart while the app writes, are
        # only shown. Without a key, counts are all there is (a differing count sets `note`).
        return not self.diffs and not self.note


@dataclass(frozen=True)
class IntegrityReport:
    tables: tuple[TableIntegrity, ...]
    duration_s: float
    settled_keys: int = 0  # keys that differed at first and caught up (in flight in the sync)
    notes: tuple[str, ...] = field(default_factory=tuple)
    bytes: int = 0  # moved to and from green: queries sent, rows received (see `green`)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def compared(self) -> int:
        return sum(t.compared for t in self.tables)

    def table(self, name: str) -> TableIntegrity:
        return next(t for t in self.tables if t.table == name)

    @property
    def score(self) -> float:
        """% of compared rows that match (100 when nothing could differ)."""
        bad = sum(len(t.diffs) for t in self.tables)
        total = self.compared
        return 100.0 if total == 0 else round(100.0 * (total - bad) / total, 4)

    def summary(self, unmask: bool = False) -> str:
        lines = []
        for t in self.tables:
            head = (
                f"{t.table}: blue {t.blue_rows} rows, green {t.green_rows} rows, "
                f"{t.segments} segments, {t.mismatched_segments} mismatched"
            )
            lines.append(("ok   " if t.ok else "DIFF ") + head + (f" ({t.note})" if t.note else ""))
            for d in t.diffs[:MAX_LISTED]:
                lines.append(f"       {d.describe(unmask)}")
            if len(t.diffs) > MAX_LISTED:
                lines.append(f"       ... and {len(t.diffs) - MAX_LISTED} more")
        lines.append(
            f"score {self.score:g}% over {self.compared} rows in {self.duration_s:.2f}s, "
            f"{human_bytes(self.bytes)} moved"
            + (
                f"; {self.settled_keys} rows caught up while checking (in flight)"
                if self.settled_keys
                else ""
            )
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self, unmask: bool = False) -> dict[str, Any]:
        show = (lambda v: v) if unmask else (lambda v: mask(str(v)) if isinstance(v, str) else v)
        return {
            "ok": self.ok,
            "score": self.score,
            "compared": self.compared,
            "duration_s": round(self.duration_s, 3),
            "bytes": self.bytes,
            "settled_keys": self.settled_keys,
            "notes": list(self.notes),
            "tables": [
                {
                    "table": t.table,
                    "ok": t.ok,
                    "blue_rows": t.blue_rows,
                    "green_rows": t.green_rows,
                    "segments": t.segments,
                    "mismatched_segments": t.mismatched_segments,
                    "bytes": t.bytes,
                    "note": t.note or None,
                    "diffs": [
                        {"key": [show(k) for k in d.key], "kind": d.kind, "columns": list(d.columns)}
                        for d in t.diffs[:MAX_LISTED]
                    ],
                    "diff_count": len(t.diffs),
                }
                for t in self.tables
            ],
        }
