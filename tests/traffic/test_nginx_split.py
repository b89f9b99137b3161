"""The nginx driver against a real private nginx and two real backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.plan import Beta, Sticky
from cockpit.drivers.traffic.base import TrafficError, live_percent
from cockpit.drivers.traffic.nginx import NginxDriver, prev_path
from cockpit.drivers.traffic.nginx_site import PrivateNginx, free_port
from tests.traffic.conftest import Backend, Site, fetch_sides

KEYS = [f"user-{i:05d}" for i in range(5000)]


@pytest.mark.parametrize("percent", [5, 20, 50])
def test_split_lands_within_two_points(site: Site, percent: float) -> None:
    statuses = site.driver.apply(percent)
    assert [s.green_percent for s in statuses] == [float(percent)]
    results = fetch_sides(site.url, KEYS)
    assert all(status == 200 for _, _, status in results)
    assert all(header == body for header, body, _ in results), "X-Cockpit-Side must name the side that served"
    green = sum(1 for header, _, _ in results if header == "green")
    assert abs(100.0 * green / len(KEYS) - percent) <= 2.0, f"{green} of {len(KEYS)} on green at {percent} %"
    assert site.green.served == green and site.blue.served == len(KEYS) - green


def test_growing_share_only_moves_users_to_green(site: Site) -> None:
    keys = KEYS[:2000]
    site.driver.apply(5)
    at5 = {k for k, (h, _, _) in zip(keys, fetch_sides(site.url, keys), strict=True) if h == "green"}
    site.driver.apply(20)
    at20 = {k for k, (h, _, _) in zip(keys, fetch_sides(site.url, keys), strict=True) if h == "green"}
    assert at5 and at5 < at20


def test_one_key_always_reaches_the_same_side(site: Site) -> None:
    site.driver.apply(50)
    for key in ("alice", "bob", "carol", "dave"):
        sides = {h for h, _, _ in fetch_sides(site.url, [key] * 50, threads=2)}
        assert len(sides) == 1, f"{key} reached {sides}"


def test_beta_header_reaches_green_at_zero(site: Site) -> None:
    site.driver.apply(0)
    keys = KEYS[:200]
    assert {h for h, _, _ in fetch_sides(site.url, keys)} == {"blue"}
    beta = fetch_sides(site.url, keys, headers={"X-User-Segment": "beta"})
    assert {h for h, _, _ in beta} == {"green"} and {b for _, b, _ in beta} == {"green"}
    site.driver.apply(100)
    assert {h for h, _, _ in fetch_sides(site.url, keys)} == {"green"}


def test_requests_without_the_cookie_are_served(site: Site) -> None:
    site.driver.apply(50)
    sides = {h for h, _, _ in fetch_sides(site.url, ["x"] * 20, cookie="other")}
    assert len(sides) == 1  # keyed on the client address: one client, one side


def test_header_sticky_key(tmp_path: Path, backends: tuple[Backend, Backend]) -> None:
    from tests.traffic.conftest import make_site

    s = make_site(tmp_path, *backends, sticky=Sticky(kind="header", name="X-User-Id"))
    try:
        s.driver.apply(30)
        import http.client

        host, port = s.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        green = 0
        for i in range(1000):
            conn.request("GET", "/", headers={"X-User-Id": f"u{i}"})
            r = conn.getresponse()
            r.read()
            green += r.getheader("X-Cockpit-Side") == "green"
        conn.close()
        assert abs(green / 10 - 30) <= 4
    finally:
        s.nginx.stop()


def test_failed_test_keeps_old_config_live_and_shows_nginx_error(site: Site) -> None:
    site.driver.apply(20)
    include = Path(site.driver.balancers[0].include)
    good = include.read_bytes()
    workers = site.nginx.worker_pids()
    broken = NginxDriver(site.driver.balancers, [site.blue.address], ["127.0.0.1:notaport"], Sticky(), Beta())
    with pytest.raises(TrafficError) as err:
        broken.apply(50)
    assert "invalid port" in str(err.value) and "nothing reloaded" in str(err.value)
    assert include.read_bytes() == good
    # no reload: no new worker (an old one from the apply(20) reload may still be finishing and leave meanwhile)
    assert site.nginx.worker_pids() <= workers, "no reload after a failed test"
    assert live_percent(site.driver.live()) == 20.0
    results = fetch_sides(site.url, KEYS[:2000])
    assert abs(100.0 * sum(h == "green" for h, _, _ in results) / 2000 - 20) <= 3


def test_failing_test_command_puts_previous_file_back(site: Site) -> None:
    site.driver.apply(10)
    include = Path(site.driver.balancers[0].include)
    before = include.read_bytes()
    b = site.driver.balancers[0].model_copy(
        update={"test_command": [*site.nginx.test_argv(), "-c", "/nonexistent"]}
    )
    failing = NginxDriver([b], [site.blue.address], [site.green.address], Sticky(), Beta())
    with pytest.raises(TrafficError, match="nonexistent"):
        failing.apply(60)
    assert include.read_bytes() == before
    assert [s.green_percent for s in failing.live()] == [10.0]
    assert "pending" not in failing.live()[0].detail


def test_previous_copy_is_kept(site: Site) -> None:
    site.driver.apply(5)
    site.driver.apply(20)
    prev = prev_path(site.driver.balancers[0].include).read_text()
    assert "green_percent=5.0" in prev


def test_several_balancers_fail_together(tmp_path: Path, site: Site) -> None:
    root2 = tmp_path / "nginx2"
    second = PrivateNginx(root2, free_port(), root2 / "cockpit-split.conf")
    b1 = site.driver.balancers[0]
    b2 = second.balancer("lb2").model_copy(update={"test_command": second.test_argv()})
    both = NginxDriver([b1, b2], [site.blue.address], [site.green.address], Sticky(), Beta())
    both.prepare(0)
    second.start()
    try:
        assert [s.green_percent for s in both.apply(15)] == [15.0, 15.0]
        assert live_percent(both.live()) == 15.0
        # the second balancer's test fails: the first is put back to 15 % (file and reload)
        bad_b2 = b2.model_copy(
            update={"test_command": [*second.test_argv(), "-c", str(root2 / "missing.conf")]}
        )
        bad = NginxDriver([b1, bad_b2], [site.blue.address], [site.green.address], Sticky(), Beta())
        workers = site.nginx.worker_pids()
        with pytest.raises(TrafficError) as err:
            bad.apply(40)
        assert "balancer lb2" in str(err.value) and "put back the previous split on lb1" in str(err.value)
        assert [s.green_percent for s in both.live()] == [15.0, 15.0]
        site.nginx.wait_new_workers(workers)  # lb1 was reloaded twice: to 40 and back to 15
        results = fetch_sides(site.url, KEYS[:2000])
        assert abs(100.0 * sum(h == "green" for h, _, _ in results) / 2000 - 15) <= 3
    finally:
        second.stop()


def test_reload_failure_restores_file(site: Site) -> None:
    site.driver.apply(30)
    b = site.driver.balancers[0].model_copy(update={"reload_command": ["false"]})
    d = NginxDriver([b], [site.blue.address], [site.green.address], Sticky(), Beta())
    with pytest.raises(TrafficError, match="reload failed"):
        d.apply(70)
    assert [s.green_percent for s in d.live()] == [30.0]
