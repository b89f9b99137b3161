"""The lab's load generator: many users, each with a sticky key, reading and writing at a set rate.

    python -m cockpit.lab.load --url http://127.0.0.1:PORT --rate 20 --users 200 --stats load.json

Each virtual user carries its own sticky key (a cookie by default, so nginx keeps it on one side), and works on
the demo API: reads and lists of seeded rows, new proposals (sometimes companies with a valid CNPJ, or users),
updates and deletes of its own proposals. Its figures (requests, errors, latency, the side that served) are
written every second to a small JSON file that `cockpit lab status` reads. An error is a 5xx answer or a failed
connection; a 404 (a row the other side has not received yet) is counted apart.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import signal
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cockpit.lab.domain import make_cnpj, now_text
from cockpit.lab.ledger import Ledger
from cockpit.lab.seed import CITIES, FIRST_NAMES, SURNAMES, ascii_slug, company_name, table_sizes

WINDOW_S = 10.0


@dataclass
class User:
    key: str
    index: int
    mine: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Result:
    at: float
    ms: float
    status: int  # 0: the connection failed
    side: str
    op: str


class Figures:
    """Totals since the start and a sliding window of the last WINDOW_S seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.total: Counter[str] = Counter()
        self.by_side: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.recent: deque[Result] = deque()
        self.last_error = ""

    def add(self, r: Result, error_text: str = "") -> None:
        with self.lock:
            self.total["requests"] += 1
            self.total[_status_class(r.status)] += 1
            if _is_error(r.status):
                self.total["errors"] += 1
                if error_text:
                    self.last_error = error_text[:200]
            if r.side:
                self.by_side[r.side] += 1
            self.ops[r.op] += 1
            self.recent.append(r)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.total[name] += n

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            while self.recent and self.recent[0].at < now - WINDOW_S:
                self.recent.popleft()
            window = list(self.recent)
            total = dict(self.total)
            by_side = dict(self.by_side)
            ops = dict(self.ops)
            last_error = self.last_error
        span = min(WINDOW_S, max(now - self.started, 1e-3))
        lat = sorted(r.ms for r in window)
        errors = sum(1 for r in window if _is_error(r.status))
        side_counts: Counter[str] = Counter(r.side for r in window if r.side)
        side_errors: Counter[str] = Counter(r.side for r in window if r.side and _is_error(r.status))
        side_503: Counter[str] = Counter(r.side for r in window if r.side and r.status == 503)
        served = sum(side_counts.values())
        return {
            **extra,
            "pid": os.getpid(),
            "started": self.started,
            "updated": now,
            "total": {
                "requests": total.get("requests", 0),
                "errors": total.get("errors", 0),
                "status": {k: total.get(k, 0) for k in ("2xx", "3xx", "4xx", "404", "5xx", "conn")},
                "retried": total.get("retried", 0),
                "skipped": total.get("skipped", 0),
                "by_side": by_side,
                "ops": ops,
            },
            "recent": {
                "window_s": WINDOW_S,
                "requests": len(window),
                "rps": round(len(window) / span, 2),
                "errors": errors,
                "error_rate": round(100.0 * errors / len(window), 2) if window else 0.0,
                "p50_ms": _pct(lat, 50),
                "p95_ms": _pct(lat, 95),
                "p99_ms": _pct(lat, 99),
                "by_side": dict(side_counts),
                "errors_by_side": dict(side_errors),
                # 503 = the service could not reach its database: the strategy's database_connection_failure
                "db_failure_rate_by_side": {
                    side: round(100.0 * side_503.get(side, 0) / n, 2) for side, n in side_counts.items()
                },
                "green_share": round(100.0 * side_counts.get("green", 0) / served, 2) if served else None,
            },
            "last_error": last_error,
        }


def _status_class(status: int) -> str:
    if status == 0:
        return "conn"
    if status == 404:
        return "404"
    return f"{status // 100}xx"


def _is_error(status: int) -> bool:
    return status == 0 or status >= 500


def _pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return round(sorted_values[k], 2)


