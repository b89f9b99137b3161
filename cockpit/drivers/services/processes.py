"""The `processes` services driver: app servers as plain detached processes, tracked by pid files.

Each unit is an argv (no shell). `start` spawns it in a new session (so it survives the controller and can be
stopped as a process group), sends its stdout and stderr to `<log_dir>/<unit>.log`, and writes
`<pid_dir>/<unit>.pid` (JSON: pid, the process start time from psutil, argv, log path). The start time makes the
pid file safe against pid reuse: a pid whose process started at another instant is not ours. Because the truth
lives in pid files, a controller that restarts (or another one) can ask after and stop what a dead one started.

All calls block but are bounded: `stop` sends SIGTERM to every unit at once, waits `stop_timeout`, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from cockpit.drivers.services.base import ServiceDriver, ServiceError, ServiceStatus

# a unit name becomes a file name: no slashes, no leading dot or dash
_UNIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_@.:+=-]*$")
# how long to wait for processes to vanish after SIGKILL (a process in uninterruptible sleep can take a while)
_KILL_GRACE = 5.0
# two create_time readings of one process agree exactly; allow for float noise only
_CREATE_TIME_TOLERANCE = 0.05
# the processes this controller spawned, whichever driver instance did it, so that their exit status is
# collected (no zombies) and Python does not warn about a running child when a driver is dropped
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class _Record:
    """What a pid file holds."""

    unit: str
    pid: int
    create_time: float
    argv: list[str]
    log: str


class ProcessesDriver(ServiceDriver):
    """Start, stop and ask after units that are plain processes described by `commands` (unit -> argv).

    `pid_dir` holds one pid file per running unit; `log_dir` (default: `pid_dir`) one append-only log per unit.
    `env` adds to (and overrides) the controller's environment for the spawned processes; `cwd` is their working
    folder (default: the controller's). `stop_timeout` is how long `stop` waits after SIGTERM before SIGKILL.
    Raises ServiceError at construction for a unit name that cannot be a file name or an empty argv.
    """

    def __init__(
        self,
        commands: Mapping[str, list[str]],
        pid_dir: Path,
        stop_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        for unit, argv in commands.items():
            if not _UNIT_NAME.match(unit):
                raise ServiceError(
                    f"processes driver: unit name {unit!r} is not usable as a file name "
                    "(letters, digits and _ @ . : + = - only; not starting with . or -)"
                )
            if not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
                raise ServiceError(
                    f"processes driver: unit {unit!r} needs a non-empty argv (a list of strings)"
                )
        if stop_timeout < 0:
            raise ServiceError("processes driver: stop_timeout cannot be negative")
        self.commands: dict[str, list[str]] = {u: list(a) for u, a in commands.items()}
        self.pid_dir = Path(pid_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.pid_dir
        self.stop_timeout = float(stop_timeout)
        self.env = dict(env or {})
        self.cwd = Path(cwd) if cwd is not None else None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------- public API

    def pid_file(self, unit: str) -> Path:
        """Where the pid file of `unit` lives."""
        return self.pid_dir / f"{unit}.pid"

    def log_file(self, unit: str) -> Path:
        """Where the output of `unit` is appended."""
        return self.log_dir / f"{unit}.log"

    def start(self, units: list[str]) -> list[ServiceStatus]:
        """Start every unit that is not already running (a running one is left alone: no second copy).

        Returns one status per unit, in order. Raises ServiceError for an unknown unit (before starting any), or,
        after trying every unit, if some could not be spawned (the message names each one and why).
        """
        self._check_known(units)
        with self._lock:
            results: list[ServiceStatus] = []
            failures: list[str] = []
            for unit in units:
                proc, why = self._running(unit)
                if proc is not None:
                    results.append(ServiceStatus(unit, True, f"already running (pid {proc.pid})"))
                    continue
                try:
                    pid = self._spawn(unit)
                except ServiceError as exc:
                    failures.append(str(exc))
                    results.append(ServiceStatus(unit, False, str(exc)))
                    continue
                results.append(
                    ServiceStatus(unit, True, f"started (pid {pid})" + (f"; previous: {why}" if why else ""))
                )
            if failures:
                raise ServiceError("; ".join(failures))
            return results

    def stop(self, units: list[str]) -> list[ServiceStatus]:
        """Stop every unit: SIGTERM to its process group, wait up to `stop_timeout`, then SIGKILL.

        All units are signalled at once, so the whole call takes at most `stop_timeout` plus a few seconds.
        Works on processes started by another (or a dead) controller: the pid files say what to stop. Pid files
        are removed. Returns one status per unit, in order (running False). Raises ServiceError for an unknown
        unit (before stopping any), or if some process survived SIGKILL.
        """
        self._check_known(units)
        with self._lock:
            details: dict[str, str] = {}
            targets: dict[str, list[psutil.Process]] = {}
            for unit in units:
                proc, why = self._running(unit)
                if proc is None:
                    self._remove_pid_file(unit)
                    details[unit] = f"not running{f' ({why})' if why else ''}"
                    continue
                targets[unit] = self._group(proc)
                self._signal(proc, targets[unit], signal.SIGTERM)
                details[unit] = f"stopped (pid {proc.pid}, SIGTERM)"
            survivors = self._wait_gone(targets, self.stop_timeout)
            if survivors:
                for unit, procs in survivors.items():
                    main = targets[unit][0]
                    self._signal(main, procs, signal.SIGKILL)
                    details[unit] = f"killed (pid {main.pid}, SIGKILL after {self.stop_timeout:g}s)"
                survivors = self._wait_gone(survivors, _KILL_GRACE)
            failures = []
            for unit in targets:
                if unit in survivors:
                    pids = ", ".join(str(p.pid) for p in survivors[unit])
                    failures.append(f"unit {unit!r}: process(es) {pids} still alive after SIGKILL")
                else:
                    self._remove_pid_file(unit)
            if failures:
                raise ServiceError("; ".join(failures))
            return [ServiceStatus(unit, False, details[unit]) for unit in units]

    def status(self, units: list[str]) -> list[ServiceStatus]:
        """Whether each unit runs: its pid file names a live, non-zombie process with the recorded start time.

        Read-only (stale pid files are reported, not removed). Raises ServiceError for an unknown unit.
        """
        self._check_known(units)
        out = []
        for unit in units:
            proc, why = self._running(unit)
            if proc is not None:
                out.append(ServiceStatus(unit, True, f"running (pid {proc.pid})"))
            else:
                out.append(ServiceStatus(unit, False, f"not running{f' ({why})' if why else ''}"))
        return out

    # ----------------------------------------------------------------------------------------------- inner

    def _check_known(self, units: list[str]) -> None:
        unknown = [u for u in units if u not in self.commands]
        if unknown:
            known = ", ".join(sorted(self.commands)) or "none"
            raise ServiceError(
                f"processes driver: unknown unit(s) {', '.join(map(repr, unknown))}; known units: {known}"
            )

    def _read(self, unit: str) -> tuple[_Record | None, str]:
        path = self.pid_file(unit)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = _Record(
                unit=str(data["unit"]),
                pid=int(data["pid"]),
                create_time=float(data["create_time"]),
                argv=list(data.get("argv", [])),
                log=str(data.get("log", "")),
            )
        except FileNotFoundError:
            return None, ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"unreadable pid file {path}: {exc}"
        if record.pid <= 0:
            return None, f"unreadable pid file {path}: pid {record.pid}"
        return record, ""

    def _running(self, unit: str) -> tuple[psutil.Process | None, str]:
        """The live process of `unit`, or None and why not (empty when there is simply no pid file)."""
        record, why = self._read(unit)
        if record is None:
            return None, why
        try:
            proc = psutil.Process(record.pid)
            started = proc.create_time()
            state = proc.status()
        except psutil.NoSuchProcess:
            return None, f"stale pid file: pid {record.pid} is gone"
        except psutil.Error as exc:
            return None, f"cannot inspect pid {record.pid}: {exc}"
        if abs(started - record.create_time) > _CREATE_TIME_TOLERANCE:
            return None, f"stale pid file: pid {record.pid} now belongs to another process"
        if state == psutil.STATUS_ZOMBIE:
            self._reap(record.pid)
            return None, f"pid {record.pid} has exited"
        return proc, ""

    def _spawn(self, unit: str) -> int:
        argv = self.commands[unit]
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(unit)
        try:
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ServiceError(f"unit {unit!r}: cannot open log {log_path}: {exc.strerror or exc}") from exc
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            os.write(log_fd, f"=== cockpit: starting {unit} at {stamp}\n".encode())
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env={**os.environ, **self.env},
                cwd=self.cwd,
            )
        except OSError as exc:
            raise ServiceError(f"unit {unit!r}: cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
        finally:
            os.close(log_fd)
        _CHILDREN[popen.pid] = popen
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:
            code = popen.poll()
            raise ServiceError(f"unit {unit!r}: exited at once (code {code}); see {log_path}") from None
        record = {
            "unit": unit,
            "pid": popen.pid,
            "create_time": create_time,
            "argv": argv,
            "log": str(log_path),
            "started": time.time(),
        }
        try:
            _write_atomic(self.pid_file(unit), json.dumps(record) + "\n")
        except OSError as exc:
            # without a pid file nobody could stop it later: do not leave it running
            with contextlib.suppress(OSError):
                os.killpg(popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=_KILL_GRACE)
            _CHILDREN.pop(popen.pid, None)
            raise ServiceError(f"unit {unit!r}: cannot write pid file: {exc.strerror or exc}") from exc
        return popen.pid

    def _remove_pid_file(self, unit: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file(unit).unlink()

    @staticmethod
    def _group(proc: psutil.Process) -> list[psutil.Process]:
        """The unit's main process first, then its descendants (they die with it)."""
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return [proc]

    @staticmethod
    def _signal(main: psutil.Process, procs: list[psutil.Process], sig: signal.Signals) -> None:
        # the unit was started in its own session, so its pid is its process group: signal the whole group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(main.pid) == main.pid:
                os.killpg(main.pid, sig)
        for p in procs or [main]:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)

    def _wait_gone(
        self, targets: dict[str, list[psutil.Process]], timeout: float
    ) -> dict[str, list[psutil.Process]]:
        """Wait until every listed process has exited (zombies count as exited); return what is left."""
        deadline = time.monotonic() + timeout
        interval = 0.005
        while True:
            left = {}
            for unit, procs in targets.items():
                alive = [p for p in procs if self._alive(p)]
                if alive:
                    left[unit] = alive
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 0.1)

    def _alive(self, proc: psutil.Process) -> bool:
        try:
            if not proc.is_running():  # also False when the pid was reused
                return False
            if proc.status() == psutil.STATUS_ZOMBIE:
                self._reap(proc.pid)
                return False
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True
        return True

    def _reap(self, pid: int) -> None:
        """Collect the exit status of a child of ours that has exited."""
        popen = _CHILDREN.pop(pid, None)
        if popen is not None:
            popen.poll()
            return
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
