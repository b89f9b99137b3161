"""The one factory: builds the drivers a plan names and hands them to the controller.

The controller only knows the interfaces below; tests hand it a lab's drivers (or their own) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cockpit.core.plan import HealthCheck, Plan
from cockpit.core.state import Lag, TableCopy
from cockpit.drivers.services.base import ServiceDriver
from cockpit.drivers.traffic.base import TrafficDriver

if TYPE_CHECKING:  # the drivers themselves are imported when a plan names them
    from cockpit.drivers.backup import Manifest, VerifyReport
    from cockpit.drivers.health import HealthResult
    from cockpit.drivers.integrity import IntegrityReport, IntegrityWatch
    from cockpit.drivers.metrics.access_log import AccessLogMetrics
    from cockpit.drivers.metrics.prometheus import PrometheusMetrics
    from cockpit.drivers.notify import DeliveryResult, Level
    from cockpit.drivers.sync.copy import CopyReport

EventSink = Callable[[str, dict[str, Any]], None]


class MetricsSource(Protocol):
    def poll(self) -> Mapping[str, float | None]:
        """Flat metrics (e.g. `green.error_rate`, `cpu_usage`). Blocking; called in a thread once a tick. A
        source that answers with what it knows but could not read its figures (Prometheus down: `prometheus.up`
        0, every side stale) says why in a `problem` attribute (an exception, None when it read well)."""
        ...


class SyncDriver(Protocol):
    def lag(self) -> Mapping[str, Lag]: ...

    def drain(self, timeout_s: float) -> bool: ...

    def metrics(self) -> Mapping[str, float | None]:
        """The sync's own figures as of the last `lag()` (stalled, conflicts waiting, keys left...)."""
        ...

    def problem(self) -> str | None:
        """Why the sync is not moving (its last error, a held table); None while it runs."""
        ...

    @property
    def schema_changed(self) -> Mapping[str, str]:
        """Tables whose schema changed under the sync (their changes are held) -> what changed."""
        ...

    def green_only_pending(self) -> int:
        """Acknowledged changes on green not yet on blue, read now."""
        ...

    def run_once(self) -> Mapping[str, Any]:
        """One pass in both directions. Blocking."""
        ...

    def repair(self, prefer: str, diffs: Mapping[str, Sequence[Any]]) -> Mapping[str, Any]:
        """Rows that differ put into `prefer`'s change log, for the sync to carry across. Blocking."""
        ...

    def restore_keys(self) -> Sequence[Any]:
        """Green's keys count up again above the highest key of both sides (the end of the migration)."""
        ...

    def uninstall(self) -> Mapping[str, Sequence[str]]:
        """Capture and every cockpit object removed from both sides (idempotent)."""
        ...

    def initial_copy(
        self, jobs: int = 4, progress: Callable[[TableCopy], None] | None = None
    ) -> tuple[CopyReport, list[str]]:
        """Copy blue into green, then capture on both sides: the report and the captured tables. Blocking."""
        ...

    def start(self) -> None:
        """Run the two-way loop in a background thread."""
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and close the connections."""
        ...


class Notifier(Protocol):
    def send(
        self, level: Level, title: str, text: str, fields: Mapping[str, Any] | None = None
    ) -> list[DeliveryResult]: ...


class HealthChecker(Protocol):
    def check(self, check: HealthCheck, max_total: float | None = None) -> HealthResult:
        """Run one plan health check with its retries (bounded by `max_total` s)."""
        ...


class BackupDriver(MetricsSource, Protocol):
    def take(self, label: str = "", progress: Callable[[str, int, int], None] | None = None) -> Manifest:
        """A backup of blue. Blocking."""
        ...

    def verify(self, path: str) -> VerifyReport:
        """Check a backup against its manifest. Blocking."""
        ...

    def archive(self, folder: str, label: str, since: float) -> Manifest:
        """Blue archived into `folder` (the one labelled `label` taken since `since` if there is one). Blocking."""
        ...

    def prune_archives(self, folder: str, max_age_s: float, protect: Sequence[str] = ()) -> Sequence[object]:
        """The archives in `folder` older than `max_age_s` removed; what was removed. Blocking."""
        ...


class IntegrityChecker(MetricsSource, Protocol):
    def check_now(self, touched_only: bool = False) -> IntegrityReport:
        """A comparison of blue and green now: every row, or the counts and the rows the sync touched (the
        rollback's step)."""
        ...

    def stop(self) -> None: ...


@dataclass
class Drivers:
    traffic: TrafficDriver | None = None
    blue_services: ServiceDriver | None = None
    green_services: ServiceDriver | None = None
    sync: SyncDriver | None = None
    metrics: list[MetricsSource] = field(default_factory=list)
    notifier: Notifier | None = None
    health: HealthChecker | None = None
    integrity: IntegrityChecker | None = None
    backup: BackupDriver | None = None  # also a MetricsSource (backup_age), polled by the backup action

    def close(self) -> None:
        if self.sync is not None:
            self.sync.stop()
        if self.integrity is not None:
            self.integrity.stop()


class _AccessLogSource:
    """Adapts the access-log metrics (issue 3) to a MetricsSource."""

    def __init__(self, metrics: AccessLogMetrics):
        self._metrics = metrics

    def poll(self) -> Mapping[str, float | None]:
        return self._metrics.poll().as_metrics()


class _PrometheusSource:
    """Adapts the Prometheus metrics (issue 12): a Prometheus that fails reads as stale, never as healthy."""

    def __init__(self, metrics: PrometheusMetrics):
        self._metrics = metrics
        self.problem: Exception | None = None  # why the last poll read no figures (journaled by the monitor)

    def poll(self) -> Mapping[str, float | None]:
        from cockpit.drivers.metrics.prometheus import PrometheusError

        try:
            figures = {"prometheus.up": 1.0, **self._metrics.sample()}
            self.problem = None
            return figures
        except PrometheusError as exc:
            self.problem = exc
            out: dict[str, float | None] = {"prometheus.up": 0.0}
            for side in self._metrics.jobs:
                out[f"{side}.prometheus_stale"] = 1.0
            return out


class _Health:
    def check(self, check: HealthCheck, max_total: float | None = None) -> HealthResult:
        from cockpit.drivers.health import check_with_retries

        return check_with_retries(check, max_total=max_total)


def _integrity_watch(plan: Plan, sync: SyncDriver, events: EventSink | None) -> IntegrityWatch:
    from cockpit.drivers.integrity import IntegrityWatch
    from cockpit.drivers.sync.schema import plan_casts

    def settle() -> object:  # rows in flight: let the sync carry them before looking again (bounded)
        return sync.drain(min(30.0, float(plan.sync.drain_timeout)))

    def report(r: IntegrityReport) -> object:
        if events is not None and not r.ok:
            return events("integrity.mismatch", r.as_dict())
        return None

    tables = None if plan.sync.tables == "all" else list(plan.sync.tables)
    return IntegrityWatch(
        str(plan.path(plan.blue.database.path)),
        plan.green.database.url,
        tables,
        casts=plan_casts(plan.sync) or None,
        interval_s=float(plan.sync.integrity_interval),
        settle=settle,
        on_report=report,
    )


def build_traffic(plan: Plan) -> TrafficDriver | None:
    t = plan.traffic
    if t.driver == "file":
        from cockpit.drivers.traffic.file import FileTrafficDriver

        return FileTrafficDriver(plan.path(t.state_file))
    if t.driver == "nginx":
        from cockpit.drivers.traffic.nginx import NginxDriver

        return NginxDriver.from_plan(plan)
    return None


def build_drivers(
    plan: Plan,
    *,
    with_sync: bool = True,
    with_metrics: bool = True,
    events: EventSink | None = None,
) -> Drivers:
    """Everything the plan names. `events(kind, payload)` receives what drivers report (sync conflicts...)."""
    from cockpit.drivers.metrics.system import SystemMetrics
    from cockpit.drivers.services.factory import build_services

    drivers = Drivers(
        traffic=build_traffic(plan),
        blue_services=build_services(plan.blue.services, plan),
        green_services=build_services(plan.green.services, plan),
        health=_Health(),
    )
    if with_metrics:
        drivers.metrics.append(SystemMetrics(plan))
        if plan.prometheus is not None:
            from cockpit.drivers.metrics.prometheus import PrometheusMetrics

            p = plan.prometheus
            drivers.metrics.append(
                _PrometheusSource(
                    PrometheusMetrics(
                        url=p.url, jobs=dict(p.jobs), preset=p.preset, queries=dict(p.queries),
                        window=p.window, stale_after=p.stale_after, timeout=p.timeout,
                    )
                )
            )  # fmt: skip
        elif plan.traffic.driver == "nginx":
            from cockpit.drivers.metrics.access_log import AccessLogMetrics

            access = AccessLogMetrics.from_plan(plan)
            if access is not None:
                drivers.metrics.append(_AccessLogSource(access))
        if plan.green.database.engine == "postgresql":
            from cockpit.drivers.metrics.database import DatabaseMetrics

            drivers.metrics.append(
                DatabaseMetrics(plan.green.database.url, window_s=float(plan.traffic.window))
            )
    if plan.blue.database.engine == "sqlite" and plan.blue.database.path:
        from cockpit.drivers.backup import BlueBackup

        drivers.backup = BlueBackup.from_plan(plan)
        if with_metrics:
            drivers.metrics.append(drivers.backup)  # backup_age, for the plan's backup gate
    if with_sync and plan.blue.database.engine == "sqlite" and plan.green.database.engine == "postgresql":
        from cockpit.drivers.sync.runner import SyncRunner

        drivers.sync = SyncRunner.from_plan(plan, on_event=events)
        watch = _integrity_watch(plan, drivers.sync, events)
        drivers.integrity = watch
        if with_metrics:
            drivers.metrics.append(watch)
    if plan.alerts.webhook or plan.alerts.email:
        from cockpit.drivers.notify import Notifier as _Notifier

        drivers.notifier = _Notifier(plan.alerts)
    return drivers
