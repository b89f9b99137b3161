"""Real loopback servers for the driver tests: an HTTP server with scripted behaviours, a refused port."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up on purpose are not errors
            super().handle_error(request, client_address)


class LocalHTTP:
    """An HTTP server on 127.0.0.1 (free port). Paths:

    /ok -> 200; /status/N -> N; /flaky/N/KEY -> 503 for the first N requests of KEY, then 200;
    /hang -> answers only when `release` is set; /drip -> sends its status line one byte at a time, slowly.
    Every request is recorded in `requests`.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.counts: Counter[str] = Counter()
        self.release = threading.Event()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner.lock:
                    owner.requests.append(Request(self.command, self.path, dict(self.headers), body))
                    owner.counts[self.path] += 1
                    count = owner.counts[self.path]
                parts = self.path.strip("/").split("/")
                if parts[0] == "drip":
                    # a server that never stalls long enough for a per-read timeout, yet never finishes
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000:
                        if owner.release.wait(0.05):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                if parts[0] == "hang":
                    owner.release.wait(30)
                    status = 200
                elif parts[0] == "status":
                    status = int(parts[1])
                elif parts[0] == "flaky":
                    status = 503 if count <= int(parts[1]) else 200
                else:
                    status = 200 if parts[0] == "ok" else 404
                payload = f"status {status}\n".encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeouts are tested on purpose)

            do_GET = _handle
            do_POST = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        with self.lock:
            return self.counts[path]


@pytest.fixture
def http_server() -> Iterator[LocalHTTP]:
    srv = LocalHTTP()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.server.shutdown()
        srv.server.server_close()
