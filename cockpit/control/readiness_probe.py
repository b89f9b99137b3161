"""The readings behind the rollback-readiness light that cost a process or a request: `nginx -t` for every balancer,
blue's services and blue's health checks. Gathered in a background thread every `every_s` (not once a tick), one
round at a time; `assess()` never waits for one (the controller calls it from its tick).

The pure verdict is cockpit.control.readiness.assess; this module only reads the world.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping

from cockpit.control.factory import Drivers
from cockpit.control.readiness import Probe, ReadinessInputs, assess
from cockpit.core.plan import Plan
from cockpit.core.redact import redact_text
from cockpit.core.state import Lag, Readiness
from cockpit.drivers.services.base import ServiceDriver
from cockpit.drivers.services.systemd import status_by_host

NGINX_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 3.0


class ReadinessProbe:
    """Call `assess(metrics, lag, sync_error, now)` once a tick; `stop()` on close."""

    def __init__(self, plan: Plan, drivers: Drivers, *, every_s: float = 5.0):
        self.plan = plan
        self.drivers = drivers
        self.every_s = every_s
        self.nginx: list[Probe] | None = None
        self.blue: list[Probe] | None = None
        self._due = 0.0
        self._thread: threading.Thread | None = None

    def assess(
        self,
        metrics: Mapping[str, float | None],
        lag: Mapping[str, Lag] | None,
        sync_error: str | None,
        now: float,
        *,
        conflicts: int | None = None,
    ) -> Readiness:
        """The light now, from the last round's readings and the tick's own (lag, backup age); starts the next
        round in the background when it is due."""
        self._kick()
        inputs = ReadinessInputs(
            nginx=self.nginx,
            blue=self.blue,
            lag=lag,
            sync_error=sync_error,
            backup_age_s=metrics.get("backup_age"),
            conflicts=conflicts,
            has_backups=self.drivers.backup is not None,
        )
        return assess(self.plan, inputs, now)

    def _kick(self) -> None:
        now = time.monotonic()
        if now < self._due or (self._thread is not None and self._thread.is_alive()):
            return
        self._due = now + self.every_s
        self._thread = threading.Thread(target=self.read_now, name="cockpit-readiness", daemon=True)
        self._thread.start()

    def read_now(self) -> None:
        """One round, blocking: nginx -t, blue's services, blue's health checks."""
        if self.plan.traffic.driver == "nginx":
            self.nginx = [self._nginx_test(b.name, b.test_command) for b in self.plan.traffic.balancers]
        self.blue = self._blue()

    @staticmethod
    def _nginx_test(name: str, command: list[str]) -> Probe:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=NGINX_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Probe(False, f"{name}: {type(exc).__name__}: {redact_text(str(exc))}")
        if done.returncode == 0:
            return Probe(True, f"{name}: ok")
        said = [line for line in done.stderr.splitlines() if "[emerg]" in line or "failed" in line]
        return Probe(
            False,
            f"{name}: {redact_text((said or [done.stderr.strip() or 'exit ' + str(done.returncode)])[0])}",
        )

    def _blue(self) -> list[Probe]:
        probes: list[Probe] = []
        units = list(self.plan.blue.services.units)
        driver = self.drivers.blue_services
        if units and driver is not None:
            probes += service_probes(driver, units)
        from cockpit.drivers.health import check

        for c in self.plan.health_checks:
            if c.side != "blue":
                continue
            r = check(c.url, c.expect_status, min(float(c.timeout), HEALTH_TIMEOUT_S), name=c.name)
            probes.append(Probe(r.ok, f"{c.name} {'ok' if r.ok else r.error or r.status}"))
        return probes

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(NGINX_TIMEOUT_S)


def service_probes(driver: ServiceDriver, units: list[str]) -> list[Probe]:
    """One probe per unit (per host, over a fleet: `unit@host`), and one per host that did not answer."""
    probes: list[Probe] = []
    statuses, failed = status_by_host(driver, units)
    for s in statuses:
        where = f"@{s.host}" if s.host else ""
        probes.append(Probe(s.running, f"{s.unit}{where} {'running' if s.running else 'stopped'}"))
    probes += [
        Probe(False, redact_text(why if why.startswith(host) else f"{host or 'services'}: {why}"))
        for host, why in failed
    ]
    return probes
