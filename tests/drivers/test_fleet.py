"""The systemd driver over ssh across a fleet: real OpenSSH servers on loopback ports are the hosts.

No systemd on these machines: `systemctl` on each host is the stand-in of tests/drivers/sshd.py.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from cockpit.drivers.services.base import ServiceError, ServiceStatus
from cockpit.drivers.services.systemd import FleetError
from tests.conftest import wait_for
from tests.drivers.sshd import free_port, usable

pytestmark = pytest.mark.skipif(bool(usable()), reason=usable() or "ok")


UNITS = ["app@1", "app@2"]


def test_start_status_stop_over_the_fleet(fleet):
    d = fleet.driver()
    a, b = fleet.names()
    assert d.start(UNITS) == [ServiceStatus(u, True, "active", h) for h in (a, b) for u in UNITS]
    for h in fleet.hosts:
        assert h.state() == {u: "active" for u in UNITS}
        assert h.calls()[0] == ["--no-ask-password", "start", *UNITS]
    assert [s.running for s in d.status(UNITS)] == [True] * 4
    assert [s.running for s in d.stop(UNITS)] == [False] * 4
    assert all(h.state() == {u: "inactive" for u in UNITS} for h in fleet.hosts)


def test_one_host_failing_is_named_and_the_other_still_acts(fleet):
    fleet.hosts[1].set({"__fail__": True})
    with pytest.raises(FleetError) as info:
        fleet.driver().stop(UNITS)
    a, b = fleet.names()
    assert f"1 of 2 hosts failed: {b}: systemctl stop app@1 app@2 failed: Failed to connect to bus" in str(
        info.value
    )
    assert f"(ok: {a})" in str(info.value)
    assert [o[1] == "ok" for o in info.value.outcomes] == [True, False]
    assert fleet.hosts[0].calls()[0] == ["--no-ask-password", "stop", *UNITS]


def test_a_hung_host_times_out(fleet):
    started = time.monotonic()
    with pytest.raises(FleetError, match=r"no answer after 1.5s, timed out"):
        fleet.driver(timeout=1.5).stop(["hang@1"])
    assert time.monotonic() - started < 10


def test_an_unreachable_host(fleet):
    dead = f"root@127.0.0.1:{free_port()}"
    with pytest.raises(FleetError, match=rf"{dead}: unreachable: .*Connection refused"):
        fleet.driver([fleet.names()[0], dead]).start(UNITS)
    assert fleet.hosts[0].state() == {u: "active" for u in UNITS}


def test_an_unknown_host_key_is_refused(fleet):
    fleet.known.write_text(fleet.hosts[0].known_hosts_line())
    b = fleet.names()[1]
    with pytest.raises(FleetError, match=rf"{b}: host key refused"):
        fleet.driver().status(UNITS)
    assert fleet.hosts[1].calls() == []


def test_rollback_with_a_hung_and_a_dead_host_ends_partial_quickly(fleet):
    """A rollback stops green on every host: one hangs, one is dead; the call is bounded, not hung."""
    dead = f"root@127.0.0.1:{free_port()}"
    d = fleet.driver([*fleet.names(), dead], timeout=2.0)
    started = time.monotonic()
    with pytest.raises(FleetError) as info:
        d.stop(["hang@1"])
    took = time.monotonic() - started
    print(f"\nrollback stop over 3 hosts (2 hung, 1 dead): partial after {took:.2f}s")
    assert len([o for o in info.value.outcomes if o[1] != "ok"]) == 3
    assert took < 2.0 + 5


def test_bad_input_never_reaches_ssh(fleet):
    with pytest.raises(ServiceError, match="invalid unit name"):
        fleet.driver().start(["-x"])
    assert all(h.calls() == [] for h in fleet.hosts)


def test_the_journal_keeps_each_hosts_outcome(fleet, tmp_path):
    """The step a rollback runs (`set_services`), journaled: the ok host and the dead one, each named."""
    import asyncio

    from cockpit.control.sides import set_services
    from cockpit.core.journal import Journal
    from cockpit.core.recorder import Recorder

    dead = f"root@127.0.0.1:{free_port()}"
    a = fleet.names()[0]
    journal = Journal(tmp_path / "journal.db")
    rec = Recorder(journal, "rollback", "tester")
    with pytest.raises(FleetError), rec.step("stop_green") as info:
        asyncio.run(set_services(fleet.driver([a, dead]), UNITS, "stop", info))
    (event,) = journal.events(kinds=["action.step"])
    assert event.payload["status"] == "failed"
    assert f"{dead}: unreachable" in event.payload["detail"]
    assert f"(ok: {a})" in event.payload["detail"]
    info2: dict[str, str] = {"detail": ""}
    asyncio.run(set_services(fleet.driver([a]), UNITS, "start", info2))
    assert info2["detail"] == f"{a} app@1 running, {a} app@2 running"


def test_readiness_shows_each_host(fleet):
    """The screen's readiness light over a fleet: each unit on each host that answered, each dead host named."""
    from cockpit.control.readiness_probe import service_probes

    a = fleet.names()[0]
    dead = f"root@127.0.0.1:{free_port()}"
    d = fleet.driver([a, dead], timeout=5.0)
    fleet.driver([a]).start(["app@1"])
    probes = service_probes(d, UNITS)
    assert [(p.ok, p.detail) for p in probes[:2]] == [
        (True, f"app@1@{a} running"),
        (False, f"app@2@{a} stopped"),
    ]
    assert len(probes) == 3 and not probes[2].ok and probes[2].detail.startswith(f"{dead}: unreachable")


