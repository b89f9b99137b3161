"""Services: every unit exists and is active on every host (a host that does not answer is named), and the plan's
health checks answer. Blue's are required (a rollback sends every user there); green's stopped units only warn
before its first phase, since the advance starts them."""

from __future__ import annotations

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.core.redact import redact_text
from cockpit.drivers.services.factory import service_units
from cockpit.drivers.services.systemd import status_by_host


def checks(ctx: Context) -> list[Check]:
    out: list[Check] = []
    for side, spec, driver in (
        ("blue", ctx.plan.blue.services, ctx.drivers.blue_services),
        ("green", ctx.plan.green.services, ctx.drivers.green_services),
    ):
        units = service_units(spec)
        if not units or driver is None:
            continue
        down = FAIL if side == "blue" else WARN
        statuses, failed = status_by_host(driver, units)
        for host, why in failed:  # a failed check per silent host, or for a driver that cannot answer
            out.append(
                Check(
                    "services",
                    f"{side} units" + (f" on {host}" if host else ""),
                    down,
                    redact_text(why),
                    "reach the host (ssh, its key, systemd), or take it out of services.hosts"
                    if host
                    else "fix the services driver's settings",
                )
            )
        for s in statuses:
            found = f"{'running' if s.running else 'not running'}{': ' + s.detail if s.detail else ''}"
            out.append(
                Check(
                    "services",
                    f"{side} {s.unit}" + (f" on {s.host}" if s.host else ""),
                    PASS if s.running else down,
                    found,
                    "" if s.running else "start it (green: the advance starts it)",
                )
            )
    from cockpit.drivers.health import check

    for c in ctx.plan.health_checks:
        r = check(c.url, c.expect_status, min(float(c.timeout), ctx.timeout), name=c.name)
        status = PASS if r.ok else (WARN if c.side == "green" else FAIL)
        found = (
            f"HTTP {r.status} in {r.latency_ms:.0f} ms"
            if r.ok and r.latency_ms is not None
            else str(r.error or r.status)
        )
        out.append(Check("services", f"health {c.name}", status, found, "" if r.ok else "make it answer"))
    return out
