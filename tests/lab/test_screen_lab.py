"""The lab, for what the screen shows: the observed split follows each change within 5 s (rollback included),
`X-Cockpit-Side` reaches a client once, every run keeps its journal, and the rollback-readiness light turns red
when blue stops and green again when it is back.

The observed-share test drives its own requests through the lab's nginx with sticky keys chosen so that their
split is known exactly: nginx's split_clients hashes the key with MurmurHash2 (ngx_murmur_hash2, reproduced below
and checked against nginx's answers), so 1000 keys, one per 0.1 % of the hash range, sent in van der Corput
order, put p % of any few hundred consecutive requests on green to within a few tenths of a point. What is left
to measure is the cockpit's own figure: how fast its window lets go of the old split.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cockpit.core.plan import Plan, load_plan
from cockpit.drivers.metrics.access_log import AccessLogMetrics
from cockpit.drivers.traffic.nginx import NginxDriver
from cockpit.lab.lab import LabOptions, down, runs, status, up
from tests.conftest import wait_for

M = 0x5BD1E995
KEYS = 1000  # one key per 0.1 % of the hash range


def murmur2(data: bytes) -> int:
    """nginx's ngx_murmur_hash2 (src/core/ngx_murmurhash.c): what split_clients hashes the key with."""
    h = len(data) & 0xFFFFFFFF
    i, n = 0, len(data)
    while n >= 4:
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * M) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * M) & 0xFFFFFFFF
        h = ((h * M) & 0xFFFFFFFF) ^ k
        i, n = i + 4, n - 4
    if n == 3:
        h ^= data[i + 2] << 16
    if n >= 2:
        h ^= data[i + 1] << 8
    if n >= 1:
        h ^= data[i]
        h = (h * M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * M) & 0xFFFFFFFF
    return h ^ (h >> 15)


def green_for(key: str, percent: float) -> bool:
    """split_clients' own arithmetic: green (listed first) below percent*100 parts of 10000 of the hash range."""
    return murmur2(key.encode()) < int(round(percent * 100)) * 0xFFFFFFFF // 10000


def spread_keys() -> list[str]:
    """One key per 1/KEYS of the hash range, in van der Corput order (any run of them is spread evenly)."""
    by_bin: dict[int, str] = {}
    for i in itertools.count():
        key = f"probe-{i}"
        by_bin.setdefault(murmur2(key.encode()) * KEYS >> 32, key)
        if len(by_bin) == KEYS:
            break
    bits = (KEYS - 1).bit_length()
    order = sorted(range(KEYS), key=lambda b: int(f"{b:0{bits}b}"[::-1], 2) if b < (1 << bits) else b)
    return [by_bin[b] for b in order]


class Requests:
    """GETs through the front door from a few threads, each with the next key, at about `rate` a second."""

    def __init__(self, front_door: str, keys: list[str], rate: float = 120.0, threads: int = 4):
        host, port = front_door.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.keys = itertools.cycle(keys)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.period = threads / rate
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Requests:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self.stop.is_set():
            started = time.monotonic()
            with self.lock:
                key = next(self.keys)
            try:
                conn.request("GET", "/health", headers={"Cookie": f"session_id={key}"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException) as exc:  # a reload closes idle keep-alive connections
                conn.close()
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(max(0.0, self.period - (time.monotonic() - started)))


@pytest.fixture
def lab(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, Plan, dict]]:
    root = tmp_path / "lab"
    try:
        up(LabOptions(root=root, rate=0, users=10, rows=300, pg_url=pg_url, quiet=True))
        doc = status(root)
        yield root, load_plan(doc["plan"]), doc
    finally:
        down(root, quiet=True)


def test_the_keys_split_as_nginx_splits_them(lab) -> None:
    root, plan, doc = lab
    NginxDriver.from_plan(plan).apply(20)
    keys = spread_keys()
    assert sum(green_for(k, 20) for k in keys) == 200
    with httpx.Client(base_url=doc["front_door"], timeout=10) as client:
        for key in keys[:60]:
            r = client.get("/health", headers={"Cookie": f"session_id={key}"})
            # and X-Cockpit-Side reaches the client once (nginx sets it; the service no longer does)
            assert r.headers.get_list("x-cockpit-side") == ["green" if green_for(key, 20) else "blue"]


