"""The preflight's services area over a fleet: real OpenSSH servers on loopback ports are blue's hosts (their
`systemctl` is the stand-in of tests/drivers/sshd.py, since these machines have no systemd). Every unit on every
host is a check; a unit stopped on one host and a host that does not answer are each named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.control.preflight_support import make_plan, run_json
from tests.drivers.sshd import Fleet, free_port, usable

pytestmark = pytest.mark.skipif(bool(usable()), reason=usable() or "ok")


def _plan(tmp_path: Path, pg_url: str, fleet: Fleet, hosts: list[str]) -> Path:
    services = {
        "driver": "systemd",
        "units": ["app@1"],
        "hosts": hosts,
        "ssh": {"identity_file": str(fleet.key), "known_hosts": str(fleet.known), "connect_timeout": "2s"},
    }
    plan = make_plan(tmp_path, pg_url, copied=True)
    plan.write_text(
        plan.read_text().replace("blue: {database:", f"blue: {{services: {json.dumps(services)}, database:")
    )
    return plan


def _services(doc: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"] if c["area"] == "services"}


def test_every_unit_on_every_host(
    tmp_path: Path, pg_url: str, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = fleet.names()
    for h in fleet.hosts:
        h.set({"app@1": "active"})
    plan = _plan(tmp_path, pg_url, fleet, [a, b])
    code, doc = run_json(plan, capsys)
    assert _services(doc) == {f"blue app@1 on {a}": "pass", f"blue app@1 on {b}": "pass"}
    assert code == 0, doc
    fleet.hosts[1].set({"app@1": "inactive"})  # stopped on one host
    code, doc = run_json(plan, capsys)
    assert code == 1
    assert _services(doc) == {f"blue app@1 on {a}": "pass", f"blue app@1 on {b}": "fail"}


def test_a_host_that_does_not_answer_is_named(
    tmp_path: Path, pg_url: str, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    a = fleet.names()[0]
    dead = f"root@127.0.0.1:{free_port()}"
    fleet.hosts[0].set({"app@1": "active"})
    code, doc = run_json(_plan(tmp_path, pg_url, fleet, [a, dead]), capsys)
    assert code == 1
    got = _services(doc)
    assert got == {f"blue app@1 on {a}": "pass", f"blue units on {dead}": "fail"}, got
    found = next(c["found"] for c in doc["checks"] if c["name"] == f"blue units on {dead}")
    assert "refused" in found.lower(), found
