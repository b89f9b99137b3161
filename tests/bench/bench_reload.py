"""Split change latency: from `apply(split)` returning to the new split being live (seen by requests), beside
nginx's own reload time. A private nginx on loopback in front of two stdlib backends.

Run: .venv/bin/python tests/bench/bench_reload.py [runs]
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cockpit.core.plan import Beta, Sticky  # noqa: E402
from cockpit.drivers.traffic.nginx import NginxDriver  # noqa: E402
from cockpit.drivers.traffic.nginx_site import PrivateNginx, free_port  # noqa: E402
from tests.traffic.conftest import Backend  # noqa: E402


def side_of(port: int, key: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # a new connection: no old-worker reuse
    try:
        conn.request("GET", "/", headers={"Cookie": f"session_id={key}"})
        r = conn.getresponse()
        r.read()
        return r.getheader("X-Cockpit-Side") or ""
    finally:
        conn.close()


def stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[max(0, int(round(0.95 * len(ms))) - 1)]
    return f"median {statistics.median(ms):8.2f} ms   p95 {p95:8.2f} ms   max {ms[-1]:8.2f} ms"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    blue, green = Backend("blue").start(), Backend("green").start()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        site = PrivateNginx(root, free_port(), root / "split.conf")
        driver = NginxDriver([site.balancer("lb1")], [blue.address], [green.address], Sticky(), Beta())
        driver.prepare(0)
        site.start()
        try:
            apply_s, to_live_s, first_probe = [], [], []
            for i in range(runs):
                pct, want = (100, "green") if i % 2 == 0 else (0, "blue")
                t0 = time.perf_counter()
                driver.apply(pct)
                t1 = time.perf_counter()
                probes = 1
                while side_of(site.listen_port, f"probe{i}-{probes}") != want:
                    probes += 1
                t2 = time.perf_counter()
                apply_s.append(t1 - t0)
                to_live_s.append(t2 - t1)
                first_probe.append(probes == 1)
            signal_s, landed_s = [], []
            for _ in range(runs):
                before = site.worker_pids()
                t0 = time.perf_counter()
                subprocess.run(site.reload_argv(), check=True, capture_output=True)
                t1 = time.perf_counter()
                site.wait_new_workers(before)
                t2 = time.perf_counter()
                signal_s.append(t1 - t0)
                landed_s.append(t2 - t0)
            test_s = []
            for _ in range(runs):
                t0 = time.perf_counter()
                subprocess.run(site.test_argv(), check=True, capture_output=True)
                test_s.append(time.perf_counter() - t0)
        finally:
            site.stop()
            blue.stop()
            green.stop()
    print(f"runs: {runs} (alternating 0 % and 100 % green; probes on new connections)")
    print(f"apply(split) duration (render, nginx -t, reload, wait until landed): {stats(apply_s)}")
    print(
        f"apply returned -> new split seen by a request:                     {stats(to_live_s)}"
        f"   first probe already new: {sum(first_probe)}/{runs}"
    )
    print(f"nginx's own: `nginx -s reload` command:                            {stats(signal_s)}")
    print(f"nginx's own: reload signal -> new workers, old ones shutting down: {stats(landed_s)}")
    print(f"nginx's own: `nginx -t`:                                           {stats(test_s)}")


if __name__ == "__main__":
    main()