def test_the_observed_share_follows_each_change_within_5s(lab) -> None:
    root, plan, doc = lab
    traffic = NginxDriver.from_plan(plan)
    traffic.apply(0)
    metrics = AccessLogMetrics.from_plan(plan)
    assert metrics is not None
    seen: list[tuple[float, float | None, float, float]] = []
    with Requests(doc["front_door"], spread_keys()) as load:
        wait_for(lambda: metrics.poll().overall.count > 200, timeout=30, what="requests in the access log")
        for percent in (5, 20, 50, 0):  # the last one is a rollback's traffic step
            traffic.apply(percent)
            changed = time.monotonic()
            while time.monotonic() - changed < 5.0:  # the controller polls every tick; so does this
                sample = metrics.poll()
                load.stop.wait(0.25)
            sample = metrics.poll()
            seen.append((percent, sample.green_share, sample.share_window_s, sample.overall.count))
            assert sample.share_restarted, seen
            assert sample.green_share is not None and abs(sample.green_share - percent) <= 2.0, seen
            # whole seconds since the include was written (apply returns once the reload landed, ~1 s later)
            assert 2.0 <= sample.share_window_s <= 6.5, seen
    metrics.close()
    print(
        "\n".join(
            f"{p:>3}% -> observed {s:.2f}% over {w:g}s ({n} requests in the window)" for p, s, w, n in seen
        )
    )


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )


def test_every_run_keeps_its_journal(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "lab"
    try:
        up(LabOptions(root=root, rate=0, users=10, rows=200, pg_url=pg_url, quiet=True))
        first = status(root)
        done = cockpit("-p", first["plan"], "hold", "--reason", "the first run's hold")
        assert done.returncode == 0, done.stderr
        down(root, quiet=True)
        up(LabOptions(root=root, rate=0, users=10, rows=200, pg_url=pg_url, quiet=True))
        second = status(root)
    finally:
        down(root, quiet=True)
    assert second["run"] != first["run"]
    kept = runs(root)
    assert [r["run"] for r in kept] == [second["run"], first["run"]]
    old = cockpit("-p", kept[1]["plan"], "journal")
    assert old.returncode == 0 and "the first run's hold" in old.stdout, old.stdout + old.stderr
    new = cockpit("-p", second["plan"], "journal")
    assert "the first run's hold" not in new.stdout


def test_the_readiness_light_follows_blue(lab) -> None:
    """Red when blue's services stop, green again when they are back (blue, and nothing else, says why); the
    light reaches `status --json` too."""
    from cockpit.control.session import ControllerThread

    root, plan, doc = lab
    thread = ControllerThread(plan)
    controller = thread.start()
    try:
        wait_for(
            lambda: controller.latest is not None and controller.latest.readiness is not None,
            timeout=10 * float(plan.tick) + 10,
            what="the controller's first readiness assessment",
        )
        import asyncio

        backup = asyncio.run_coroutine_threadsafe(controller.backup("for the readiness light"), thread.loop)
        assert backup.result(120).ok

        def light() -> tuple[bool, str]:
            r = controller.latest.readiness
            return (r.ready, "; ".join(f"{c.name}: {c.detail}" for c in r.blocking)) if r else (False, "none")

        wait_for(lambda: light()[0], timeout=60, what=f"the light to turn green ({light()[1]})")
        assert controller.latest.to_json()["rollback_readiness"]["ready"] is True
        shown = json.loads(cockpit("-p", str(plan.source), "status", "--json").stdout)  # another process
        assert shown["rollback_readiness"]["ready"] is True and "traffic" in shown["sources"]
        units = list(plan.blue.services.units)
        controller.drivers.blue_services.stop(units)
        wait_for(lambda: not light()[0], timeout=30, what="the light to turn red")
        assert [c.name for c in controller.latest.readiness.blocking] == ["blue"], light()
        assert "stopped" in light()[1]
        controller.drivers.blue_services.start(units)
        wait_for(lambda: light()[0], timeout=60, what=f"the light to turn green again ({light()[1]})")
    finally:
        thread.stop()
