"""Rendering and reading back the include (pure logic), and plan wiring."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from cockpit.core.plan import Balancer, Beta, Sticky, load_plan
from cockpit.drivers.traffic.base import TrafficError
from cockpit.drivers.traffic.nginx import NginxDriver, normalise_percent, parse_split, pending_path

UP_B, UP_G = ["10.0.0.1:8000", "10.0.0.2:8000"], ["10.0.1.1:8000"]


def driver(tmp_path: Path, sticky: Sticky | None = None, **kw: object) -> NginxDriver:
    b = Balancer("lb1", str(tmp_path / "split.conf"), str(tmp_path / "access.json"))
    return NginxDriver([b], UP_B, UP_G, sticky or Sticky(), Beta(), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pct", "lines"),
    [
        (0, ["* blue;"]),
        (100, ["* green;"]),
        (5, ["5.0% green;", "* blue;"]),
        (0.1, ["0.1% green;", "* blue;"]),
        (99.9, ["99.9% green;", "* blue;"]),
        (33.34, ["33.3% green;", "* blue;"]),
    ],
)
def test_split_clients_edges(tmp_path: Path, pct: float, lines: list[str]) -> None:
    d = driver(tmp_path)
    text = d.render(d.balancers[0], pct)
    block = text.split('split_clients "${cockpit_key}" $cockpit_split {')[1].split("}")[0]
    assert [x.strip() for x in block.strip().splitlines()] == lines
    assert parse_split(text) == (round(pct, 1), "")


@pytest.mark.parametrize("bad", [-0.1, 100.1, math.nan, "x", None])
def test_bad_share_is_refused(bad: object) -> None:
    with pytest.raises(TrafficError):
        normalise_percent(bad)  # type: ignore[arg-type]


def test_every_step_passes_nginx_syntax(tmp_path: Path) -> None:
    """nginx -t on a minimal config for a spread of shares, including the hash blocks (sums <= 100)."""
    d = driver(tmp_path)
    for pct in (0, 0.1, 0.5, 12.3, 50, 93.7, 99.9, 100):
        (tmp_path / "split.conf").write_text(d.render(d.balancers[0], pct))
        (tmp_path / "split.conf.location").write_text(d.render_location(d.balancers[0]))
        conf = tmp_path / "nginx.conf"
        conf.write_text(f"""error_log {tmp_path}/error.log;
pid {tmp_path}/nginx.pid;
events {{}}
http {{ include {tmp_path}/split.conf; server {{ listen 127.0.0.1:1; location / {{
  include {tmp_path}/split.conf.location; }} }} }}
""")
        proc = subprocess.run(
            ["nginx", "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", f"{tmp_path}/e.log"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, (pct, proc.stderr)


def test_sticky_sources(tmp_path: Path) -> None:
    assert "map $cookie_sid $cockpit_key" in driver(tmp_path, Sticky("cookie", "sid")).render(
        driver(tmp_path).balancers[0], 5
    )
    d = driver(tmp_path, Sticky("header", "X-User-Id"))
    assert "map $http_x_user_id $cockpit_key" in d.render(d.balancers[0], 5)
    d = driver(tmp_path, Sticky("address", ""))
    assert "map $remote_addr $cockpit_key" in d.render(d.balancers[0], 5)
    with pytest.raises(TrafficError, match="cookie"):
        driver(tmp_path, Sticky("cookie", "bad-name"))
    with pytest.raises(TrafficError, match="header"):
        driver(tmp_path, Sticky("header", "X User"))


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    b = Balancer("lb1", str(tmp_path / "split.conf"))
    with pytest.raises(TrafficError, match="upstream"):
        NginxDriver([b], [], UP_G, Sticky(), Beta())
    with pytest.raises(TrafficError, match="upstream"):
        NginxDriver([b], ["a:1; evil"], UP_G, Sticky(), Beta())
    with pytest.raises(TrafficError, match="unique"):
        NginxDriver([b, b], UP_B, UP_G, Sticky(), Beta())
    with pytest.raises(TrafficError, match="beta"):
        NginxDriver([b], UP_B, UP_G, Sticky(), Beta(value='x"y'))


def test_live_reads_the_file_and_flags_pending(tmp_path: Path) -> None:
    d = driver(tmp_path)
    assert d.live()[0].green_percent is None and "does not exist" in d.live()[0].detail
    d.prepare(20)
    assert d.live()[0].green_percent == 20.0
    d.prepare(50)  # an existing file is the truth: prepare does not overwrite it
    assert d.live()[0].green_percent == 20.0
    pending_path(tmp_path / "split.conf").write_text("green_percent=50.0\n")
    assert "pending" in d.live()[0].detail
    (tmp_path / "split.conf").write_text("garbage")
    assert d.live()[0].green_percent is None


def test_from_plan_resolves_paths_relative_to_the_plan(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("""name: t
blue: {database: {engine: sqlite, path: a.db}, upstreams: ["127.0.0.1:9001"]}
green: {database: {engine: sqlite, path: b.db}, upstreams: ["127.0.0.1:9002"]}
traffic:
  driver: nginx
  sticky: {kind: header, name: X-User-Id}
  balancers: [{name: lb1, include: conf/split.conf, access_log: logs/access.json}]
phases: [{name: one, green: 5}]
""")
    d = NginxDriver.from_plan(load_plan(plan_file))
    assert d.balancers[0].include == str(tmp_path / "conf" / "split.conf")
    assert d.balancers[0].access_log == str(tmp_path / "logs" / "access.json")
    assert d.blue_upstreams == ["127.0.0.1:9001"] and d.sticky.kind == "header"
    assert f'access_log "{tmp_path}/logs/access.json" cockpit_json;' in d.render_location(d.balancers[0])


def test_keepalive_min_timeout_only_where_nginx_knows_it(tmp_path: Path) -> None:
    from cockpit.drivers.traffic import nginx as mod

    d = driver(tmp_path)
    mod._version_cache["nginx"] = (1, 22, 1)
    assert "\nkeepalive_min_timeout " not in d.render_location(d.balancers[0])
    mod._version_cache["nginx"] = (1, 27, 4)
    try:
        assert "keepalive_min_timeout 1000ms;" in d.render_location(d.balancers[0])
    finally:
        del mod._version_cache["nginx"]
