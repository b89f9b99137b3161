"""The `systemd` services driver: `systemctl start|stop|is-active UNIT...`, run as an argv list (never a shell).

Unit names pass through exactly as the plan writes them (`licitacoes-neon@1` stays a template instance; no
`.service` is added). `--no-ask-password` keeps systemctl from prompting for a polkit password on the terminal
(it fails instead, with its own message). The command can be prefixed, e.g. `["sudo", "-n", "systemctl"]`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cockpit.drivers.services.base import ServiceDriver, ServiceError, ServiceStatus

# `systemctl is-active` states that mean the unit is up
RUNNING_STATES = frozenset({"active", "reloading"})
# no whitespace or control characters, and nothing systemctl would read as an option
_UNIT = re.compile(r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*$")
_STATE = re.compile(r"^[a-z][a-z-]*$")


@dataclass(frozen=True)
class SshOptions:
    """How to reach the hosts: the `ssh` client in BatchMode (a missing key fails, never prompts)."""

    user: str = ""
    port: int = 22
    identity_file: str = ""
    known_hosts: str = ""
    strict_host_key_checking: bool = True
    connect_timeout: float = 5.0
    ssh: str = "ssh"

    def argv(self, host: str) -> list[str]:
        user, _, name = host.rpartition("@")
        port = self.port
        if name.count(":") == 1:
            name, _, text = name.partition(":")
            port = int(text)
        out = [self.ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}"]
        out += ["-o", "StrictHostKeyChecking=" + ("yes" if self.strict_host_key_checking else "no")]
        out += ["-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no", "-p", str(port)]
        if self.known_hosts:
            out += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity_file:
            out += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if user or self.user:
            out += ["-l", user or self.user]
        return [*out, "--", name.strip("[]")]


class SystemdDriver(ServiceDriver):
    """Drive systemd units with `systemctl`. Every call blocks for at most `timeout` seconds per systemctl run.

    `start` and `stop` wait for systemd's job to finish (systemctl's default), then read `is-active` so the
    returned statuses are the world after the action, not an assumption.
    """

    def __init__(
        self,
        systemctl: Sequence[str] = ("systemctl",),
        timeout: float = 60.0,
        hosts: Sequence[str] = (),
        ssh: SshOptions | None = None,
    ) -> None:
        if not systemctl or not all(isinstance(a, str) and a for a in systemctl):
            raise ServiceError("systemd driver: the systemctl command must be a non-empty list of strings")
        self.systemctl = list(systemctl)
        self.timeout = float(timeout)
        self.hosts = list(hosts)
        self.ssh = ssh or SshOptions()
        self._host = ""  # the host this copy runs on (a fleet runs one copy per host)

    # ------------------------------------------------------------------------------------------- the fleet

    def _fleet(self, call: Callable[[SystemdDriver], list[ServiceStatus]]) -> list[ServiceStatus]:
        """Run `call` on every host at once (this machine alone when there are no hosts), each bounded by
        `timeout`. Succeeds only when every host did; otherwise, after all have answered or timed out, raises
        FleetError naming each host's outcome (ok, failed, unreachable, timed out)."""
        if not self.hosts:
            return call(self)
        copies = [replace_host(self, host) for host in self.hosts]
        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            futures = [pool.submit(call, c) for c in copies]
            outcomes: list[tuple[str, str, list[ServiceStatus]]] = []
            for copy, future in zip(copies, futures, strict=True):
                try:
                    outcomes.append((copy._host, "ok", future.result()))
                except ServiceError as exc:
                    outcomes.append((copy._host, str(exc), []))
        statuses = [s for _, _, got in outcomes for s in got]
        if any(what != "ok" for _, what, _ in outcomes):
            raise FleetError(outcomes, statuses)
        return statuses

    def start(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl start UNIT...`, then `is-active`. Returns one status per unit, in order.

        Raises ServiceError with systemctl's own message if it fails, or if a unit is not running afterwards.
        """
        return self._fleet(lambda d: d._act("start", units, want_running=True))

    def stop(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl stop UNIT...`, then `is-active`. Returns one status per unit, in order.

        Raises ServiceError with systemctl's own message if it fails, or if a unit still runs afterwards.
        """
        return self._fleet(lambda d: d._act("stop", units, want_running=False))

    def status(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl is-active UNIT...`: one status per unit, in order, `detail` being systemd's state word
        (active, inactive, failed, activating, deactivating, reloading, unknown...).

        Raises ServiceError if systemctl cannot answer (e.g. no system bus), with its message.
        """
        return self._fleet(lambda d: d._status(units))

    def _status(self, units: list[str]) -> list[ServiceStatus]:
        self._check_names(units)
        if not units:
            return []
        proc = self._run("is-active", units)
        states = proc.stdout.split()
        # exit 0: some unit active, 3: none; the state words on stdout are what counts
        if len(states) != len(units) or not all(_STATE.match(s) for s in states):
            raise ServiceError(f"{self._cmd('is-active', units)} failed: {_message(proc)}")
        return [
            ServiceStatus(unit, state in RUNNING_STATES, state, self._host)
            for unit, state in zip(units, states, strict=True)
        ]

    # ----------------------------------------------------------------------------------------------- inner

    def _act(self, verb: str, units: list[str], want_running: bool) -> list[ServiceStatus]:
        self._check_names(units)
        if not units:
            return []
        proc = self._run(verb, units)
        if proc.returncode != 0:
            message = f"{self._cmd(verb, units)} failed: {_message(proc)}"
            try:
                now = self._status(units)
            except ServiceError as exc:
                message += f"; and the state cannot be read: {exc}"
            else:
                message += "; now " + ", ".join(f"{s.unit}={s.detail}" for s in now)
            raise ServiceError(message)
        statuses = self._status(units)
        wrong = [s for s in statuses if s.running != want_running]
        if wrong:
            what = "running" if want_running else "stopped"
            raise ServiceError(
                f"{self._cmd(verb, units)} succeeded but not all units are {what}: "
                + ", ".join(f"{s.unit}={s.detail}" for s in wrong)
            )
        return statuses

    def _check_names(self, units: list[str]) -> None:
        bad = [u for u in units if not isinstance(u, str) or not _UNIT.match(u)]
        if bad:
            raise ServiceError(
                f"systemd driver: invalid unit name(s) {', '.join(map(repr, bad))} "
                "(no spaces or control characters, not starting with '-')"
            )

    def _cmd(self, verb: str, units: list[str]) -> str:
        where = f"{self._host}: " if self._host else ""
        return where + " ".join([os.path.basename(self.systemctl[-1]), verb, *units])

    def _run(self, verb: str, units: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [*self.systemctl, "--no-ask-password", verb, *units]
        if self._host:  # the remote shell reads one string: every word quoted
            argv = [*self.ssh.argv(self._host), shlex.join(argv)]
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C"},
                check=False,
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"cannot run {argv[0]!r}: not found") from exc
        except PermissionError as exc:
            raise ServiceError(f"cannot run {argv[0]!r}: permission denied") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"{self._cmd(verb, units)}: no answer after {self.timeout:g}s, timed out "
                "(systemd may still be running the job)"
            ) from exc
        if self._host and proc.returncode == 255:  # ssh's own failure: the command never ran
            text = (proc.stderr or "").strip().splitlines()
            if any("Host key verification failed" in t for t in text):
                why = "host key refused"
            elif any("Permission denied" in t for t in text):
                why = "login refused (no key the host accepts: the plan's identity_file, or ssh-agent)"
            else:
                why = "unreachable"
            raise ServiceError(f"{self._host}: {why}: {text[-1] if text else 'ssh exit 255'}")
        return proc


