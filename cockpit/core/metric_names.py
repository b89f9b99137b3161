"""The metrics the cockpit knows: every name the controller's metrics sources produce (the sources that
cockpit/control/factory.py builds, and the sync's lag and the split that the controller adds), in one place.

`cockpit plan check` refuses a gate, a threshold or a trigger on any other name, with the closest names;
tests/house/test_metric_names.py runs the real sources and keeps this list and them in step.
"""

from __future__ import annotations

import difflib

SIDES = ("blue", "green")

# the access log's figures (each side, and both together)
TRAFFIC = (
    "requests",
    "error_rate",
    "client_error_rate",
    "response_time_p50",
    "response_time_p95",
    "response_time_p99",
    "connection_failure_rate",  # % of answers that were 502/503/504: what the users saw of an unreachable side
)
# each side only: its request rate (access log) and the database probe's figures (green's database)
SIDED = (
    "rps",
    "db_connection_failure_rate",
    "db_up",
    "query_execution_time",
    "connection_failures",
    "prometheus_stale",  # Prometheus as the source: 1 when the side's newest good scrape is too old (no figures)
)
# `<side>.connection_failures` (the controller): the larger of the users' connection_failure_rate and the probe's
# db_connection_failure_rate, so database_connection_failure fires on either
# one name each
SINGLE = (
    "throughput",  # access log (or Prometheus): requests per second, both sides
    "prometheus.up",  # Prometheus as the source: 0 when it does not answer (every side then reads stale)
    "traffic_distribution",  # access log: the green share actually served
    "traffic_distribution.window_s",  # the window it is observed over, restarted at a split change
    "traffic_distribution.restarted",
    "access_log.window_s",  # the window of the access log's rates and percentiles
    "access_log.malformed",
    "cpu_usage",  # the host
    "memory_usage",
    "disk_usage",
    "connection_pool_usage",  # green's database
    "cache_hit_ratio",
    "sync_lag",  # the sync: the older of the two directions' oldest pending change
    "sync.blue_to_green.age_s",
    "sync.blue_to_green.pending",
    "sync.green_to_blue.age_s",
    "sync.green_to_blue.pending",
    "sync.stalled",  # 1 while a direction has pending changes and makes no progress
    "sync.stalled_s",
    "sync.conflicts_waiting",  # parked versions not yet resolved (`cockpit sync conflicts`)
    "sync.keys_left_min",  # the fewest database-chosen keys left before a table's ceiling
    "sync.schema_changed",  # tables whose schema changed under the sync (their changes are held)
    "sync.green_only_pending",  # acknowledged changes on green not yet on blue
    "data_integrity_score",  # the integrity watch
    "data_integrity_checked_at",  # when its last full check ended (epoch seconds)
    "data_integrity_touched_score",  # the last check of the rows the sync touched (the rollback's), and when
    "data_integrity_touched_at",
    "backup_age",  # the backups of blue
    "green_configured",  # the controller: the share the current phase wants
)

KNOWN: frozenset[str] = frozenset(
    [*TRAFFIC, *SINGLE, *(f"{side}.{name}" for side in SIDES for name in (*TRAFFIC, *SIDED))]
)


def unknown(name: str, *, threshold: bool = False) -> str | None:
    """Why `name` is no metric the cockpit knows, naming the closest ones; None when it is one. A threshold's
    name applies to `name`, `blue.name` and `green.name`, so it is known when any of those is."""
    names = (name, *(f"{side}.{name}" for side in SIDES)) if threshold else (name,)
    if any(n in KNOWN for n in names):
        return None
    pool = sorted(KNOWN | set(TRAFFIC) | set(SIDED)) if threshold else sorted(KNOWN)
    hint = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"unknown metric {name!r}{did}; `cockpit plan metrics` lists the known ones"
