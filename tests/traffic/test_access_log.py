"""The access-log tail and metrics: real files, and a real nginx writing its JSON log."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from cockpit.drivers.metrics.access_log import (
    AccessLogMetrics,
    AccessLogTail,
    bucket_value,
    latency_bucket,
    percentiles,
)
from tests.conftest import wait_for
from tests.traffic.conftest import Backend, Site, fetch_sides, make_site


def line(t: float, status: int = 200, rt: float = 0.010, side: str = "blue") -> str:
    return (
        f'{{"t":{t:.3f},"s":{status},"rt":{rt:.3f},"side":"{side}","ua":"127.0.0.1:1",'
        f'"us":"{status}","urt":"{rt:.3f}","k":"0a1b2c"}}\n'
    )


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def test_tail_starts_at_the_end_and_keeps_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.json"
    append(log, line(1) * 10 + '{"t":1.000,"s":2')  # history and a half-written line
    tail = AccessLogTail(log)
    assert tail.read_lines() == []
    append(log, '00,"rt":0.001,"side":"blue"}\n')
    assert tail.read_lines() == []  # the rest of the line that was half-written at open is skipped
    append(log, line(2)[:20])
    assert tail.read_lines() == []
    append(log, line(2)[20:])
    assert tail.read_lines() == [line(2).rstrip("\n")]
    tail.close()


def test_tail_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "later.json"
    tail = AccessLogTail(log)
    assert tail.read_lines() == []
    append(log, line(1) * 3)
    assert len(tail.read_lines()) == 3
    tail.close()


def test_rename_rotation_loses_no_line(tmp_path: Path) -> None:
    log = tmp_path / "a.json"
    log.touch()
    tail = AccessLogTail(log, drain_grace_s=0.0)
    append(log, line(1) * 5)
    assert len(tail.read_lines()) == 5
    with open(log, "a", encoding="utf-8") as old_writer:
        os.rename(log, tmp_path / "a.json.1")
        old_writer.write(line(2) * 7)  # the writer keeps its old file until it reopens
        old_writer.flush()
        append(log, line(3) * 4)  # reopened: a new file
        got = tail.read_lines()
        assert len(got) == 11 and tail.rotations == 1
        old_writer.write(line(4) * 2)  # a late write to the old file is still read (grace period)
    got = tail.read_lines()
    assert len(got) == 2
    assert tail.read_lines() == []
    tail.close()


def test_copytruncate_loses_no_line(tmp_path: Path) -> None:
    log = tmp_path / "a.json"
    log.touch()
    tail = AccessLogTail(log)
    append(log, line(1) * 5)
    assert len(tail.read_lines()) == 5
    append(log, line(2) * 3)  # written but not read yet when the copy is taken
    shutil.copyfile(log, tmp_path / "a.json.1")
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, line(3) * 2)
    got = tail.read_lines()
    assert len(got) == 5 and tail.truncations == 1 and tail.recovered_from_copy == 1
    # truncated again and rewritten past the old offset before the next read: noticed by the changed first bytes
    append(log, line(4) * 1)
    assert len(tail.read_lines()) == 1
    shutil.copyfile(log, tmp_path / "a.json.1")
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, line(5, status=503) * 40)
    got = tail.read_lines()
    assert len(got) == 40 and tail.truncations == 2
    tail.close()


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "a.json"
    log.touch()
    m = AccessLogMetrics(log)
    now = time.time()
    append(
        log,
        line(now)
        + "garbage\n"
        + '{"t":1}\n'
        + '{"t":1,"s":200,"rt":0.1,"side":"purple"}\n'
        + line(now + 3600)
        + "\n"
        + f'{{"side":"green","rt":"0.020","s":"502","t":{now:.3f}}}\n'
        + line(now, side="green"),
    )
    s = m.poll(now)
    assert s.malformed == 4  # three bad lines and one stamped an hour ahead
    assert s.overall.count == 3 and s.green.count == 2 and s.green.error_rate == 50.0
    assert s.as_metrics()["access_log.malformed"] == 4.0
    m.close()


def test_window_slides_and_memory_stays_bounded(tmp_path: Path) -> None:
    log = tmp_path / "a.json"
    log.touch()
    m = AccessLogMetrics(log, window_s=10)
    start = 1_000_000
    m.ingest(
        line(start + i / 100, rt=0.001 * (i % 50), side="green" if i % 4 == 0 else "blue").rstrip("\n")
        for i in range(100 * 1000)
    )  # 1,000 seconds of log at 100 lines/s
    assert len(m._seconds) <= 12
    s = m.sample(now=start + 1000)
    assert 990 <= s.overall.count <= 1010 and s.green_share == pytest.approx(25.0, abs=1)
    assert m.sample(now=start + 2000).overall.count == 0
    metrics = m.sample(now=start + 2000).as_metrics()
    assert "error_rate" not in metrics and metrics["throughput"] == 0.0
    m.close()


def test_histogram_percentiles_are_close() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3.5, 0.8) for _ in range(50_000)]  # ms, median ~33, long tail
    hist: dict[int, int] = {}
    for v in values:
        k = latency_bucket(v)
        hist[k] = hist.get(k, 0) + 1
    values.sort()
    for q, got in zip((0.5, 0.95, 0.99), percentiles(hist, (0.5, 0.95, 0.99)), strict=True):
        exact = values[int(q * len(values)) - 1]
        assert got == pytest.approx(exact, rel=0.03, abs=1.0)
    assert bucket_value(latency_bucket(250.0)) == pytest.approx(250.0, rel=0.011)


@pytest.fixture
def faulty_site(tmp_path: Path) -> Site:
    rng = random.Random(3)
    blue = Backend("blue", error_percent=7, latency=lambda: rng.uniform(0.005, 0.045)).start()
    green = Backend("green", error_percent=7, latency=lambda: rng.uniform(0.005, 0.045)).start()
    s = make_site(tmp_path, blue, green)
    yield s
    s.nginx.stop()
    blue.stop()
    green.stop()


def test_metrics_match_what_the_backends_served(faulty_site: Site) -> None:
    site = faulty_site
    site.driver.apply(50)
    m = AccessLogMetrics(site.access_log)
    n = 1500
    fetch_sides(site.url, [f"k{i}" for i in range(n)], threads=8)
    wait_for(lambda: m.poll().overall.count >= n, timeout=20, what="all lines read")
    s = m.poll()
    assert s.overall.count == n and s.malformed == 0
    total_5xx = site.blue.served_5xx + site.green.served_5xx
    assert s.overall.error_rate == pytest.approx(100.0 * total_5xx / n, abs=0.5)
    assert s.overall.error_rate == pytest.approx(7.0, abs=0.5)
    for backend, stats in ((site.blue, s.blue), (site.green, s.green)):
        assert stats.count == backend.served
        assert stats.error_rate == pytest.approx(100.0 * backend.served_5xx / backend.served, abs=0.5)
        assert stats.connection_failure_rate == stats.error_rate  # the backends' failures are all 503
        served = sorted(backend.durations_ms)
        p95 = served[int(0.95 * len(served)) - 1]
        print(
            f"\n{backend.side}: log p95={stats.p95_ms:.1f} ms, served p95={p95:.1f} ms, "
            f"log 5xx={stats.error_rate:.2f} %, served 5xx={100.0 * backend.served_5xx / backend.served:.2f} %"
        )
        assert stats.p95_ms == pytest.approx(p95, rel=0.10), (stats, p95)
    assert s.green_share == pytest.approx(100.0 * site.green.served / n, abs=0.01)
    metrics = s.as_metrics()
    for key in (
        "blue.rps",
        "green.rps",
        "blue.error_rate",
        "green.error_rate",
        "blue.response_time_p95",
        "green.response_time_p50",
        "green.response_time_p99",
        "error_rate",
        "response_time_p95",
        "throughput",
        "traffic_distribution",
    ):
        assert key in metrics, key
    m.close()


def test_an_unreachable_side_is_seen_as_its_users_see_it(tmp_path: Path) -> None:
    """Nothing listens on green: nginx answers 502, counted as green's connection failures (what fires
    database_connection_failure through the controller's green.connection_failures, beside its own probe)."""
    blue, green = Backend("blue").start(), Backend("green").start()
    site = make_site(tmp_path, blue, green)
    try:
        site.driver.apply(50)
        green.stop()
        m = AccessLogMetrics(site.access_log)
        n = 300
        answers = fetch_sides(site.url, [f"k{i}" for i in range(n)], threads=4)
        wait_for(lambda: m.poll().overall.count >= n, timeout=20, what="all lines read")
        s = m.poll()
        assert s.green.count > 0 and s.blue.count > 0
        assert s.green.connection_failure_rate == 100.0 and s.blue.connection_failure_rate == 0.0
        assert sum(1 for a in answers if a[2] == 502) == s.green.count
        assert s.as_metrics()["green.connection_failure_rate"] == 100.0
        m.close()
    finally:
        site.nginx.stop()
        blue.stop()


