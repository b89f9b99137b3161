"""Access-log ingest speed on one core: lines/s through AccessLogTail + AccessLogMetrics (target >= 200,000).

Run: .venv/bin/python tests/bench/bench_access_log.py [lines]
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from cockpit.drivers.metrics.access_log import AccessLogMetrics


def make_lines(n: int, start: int) -> list[str]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        side = "green" if rng.random() < 0.2 else "blue"
        status = 503 if rng.random() < 0.01 else (404 if rng.random() < 0.02 else 200)
        rt = rng.lognormvariate(-3.5, 0.7)
        out.append(
            f'{{"t":{start + i * 60 // n}.{i % 1000:03d},"s":{status},"rt":{rt:.3f},"side":"{side}",'
            f'"ua":"10.0.0.{i % 3 + 1}:8000","us":"{status}","urt":"{rt:.3f}","k":"{i % 16777216:06x}"}}'
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    start = int(time.time()) - 60
    lines = make_lines(n, start)
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "access.json"
        log.touch()
        m = AccessLogMetrics(log, window_s=60)
        log.write_text("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        s = m.poll()
        tail_dt = time.perf_counter() - t0
        assert s.lines == n, s.lines
        m.close()

        m2 = AccessLogMetrics(log, window_s=60)
        t0 = time.perf_counter()
        m2.ingest(lines)
        parse_dt = time.perf_counter() - t0
        m2.close()

        shuffled = [
            json.dumps(dict(reversed(list(json.loads(x).items()))), separators=(",", ":"))
            for x in lines[:200_000]
        ]
        m3 = AccessLogMetrics(log, window_s=60)
        t0 = time.perf_counter()
        m3.ingest(shuffled)
        slow_dt = time.perf_counter() - t0
        m3.close()

        t0 = time.perf_counter()
        for x in lines[:200_000]:
            json.loads(x)
        loads_dt = time.perf_counter() - t0

    print(f"lines: {n:,} (one core, pinned)")
    print(f"tail + parse + window (poll):        {n / tail_dt:12,.0f} lines/s   (target >= 200,000)")
    print(f"parse + window only (ingest):        {n / parse_dt:12,.0f} lines/s")
    print(f"json.loads fallback (other order):   {len(shuffled) / slow_dt:12,.0f} lines/s")
    print(f"bare json.loads, for comparison:     {200_000 / loads_dt:12,.0f} lines/s")
    print(
        f"sample: green share {s.green_share:.2f} %, p95 {s.overall.p95_ms} ms, 5xx {s.overall.error_rate:.2f} %"
    )


if __name__ == "__main__":
    main()
