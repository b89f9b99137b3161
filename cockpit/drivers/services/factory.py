"""Build a side's services driver from the plan (`blue.services` / `green.services`)."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.plan import Plan, Services
from cockpit.drivers.services.base import ServiceDriver
from cockpit.drivers.services.processes import ProcessesDriver
from cockpit.drivers.services.systemd import SshOptions, SystemdDriver


def build_services(spec: Services, plan: Plan) -> ServiceDriver | None:
    """The driver the plan names for one side, or None for driver `none` (services managed elsewhere).

    - `systemd`: `SystemdDriver` on `spec.hosts` over ssh (`spec.ssh`), or on this machine when there are none; the units are `spec.units`, passed through unchanged.
    - `processes`: `ProcessesDriver` over `spec.commands`; `pid_dir` relative to the plan file, by default
      `.cockpit/pids/<plan name>` beside it (logs go there too); a relative program path containing a slash
      (`./bin/app`, `scripts/run.sh`) is resolved against the plan's folder, which is also the working folder.
    """
    if spec.driver == "none":
        return None
    if spec.driver == "systemd":
        ssh = spec.ssh
        options = SshOptions(
            user=ssh.user,
            port=ssh.port,
            identity_file=str(plan.path(ssh.identity_file)) if ssh.identity_file else "",
            known_hosts=str(plan.path(ssh.known_hosts)) if ssh.known_hosts else "",
            strict_host_key_checking=ssh.strict_host_key_checking,
            connect_timeout=float(ssh.connect_timeout),
        )
        return SystemdDriver(timeout=float(ssh.command_timeout), hosts=spec.hosts, ssh=options)
    if spec.driver == "processes":
        base = Path(plan.source).resolve().parent if plan.source else None
        pid_dir = plan.path(spec.pid_dir) if spec.pid_dir else plan.path(f".cockpit/pids/{plan.name}")
        commands = {unit: _resolve_argv(argv, plan) for unit, argv in spec.commands.items()}
        return ProcessesDriver(commands, pid_dir=pid_dir, stop_timeout=float(spec.stop_timeout), cwd=base)
    raise ValueError(f"unknown services driver {spec.driver!r}")  # the plan loader refuses it first


def service_units(spec: Services) -> list[str]:
    """The units a side's driver acts on: `units` as written, or, for the processes driver when `units` is
    empty, every unit that has a command."""
    if spec.units:
        return list(spec.units)
    if spec.driver == "processes":
        return list(spec.commands)
    return []


def _resolve_argv(argv: list[str], plan: Plan) -> list[str]:
    if not argv:
        return argv
    program = argv[0]
    if "/" in program and not Path(program).expanduser().is_absolute():
        program = str(plan.path(program))
    return [program, *argv[1:]]