def replace_host(driver: SystemdDriver, host: str) -> SystemdDriver:
    """A copy of `driver` that runs on `host` alone."""
    copy = SystemdDriver(driver.systemctl, driver.timeout, (), driver.ssh)
    copy._host = host
    return copy


class FleetError(ServiceError):
    """Some host did not do what was asked. `outcomes`: (host, "ok" or what went wrong, its statuses) for every
    host; `statuses`: those of the hosts that answered."""

    def __init__(self, outcomes: list[tuple[str, str, list[ServiceStatus]]], statuses: list[ServiceStatus]):
        bad = [f"{why}" for _, why, _ in outcomes if why != "ok"]
        good = [host for host, why, _ in outcomes if why == "ok"]
        super().__init__(
            f"{len(bad)} of {len(outcomes)} hosts failed: "
            + "; ".join(bad)
            + (f" (ok: {', '.join(good)})" if good else "")
        )
        self.outcomes = outcomes
        self.statuses = statuses


def status_by_host(
    driver: ServiceDriver, units: list[str]
) -> tuple[list[ServiceStatus], list[tuple[str, str]]]:
    """The units' statuses from every host that answered, and (host, what went wrong) for each that did not. A
    driver that cannot answer at all is one ("", why): whatever it is, it is never read as healthy."""
    try:
        return driver.status(units), []
    except FleetError as exc:
        return exc.statuses, [(host, why) for host, why, _ in exc.outcomes if why != "ok"]
    except Exception as exc:
        return [], [("", f"{type(exc).__name__}: {exc}")]


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    return f"{text} (exit {proc.returncode})" if text else f"exit {proc.returncode}"
