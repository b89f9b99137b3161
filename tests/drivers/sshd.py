"""A private OpenSSH server on a free loopback port, as a remote host for the systemd driver's fleet tests.

There is no systemd on the test machines, so the session's PATH starts with a folder holding a stand-in
`systemctl` (a Python script) that records its argv in `calls.jsonl` and keeps unit states in `state.json`,
both in the host's folder; a unit named `hang*` (or any, with `__hang__` in the state) never answers, `__fail__` in the state makes every call fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cockpit.drivers.services.systemd import SystemdDriver

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

STANDIN = r"""#!{python}
import json, os, sys, time
home = os.environ["FLEET_HOME"]
argv = sys.argv[1:]
with open(os.path.join(home, "calls.jsonl"), "a") as f:
    f.write(json.dumps(argv) + "\n")
words = [a for a in argv if not a.startswith("--")]
verb, units = words[0], words[1:]
path = os.path.join(home, "state.json")
with open(path) as f:
    state = json.load(f)
if state.get("__fail__"):
    print("Failed to connect to bus: No such file or directory", file=sys.stderr)
    sys.exit(1)
if state.get("__hang__") or any(u.startswith("hang") for u in units):
    time.sleep(120)
if verb == "is-active":
    for u in units:
        print(state.get(u, "inactive"))
    sys.exit(0 if any(state.get(u) == "active" for u in units) else 3)
for u in units:
    state[u] = "active" if verb == "start" else "inactive"
with open(path, "w") as f:
    json.dump(state, f)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sshd:
    """One sshd (root login with `client_key`, no PAM) on 127.0.0.1:`port`, its files under `home`."""

    def __init__(self, home: Path, client_pub: Path) -> None:
        self.home = home
        home.mkdir(parents=True)
        self.port = free_port()
        bin_dir = home / "bin"
        bin_dir.mkdir()
        exe = bin_dir / "systemctl"
        exe.write_text(STANDIN.format(python=sys.executable))
        exe.chmod(0o755)
        self.set({})
        (home / "calls.jsonl").write_text("")
        self.host_key = home / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True)
        shutil.copy(client_pub, home / "authorized_keys")
        config = home / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
            "UsePAM no\nPermitRootLogin yes\nStrictModes no\nPasswordAuthentication no\n"
            f"SetEnv PATH={bin_dir}:/usr/bin:/bin FLEET_HOME={home}\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation folder sshd insists on
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd on port {self.port} did not start") from None
                time.sleep(0.02)

    def known_hosts_line(self) -> str:
        key = (self.host_key.with_suffix(".pub")).read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    def set(self, state: dict[str, object]) -> None:
        (self.home / "state.json").write_text(json.dumps(state))

    def state(self) -> dict[str, object]:
        return dict(json.loads((self.home / "state.json").read_text()))

    def calls(self) -> list[list[str]]:
        return [json.loads(x) for x in (self.home / "calls.jsonl").read_text().splitlines()]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def usable() -> str:
    """Why these tests cannot run here, or empty."""
    if not os.path.exists(SSHD):
        return f"openssh-server is not installed ({SSHD} missing): ./scripts/setup installs it"
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "openssh-client is not installed: ./scripts/setup installs it"
    if os.geteuid() != 0:
        return "a private sshd that logs in as this user needs root here"
    return ""


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.hosts = [Sshd(tmp / f"h{i}", self.key.with_suffix(".pub")) for i in range(2)]
        self.known = tmp / "known_hosts"
        self.known.write_text("".join(h.known_hosts_line() for h in self.hosts))

    def names(self) -> list[str]:
        return [f"root@127.0.0.1:{h.port}" for h in self.hosts]

    def driver(self, hosts: list[str] | None = None, timeout: float = 20.0) -> SystemdDriver:
        from cockpit.drivers.services.systemd import SshOptions, SystemdDriver

        ssh = SshOptions(identity_file=str(self.key), known_hosts=str(self.known), connect_timeout=2)
        return SystemdDriver(timeout=timeout, hosts=hosts or self.names(), ssh=ssh)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Two real OpenSSH servers on loopback ports, one key, a known_hosts file (a fixture for any test folder:
    tests/conftest.py makes it visible)."""
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        for h in f.hosts:
            h.close()
