"""Real pieces for the traffic tests: two stdlib HTTP backends (blue, green) behind a private nginx on loopback."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cockpit.core.plan import Beta, Sticky
from cockpit.drivers.traffic.nginx import NginxDriver
from cockpit.drivers.traffic.nginx_site import PrivateNginx, free_port


class Backend:
    """An HTTP/1.1 server answering its side's name; it can fail `error_percent` % of requests (exactly, spread
    evenly) with a 503 and sleep `latency()` seconds per request. It counts what it really served."""

    def __init__(self, side: str, error_percent: int = 0, latency: Callable[[], float] | None = None):
        self.side = side
        self.error_percent = error_percent
        self.latency = latency
        self.lock = threading.Lock()
        self.served = 0
        self.served_5xx = 0
        self.durations_ms: list[float] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                t0 = time.perf_counter()
                with backend.lock:
                    n = backend.served
                    backend.served += 1
                    fail = (n + 1) * backend.error_percent // 100 > n * backend.error_percent // 100
                    if fail:
                        backend.served_5xx += 1
                if backend.latency is not None:
                    time.sleep(backend.latency())  # the injected latency is what this server simulates
                body = backend.side.encode()
                self.send_response(503 if fail else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with backend.lock:
                    backend.durations_ms.append((time.perf_counter() - t0) * 1000.0)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Backend:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Site:
    """A private nginx with the driver's include, in front of a blue and a green backend."""

    root: Path
    nginx: PrivateNginx
    driver: NginxDriver
    blue: Backend
    green: Backend
    access_log: Path
    extra: list[PrivateNginx] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nginx.url


def make_site(tmp_path: Path, blue: Backend, green: Backend, sticky: Sticky | None = None) -> Site:
    root = tmp_path / "nginx"
    nginx = PrivateNginx(root, free_port(), root / "cockpit-split.conf")
    access_log = root / "logs" / "cockpit-access.json"
    driver = NginxDriver(
        [nginx.balancer("lb1", access_log)], [blue.address], [green.address], sticky or Sticky(), Beta()
    )
    driver.prepare(0)
    nginx.start()
    return Site(root, nginx, driver, blue, green, access_log)


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    blue, green = Backend("blue").start(), Backend("green").start()
    yield blue, green
    blue.stop()
    green.stop()


@pytest.fixture
def site(tmp_path: Path, backends: tuple[Backend, Backend]) -> Iterator[Site]:
    s = make_site(tmp_path, *backends)
    yield s
    s.nginx.stop()


def fetch_sides(
    url: str,
    keys: list[str],
    threads: int = 4,
    headers: dict[str, str] | None = None,
    cookie: str = "session_id",
) -> list[tuple[str, str, int]]:
    """GET / once per key (as the sticky cookie) over keep-alive connections; (header side, body side, status)."""
    host, port = url.removeprefix("http://").split(":")
    out: list[tuple[str, str, int]] = [("", "", 0)] * len(keys)

    def work(start: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        for i in range(start, len(keys), threads):
            h = {"Cookie": f"{cookie}={keys[i]}", **(headers or {})}
            conn.request("GET", "/", headers=h)
            r = conn.getresponse()
            body = r.read().decode()
            out[i] = (r.getheader("X-Cockpit-Side") or "", body, r.status)
        conn.close()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out