async def test_a_controller_rollback_with_a_hung_and_a_dead_host_ends_partial(fleet, tmp_path):
    """The whole rollback through the controller: green runs on two hosts; one hangs, the other dies; the
    rollback ends `partial` (traffic on blue, stop_green failed) within the command timeout, not hung."""
    from cockpit.control.factory import Drivers
    from cockpit.control.session import controller_session
    from cockpit.core.plan import load_plan
    from cockpit.drivers.traffic.file import FileTrafficDriver
    from tests.core.plans import BASE

    text = BASE.replace(
        "green:\n  database: {engine: sqlite, path: green.db}\n",
        "green:\n  database: {engine: sqlite, path: green.db}\n  services: {driver: systemd, units: [app@1]}\n",
    )
    (tmp_path / "plan.yaml").write_text(text)
    plan = load_plan(tmp_path / "plan.yaml")
    drivers = Drivers(
        traffic=FileTrafficDriver(plan.path(plan.traffic.state_file)),
        green_services=fleet.driver(timeout=2.0),
    )
    async with controller_session(plan, drivers=drivers, run_sync=False) as c:
        assert (await c.advance()).ok
        assert all(h.state() == {"app@1": "active"} for h in fleet.hosts)
        fleet.hosts[0].set({"app@1": "active", "__hang__": True})
        fleet.hosts[1].close()
        started = time.monotonic()
        rb = await c.rollback("fleet test", "immediate")
        took = time.monotonic() - started
    print(f"\ncontroller rollback, one host hung and one dead: {rb.outcome} after {took:.2f}s")
    assert rb.outcome == "partial", rb.as_dict()
    assert took < 2.0 + 10


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A real ssh-agent on its own socket, in this process's environment (the driver's ssh inherits it)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=10, what="ssh-agent's socket")
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_key_from_ssh_agent_when_the_plan_names_none(fleet, agent):
    """identity_file empty: ssh offers the agent's keys. The key is in the agent only (no ~/.ssh here)."""
    from cockpit.drivers.services.systemd import SshOptions, SystemdDriver

    ssh = SshOptions(known_hosts=str(fleet.known), connect_timeout=2)
    d = SystemdDriver(timeout=20, hosts=fleet.names(), ssh=ssh)
    with pytest.raises(FleetError, match=r"login refused \(no key the host accepts"):
        d.status(UNITS)  # the agent holds no key yet
    subprocess.run(["ssh-add", "-q", str(fleet.key)], check=True, capture_output=True)
    assert [s.running for s in d.start(UNITS)] == [True] * 4
    assert all(h.state() == {u: "active" for u in UNITS} for h in fleet.hosts)


def test_a_host_that_never_answers_is_bounded_by_the_connect_timeout(fleet):
    """A host whose port takes the connection and then says nothing (a wedged box, a black-holing middlebox):
    ssh's ConnectTimeout also bounds the banner exchange, so the call ends well before the command timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        mute = f"root@127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(FleetError, match=rf"{mute}: unreachable: .*timed out"):
            fleet.driver([fleet.names()[0], mute], timeout=30).start(UNITS)
        took = time.monotonic() - started
        assert took < 10, took  # connect_timeout is 2 s; the command timeout (30 s) never came into play
        assert fleet.hosts[0].state() == {u: "active" for u in UNITS}
    finally:
        silent.close()