def test_nginx_log_rotation_loses_no_line(site: Site) -> None:
    site.driver.apply(50)
    m = AccessLogMetrics(site.access_log)
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        fetch_sides(site.url, [f"r{sent + i}" for i in range(count)], threads=2)
        sent += count

    send(100)
    m.poll()
    send(50)  # not read before the rename
    os.rename(site.access_log, str(site.access_log) + ".1")
    send(30)  # nginx still writes to the renamed file
    site.nginx.reopen_logs()
    wait_for(site.access_log.exists, timeout=10, what="nginx reopened its log")
    send(70)
    wait_for(lambda: m.poll().overall.count >= sent, timeout=10, what="lines after rename")
    assert m.poll().overall.count == sent == 250
    # copytruncate, with lines written after the last read and before the copy
    send(40)
    shutil.copyfile(site.access_log, str(site.access_log) + ".1")
    with open(site.access_log, "r+") as f:
        f.truncate(0)
    send(60)
    wait_for(lambda: m.poll().overall.count >= sent, timeout=10, what="lines after copytruncate")
    s = m.poll()
    assert s.overall.count == sent == 350 and s.malformed == 0
    m.close()


def test_from_plan_reads_every_balancer_log(tmp_path: Path) -> None:
    from cockpit.core.plan import load_plan

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("""name: t
blue: {database: {engine: sqlite, path: a.db}, upstreams: ["127.0.0.1:9001"]}
green: {database: {engine: sqlite, path: b.db}, upstreams: ["127.0.0.1:9002"]}
traffic:
  driver: nginx
  window: 30s
  balancers:
    - {name: lb1, include: lb1.conf, access_log: logs/lb1.json}
    - {name: lb2, include: lb2.conf, access_log: logs/lb2.json}
phases: [{name: one, green: 5}]
""")
    (tmp_path / "logs").mkdir()
    m = AccessLogMetrics.from_plan(load_plan(plan_file))
    assert m is not None and m.window_s == 30.0
    now = time.time()
    append(tmp_path / "logs" / "lb1.json", line(now, side="green") * 3)
    append(tmp_path / "logs" / "lb2.json", line(now) * 1)
    s = m.poll(now)
    assert s.overall.count == 4 and s.green_share == 75.0
    m.close()


