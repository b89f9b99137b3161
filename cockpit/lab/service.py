"""The demo app server: one small JSON HTTP API over the four tables, on SQLite (blue) or PostgreSQL (green).

    python -m cockpit.lab.service --side blue --db PATH --port N [--fault-file F] [--instance NAME]
    python -m cockpit.lab.service --side green --db postgresql://... --port N

Routes (every answer is JSON with `side` in its body, and carries `X-Cockpit-Instance`; the `X-Cockpit-Side`
header is nginx's, the side it routed to: set once, by the balancer, so a client sees it once):
    GET    /health                      200 {"status": "ok"} or 503 when the database cannot be reached
    GET    /api/<table>?limit=&offset=&order=asc|desc
    GET    /api/<table>/<id>            200 or 404
    POST   /api/<table>                 201 {"id": key, "item": row} (Location: /api/<table>/<key>)
    PUT    /api/<table>/<id>            200 {"item": row} (PATCH is the same: only the fields given change)
    DELETE /api/<table>/<id>            200 {"deleted": true} or 404
    GET    /api                         the tables and their row counts
    GET    /metrics                     Prometheus text format: requests by status, latency histogram (scraped
                                        on the service's own port; see app_metrics.py)
Errors: 400 bad input, 404 unknown row or route, 409 a constraint refused the write, 500 an injected or
unexpected error, 503 the database is down (or its fault switch says so).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cockpit.core.errors import CockpitError
from cockpit.lab.app_metrics import AppMetrics
from cockpit.lab.domain import KEY_MODES, TABLES, ValidationError, parse_input, present
from cockpit.lab.faults import FaultReader
from cockpit.lab.store import Conflict, PostgresStore, SqliteStore, Store, Unavailable


class HttpError(CockpitError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class App:
    """What a request needs: the side, its store and the fault switches."""

    def __init__(self, side: str, instance: str, store: Store, faults: FaultReader):
        self.side = side
        self.instance = instance
        self.store = store
        self.faults = faults
        self.in_flight = 0  # requests being answered: a graceful stop waits for them
        self.lock = threading.Lock()
        self.metrics = AppMetrics()

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        faults = self.faults.current()
        if parts == ["health"] and method in ("GET", "HEAD"):
            if faults.db_down:
                raise HttpError(503, "database unavailable (fault switch db-down)")
            self.store.ping()
            return 200, {"status": "ok", "instance": self.instance, "in_flight": self.in_flight}, {}
        if not parts or parts[0] != "api":
            raise HttpError(404, f"no route for {url.path}")
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.errors and random.random() * 100 < faults.errors:
            raise HttpError(500, "injected error (fault switch)")
        if faults.db_down:
            raise HttpError(503, "database unavailable (fault switch db-down)")
        if len(parts) == 1:
            return 200, {"tables": self.store.counts()}, {}
        table = TABLES.get(parts[1])
        if table is None:
            raise HttpError(404, f"no table {parts[1]!r} (tables: {', '.join(TABLES)})")
        if len(parts) == 2:
            if method == "GET":
                q = parse_qs(url.query)
                limit = min(max(_int(q, "limit", 20), 1), 500)
                offset = max(_int(q, "offset", 0), 0)
                descending = q.get("order", ["asc"])[0] == "desc"
                items = [present(table, r) for r in self.store.list(table, limit, offset, descending)]
                return 200, {"items": items, "limit": limit, "offset": offset}, {}
            if method == "POST":
                made = present(
                    table, self.store.create(table, parse_input(table, _json(body), partial=False))
                )
                return 201, {"id": made["id"], "item": made}, {"Location": f"/api/{table.name}/{made['id']}"}
            raise HttpError(405, f"{method} is not allowed on /api/{table.name}")
        if len(parts) != 3:
            raise HttpError(404, f"no route for {url.path}")
        try:
            key = int(parts[2])
        except ValueError:
            raise HttpError(404, f"{parts[2]!r} is not a key") from None
        if method == "GET":
            row = self.store.get(table, key)
            if row is None:
                raise HttpError(404, f"{table.name} {key} not found")
            return 200, {"item": present(table, row)}, {}
        if method in ("PUT", "PATCH"):
            row = self.store.update(table, key, parse_input(table, _json(body), partial=True))
            if row is None:
                raise HttpError(404, f"{table.name} {key} not found")
            return 200, {"item": present(table, row)}, {}
        if method == "DELETE":
            if not self.store.delete(table, key):
                raise HttpError(404, f"{table.name} {key} not found")
            return 200, {"id": key, "deleted": True}, {}
        raise HttpError(405, f"{method} is not allowed on /api/{table.name}/{key}")


def _int(q: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(q.get(name, [default])[0])
    except ValueError:
        raise HttpError(400, f"{name} must be a whole number") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cockpit-lab"
    # TCP_NODELAY: the headers and the body go out as two writes; with Nagle the body waited for nginx's delayed
    # ACK of the headers (up to 40 ms on Linux) on a kept-alive connection, a stall the service never saw
    disable_nagle_algorithm = True
    app: App  # set on the subclass built by make_server

    def _serve(self) -> None:
        with self.app.lock:
            self.app.in_flight += 1
        try:
            self._answer()
        finally:
            with self.app.lock:
                self.app.in_flight -= 1

    def _answer(self) -> None:
        if self.path == "/metrics" and self.command in ("GET", "HEAD"):
            self._send(200, self.app.metrics.render(), {"Content-Type": self.app.metrics.content_type})
            return
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        try:
            status, payload, headers = self.app.handle(self.command, self.path, body)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except ValidationError as exc:
            status, payload = 400, {"error": str(exc)}
        except Conflict as exc:
            status, payload = 409, {"error": str(exc)}
        except Unavailable as exc:
            status, payload = 503, {"error": str(exc)}
        except Exception as exc:  # the API answers; the details go to the service's log
            print(
                f"{self.app.instance}: {self.command} {self.path}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps({"side": self.app.side, **payload}, ensure_ascii=False).encode()
        self._send(status, data, {"Content-Type": "application/json; charset=utf-8", **headers})
        if self.app.metrics.counted(self.path):
            self.app.metrics.observe(status, time.perf_counter() - started)

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Cockpit-Instance", self.app.instance)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # nginx keeps the access log
        pass


GRACE_S = 10.0  # how long a stopping service still answers the requests in flight


def make_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def make_store(side: str, db: str, pool_size: int = 6, keys: str = "database") -> Store:
    if db.startswith(("postgresql://", "postgres://")) or "=" in db:
        return PostgresStore(side, db, pool_size=pool_size, keys=keys)
    return SqliteStore(side, db, pool_size=pool_size, keys=keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m cockpit.lab.service", description="The lab's demo app server."
    )
    ap.add_argument("--side", choices=("blue", "green"), required=True)
    ap.add_argument("--db", required=True, help="SQLite file path or PostgreSQL URL")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--instance", default="")
    ap.add_argument("--fault-file", type=Path)
    ap.add_argument("--pool", type=int, default=6, help="database connections at most")
    ap.add_argument(
        "--keys",
        choices=KEY_MODES,
        default="database",
        help="who chooses new rows' keys: the database (default, as real apps) or the service (a side bit)",
    )
    args = ap.parse_args(argv)
    store = make_store(args.side, args.db, args.pool, args.keys)
    app = App(args.side, args.instance or f"{args.side}-{args.port}", store, FaultReader(args.fault_file))
    server = make_server(app, args.host, args.port)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
        # a graceful stop (SIGTERM, as systemd and the processes driver send it): no new connections, and the
        # requests already in flight are answered (bounded; idle keep-alive connections are simply dropped)
        deadline = time.monotonic() + GRACE_S
        while app.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        server.server_close()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
