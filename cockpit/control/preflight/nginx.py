"""nginx: per balancer, the configuration nginx really loads includes the cockpit's two files, `nginx -t` passes,
the JSON access log is being written, and what the nginx version means for keep-alive on reload.

The loaded configuration is read with `nginx -T` (the balancer's `test_command` with `-t` swapped for `-T`): it
tests like `-t` and then prints every file it read, each after a `# configuration file PATH:` line. So the check
follows the site's real includes (globs, nested files, a remote nginx behind `ssh`) instead of guessing which
file is "the site". nginx's own test already refuses the include at the wrong level (an `upstream` outside
`http`, a `proxy_pass` outside a `location`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.core.plan import Balancer
from cockpit.core.plan_reading import format_duration
from cockpit.core.redact import redact_text
from cockpit.drivers.traffic.nginx import (
    KEEPALIVE_MIN_TIMEOUT_SINCE,
    LOG_FORMAT_NAME,
    NginxDriver,
    location_path,
    nginx_version,
)

_LOADED = re.compile(r"^# configuration file (?P<path>.+):\s*$", re.M)
LOG_TAIL_BYTES = 4096


def checks(ctx: Context) -> list[Check]:
    if ctx.plan.traffic.driver != "nginx":
        return []
    balancers = NginxDriver.from_plan(ctx.plan).balancers  # the driver's own path resolution and validation
    out: list[Check] = []
    for b in balancers:
        out += _config(b, ctx.timeout)
        out.append(_access_log(ctx, b))
        out.append(_version(b))
    return out


def dump_argv(test_command: list[str]) -> list[str] | None:
    """The balancer's test command asking for the loaded configuration too (`-T`); None when it has no `-t`."""
    if "-t" not in test_command:
        return None
    return ["-T" if a == "-t" else a for a in test_command]


def loaded_files(dump: str) -> set[str]:
    """The files an `nginx -T` dump says it read, as real paths."""
    return {os.path.realpath(m.group("path").strip()) for m in _LOADED.finditer(dump)}


def _config(b: Balancer, timeout: float) -> list[Check]:
    argv = dump_argv(b.test_command)
    include, location = Path(b.include), location_path(b.include)
    ran = _run(argv or b.test_command, max(timeout, 1.0))
    test_name, inc_name = f"{b.name} nginx -t", f"{b.name} includes"
    if isinstance(ran, str):
        return [Check("nginx", test_name, FAIL, ran, "fix the balancer's test_command")]
    code, stdout, stderr = ran
    said = _last_lines(stderr or stdout)
    if code != 0:
        return [
            Check("nginx", test_name, FAIL, said or f"exit code {code}", "fix the configuration nginx names"),
            Check("nginx", inc_name, FAIL, "not read: the configuration does not test", "fix nginx -t first"),
        ]
    out = [Check("nginx", test_name, PASS, "syntax is ok, test is successful")]
    if argv is None:
        out.append(
            Check(
                "nginx",
                inc_name,
                WARN,
                f"test_command {' '.join(b.test_command)!r} has no -t, so the loaded files cannot be listed",
                f"check by hand that the site includes {include} (http) and {location} (location)",
            )
        )
        return out
    loaded = loaded_files(stdout)
    missing = [p for p in (include, location) if os.path.realpath(p) not in loaded]
    if not missing:
        out.append(Check("nginx", inc_name, PASS, f"{include.name} and {location.name} are loaded"))
        return out
    where = {include: "at http level", location: "inside the location that proxies the app"}
    out.append(
        Check(
            "nginx",
            inc_name,
            FAIL,
            f"nginx does not load {', '.join(str(p) for p in missing)} ({len(loaded)} files loaded)",
            "; ".join(f"add `include {p};` {where[p]}" for p in missing)
            + " (see cockpit.drivers.traffic.nginx), then nginx -t and reload",
        )
    )
    return out


def _access_log(ctx: Context, b: Balancer) -> Check:
    name = f"{b.name} access log"
    if not b.access_log:
        status = PASS if ctx.plan.prometheus is not None else WARN
        return Check(
            "nginx",
            name,
            status,
            "no access_log for this balancer",
            "" if status == PASS else "set access_log: the error rate and p95 per side come from it",
        )
    path = Path(b.access_log)
    try:
        st = path.stat()
    except FileNotFoundError:
        return Check(
            "nginx",
            name,
            FAIL,
            f"{path} does not exist",
            "nginx creates it when it loads the location include: include it, reload",
        )
    if st.st_size == 0:
        return Check(
            "nginx", name, WARN, f"{path} is empty", "send a request through the balancer, then run again"
        )
    last = _last_record(path)
    if last is None:
        return Check(
            "nginx",
            name,
            FAIL,
            f"the last line of {path} is not a {LOG_FORMAT_NAME} record",
            f"the location must log with `access_log {path} {LOG_FORMAT_NAME};` (the location include does)",
        )
    age = max(0.0, time.time() - st.st_mtime)
    found = f"{path.name}: last request {format_duration(age)} ago, {st.st_size / 1e3:.0f} kB"
    window = float(ctx.plan.traffic.window)
    if age > window:
        return Check(
            "nginx",
            name,
            WARN,
            f"{found} (older than the {format_duration(window)} window)",
            "no traffic reached this balancer lately: send a request, or check it is the one users reach",
        )
    return Check("nginx", name, PASS, found)


def _version(b: Balancer) -> Check:
    name = f"{b.name} version"
    binary = b.test_command[0] if b.test_command and Path(b.test_command[0]).name == "nginx" else None
    if binary is None:
        return Check(
            "nginx",
            name,
            WARN,
            f"not a local nginx ({b.test_command[0] if b.test_command else 'no test_command'})",
            "run nginx -v on the balancer: below 1.27.4 a reload closes idle keep-alive connections",
        )
    version = nginx_version(binary)
    since = ".".join(str(x) for x in KEEPALIVE_MIN_TIMEOUT_SINCE)
    if version is None:
        return Check("nginx", name, WARN, f"{binary} -v did not say", "check the nginx binary")
    text = ".".join(str(x) for x in version)
    if version >= KEEPALIVE_MIN_TIMEOUT_SINCE:
        return Check(
            "nginx", name, PASS, f"nginx {text}: keepalive_min_timeout keeps idle keep-alive across reloads"
        )
    return Check(
        "nginx",
        name,
        WARN,
        f"nginx {text} < {since}: each reload closes idle keep-alive client connections",
        f"a client reusing one may get a reset (nothing reached the app): upgrade to nginx >= {since}, "
        "or make clients retry idempotent requests; the cockpit reloads once per split change",
    )


def _run(argv: list[str], timeout: float) -> tuple[int, str, str] | str:
    """(exit code, stdout, stderr), or why it could not run."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return f"command not found: {argv[0]}"
    except PermissionError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)} did not finish within {timeout:g}s"
    return p.returncode, p.stdout, p.stderr


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return redact_text(" | ".join(lines[-n:]))


def _last_record(path: Path) -> dict[str, object] | None:
    """The last complete line of the log, when it is a cockpit_json record (it carries `side`)."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        doc = json.loads(lines[-1])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "side" in doc and "s" in doc else None