def test_the_share_restarts_at_a_split_change_and_says_its_window(tmp_path: Path) -> None:
    """A rollback from 20 % to 0 %: 5 s later the share is the new split's, not a blend over the whole window."""
    log, include = tmp_path / "access.json", tmp_path / "split.conf"
    log.touch()
    include.write_text("# cockpit-split balancer=lb1 green_percent=20.0\n")
    m = AccessLogMetrics(log, window_s=30.0, split_files=[include])
    t0 = float(int(time.time()))  # on a whole second: the windows below are whole seconds
    m._started = t0 - 60  # the source has run for a minute
    m.poll(t0 - 20)  # the split as it stood: 20 %
    for i in range(20):  # 20 s at 20 % green, 10 requests a second
        append(log, "".join(line(t0 - 20 + i + k / 10, side="green" if k < 2 else "blue") for k in range(10)))
    include.write_text("# cockpit-split balancer=lb1 green_percent=0.0\n")
    os.utime(include, (t0 + 0.4, t0 + 0.4))  # the rollback's include, written at t0 + 0.4
    for i in range(5):  # then all on blue
        append(log, "".join(line(t0 + i + k / 10) for k in range(10)))
    s = m.poll(t0 + 5)
    assert s.share_restarted and s.green_share == 0.0
    assert s.share_window_s == pytest.approx(4.0)  # whole seconds t0+1 .. t0+5
    assert s.window_s == 30.0 and s.overall.count == 250  # the other figures keep their window
    metrics = s.as_metrics()
    assert (
        metrics["traffic_distribution.window_s"] == 4.0 and metrics["traffic_distribution.restarted"] == 1.0
    )
    assert metrics["access_log.window_s"] == 30.0
    # the same split written again is no change; once the window is past the change, the share is whole again
    include.write_text("# cockpit-split balancer=lb1 green_percent=0.0\n")
    assert m.poll(t0 + 6).share_window_s == pytest.approx(5.0)
    later = m.poll(t0 + 40)
    assert not later.share_restarted and later.share_window_s == 30.0
    m.close()


def test_without_split_files_the_share_covers_the_window(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    log.touch()
    m = AccessLogMetrics(log, window_s=10.0)
    now = time.time()
    m._started = now - 60
    append(log, line(now - 1, side="green") + line(now - 1))
    s = m.poll(now)
    assert s.green_share == 50.0 and s.share_window_s == 10.0 and not s.share_restarted
    m.close()
