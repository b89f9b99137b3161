"""The preflight's nginx area against a real private nginx (tests.traffic.conftest's site): go, then the
include missing from the site and a configuration that does not test."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.control.preflight.nginx import dump_argv, loaded_files
from cockpit.drivers.traffic.nginx import location_path
from tests.conftest import wait_for
from tests.control.preflight_support import check, make_plan, run_json
from tests.traffic.conftest import Backend, Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    blue, green = Backend("blue").start(), Backend("green").start()
    s = make_site(tmp_path, blue, green)
    yield s
    s.nginx.stop()
    blue.stop()
    green.stop()


def _nginx_plan(tmp_path: Path, pg_url: str, site: Site) -> Path:
    b = site.nginx.balancer("lb1", site.access_log)
    traffic = {
        "driver": "nginx",
        "balancers": [
            {
                "name": "lb1",
                "include": b.include,
                "access_log": b.access_log,
                "test_command": b.test_command,
                "reload_command": b.reload_command,
            }
        ],
    }
    plan = make_plan(tmp_path, pg_url, f"traffic: {json.dumps(traffic)}\n", copied=True)
    plan.write_text(
        plan.read_text()
        .replace("blue: {database:", f"blue: {{upstreams: ['{site.blue.address}'], database:")
        .replace("green: {database:", f"green: {{upstreams: ['{site.green.address}'], database:")
    )
    return plan


def _get(site: Site) -> None:
    """One request through the site, and its line in the access log (nginx logs after it answers)."""
    before = site.access_log.stat().st_size if site.access_log.exists() else 0
    conn = http.client.HTTPConnection("127.0.0.1", site.nginx.listen_port, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()
    conn.close()

    def logged() -> bool:
        data = site.access_log.read_bytes() if site.access_log.exists() else b""
        return len(data) > before and data.endswith(b"\n")

    wait_for(logged, timeout=10, what="the request's line in the access log")


def _failed(doc: dict) -> list[dict]:
    return [c for c in doc["checks"] if c["status"] == "fail"]


def test_a_served_site_is_go(
    tmp_path: Path, pg_url: str, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    _get(site)
    code, doc = run_json(_nginx_plan(tmp_path, pg_url, site), capsys)
    assert code == 0, _failed(doc)
    assert check(doc, "nginx", "lb1 nginx -t")["status"] == "pass"
    assert check(doc, "nginx", "lb1 includes")["status"] == "pass"
    log = check(doc, "nginx", "lb1 access log")
    assert log["status"] == "pass" and "last request" in log["found"], log
    # Debian's 1.22: a reload drops idle keep-alive connections, so a warning with advice
    version = check(doc, "nginx", "lb1 version")
    assert version["status"] in ("pass", "warn") and "nginx 1." in version["found"], version
    if version["status"] == "warn":
        assert "1.27.4" in version["do"]


def test_the_include_missing_from_the_site_is_no_go(
    tmp_path: Path, pg_url: str, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    _get(site)
    location = location_path(site.nginx.driver_include)
    conf = site.nginx.conf_path
    conf.write_text(conf.read_text().replace(f'include "{location}";', ""))
    code, doc = run_json(_nginx_plan(tmp_path, pg_url, site), capsys)
    assert code == 1
    assert check(doc, "nginx", "lb1 nginx -t")["status"] == "pass"  # still a valid nginx, just not ours
    inc = check(doc, "nginx", "lb1 includes")
    assert inc["status"] == "fail" and str(location) in inc["found"], inc
    assert "inside the location" in inc["do"]


def test_a_config_that_does_not_test_is_no_go(
    tmp_path: Path, pg_url: str, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    _get(site)
    conf = site.nginx.conf_path
    conf.write_text(conf.read_text().replace("events {", "no_such_directive on;\nevents {"))
    code, doc = run_json(_nginx_plan(tmp_path, pg_url, site), capsys)
    assert code == 1
    t = check(doc, "nginx", "lb1 nginx -t")
    assert t["status"] == "fail" and "no_such_directive" in t["found"], t
    assert check(doc, "nginx", "lb1 includes")["status"] == "fail"


def test_an_access_log_never_written_is_no_go(
    tmp_path: Path, pg_url: str, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _nginx_plan(tmp_path, pg_url, site)
    plan.write_text(plan.read_text().replace(str(site.access_log), str(tmp_path / "elsewhere.json")))
    code, doc = run_json(plan, capsys)
    assert code == 1
    log = check(doc, "nginx", "lb1 access log")
    assert log["status"] == "fail" and "does not exist" in log["found"], log


def test_the_dump_lists_what_nginx_loads(site: Site) -> None:
    import subprocess

    argv = dump_argv(site.nginx.test_argv())
    assert argv is not None and "-T" in argv and "-t" not in argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    files = loaded_files(out)
    assert str(site.nginx.conf_path.resolve()) in files
    assert str(site.nginx.driver_include.resolve()) in files
    assert dump_argv(["systemctl", "reload", "nginx"]) is None


def test_an_access_log_not_written_lately_warns(
    tmp_path: Path, pg_url: str, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import time

    _get(site)
    long_ago = time.time() - 3600  # older than the plan's 60 s traffic window
    os.utime(site.access_log, (long_ago, long_ago))
    code, doc = run_json(_nginx_plan(tmp_path, pg_url, site), capsys)
    assert code == 0, _failed(doc)
    log = check(doc, "nginx", "lb1 access log")
    assert log["status"] == "warn" and "older than the 1m window" in log["found"], log
