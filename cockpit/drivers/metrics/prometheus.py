"""Prometheus as a metric source: per-side figures from instant queries over the HTTP API.

Each side (blue, green) gets request rate, 5xx error rate (%), the 502/503/504 share (%) and p95 latency (ms)
from PromQL: the same names as the access log's figures (`<side>.rps`, `<side>.error_rate`,
`<side>.connection_failure_rate`, `<side>.response_time_p95`), so gates and triggers read either source. A `fresh`
query per side says how old the newest scrape of that side's target is; older than `stale_after` seconds (or
absent) means the side's figures are empty, never the last values. A Prometheus that fails raises
`PrometheusError` with what failed; callers mark the metrics stale rather than crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

import httpx

from cockpit.core.errors import CockpitError
from cockpit.core.plan import PrometheusQuery

# The app preset's metric names: what a prometheus_client app exports (the lab's services do, see
# cockpit/lab/app_metrics.py): a request counter by status code and a latency histogram.
APP_REQUESTS = "http_requests_total"  # counter, label `status` (the HTTP status code, e.g. "503")
APP_DURATION = "http_request_duration_seconds"  # histogram, no labels


def _share(counter: str, side: str, codes: str) -> str:
    """PromQL: % of a side's requests whose `code`-like label matches `codes` (0 when none did, nothing when the
    side had no requests in the window)."""
    total = f"sum(rate({counter}{{{{{side}}}}}[{{window}}]))"
    part = f"sum(rate({counter}{{{{{side},{codes}}}}}[{{window}}]))"
    return f"100 * ({part} or vector(0)) / {total}"


# Queries per preset; `{job}` is replaced by the side's scrape job (or upstream), `{window}` by the window.
# `connection_failure_rate` is the share of 502/503/504 (as the access log's): the app sees only its own 503s
# (its database out of reach), not nginx's 502s. The nginx-exporter preset (VTS style `nginx_vts_upstream_*`)
# has status classes only (`5xx`), so it has no connection_failure_rate; its queries are checked for syntax
# against a real Prometheus, not against a real exporter.
PRESETS: dict[str, dict[str, str]] = {
    "app": {
        "rps": f'sum(rate({APP_REQUESTS}{{{{job="{{job}}"}}}}[{{window}}]))',
        "error_rate": _share(APP_REQUESTS, 'job="{job}"', 'status=~"5.."'),
        "connection_failure_rate": _share(APP_REQUESTS, 'job="{job}"', 'status=~"502|503|504"'),
        "response_time_p95": (
            "1000 * histogram_quantile(0.95, sum by (le) "
            f'(rate({APP_DURATION}_bucket{{{{job="{{job}}"}}}}[{{window}}])))'
        ),
        "fresh": 'time() - max(timestamp(up{{job="{job}"}} == 1))',
    },
    "nginx-exporter": {
        "rps": 'sum(rate(nginx_vts_upstream_requests_total{{upstream="{job}"}}[{window}]))',
        "error_rate": _share("nginx_vts_upstream_requests_total", 'upstream="{job}"', 'code="5xx"'),
        "response_time_p95": (
            "1000 * histogram_quantile(0.95, sum by (le) "
            '(rate(nginx_vts_upstream_request_seconds_bucket{{upstream="{job}"}}[{window}])))'
        ),
        "fresh": 'time() - max(timestamp(up{{job="nginx"}} == 1))',
    },
}
QUERY_NAMES: tuple[str, ...] = get_args(PrometheusQuery)  # one definition: the plan's
FIGURES = tuple(n for n in QUERY_NAMES if n != "fresh")  # read each tick, per side


class PrometheusError(CockpitError):
    """Prometheus could not be asked, or answered with an error."""


@dataclass
class PrometheusMetrics:
    url: str
    jobs: dict[str, str]  # side -> scrape job (or upstream for nginx-exporter)
    preset: str = "app"
    queries: dict[str, str] = field(default_factory=dict)  # per-metric overrides
    window: str = "30s"
    stale_after: float = 30.0  # Prometheus's default scrape interval is 15 s: two missed scrapes
    timeout: float = 2.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise PrometheusError(f"unknown Prometheus preset {self.preset!r}; known: {', '.join(PRESETS)}")
        unknown = sorted(set(self.queries) - set(QUERY_NAMES))
        if unknown:
            raise PrometheusError(
                f"unknown Prometheus query name(s) {', '.join(unknown)}; known: {', '.join(QUERY_NAMES)}"
            )
        self._client = httpx.Client(timeout=self.timeout)

    def query(self, promql: str) -> float | None:
        """One instant query; the first sample's value, or None for an empty or NaN result."""
        try:
            r = self._client.get(self.url.rstrip("/") + "/api/v1/query", params={"query": promql})
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {e}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus rejected {promql!r}: {body.get('error', r.status_code)}")
        result = body["data"]["result"]
        if not result:
            return None
        if len(result) > 1:  # one figure per side: a query must aggregate (sum, max) over its series
            raise PrometheusError(f"{promql!r} gave {len(result)} series, not one: aggregate it (sum, max)")
        value = float(result[0]["value"][1])
        return None if value != value else value

    def _q(self, name: str, job: str) -> str | None:
        q = self.queries.get(name) or PRESETS[self.preset].get(name)
        return None if q is None else q.format(job=job, window=self.window)

    def sample(self) -> dict[str, float]:
        """Flat metrics (`blue.error_rate`, `green.response_time_p95`, ..., and `throughput` when every side has
        its rate); a stale side has no figures."""
        out: dict[str, float] = {}
        for side, job in self.jobs.items():
            fresh = self._q("fresh", job)
            assert fresh is not None  # every preset has one
            age = self.query(fresh)
            out[f"{side}.prometheus_stale"] = 1.0 if age is None or age > self.stale_after else 0.0
            if out[f"{side}.prometheus_stale"]:
                continue
            for name in FIGURES:
                promql = self._q(name, job)
                value = None if promql is None else self.query(promql)
                if value is not None:
                    out[f"{side}.{name}"] = value
        rates = [out.get(f"{side}.rps") for side in self.jobs]
        if rates and all(
            r is not None for r in rates
        ):  # both sides fresh: a partial sum would read as a drop
            out["throughput"] = sum(r for r in rates if r is not None)
        return out

    def close(self) -> None:
        self._client.close()
