"""The `systemd` services driver: `systemctl start|stop|is-active UNIT...`, run as an argv list (never a shell).

Unit names pass through exactly as the plan writes them (`licitacoes-neon@1` stays a template instance; no
`.service` is added). `--no-ask-password` keeps systemctl from prompting for a polkit password on the terminal
(it fails instead, with its own message). The command can be prefixed, e.g. `["sudo", "-n", "systemctl"]`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence

from cockpit.drivers.services.base import ServiceDriver, ServiceError, ServiceStatus

# `systemctl is-active` states that mean the unit is up
RUNNING_STATES = frozenset({"active", "reloading"})
# no whitespace or control characters, and nothing systemctl would read as an option
_UNIT = re.compile(r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*$")
_STATE = re.compile(r"^[a-z][a-z-]*$")


class SystemdDriver(ServiceDriver):
    """Drive systemd units with `systemctl`. Every call blocks for at most `timeout` seconds per systemctl run.

    `start` and `stop` wait for systemd's job to finish (systemctl's default), then read `is-active` so the
    returned statuses are the world after the action, not an assumption.
    """

    def __init__(self, systemctl: Sequence[str] = ("systemctl",), timeout: float = 60.0) -> None:
        if not systemctl or not all(isinstance(a, str) and a for a in systemctl):
            raise ServiceError("systemd driver: the systemctl command must be a non-empty list of strings")
        self.systemctl = list(systemctl)
        self.timeout = float(timeout)

    def start(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl start UNIT...`, then `is-active`. Returns one status per unit, in order.

        Raises ServiceError with systemctl's own message if it fails, or if a unit is not running afterwards.
        """
        return self._act("start", units, want_running=True)

    def stop(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl stop UNIT...`, then `is-active`. Returns one status per unit, in order.

        Raises ServiceError with systemctl's own message if it fails, or if a unit still runs afterwards.
        """
        return self._act("stop", units, want_running=False)

    def status(self, units: list[str]) -> list[ServiceStatus]:
        """`systemctl is-active UNIT...`: one status per unit, in order, `detail` being systemd's state word
        (active, inactive, failed, activating, deactivating, reloading, unknown...).

        Raises ServiceError if systemctl cannot answer (e.g. no system bus), with its message.
        """
        self._check_names(units)
        if not units:
            return []
        proc = self._run("is-active", units)
        states = proc.stdout.split()
        # exit 0: some unit active, 3: none; the state words on stdout are what counts
        if len(states) != len(units) or not all(_STATE.match(s) for s in states):
            raise ServiceError(f"{self._cmd('is-active', units)} failed: {_message(proc)}")
        return [
            ServiceStatus(unit, state in RUNNING_STATES, state)
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
                now = self.status(units)
            except ServiceError as exc:
                message += f"; and the state cannot be read: {exc}"
            else:
                message += "; now " + ", ".join(f"{s.unit}={s.detail}" for s in now)
            raise ServiceError(message)
        statuses = self.status(units)
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
        return " ".join([os.path.basename(self.systemctl[-1]), verb, *units])

    def _run(self, verb: str, units: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [*self.systemctl, "--no-ask-password", verb, *units]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C"},
                check=False,
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"cannot run {self.systemctl[0]!r}: not found") from exc
        except PermissionError as exc:
            raise ServiceError(f"cannot run {self.systemctl[0]!r}: permission denied") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"{self._cmd(verb, units)}: no answer after {self.timeout:g}s (systemd may still be running the job)"
            ) from exc


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    return f"{text} (exit {proc.returncode})" if text else f"exit {proc.returncode}"
