"""The green database probe against the real PostgreSQL, and against a port where nothing listens."""

from __future__ import annotations

import socket

from cockpit.drivers.metrics.database import DatabaseMetrics


def test_probe_reads_health_of_a_live_server(pg_url: str) -> None:
    m = DatabaseMetrics(pg_url)
    first = m.poll()
    second = m.poll()
    assert first["green.db_up"] == 1.0 and second["green.db_connection_failure_rate"] == 0.0
    assert 0 < second["green.query_execution_time"] < 5000
    assert 0 < second["connection_pool_usage"] <= 100


def test_failed_connections_raise_the_failure_rate() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = DatabaseMetrics(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2)
    out = m.poll()
    assert out["green.db_up"] == 0.0 and out["green.db_connection_failure_rate"] == 100.0
    assert "green.query_execution_time" not in out


def test_failure_rate_is_over_the_window(pg_url: str) -> None:
    m = DatabaseMetrics(pg_url, window_s=3600)
    m.poll()
    good_url = m.url
    m.url = good_url.replace("127.0.0.1:5432", "127.0.0.1:1")
    m.connect_timeout = 2
    assert m.poll()["green.db_connection_failure_rate"] == 50.0
    m.url = good_url
    assert m.poll()["green.db_connection_failure_rate"] == round(100 / 3, 2)
