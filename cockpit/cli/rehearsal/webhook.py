"""The rehearsal's own alert webhook on loopback: the plan's alerts go here, never to a real channel.

It answers 200 and counts what it received; with `hang` set it accepts each request, reads it, and never answers
(the socket stays open until `hang` is cleared or the server stops), as a wedged chat service would.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    def __init__(self) -> None:
        self.hang = threading.Event()
        self._release = threading.Event()
        self.received = 0
        self.hung = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hook.hang.is_set():
                    hook.hung += 1
                    hook._release.wait()  # never answers while hanging
                    return
                hook.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="rehearsal-webhook", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        self._thread.start()

    def set_hanging(self, on: bool) -> None:
        if on:
            self._release.clear()
            self.hang.set()
        else:
            self.hang.clear()
            self._release.set()

    def stop(self) -> None:
        self.set_hanging(False)
        self.server.shutdown()
        self.server.server_close()
