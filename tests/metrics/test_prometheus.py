"""The Prometheus source against a real Prometheus scraping a small real service that exports what the lab's
services export (cockpit/lab/app_metrics.py: prometheus_client's counter and histogram)."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cockpit.drivers.metrics.prometheus import PRESETS, PrometheusError, PrometheusMetrics
from cockpit.lab.app_metrics import AppMetrics

PROM = shutil.which("prometheus") or "/usr/bin/prometheus"
pytestmark = pytest.mark.skipif(not Path(PROM).exists(), reason="prometheus binary not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], object], deadline_s: float, what: str) -> object:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class App:
    """An HTTP service: /ok sleeps a little, /fail answers 500; /metrics in Prometheus text format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.metrics = AppMetrics()
        app = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body = app.metrics.render()
                    self.send_response(200)
                    self.send_header("Content-Type", app.metrics.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                t0 = time.perf_counter()
                status = 500 if self.path.startswith("/fail") else 200
                if self.path.startswith("/slow"):
                    time.sleep(0.04)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                app.observe(str(status), time.perf_counter() - t0)

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def observe(self, status: str, seconds: float) -> None:
        with self.lock:
            self.counts[status] = self.counts.get(status, 0) + 1
        self.metrics.observe(int(status), seconds)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app() -> Iterator[App]:
    a = App()
    yield a
    a.stop()


@pytest.fixture
def prom(tmp_path: Path, app: App) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: green\n    static_configs: [{{targets: ['127.0.0.1:{app.port}']}}]\n"
    )
    proc = subprocess.Popen(
        [PROM, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 30, "prometheus ready")
    yield url, proc
    proc.terminate()
    proc.wait(10)


def test_error_rate_and_p95_match_the_load(app: App, prom: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = prom
    m = PrometheusMetrics(url=url, jobs={"green": "green"}, window="10s", stale_after=5)
    with httpx.Client(base_url=f"http://127.0.0.1:{app.port}") as c:
        end = time.monotonic() + 8
        i = 0
        while time.monotonic() < end:
            c.get("/fail" if i % 10 == 0 else "/slow" if i % 10 < 3 else "/ok")
            i += 1

    # The last observe lands just after its response: wait until Prometheus has scraped the final counters.
    def scraped() -> bool:
        return m.query('sum(http_requests_total{job="green"})') == sum(app.counts.values())

    wait_for(scraped, 10, "Prometheus to scrape the final counters")
    total = sum(app.counts.values())
    truth_err = 100 * app.counts.get("500", 0) / total
    got = m.sample()
    print(f"truth error_rate={truth_err:.2f}% got={got.get('green.error_rate')}")
    print(f"p95 got={got.get('green.response_time_p95')} ms")
    assert got["green.prometheus_stale"] == 0.0
    assert abs(got["green.error_rate"] - truth_err) < 1.0
    assert got["green.connection_failure_rate"] == 0.0  # 500s are errors, not connection failures
    # 20 % of requests are /slow (~40 ms): the p95 is one of them, within a bucket (5 %) and a little more
    assert 38 <= got["green.response_time_p95"] <= 46
    assert got["green.rps"] > 0


def test_target_stopped_makes_figures_empty(app: App, prom: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = prom
    m = PrometheusMetrics(url=url, jobs={"green": "green"}, window="10s", stale_after=3)
    wait_for(lambda: m.sample().get("green.prometheus_stale") == 0.0, 15, "fresh")
    app.stop()
    got = wait_for(lambda: (s := m.sample()).get("green.prometheus_stale") == 1.0 and s, 15, "stale")
    assert isinstance(got, dict) and "green.error_rate" not in got and "green.rps" not in got


def test_prometheus_down_is_a_clear_error(app: App, prom: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = prom
    m = PrometheusMetrics(url=url, jobs={"green": "green"}, timeout=1)
    proc.terminate()
    proc.wait(10)
    with pytest.raises(PrometheusError, match="did not answer"):
        m.sample()


def test_controller_source_marks_stale_when_prometheus_is_down(
    app: App, prom: tuple[str, subprocess.Popen[bytes]]
) -> None:
    from cockpit.control.factory import _PrometheusSource

    url, proc = prom
    source = _PrometheusSource(PrometheusMetrics(url=url, jobs={"green": "green"}, stale_after=5))
    wait_for(lambda: source.poll().get("green.prometheus_stale") == 0.0, 15, "fresh")
    proc.terminate()
    proc.wait(10)
    got = source.poll()  # never raises: the tick goes on
    assert got["prometheus.up"] == 0.0 and got["green.prometheus_stale"] == 1.0
    assert "green.error_rate" not in got


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_presets_queries_parse_in_a_real_prometheus(
    preset: str, prom: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """Prometheus parses and runs each query (no exporter of the nginx-exporter preset here: an empty answer,
    never a parse error)."""
    url, _ = prom
    m = PrometheusMetrics(url=url, jobs={"green": "green"}, preset=preset)
    for promql in PRESETS[preset].values():
        m.query(promql.format(job="green", window="30s"))  # PrometheusError on a parse error
    with pytest.raises(PrometheusError, match="rejected"):
        m.query("sum(rate(x[30s])")  # and a parse error is seen as one
    m.close()


def test_a_plan_overriding_an_unknown_query_is_refused_where_it_stands(tmp_path: Path) -> None:
    from tests.core.plans import write_plan
    from tests.core.test_processes import cockpit

    plan = write_plan(tmp_path)
    with open(plan, "a", encoding="utf-8") as f:
        f.write("prometheus:\n  url: http://127.0.0.1:9\n  queries: {p99: 'x'}\n")
    done = cockpit("-p", str(plan), "plan", "check")
    assert done.returncode == 2
    assert (
        "prometheus.queries: unknown query 'p99'; known: rps, error_rate, connection_failure_rate"
        in done.stderr
    )
    with pytest.raises(PrometheusError, match="unknown Prometheus query name"):
        PrometheusMetrics(url="http://127.0.0.1:9", jobs={}, queries={"p99": "x"})
