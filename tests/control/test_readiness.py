"""The rollback-readiness verdict: a pure function of the plan and its readings (cockpit.control.readiness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.control.readiness import Probe, ReadinessInputs, assess
from cockpit.core.plan import Plan, load_plan
from cockpit.core.state import CockpitState, Lag, Readiness
from tests.core.plans import BASE, write_plan

# the lab's shape: nginx, blue services and health checks, SQLite -> PostgreSQL sync, backups of blue
FULL = """\
name: full
blue:
  database: {engine: sqlite, path: blue.db}
  services: {driver: processes, units: [blue-1], commands: {blue-1: [sleep, "60"]}, pid_dir: run}
  upstreams: ["127.0.0.1:8101"]
green:
  database: {engine: postgresql, url: "postgresql://postgres@127.0.0.1:5432/x"}
  upstreams: ["127.0.0.1:8201"]
traffic:
  driver: nginx
  balancers:
    - {name: lb1, include: nginx/split.conf, test_command: [nginx, -t], reload_command: [nginx, -s, reload]}
phases:
  - {name: validation, green: 5, soak: 0s}
health_checks:
  - {name: blue-1, url: "http://127.0.0.1:8101/health", side: blue}
rollback:
  drain_timeout: 15s
backup:
  max_age: 1h
journal:
  path: journal.db
"""

GOOD = ReadinessInputs(
    nginx=[Probe(True, "lb1: ok")],
    blue=[Probe(True, "blue-1 running"), Probe(True, "blue-1 ok")],
    lag={"blue_to_green": Lag(0.2, 0), "green_to_blue": Lag(0.4, 1)},
    backup_age_s=600.0,
    conflicts=0,
)


@pytest.fixture
def full(tmp_path: Path) -> Plan:
    return load_plan(write_plan(tmp_path, FULL))


def _with(**changes) -> ReadinessInputs:
    return ReadinessInputs(**{**GOOD.__dict__, **changes})


def test_all_good_is_ready(full: Plan) -> None:
    r = assess(full, GOOD, 100.0)
    assert r.ready and r.at == 100.0 and r.blocking == ()
    assert [c.name for c in r.checks] == ["nginx", "blue", "sync", "backup", "conflicts"]


@pytest.mark.parametrize(
    ("changes", "name", "words"),
    [
        ({"nginx": [Probe(False, "lb1: [emerg] unknown directive")]}, "nginx", "unknown directive"),
        ({"blue": [Probe(False, "blue-1 stopped"), Probe(True, "x")]}, "blue", "blue-1 stopped"),
        ({"lag": {"green_to_blue": Lag(20.0, 40)}}, "sync", "the drain allows 15s"),
        ({"sync_error": "OperationalError: gone"}, "sync", "not flowing"),
        ({"backup_age_s": 7200.0}, "backup", "2h old > limit 1h"),
        ({"backup_age_s": None}, "backup", "no verified backup"),
        ({"conflicts": 3}, "conflicts", "3 sync conflicts waiting"),
    ],
)
def test_each_check_turns_it_red_and_says_why(full: Plan, changes, name, words) -> None:
    r = assess(full, _with(**changes), 0.0)
    assert not r.ready
    [bad] = r.blocking
    assert bad.name == name and bad.status == "failed" and words in bad.detail


def test_unread_sources_are_unknown_never_green(full: Plan) -> None:
    r = assess(full, ReadinessInputs(), 0.0)
    assert not r.ready
    status = {c.name: c.status for c in r.checks}
    assert status == {
        "nginx": "unknown",
        "blue": "unknown",
        "sync": "unknown",
        "backup": "failed",  # nothing read means no backup seen
        "conflicts": "skipped",  # nothing counts them (yet): not a reason to stay red
    }


def test_a_plan_without_nginx_sync_or_services_skips_those(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, BASE))
    r = assess(plan, ReadinessInputs(backup_age_s=10.0), 0.0)
    assert r.ready
    assert {c.name for c in r.checks if c.status == "skipped"} == {"nginx", "blue", "sync", "conflicts"}


def test_in_the_state_and_status_json_and_back() -> None:
    r = Readiness.from_dict(
        {"ready": False, "at": 5.0, "checks": [{"name": "blue", "status": "failed", "detail": "x"}]}
    )
    state = CockpitState("p", "ready", -1, (), 0.0, 0.0, None, 5.0, readiness=r, sources={"traffic": 4.5})
    doc = state.to_json()
    assert doc["rollback_readiness"] == {
        "ready": False,
        "at": 5.0,
        "checks": [{"name": "blue", "status": "failed", "detail": "x"}],
    }
    assert doc["sources"] == {"traffic": 4.5}
    assert Readiness.from_dict(doc["rollback_readiness"]) == r
    assert CockpitState("p", "ready", -1, (), 0.0, 0.0, None, 5.0).to_json()["rollback_readiness"] is None


def test_the_probe_runs_nginx_t_and_quotes_nginx(tmp_path: Path) -> None:
    """The real nginx binary on a private config: a good one passes, a broken one fails with nginx's words."""
    import shutil

    from cockpit.control.readiness_probe import ReadinessProbe

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (scripts/setup installs it)")
    conf = tmp_path / "nginx.conf"
    command = [nginx, "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "error.log"), "-t"]
    conf.write_text("pid nginx.pid; events {} http { access_log off; }\n")
    assert ReadinessProbe._nginx_test("lb1", command) == Probe(True, "lb1: ok")
    conf.write_text("pid nginx.pid; events {} http { no_such_directive on; }\n")
    bad = ReadinessProbe._nginx_test("lb1", command)
    assert not bad.ok and bad.detail.startswith("lb1: ") and "no_such_directive" in bad.detail
