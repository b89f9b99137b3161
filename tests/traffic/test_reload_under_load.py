"""Split changes under continuous keep-alive load: no request may fail."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx

from tests.conftest import wait_for
from tests.traffic.conftest import Site

SPLITS = [5, 20, 50, 80, 100, 0, 12.5, 33.3, 66.7, 99.9, 0.1, 50, 25, 75, 10, 90, 45, 55, 30, 5]


@dataclass
class Load:
    served: int = 0
    fivexx: int = 0
    closed_by_reload: int = (
        0  # a request on a connection nginx closed, that succeeded on the client's one retry
    )
    close_kinds: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(url: str, n: int, stop: threading.Event, load: Load) -> None:
    think = 0.0 if n % 2 == 0 else 0.003  # half the clients leave their connection idle between requests
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            i += 1
            headers = {"Cookie": f"session_id=client{n}-user{i % 300}"}
            retried = False
            try:
                r = client.get("/", headers=headers)
            except httpx.TransportError as first:
                retried = True
                with load.lock:
                    kind = type(first).__name__
                    load.close_kinds[kind] = load.close_kinds.get(kind, 0) + 1
                try:
                    r = client.get("/", headers=headers)
                except httpx.TransportError as exc:
                    with load.lock:
                        load.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
            with load.lock:
                load.served += 1
                load.closed_by_reload += retried
                if r.status_code >= 500:
                    load.fivexx += 1
                if r.headers.get("x-cockpit-side") not in ("blue", "green"):
                    load.failures.append(f"no side header: {r.status_code}")
            if think:
                stop.wait(think)


def test_twenty_split_changes_under_load_lose_nothing(site: Site) -> None:
    load = Load()
    stop = threading.Event()
    clients = [threading.Thread(target=_client, args=(site.url, n, stop, load)) for n in range(4)]
    for c in clients:
        c.start()
    try:
        wait_for(lambda: load.served > 50, timeout=20, what="load running")
        for pct in SPLITS:
            statuses = site.driver.apply(pct)
            assert [s.green_percent for s in statuses] == [float(pct)]
            mark = load.served
            wait_for(lambda m=mark: load.served > m + 40, timeout=20, what=f"requests served at {pct} %")
    finally:
        stop.set()
        for c in clients:
            c.join()
    print(
        f"\nserved={load.served} 5xx={load.fivexx} idle keep-alive closes retried={load.closed_by_reload} "
        f"{load.close_kinds}"
    )
    assert load.failures == []
    assert load.fivexx == 0
    assert load.served > 20 * 40
