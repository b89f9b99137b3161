"""Prometheus as a metric source: per-side figures from instant queries over the HTTP API.

Each side (blue, green) gets request rate, 5xx error rate (%) and p95 latency (ms) from PromQL. A `fresh`
query per side says how old the newest scrape of that side's target is; older than `stale_after` seconds (or
absent) means the side's figures are empty, never the last values. A Prometheus that fails raises
`PrometheusError` with what failed; callers mark the metrics stale rather than crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from cockpit.core.errors import CockpitError

# Queries per preset; `{job}` is replaced by the side's scrape job. The app preset reads a prometheus_client
# histogram `http_request_duration_seconds` with a `status` label. The nginx-exporter preset (VTS style
# `nginx_vts_upstream_*`) is written from the exporter's documentation and is NOT tested here.
PRESETS: dict[str, dict[str, str]] = {
    "app": {
        "rps": 'sum(rate(http_request_duration_seconds_count{{job="{job}"}}[{window}]))',
        "error_rate": (
            '100 * sum(rate(http_request_duration_seconds_count{{job="{job}",status=~"5.."}}[{window}]))'
            ' / sum(rate(http_request_duration_seconds_count{{job="{job}"}}[{window}]))'
        ),
        "response_time_p95": (
            "1000 * histogram_quantile(0.95, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{{job="{job}"}}[{window}])))'
        ),
        "fresh": 'time() - timestamp(up{{job="{job}"}} == 1)',
    },
    "nginx-exporter": {
        "rps": 'sum(rate(nginx_vts_upstream_requests_total{{upstream="{job}"}}[{window}]))',
        "error_rate": (
            '100 * sum(rate(nginx_vts_upstream_requests_total{{upstream="{job}",code="5xx"}}[{window}]))'
            ' / sum(rate(nginx_vts_upstream_requests_total{{upstream="{job}"}}[{window}]))'
        ),
        "response_time_p95": (
            "1000 * histogram_quantile(0.95, sum by (le) "
            '(rate(nginx_vts_upstream_request_seconds_bucket{{upstream="{job}"}}[{window}])))'
        ),
        "fresh": 'time() - timestamp(up{{job="nginx"}} == 1)',
    },
}


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
        value = float(result[0]["value"][1])
        return None if value != value else value

    def _q(self, name: str, job: str) -> str:
        q = self.queries.get(name) or PRESETS[self.preset][name]
        return q.format(job=job, window=self.window)

    def sample(self) -> dict[str, float]:
        """Flat metrics (`blue.error_rate`, `green.response_time_p95`, ...); a stale side has no figures."""
        out: dict[str, float] = {}
        for side, job in self.jobs.items():
            age = self.query(self._q("fresh", job))
            out[f"{side}.prometheus_stale"] = 1.0 if age is None or age > self.stale_after else 0.0
            if out[f"{side}.prometheus_stale"]:
                continue
            for name in ("rps", "error_rate", "response_time_p95"):
                value = self.query(self._q(name, job))
                if value is not None:
                    out[f"{side}.{name}"] = value
        return out

    def close(self) -> None:
        self._client.close()