class LoadGenerator:
    def __init__(
        self,
        url: str,
        rate: float,
        users: int,
        sticky_kind: str = "cookie",
        sticky_name: str = "session_id",
        rows: int = 5000,
        workers: int = 0,
        seed: int | None = None,
        ledger: Path | None = None,
        duplicates: float = 0.1,
    ):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.rate = rate
        self.sticky_kind = sticky_kind
        self.sticky_name = sticky_name
        self.sizes = table_sizes(rows)
        self.rng = random.Random(seed)
        self.users = [User(key=f"u{i:05d}-{uuid.uuid4().hex[:8]}", index=i) for i in range(users)]
        self.workers = workers or int(min(64, max(8, rate)))
        self.figures = Figures()
        self.stop_event = threading.Event()
        self.tasks: queue.Queue[User] = queue.Queue(maxsize=self.workers * 4)
        self._local = threading.local()
        self.ledger = Ledger(ledger) if ledger is not None else None
        # now and then a company registers again under a CNPJ another user just used, maybe on the other side:
        # the same unique value acknowledged by both sides before the sync carries either (or a 409 on one side)
        self.duplicates = duplicates
        self.recent_cnpjs: deque[str] = deque(maxlen=32)

    # -- HTTP ----------------------------------------------------------------------------------------------
    def _conn(self, user: User) -> http.client.HTTPConnection:
        if (
            self.sticky_kind == "address"
        ):  # one loopback source address per user (127.0.0.0/8 is all loopback)
            return http.client.HTTPConnection(
                self.host,
                self.port,
                timeout=10,
                source_address=(f"127.0.{1 + user.index // 250}.{1 + user.index % 250}", 0),
            )
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        return conn

    def request(
        self, user: User, method: str, path: str, body: dict[str, Any] | None, op: str
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self.sticky_kind == "cookie":
            headers["Cookie"] = f"{self.sticky_name}={user.key}"
        elif self.sticky_kind == "header":
            headers[self.sticky_name] = user.key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        status, payload, side, error_text = 0, None, "", ""
        for attempt in (1, 2):
            conn = self._conn(user)
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                status = resp.status
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                side = payload.get("side", "") if isinstance(payload, dict) else ""
                side = side or (resp.getheader("X-Cockpit-Side") or "").split(",")[0].strip()
                if status >= 500:
                    error_text = f"{status} {method} {path}: {payload.get('error', '') if isinstance(payload, dict) else raw[:120]!r}"
                if self.sticky_kind == "address":
                    conn.close()
                break
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                if reused and attempt == 1:  # an idle keep-alive connection closed under us (e.g. a reload)
                    self.figures.count("retried")
                    continue
                status, error_text = 0, f"{method} {path}: {type(exc).__name__}: {exc}"
                break
        ms = (time.perf_counter() - t0) * 1000
        self.figures.add(Result(time.time(), ms, status, side, op), error_text)
        return status, payload

    # -- what a user does ------------------------------------------------------------------------------------
    def act(self, user: User) -> None:
        rng = self.rng
        roll = rng.random()
        with user.lock:
            own = list(user.mine.get("proposals", []))
        if roll < 0.30:
            table = rng.choice(("users", "companies", "opportunities", "proposals"))
            key = (
                rng.choice(own)
                if own and table == "proposals" and rng.random() < 0.5
                else rng.randint(1, self.sizes[table])
            )
            self.request(user, "GET", f"/api/{table}/{key}", None, "read")
        elif roll < 0.50:
            table = rng.choice(("opportunities", "proposals", "companies"))
            self.request(user, "GET", f"/api/{table}?limit=20&offset={rng.randint(0, 200)}", None, "list")
        elif roll < 0.68:
            self._create(user, "proposals", self._proposal())
        elif roll < 0.72:
            legal, trade = company_name(rng)
            city, uf = rng.choice(CITIES)
            reuse = self.recent_cnpjs and rng.random() < self.duplicates
            cnpj = rng.choice(self.recent_cnpjs) if reuse else make_cnpj(rng)
            self.recent_cnpjs.append(cnpj)
            self._create(
                user,
                "companies",
                {
                    "legal_name": legal,
                    "trade_name": trade,
                    "cnpj": cnpj,
                    "city": city,
                    "state": uf,
                    "owner_id": rng.randint(1, self.sizes["users"]),
                },
            )
        elif roll < 0.74:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
            self._create(
                user,
                "users",
                {
                    "name": name,
                    "email": f"{ascii_slug(name).replace(' ', '.')}.{uuid.uuid4().hex[:8]}@exemplo.com.br",
                    "role": "analyst",
                    "active": True,
                },
            )
        elif roll < 0.92:
            key = rng.choice(own) if own else rng.randint(1, self.sizes["proposals"])
            status = rng.choice(("submitted", "won", "lost"))
            self.request(
                user,
                "PATCH",
                f"/api/proposals/{key}",
                {"status": status, "amount": round(rng.uniform(10_000, 900_000), 2)},
                "update",
            )
        elif own:
            key = own[-1]
            code, payload = self.request(user, "DELETE", f"/api/proposals/{key}", None, "delete")
            if code == 200 and self.ledger is not None:
                self.ledger.record("delete", "proposals", key, _side(payload))
            if code in (200, 404):
                with user.lock:
                    if key in user.mine.get("proposals", []):
                        user.mine["proposals"].remove(key)
        else:
            self._create(user, "proposals", self._proposal())

    def _proposal(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "opportunity_id": rng.randint(1, self.sizes["opportunities"]),
            "company_id": rng.randint(1, self.sizes["companies"]),
            "user_id": rng.randint(1, self.sizes["users"]),
            "amount": round(rng.uniform(10_000, 2_000_000), 2),
            "status": "submitted",
            "submitted_at": now_text(),
            "notes": "Proposta enviada pelo gerador de carga.",
        }

    def _create(self, user: User, table: str, body: dict[str, Any]) -> None:
        code, payload = self.request(user, "POST", f"/api/{table}", body, "create")
        if code == 201 and isinstance(payload, dict) and "id" in payload:
            with user.lock:
                mine = user.mine.setdefault(table, [])
                mine.append(int(payload["id"]))
                del mine[:-50]
            if self.ledger is not None:
                natural = str(body.get("cnpj") or body.get("email") or "")
                self.ledger.record("create", table, int(payload["id"]), _side(payload), natural)

    # -- running -------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self.stop_event.is_set():
            try:
                user = self.tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.act(user)
            except Exception as exc:  # never let one odd answer end a worker
                self.figures.add(Result(time.time(), 0.0, 0, "", "crash"), f"{type(exc).__name__}: {exc}")

    def run(self, stats_path: Path | None, duration: float = 0.0) -> dict[str, Any]:
        threads = [
            threading.Thread(target=self._worker, name=f"load-{i}", daemon=True) for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        start = time.monotonic()
        next_write = start
        i = 0
        interval = 1.0 / self.rate if self.rate > 0 else 1.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if duration and now - start >= duration:
                break
            due = start + i * interval
            if self.rate > 0 and due <= now:
                i += 1
                try:
                    self.tasks.put_nowait(self.rng.choice(self.users))
                except queue.Full:  # the side is slower than the rate: an open model drops, and says so
                    self.figures.count("skipped")
                continue
            if stats_path is not None and now >= next_write:
                self.write(stats_path)
                next_write = now + 1.0
            self.stop_event.wait(max(0.0, min(due - now if self.rate > 0 else 0.2, next_write - now, 0.2)))
        self.stop_event.set()
        for t in threads:
            t.join(timeout=12)
        if stats_path is not None:
            self.write(stats_path, running=False)
        return self.figures.snapshot()

    def write(self, path: Path, running: bool = True) -> None:
        snap = self.figures.snapshot(
            url=f"http://{self.host}:{self.port}",
            rate=self.rate,
            users=len(self.users),
            sticky={"kind": self.sticky_kind, "name": self.sticky_name},
            running=running,
        )
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(snap, indent=1), encoding="utf-8")
        os.replace(tmp, path)


def _side(payload: Any) -> str:
    return str(payload.get("side", "")) if isinstance(payload, dict) else ""


def read_figures(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cockpit.lab.load", description="The lab's load generator.")
    ap.add_argument("--url", required=True, help="the front door, e.g. http://127.0.0.1:8080")
    ap.add_argument("--rate", type=float, default=20, help="requests per second (default 20)")
    ap.add_argument("--users", type=int, default=200, help="distinct users, each with its own sticky key")
    ap.add_argument("--sticky-kind", choices=("cookie", "header", "address"), default="cookie")
    ap.add_argument("--sticky-name", default="session_id")
    ap.add_argument("--rows", type=int, default=5000, help="rows the lab seeded (to pick existing keys)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--duration", type=float, default=0, help="seconds to run (default: until stopped)")
    ap.add_argument("--stats", type=Path, help="where to write the figures every second")
    ap.add_argument("--ledger", type=Path, help="append every acknowledged write here (the write ledger)")
    ap.add_argument(
        "--duplicates",
        type=float,
        default=0.1,
        help="share of new companies that reuse a CNPJ another user just registered (default 0.1)",
    )
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.users <= 0:
        ap.error("--rate and --users must be positive")
    if not 0 <= args.duplicates <= 1:
        ap.error("--duplicates is a share between 0 and 1")
    gen = LoadGenerator(
        args.url,
        args.rate,
        args.users,
        args.sticky_kind,
        args.sticky_name,
        args.rows,
        args.workers,
        ledger=args.ledger,
        duplicates=args.duplicates,
    )

    def stop(signum: int, frame: Any) -> None:
        gen.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    snap = gen.run(args.stats, args.duration)
    if args.stats is None:
        print(json.dumps(snap, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
