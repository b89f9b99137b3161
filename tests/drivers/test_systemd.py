"""The systemd driver's contract with systemctl.

There is no systemd on the test machine, so a fake `systemctl` executable stands in. It records its argv and
answers the way systemctl does: `is-active` prints one state per unit (exit 0 when one is active, 3 when none),
`start`/`stop` of an unknown unit print systemctl's error on stderr and exit 5, a missing bus exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cockpit.drivers.services.base import ServiceError, ServiceStatus
from cockpit.drivers.services.systemd import SystemdDriver

FAKE = r"""#!{python}
import json, sys, time
STATE, LOG = {state!r}, {log!r}
argv = sys.argv[1:]
with open(LOG, "a") as f:
    f.write(json.dumps(argv) + "\n")
words = [a for a in argv if not a.startswith("--")]
verb, units = words[0], words[1:]
with open(STATE) as f:
    state = json.load(f)
if state.get("__bus_down__"):
    print("Failed to connect to bus: No such file or directory", file=sys.stderr)
    sys.exit(1)
if verb == "is-active":
    for u in units:
        print(state.get(u, "inactive"))
    sys.exit(0 if any(state.get(u) == "active" for u in units) else 3)
if verb in ("start", "stop"):
    rc = 0
    for u in units:
        if u.startswith("hang"):
            time.sleep(120)
        if u not in state:
            what = "found" if verb == "start" else "loaded"
            print(f"Failed to {{verb}} {{u}}.service: Unit {{u}}.service not {{what}}.", file=sys.stderr)
            rc = 5
            continue
        if verb == "start":
            state[u] = "failed" if u.startswith("crash") else "active"
        else:
            state[u] = "inactive"
    with open(STATE, "w") as f:
        json.dump(state, f)
    sys.exit(rc)
print(f"Unknown command verb {{verb}}.", file=sys.stderr)
sys.exit(1)
"""


class Fake:
    def __init__(self, tmp_path: Path) -> None:
        self.state_path = tmp_path / "state.json"
        self.log_path = tmp_path / "argv.jsonl"
        self.exe = tmp_path / "systemctl"
        self.exe.write_text(
            FAKE.format(python=sys.executable, state=str(self.state_path), log=str(self.log_path))
        )
        self.exe.chmod(0o755)
        self.log_path.write_text("")
        self.set({})

    def set(self, state: dict[str, object]) -> None:
        self.state_path.write_text(json.dumps(state))

    def state(self) -> dict[str, object]:
        return json.loads(self.state_path.read_text())

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


NEON = ["licitacoes-neon@1", "licitacoes-neon@2", "licitacoes-neon@3"]


def test_start_passes_template_units_unchanged_and_reads_back_the_state(fake):
    fake.set({u: "inactive" for u in NEON})
    d = SystemdDriver([str(fake.exe)])
    statuses = d.start(NEON)
    assert statuses == [ServiceStatus(u, True, "active") for u in NEON]
    assert fake.calls() == [["--no-ask-password", "start", *NEON], ["--no-ask-password", "is-active", *NEON]]
    assert fake.state() == {u: "active" for u in NEON}


def test_stop(fake):
    fake.set({u: "active" for u in NEON})
    d = SystemdDriver([str(fake.exe)])
    assert d.stop(NEON) == [ServiceStatus(u, False, "inactive") for u in NEON]
    assert fake.calls()[0] == ["--no-ask-password", "stop", *NEON]


def test_status_parses_is_active_including_exit_3(fake):
    fake.set({"a@1": "inactive", "a@2": "failed", "a@3": "activating"})
    d = SystemdDriver([str(fake.exe)])
    assert d.status(["a@1", "a@2", "a@3"]) == [
        ServiceStatus("a@1", False, "inactive"),
        ServiceStatus("a@2", False, "failed"),
        ServiceStatus("a@3", False, "activating"),
    ]
    fake.set({"a@1": "active", "a@2": "reloading", "a@3": "deactivating"})
    assert [s.running for s in d.status(["a@1", "a@2", "a@3"])] == [True, True, False]


def test_start_failure_carries_systemctls_own_message(fake):
    fake.set({"licitacoes-sqlite@1": "inactive"})
    d = SystemdDriver([str(fake.exe)])
    with pytest.raises(ServiceError) as info:
        d.start(["licitacoes-sqlite@1", "ghost@1"])
    message = str(info.value)
    assert "systemctl start licitacoes-sqlite@1 ghost@1 failed" in message
    assert "Failed to start ghost@1.service: Unit ghost@1.service not found. (exit 5)" in message
    assert "now licitacoes-sqlite@1=active, ghost@1=inactive" in message


def test_a_unit_that_fails_right_after_start_is_an_error(fake):
    fake.set({"crash@1": "inactive", "ok@1": "inactive"})
    d = SystemdDriver([str(fake.exe)])
    with pytest.raises(ServiceError, match=r"succeeded but not all units are running: crash@1=failed$"):
        d.start(["ok@1", "crash@1"])


def test_no_bus(fake):
    fake.set({"__bus_down__": True})
    d = SystemdDriver([str(fake.exe)])
    with pytest.raises(
        ServiceError,
        match=r"is-active a@1 failed: Failed to connect to bus: No such file or directory \(exit 1\)",
    ):
        d.status(["a@1"])
    with pytest.raises(ServiceError, match="Failed to connect to bus.*and the state cannot be read"):
        d.stop(["a@1"])


def test_timeout_is_bounded_and_reported(fake):
    fake.set({"hang@1": "active"})
    d = SystemdDriver([str(fake.exe)], timeout=0.5)
    with pytest.raises(ServiceError, match=r"systemctl stop hang@1: no answer after 0.5s"):
        d.stop(["hang@1"])


def test_missing_systemctl(tmp_path):
    d = SystemdDriver([str(tmp_path / "nowhere" / "systemctl")])
    with pytest.raises(ServiceError, match="cannot run .*: not found"):
        d.status(["a@1"])


def test_a_command_prefix_works(fake):
    """e.g. ["sudo", "-n", "systemctl"]: here the interpreter runs the fake."""
    fake.set({"a@1": "active"})
    d = SystemdDriver([sys.executable, str(fake.exe)])
    assert d.status(["a@1"]) == [ServiceStatus("a@1", True, "active")]


@pytest.mark.parametrize("unit", ["--force", "-x", "two words", "tab\tname", "new\nline", ""])
def test_bad_unit_names_never_reach_systemctl(fake, unit):
    d = SystemdDriver([str(fake.exe)])
    for call in (d.start, d.stop, d.status):
        with pytest.raises(ServiceError, match="invalid unit name"):
            call(["ok@1", unit])
    assert fake.calls() == []


def test_no_shell_is_involved(fake, tmp_path):
    unit = f"x;touch${{IFS}}{tmp_path}/pwned"
    fake.set({unit: "inactive"})
    d = SystemdDriver([str(fake.exe)])
    d.start([unit])
    assert fake.calls()[0] == ["--no-ask-password", "start", unit]
    assert not (tmp_path / "pwned").exists()


def test_empty_unit_list_runs_nothing(fake):
    d = SystemdDriver([str(fake.exe)])
    assert d.start([]) == d.stop([]) == d.status([]) == []
    assert fake.calls() == []


def test_garbage_from_is_active_is_an_error(fake, tmp_path):
    script = tmp_path / "weird"
    script.write_text(f"#!{sys.executable}\nprint('Something Unexpected happened')\n")
    script.chmod(0o755)
    with pytest.raises(ServiceError, match="is-active a@1 failed: Something Unexpected happened"):
        SystemdDriver([str(script)]).status(["a@1"])
