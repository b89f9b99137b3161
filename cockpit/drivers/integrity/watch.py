"""`IntegrityWatch`: the check in a thread of its own, every `interval_s`, as a metrics source."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from cockpit.drivers.integrity.check import check
from cockpit.drivers.integrity.report import IntegrityReport
from cockpit.drivers.sync.schema import TableMap


class IntegrityWatch:
    """Runs `check` every `interval_s` in its own thread and gives the last score as a metrics source.

    The controller reads `poll()` once a tick (never waits for a check) and the rollback's integrity step calls
    `check_now()`. Differences are looked at again after `settle()` (the sync draining, bounded).
    """

    def __init__(
        self,
        sqlite_path: str,
        pg_url: str,
        tables: list[str] | None,
        *,
        casts: list[Any] | None = None,
        interval_s: float = 60.0,
        settle: Callable[[], object] | None = None,
        on_report: Callable[[IntegrityReport], object] | None = None,
    ):
        self.sqlite_path = sqlite_path
        self.pg_url = pg_url
        self.tables = tables
        self.casts = casts
        self.interval_s = interval_s
        self.settle = settle
        self.on_report = on_report
        self.last: IntegrityReport | None = None  # the last full check (the `data_integrity_score` metric)
        self.last_touched: IntegrityReport | None = None  # the last touched-rows check (the rollback's step)
        self._full_at: float | None = None  # epoch seconds of each
        self._touched_at: float | None = None
        self.error: str | None = None
        self._mappings: dict[str, TableMap] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._due = 0.0

    def mappings(self) -> dict[str, TableMap]:
        if self._mappings is None:
            from cockpit.drivers.sync.schema import read_mapping

            conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
            try:
                self._mappings = read_mapping(conn, tables=self.tables, casts=self.casts)
            finally:
                conn.close()
        return self._mappings

    def check_now(self, touched_only: bool = False) -> IntegrityReport:
        """A full comparison; with `touched_only`, the counts and the rows the sync has carried either way since
        capture was installed (the rollback's step: DESIGN's "rows touched since the split began", a superset)."""
        with self._lock:  # one check at a time
            try:
                only = self._touched() if touched_only else None
                report = check(
                    self.sqlite_path,
                    self.pg_url,
                    self.mappings(),
                    settle=self.settle,
                    only=only,
                    casts=self.casts,
                )
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                raise
            # a touched-rows check covers less: it never stands in for the full check's score
            if touched_only:
                self.last_touched, self._touched_at = report, time.time()
            else:
                self.last, self._full_at = report, time.time()
            self.error = None
            if self.on_report is not None:
                self.on_report(report)
            return report

    def _touched(self) -> dict[str, set[tuple[Any, ...]]]:
        from cockpit.drivers.sync.capture import touched_keys

        conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
        try:
            return touched_keys(conn)
        finally:
            conn.close()

    def poll(self) -> dict[str, float | None]:
        now = time.monotonic()
        if now >= self._due and (self._thread is None or not self._thread.is_alive()):
            self._due = now + self.interval_s
            self._thread = threading.Thread(target=self._background, name="cockpit-integrity", daemon=True)
            self._thread.start()
        out: dict[str, float | None] = {}
        if self.last is not None:
            out["data_integrity_score"] = self.last.score
            out["data_integrity_checked_at"] = self._full_at
        if self.last_touched is not None:
            out["data_integrity_touched_score"] = self.last_touched.score
            out["data_integrity_touched_at"] = self._touched_at
        return out

    def _background(self) -> None:
        try:
            self.check_now()
        except Exception:  # kept in self.error; the score stays missing rather than wrong
            pass

    def stop(self) -> None:
        """A check under way only reads; it is not waited for long (a one-shot CLI action must not hang on it)."""
        if self._thread is not None:
            self._thread.join(2)
