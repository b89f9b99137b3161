"""A private nginx on loopback (tests, the lab, benchmarks): its own prefix, config, pid, logs and temp folders.

    site = PrivateNginx(root, listen_port=free_port(), driver_include=root / "cockpit-split.conf")
    driver = NginxDriver([site.balancer("lb1", access_log=root / "access.json")], blue, green, sticky, beta)
    driver.prepare(0)          # the include and its .location must exist before nginx starts
    site.start()               # returns once the port accepts connections
    driver.apply(20)           # test + reload through site.test_argv() / site.reload_argv()
    site.stop()                # waits (with a deadline) until the master is gone

The rendered ``nginx.conf`` includes the driver's file at ``http`` level and ``<include>.location`` in
``location /`` of one server on ``127.0.0.1:listen_port``. As root it runs its workers as root (``user root;``) so
they can use the private folders; as any other user nginx keeps that user. ``daemon=True`` leaves nginx running
when this process exits (the lab); ``daemon=False`` keeps the master as a child process (tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

from cockpit.core.errors import CockpitError
from cockpit.core.plan import Balancer
from cockpit.drivers.traffic.nginx import location_path, wait_reloaded, worker_pids

NGINX_BINARY = "/usr/sbin/nginx"


class NginxSiteError(CockpitError, RuntimeError):
    """The private nginx could not be started, reloaded or stopped. The message carries nginx's own words."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PrivateNginx:
    """One nginx master with its own prefix under `root`, serving `driver_include` on 127.0.0.1:`listen_port`."""

    def __init__(
        self,
        root: Path,
        listen_port: int,
        driver_include: Path,
        *,
        daemon: bool = False,
        worker_processes: int = 1,
        keepalive_timeout_s: float = 75.0,
        extra_http: str = "",
        binary: str = NGINX_BINARY,
    ):
        self.root = Path(root).resolve()
        self.listen_port = int(listen_port)
        self.driver_include = Path(driver_include).resolve()
        self.daemon = daemon
        self.worker_processes = worker_processes
        self.keepalive_timeout_s = keepalive_timeout_s
        self.extra_http = extra_http
        self.binary = binary
        self.conf_path = self.root / "nginx.conf"
        self.pid_path = self.root / "nginx.pid"
        self.error_log = self.root / "error.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------------------------------------- commands
    def _base_argv(self) -> list[str]:
        return [self.binary, "-p", f"{self.root}/", "-c", str(self.conf_path), "-e", str(self.error_log)]

    def test_argv(self) -> list[str]:
        """`nginx -t` for this site (the driver's test_command)."""
        return [*self._base_argv(), "-t"]

    def reload_argv(self) -> list[str]:
        """`nginx -s reload` for this site (the driver's reload_command)."""
        return [*self._base_argv(), "-s", "reload"]

    def balancer(self, name: str = "lb1", access_log: Path | str = "") -> Balancer:
        """A plan Balancer wired to this site's include and commands."""
        return Balancer(
            name=name,
            include=str(self.driver_include),
            access_log=str(access_log) if access_log else "",
            test_command=self.test_argv(),
            reload_command=self.reload_argv(),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    # -------------------------------------------------------------------------------------------- config
    def render(self) -> str:
        user = "user root;\n" if os.geteuid() == 0 else ""
        r = self.root
        return f"""# private nginx rendered by cockpit.traffic.nginx_site
{user}daemon {"on" if self.daemon else "off"};
master_process on;
worker_processes {self.worker_processes};
pid "{self.pid_path}";
error_log "{self.error_log}" notice;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path "{r}/tmp/client_body";
    proxy_temp_path "{r}/tmp/proxy";
    fastcgi_temp_path "{r}/tmp/fastcgi";
    uwsgi_temp_path "{r}/tmp/uwsgi";
    scgi_temp_path "{r}/tmp/scgi";
    keepalive_timeout {self.keepalive_timeout_s:g}s;
    {self.extra_http}

    include "{self.driver_include}";

    server {{
        listen 127.0.0.1:{self.listen_port};
        server_name localhost;

        location / {{
            include "{location_path(self.driver_include)}";
        }}
    }}
}}
"""

    def write_config(self) -> None:
        for sub in ("tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.render(), encoding="utf-8")

    # -------------------------------------------------------------------------------------------- lifecycle
    def test(self) -> str:
        """Run `nginx -t`; return its output, or raise NginxSiteError with it."""
        self.write_config()
        return _check(self.test_argv(), "nginx -t")

    def start(self, timeout: float = 10.0) -> None:
        """Write the config, start nginx, and wait until it accepts connections on the port and its workers run
        (the master listens before it forks them)."""
        running = self.pid()
        if running is not None:
            raise NginxSiteError(f"nginx already runs with this prefix (master pid {running}); stop it first")
        self.write_config()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        if self.daemon:
            _check(self._base_argv(), "nginx start")
        else:
            self._proc = subprocess.Popen(
                self._base_argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise NginxSiteError(f"nginx exited at start: {err.strip() or self._error_tail()}")
            if self.pid() is not None and _accepts(self.listen_port) and self.worker_pids():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise NginxSiteError(
                    f"nginx did not listen on 127.0.0.1:{self.listen_port}: {self._error_tail()}"
                )
            time.sleep(0.01)

    def pid(self) -> int | None:
        """The master's pid, when it runs."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def worker_pids(self) -> set[int]:
        pid = self.pid()
        if pid is None:
            return set()
        try:
            return worker_pids(psutil.Process(pid))
        except psutil.Error:
            return set()

    def reload(self, wait: bool = True, timeout: float = 10.0) -> float:
        """`nginx -s reload`; with `wait`, until a new worker runs. Returns the seconds it took."""
        before = self.worker_pids()
        t0 = time.perf_counter()
        _check(self.reload_argv(), "nginx -s reload")
        if wait:
            self.wait_new_workers(before, timeout)
        return time.perf_counter() - t0

    def wait_new_workers(self, before: set[int], timeout: float = 10.0) -> None:
        """Wait until the reload landed: a worker not in `before` runs and the old ones stopped accepting."""
        pid = self.pid()
        try:
            ok = pid is not None and wait_reloaded(psutil.Process(pid), before, timeout)
        except psutil.Error:
            ok = False
        if not ok:
            raise NginxSiteError(f"the reload did not land within {timeout:g}s: {self._error_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGTERM), then wait until the master is gone; SIGKILL at the deadline."""
        pid = self.pid()
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid):
                if self._proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(timeout=0.05)
                else:
                    time.sleep(0.01)
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + timeout
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=timeout)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    def reopen_logs(self) -> None:
        """`nginx -s reopen` (after a log was renamed)."""
        _check([*self._base_argv(), "-s", "reopen"], "nginx -s reopen")

    def __enter__(self) -> PrivateNginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _error_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.error_log.read_text(errors="replace").strip().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no error log)"


def _check(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    out = "\n".join(p for p in (proc.stderr.strip(), proc.stdout.strip()) if p)
    if proc.returncode != 0:
        raise NginxSiteError(f"{what} failed: {out or f'exit code {proc.returncode}'}")
    return out


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
