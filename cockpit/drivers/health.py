"""HTTP health checks: one GET, the status code compared with what is expected, latency measured.

Every check has a hard bound on its total time (`asyncio.timeout` around the whole request, not only per socket
operation), so a server that accepts and never answers, or answers one byte at a time, cannot hang a rollback.
The body is never read: the status line and headers decide. Redirects are not followed and proxy variables are
ignored (a health check talks to the server it names).

- `check(url)`: one blocking attempt (for threads; it runs its own short-lived event loop).
- `check_with_retries(plan_check)`: the strategy's loop (`for i in {1..5}; curl -f ...; sleep 10`), blocking,
  interruptible by a `threading.Event`, bounded.
- `acheck`: one attempt for asyncio (what `check` runs on its own loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from cockpit.core.plan import HealthCheck
from cockpit.core.redact import redact_text


@dataclass(frozen=True)
class HealthResult:
    """The outcome of a health check. `status` and `latency_ms` are None when no response came back;
    `error` is None when `ok`; `attempts` counts the requests made."""

    name: str
    url: str
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    attempts: int = 1
    error: str | None = None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    import certifi  # comes with httpx

    return ssl.create_default_context(cafile=certifi.where())


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=_ssl_context(), trust_env=False, follow_redirects=False)


async def acheck(
    url: str,
    expect_status: int = 200,
    timeout: float = 5.0,
    *,
    name: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> HealthResult:
    """One GET of `url`; ok when the status is `expect_status`. Never raises for network trouble, and returns
    within `timeout` seconds (plus scheduling noise) whatever the server does. `name` defaults to the URL; a
    shared `client` may be passed (the per-request timeout still applies)."""
    label = name or url
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            if client is None:
                async with _client() as own:
                    status = await _status(own, url, timeout)
            else:
                status = await _status(client, url, timeout)
    except (TimeoutError, httpx.TimeoutException):
        error = f"timed out after {timeout:g}s"
    except httpx.ConnectError as exc:
        error = f"cannot connect: {_root_cause(exc)}"
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = (time.perf_counter() - started) * 1000.0 if status is not None else None
    ok = status == expect_status
    if status is not None and not ok:
        error = f"expected HTTP {expect_status}, got {status}"
    return HealthResult(
        name=label,
        url=url,
        ok=ok,
        status=status,
        latency_ms=latency_ms,
        attempts=1,
        error=redact_text(error) if error else None,
    )


def _root_cause(exc: BaseException) -> str:
    """The system's reason under a library's wrapping ("Connection refused", not "All attempts failed")."""
    seen: set[int] = set()
    reason = str(exc) or type(exc).__name__
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno:
            reason = os.strerror(cur.errno)
        cur = cur.__cause__ or cur.__context__
    return reason


async def _status(client: httpx.AsyncClient, url: str, timeout: float) -> int:
    async with client.stream(
        "GET", url, timeout=timeout, headers={"User-Agent": "cockpit-health"}
    ) as response:
        return response.status_code


def check(
    url: str, expect_status: int = 200, timeout: float = 5.0, *, name: str | None = None
) -> HealthResult:
    """Blocking `acheck`: one attempt, bounded by `timeout`. For worker threads; raises RuntimeError if called
    on a thread that runs an event loop (use `acheck` there)."""
    return _blocking(url, expect_status, timeout, name)


def _blocking(url: str, expect_status: int, timeout: float, name: str | None) -> HealthResult:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(acheck(url, expect_status, timeout, name=name))
    raise RuntimeError("cockpit.drivers.health checks block: call `await acheck(...)` from async code")


def check_with_retries(
    check: HealthCheck,
    stop_event: threading.Event | None = None,
    *,
    max_total: float | None = None,
    on_attempt: Callable[[HealthResult], None] | None = None,
) -> HealthResult:
    """Run the plan's health check until it passes: up to `check.retries` attempts (at least one) spaced by
    `check.interval`, each bounded by `check.timeout`. Returns the first passing result, or the last failing
    one; `attempts` says how many requests were made.

    Never hangs: the total is at most retries x timeout + (retries - 1) x interval, and at most `max_total`
    seconds when given (the last attempt's timeout is shortened to fit). Setting `stop_event` ends the wait
    between attempts at once. `on_attempt` is called with every attempt's result (to show or journal progress).
    """
    stop = stop_event or threading.Event()
    deadline = None if max_total is None else time.monotonic() + max_total
    attempts = max(1, check.retries)
    result: HealthResult | None = None
    for n in range(1, attempts + 1):
        timeout = float(check.timeout)
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        result = dataclasses.replace(
            _blocking(check.url, check.expect_status, timeout, check.name), attempts=n
        )
        if on_attempt is not None:
            on_attempt(result)
        if result.ok or n == attempts:
            return result
        wait = float(check.interval)
        if deadline is not None and time.monotonic() + wait >= deadline:
            return dataclasses.replace(result, error=f"{result.error}; gave up after {max_total:g}s")
        if stop.wait(wait):
            return dataclasses.replace(result, error=f"{result.error}; stopped after {n} attempt(s)")
    assert result is not None
    return result
