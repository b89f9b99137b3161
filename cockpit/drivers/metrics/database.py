"""Database health of green (PostgreSQL/Neon), probed by the cockpit itself once a tick.

Each poll opens a fresh connection (that is what a cold Neon or a broken network hurts first), runs a small query
and reads the server's own statistics:

- `green.db_connection_failure_rate`: % of failed probe connections over the window (ROLLBACK_CONDITIONS'
  database_connection_failure);
- `green.query_execution_time`: the probe query's round trip in ms (DEPLOYMENT_METRICS query_execution_time);
- `connection_pool_usage`: backends in use as % of `max_connections`;
- `cache_hit_ratio`: buffer hits as % of block reads since the previous poll.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping

import psycopg


class DatabaseMetrics:
    def __init__(self, url: str, *, side: str = "green", window_s: float = 60.0, connect_timeout: int = 5):
        self.url = url
        self.side = side
        self.window_s = window_s
        self.connect_timeout = connect_timeout
        self._attempts: deque[tuple[float, bool]] = deque()
        self._blocks: tuple[int, int] | None = None

    def poll(self) -> Mapping[str, float | None]:
        now = time.monotonic()
        out: dict[str, float | None] = {}
        try:
            t0 = time.perf_counter()
            with psycopg.connect(self.url, connect_timeout=self.connect_timeout, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                    " current_setting('max_connections')::int,"
                    " blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
                ).fetchone()
                elapsed_ms = (time.perf_counter() - t0) * 1000
        except psycopg.Error:
            self._record(now, ok=False)
            out[f"{self.side}.db_connection_failure_rate"] = self._failure_rate(now)
            out[f"{self.side}.db_up"] = 0.0
            return out
        self._record(now, ok=True)
        backends, max_conn, hit, read = row if row else (0, 1, 0, 0)
        out[f"{self.side}.db_connection_failure_rate"] = self._failure_rate(now)
        out[f"{self.side}.db_up"] = 1.0
        out[f"{self.side}.query_execution_time"] = round(elapsed_ms, 3)
        out["connection_pool_usage"] = round(100.0 * backends / max(1, max_conn), 2)
        if self._blocks is not None:
            d_hit, d_read = hit - self._blocks[0], read - self._blocks[1]
            if d_hit + d_read > 0:
                out["cache_hit_ratio"] = round(100.0 * d_hit / (d_hit + d_read), 2)
        self._blocks = (hit, read)
        return out

    def _record(self, now: float, ok: bool) -> None:
        self._attempts.append((now, ok))
        while self._attempts and self._attempts[0][0] < now - self.window_s:
            self._attempts.popleft()

    def _failure_rate(self, now: float) -> float:
        if not self._attempts:
            return 0.0
        failed = sum(1 for _, ok in self._attempts if not ok)
        return round(100.0 * failed / len(self._attempts), 2)
