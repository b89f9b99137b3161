"""Health checks against a real HTTP server on loopback."""

from __future__ import annotations

import threading
import time

import pytest

from cockpit.core.plan import Duration, HealthCheck
from cockpit.drivers.health import HealthResult, acheck, check, check_with_retries


def plan_check(url: str, **kw: object) -> HealthCheck:
    kw.setdefault("timeout", Duration(2))
    kw.setdefault("interval", Duration(0.01))
    return HealthCheck(name=str(kw.pop("name", "app")), url=url, **kw)  # type: ignore[arg-type]


def test_ok(http_server):
    r = check(http_server.url("/ok"), name="blue-app")
    assert r == HealthResult(
        name="blue-app", url=http_server.url("/ok"), ok=True, status=200, latency_ms=r.latency_ms, attempts=1
    )
    assert r.latency_ms is not None and r.latency_ms > 0
    assert http_server.requests[0].method == "GET"


def test_server_error_is_not_ok(http_server):
    r = check(http_server.url("/status/500"))
    assert not r.ok and r.status == 500
    assert r.error == "expected HTTP 200, got 500"
    assert r.name == http_server.url("/status/500")  # the name defaults to the URL


def test_expected_status_other_than_200(http_server):
    assert check(http_server.url("/status/204"), expect_status=204).ok
    assert not check(http_server.url("/ok"), expect_status=204).ok


def test_timeout_is_reported_and_bounded(http_server):
    started = time.monotonic()
    r = check(http_server.url("/hang"), timeout=0.3)
    elapsed = time.monotonic() - started
    assert not r.ok and r.status is None and r.latency_ms is None
    assert r.error == "timed out after 0.3s"
    assert elapsed < 5  # bounded (a generous margin: the check must not wait for the server)


def test_a_server_that_drips_bytes_cannot_stretch_the_timeout(http_server):
    """Each byte comes well within the timeout, so only a bound on the whole request ends this one."""
    started = time.monotonic()
    r = check(http_server.url("/drip"), timeout=0.5)
    assert not r.ok and "timed out" in (r.error or "")
    assert time.monotonic() - started < 5


def test_connection_refused(refused_url):
    r = check(refused_url, timeout=2)
    assert not r.ok and r.status is None
    assert "cannot connect" in r.error and "refused" in r.error.lower()


def test_invalid_url_is_a_failed_result_not_an_exception():
    r = check("nota://url", timeout=1)
    assert not r.ok and r.error


def test_recovers_on_third_attempt(http_server):
    seen: list[HealthResult] = []
    r = check_with_retries(plan_check(http_server.url("/flaky/2/a"), retries=5), on_attempt=seen.append)
    assert r.ok and r.attempts == 3 and r.status == 200
    assert [s.status for s in seen] == [503, 503, 200]
    assert [s.attempts for s in seen] == [1, 2, 3]
    assert http_server.hits("/flaky/2/a") == 3


def test_gives_up_after_retries(http_server):
    r = check_with_retries(plan_check(http_server.url("/status/503"), retries=3))
    assert not r.ok and r.attempts == 3 and r.status == 503
    assert http_server.hits("/status/503") == 3


def test_zero_retries_still_checks_once(http_server):
    r = check_with_retries(plan_check(http_server.url("/ok"), retries=0))
    assert r.ok and r.attempts == 1


def test_stop_event_ends_the_wait_between_attempts(http_server):
    stop = threading.Event()
    stop.set()
    # a 10 min interval: only the stop event can end this quickly
    r = check_with_retries(
        plan_check(http_server.url("/status/500"), retries=5, interval=Duration(600)), stop
    )
    assert not r.ok and r.attempts == 1
    assert "stopped after 1 attempt" in r.error


def test_stop_event_set_from_another_thread(http_server):
    stop = threading.Event()
    seen: list[HealthResult] = []

    def on_attempt(result: HealthResult) -> None:
        seen.append(result)
        threading.Thread(target=stop.set).start()

    r = check_with_retries(
        plan_check(http_server.url("/status/500"), retries=5, interval=Duration(600)),
        stop,
        on_attempt=on_attempt,
    )
    assert r.attempts == 1 and len(seen) == 1 and "stopped" in r.error


def test_max_total_bounds_the_whole_loop(http_server):
    r = check_with_retries(
        plan_check(http_server.url("/status/500"), retries=1000, interval=Duration(0.05)), max_total=0.5
    )
    assert not r.ok and 1 <= r.attempts < 1000
    assert "gave up after 0.5s" in r.error


async def test_acheck_ok_and_refused(http_server, refused_url):
    assert (await acheck(http_server.url("/ok"))).ok
    r = await acheck(refused_url, timeout=2)
    assert not r.ok and "refused" in r.error.lower()


async def test_blocking_check_refuses_to_run_on_an_event_loop(http_server):
    with pytest.raises(RuntimeError, match="acheck"):
        check(http_server.url("/ok"))
