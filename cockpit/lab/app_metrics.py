"""What a lab service exports for Prometheus (`GET /metrics` on its own port, scraped directly, never through
the balancer): a request counter by status code and a latency histogram, with `prometheus_client`, under the
names the `app` preset of the Prometheus metric source reads (cockpit/drivers/metrics/prometheus.py).

Probes and scrapes (`/health`, `/metrics`) are not counted: they are not the users' traffic, and the access log
(what the Prometheus figures are checked against) does not see them either. The histogram's buckets grow by 5 %
from 1 ms to ~34 s, so a p95 interpolated inside one is off by at most 5 %.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from cockpit.drivers.metrics.prometheus import APP_DURATION, APP_REQUESTS

BUCKETS = tuple(round(0.001 * 1.05**i, 6) for i in range(215))  # seconds: 1 ms .. ~34 s, 5 % apart
# every status the service answers exists from the start at 0, so that each series spans the same scrapes
# (rates over a window then extrapolate alike, and a share of two of them is exact)
STATUSES = ("200", "201", "400", "404", "405", "409", "500", "503")
NOT_COUNTED = frozenset(("/health", "/metrics"))


class AppMetrics:
    """One service's counters, in a registry of its own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            APP_REQUESTS.removesuffix("_total"),
            "HTTP requests answered, by status code",
            ["status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            APP_DURATION,
            "Time from the request read to the response written, in seconds",
            buckets=BUCKETS,
            registry=self.registry,
        )
        for status in STATUSES:
            self.requests.labels(status=status)

    @staticmethod
    def counted(path: str) -> bool:
        return path.split("?", 1)[0] not in NOT_COUNTED

    def observe(self, status: int, seconds: float) -> None:
        self.requests.labels(status=str(status)).inc()
        self.duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
