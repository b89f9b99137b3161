"""The nginx traffic driver: one include file per load balancer, rendered, tested, reloaded, read back.

Include layout (what a site's nginx config needs)
-------------------------------------------------
For each balancer the driver owns two files, both rendered by it and never edited by hand:

``<include>`` (e.g. ``/etc/nginx/conf.d/cockpit-split.conf``), included at ``http {}`` level. It holds:

- ``upstream cockpit_blue`` and ``upstream cockpit_green`` (the plan's ``upstreams``, ``keepalive 32``);
- ``map ... $cockpit_key``: the sticky key (``$cookie_NAME``, ``$http_name`` or ``$remote_addr``); a request
  without the cookie/header falls back to ``$remote_addr`` so it stays sticky too;
- ``split_clients "${cockpit_key}" $cockpit_split``: the green share (0..100 in 0.1 % steps), green listed
  first so that growing the share only moves users blue -> green, never back;
- ``map $http_x_user_segment $cockpit_beta`` and ``map $cockpit_beta $cockpit_side``: the beta header sends its
  users to green at any split (0 % included);
- ``map $cockpit_side $cockpit_upstream``: ``cockpit_blue`` or ``cockpit_green``;
- ``$cockpit_key_hash``: 6 hex digits hashed from the sticky key (the key itself is never logged);
- ``log_format cockpit_json escape=json``: ``{"t":$msec,"s":$status,"rt":$request_time,"side":"...",
  "ua":"$upstream_addr","us":"$upstream_status","urt":"$upstream_response_time","k":"<key hash>"}``
  (this field order is what :mod:`cockpit.drivers.metrics.access_log` parses fast);
- a first-line marker ``# cockpit-split balancer=NAME green_percent=P``.

``<include>.location`` (e.g. ``/etc/nginx/conf.d/cockpit-split.conf.location``), included inside the
``location`` that proxies the app. It holds ``proxy_pass http://$cockpit_upstream;``, HTTP/1.1 to the
upstreams with an empty ``Connection`` header (upstream keep-alive), ``proxy_set_header`` for ``Host``,
``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Cockpit-Side``, ``add_header X-Cockpit-Side $cockpit_side
always;`` and, when the balancer has an ``access_log``, ``access_log PATH cockpit_json;``. On nginx >= 1.27.4 it
also sets ``keepalive_min_timeout`` (see below).

So a site needs exactly::

    http {
        include /etc/nginx/conf.d/cockpit-split.conf;        # Debian's conf.d/*.conf glob already does this
        server {
            listen 80;
            location / {
                include /etc/nginx/conf.d/cockpit-split.conf.location;
            }
        }
    }

Rules that follow from nginx's inheritance: do not repeat ``proxy_pass`` or the ``proxy_set_header`` lines above in
that location (add other ``proxy_set_header`` lines beside the include if needed, at the same level); the names
``cockpit_*`` are global to one nginx, so one nginx serves one balancer (one include). ``.prev`` (the previous
include), ``.tmp`` and ``.pending`` siblings do not match a ``*.conf`` glob.

Applying a split
----------------
``apply(p)`` renders, writes ``<include>.tmp``, fsyncs, copies the current file to ``<include>.prev``, renames over,
runs the balancer's ``test_command``; on failure it puts the previous bytes back, does not reload and raises
:class:`TrafficError` with nginx's own stderr. On success it runs ``reload_command`` and reads the file back.
When the reload command is a plain ``nginx ... -s reload`` and one local master matches its ``-p``/``-c``, apply
also waits (``reload_timeout``, 10 s) until the reload has landed: a new worker runs and every old worker is gone
or "shutting down" (the master gives new workers ~100 ms before it tells the old ones to stop accepting), so when
``apply`` returns, new connections get the new split. If it does not land, the previous file is put back and
TrafficError is raised. With ``systemctl reload``, ``ssh`` or ``docker`` commands there is no such wait.
Several balancers are applied in order; if one fails, those already changed are put back (file, test, reload)
and the error names what happened. While a file is written but not yet confirmed by a reload, a
``<include>.pending`` file exists: :meth:`NginxDriver.live` reports it in ``detail`` so the controller knows,
after a crash, that the file may be ahead of the running nginx (apply the same split again to settle it).

Reloads and idle keep-alive client connections
----------------------------------------------
On ``nginx -s reload`` the master starts new workers and sends the old ones a graceful shutdown. An old worker
stops accepting, finishes requests in flight (closing those connections after the response), and closes every
*idle* keep-alive client connection at once (``ngx_close_idle_connections``). A client that sends its next
request on such a connection while the FIN is in flight gets a reset or an empty reply; nothing reached the
app, so an idempotent request can be retried safely (RFC 9112 9.5; Go retries GET by itself, httpx and requests do
not). No directive of nginx < 1.27.4 avoids it (``keepalive_timeout``, ``lingering_*`` and
``worker_shutdown_timeout`` do not apply to idle connections at shutdown). nginx 1.27.4 added
``keepalive_min_timeout``: an idle connection younger than it is kept during graceful shutdown and its next
request is answered with ``Connection: close``. The driver renders it (``keepalive_min_timeout`` seconds, 1 s by
default) in the location snippet when the local nginx binary (the test command's ``argv[0]`` when it is an
``nginx``) is >= 1.27.4. The driver otherwise keeps reloads to exactly one per balancer per apply.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from cockpit.core.plan import Balancer, Beta, Plan, Sticky
from cockpit.drivers.traffic.base import SplitStatus, TrafficDriver, TrafficError

LOG_FORMAT_NAME = "cockpit_json"
UPSTREAM_BLUE = "cockpit_blue"
UPSTREAM_GREEN = "cockpit_green"
COMMAND_TIMEOUT_S = 60.0
KEEPALIVE_MIN_TIMEOUT_SINCE = (1, 27, 4)

_MARKER = re.compile(r"^# cockpit-split balancer=(?P<name>\S+) green_percent=(?P<pct>[0-9.]+)\s*$", re.M)
_SPLIT_BLOCK = re.compile(r"split_clients\s+\"\$\{cockpit_key\}\"\s+\$cockpit_split\s*\{(?P<body>[^}]*)\}")
_SPLIT_GREEN = re.compile(r"^\s*(?P<pct>[0-9.]+)%\s+green\s*;", re.M)
_SPLIT_REST = re.compile(r"^\s*\*\s+(?P<side>blue|green)\s*;", re.M)
_NAME_TOKEN = re.compile(r"^[A-Za-z0-9_]+$")
_HEADER_TOKEN = re.compile(r"^[A-Za-z0-9-]+$")
_SERVER = re.compile(r"^[A-Za-z0-9._\-\[\]:]+(?:\s+[A-Za-z0-9_=.]+)*$")
_HASH_DIGITS = 6


def location_path(include: str | os.PathLike[str]) -> Path:
    """The location snippet that goes beside an include: ``<include>.location``."""
    return Path(f"{os.fspath(include)}.location")


def prev_path(include: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(include)}.prev")


def pending_path(include: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(include)}.pending")


def normalise_percent(green_percent: float) -> float:
    """A share rounded to the 0.1 % step nginx is given; refuses what is not a number in 0..100."""
    try:
        value = float(green_percent)
    except (TypeError, ValueError) as exc:
        raise TrafficError(f"green share {green_percent!r} is not a number") from exc
    if math.isnan(value) or not 0.0 <= value <= 100.0:
        raise TrafficError(f"green share {green_percent!r} is outside 0..100")
    return round(value, 1)


@dataclass(frozen=True)
class _Files:
    include: Path
    location: Path


class NginxDriver(TrafficDriver):
    """Moves the green share on one or more nginx balancers (see the module docstring for the include layout)."""

    def __init__(
        self,
        balancers: Sequence[Balancer],
        blue_upstreams: Sequence[str],
        green_upstreams: Sequence[str],
        sticky: Sticky | None = None,
        beta: Beta | None = None,
        keepalive_min_timeout: float | None = 1.0,
        reload_timeout: float = 10.0,
    ):
        if not balancers:
            raise TrafficError("the nginx driver needs at least one balancer")
        names = [b.name for b in balancers]
        if len(set(names)) != len(names):
            raise TrafficError(f"balancer names must be unique: {names}")
        for b in balancers:
            if not re.match(r"^[A-Za-z0-9_.\-]+$", b.name):
                raise TrafficError(f"balancer name {b.name!r}: use letters, digits, '.', '-' or '_'")
            if not b.include:
                raise TrafficError(f"balancer {b.name}: 'include' is required")
            for argv, what in ((b.test_command, "test_command"), (b.reload_command, "reload_command")):
                if not argv:
                    raise TrafficError(f"balancer {b.name}: {what} is empty")
        self.balancers = list(balancers)
        self.blue_upstreams = _check_upstreams(blue_upstreams, "blue")
        self.green_upstreams = _check_upstreams(green_upstreams, "green")
        self.sticky = sticky or Sticky()
        self.beta = beta or Beta()
        self._key_source = _key_variable(self.sticky)
        self._beta_variable = "$http_" + _header_var(self.beta.header, "beta header")
        if not self.beta.value or any(c in self.beta.value for c in '"\\;{}$\n\r'):
            raise TrafficError(
                f"beta value {self.beta.value!r} must be non-empty, without quotes, ';', braces or '$'"
            )
        self.keepalive_min_timeout = keepalive_min_timeout
        self.reload_timeout = reload_timeout
        self._lock = threading.Lock()
        for b in self.balancers:
            for p in (b.include, b.access_log):
                if p and any(c in p for c in '"$;{}\n\r'):
                    raise TrafficError(
                        f"balancer {b.name}: path {p!r} must not hold quotes, '$', ';' or braces"
                    )

    @classmethod
    def from_plan(cls, plan: Plan) -> NginxDriver:
        """Build the driver from a plan: include and log paths resolved relative to the plan file."""
        balancers = [
            b.model_copy(
                update={
                    "include": str(plan.path(b.include)),
                    "access_log": str(plan.path(b.access_log)) if b.access_log else "",
                }
            )
            for b in plan.traffic.balancers
        ]
        return cls(
            balancers, plan.blue.upstreams, plan.green.upstreams, plan.traffic.sticky, plan.traffic.beta
        )

    # ------------------------------------------------------------------------------------------- rendering
    def render(self, balancer: Balancer, green_percent: float) -> str:
        """The http-level include for `balancer` at `green_percent` (rounded to 0.1)."""
        pct = normalise_percent(green_percent)
        lines = [
            f"# cockpit-split balancer={balancer.name} green_percent={pct:.1f}",
            "# Rendered by cockpit; do not edit: the next split change overwrites it (previous copy: .prev).",
            "# Include at http level; put `include <this file>.location;` in the proxied location.",
            "",
            _upstream(UPSTREAM_BLUE, self.blue_upstreams),
            _upstream(UPSTREAM_GREEN, self.green_upstreams),
            "# the sticky key; a request without it falls back to the client address",
        ]
        if self.sticky.kind == "address":
            lines.append("map $remote_addr $cockpit_key {\n    default $remote_addr;\n}\n")
        else:
            lines.append(
                f'map {self._key_source} $cockpit_key {{\n    "" $remote_addr;\n    default {self._key_source};\n}}\n'
            )
        lines.append(
            f"# green share: {pct:.1f} %; green first so a larger share only moves users blue -> green"
        )
        lines.append('split_clients "${cockpit_key}" $cockpit_split {')
        if pct <= 0.0:
            lines.append("    * blue;")
        elif pct >= 100.0:
            lines.append("    * green;")
        else:
            lines.append(f"    {pct:.1f}% green;")
            lines.append("    * blue;")
        lines.append("}\n")
        lines.append(f"# beta users ({self.beta.header}: {self.beta.value}) always reach green")
        lines.append(
            f'map {self._beta_variable} $cockpit_beta {{\n    default 0;\n    "{self.beta.value}" 1;\n}}\n'
        )
        lines.append("map $cockpit_beta $cockpit_side {\n    1 green;\n    default $cockpit_split;\n}\n")
        lines.append(
            f"map $cockpit_side $cockpit_upstream {{\n    green {UPSTREAM_GREEN};\n    default {UPSTREAM_BLUE};\n}}\n"
        )
        lines.append("# a hash of the sticky key for the log (the key itself is never logged)")
        hex_digits = "0123456789abcdef"
        for i in range(_HASH_DIGITS):
            lines.append(f'split_clients "h{i}:${{cockpit_key}}" $cockpit_kh{i} {{')
            for d in hex_digits[:-1]:
                lines.append(f"    6.25% {d};")
            lines.append(f"    * {hex_digits[-1]};")
            lines.append("}")
        key_hash = "".join(f"$cockpit_kh{i}" for i in range(_HASH_DIGITS))
        lines.append("")
        lines.append(
            f"log_format {LOG_FORMAT_NAME} escape=json "
            '\'{"t":$msec,"s":$status,"rt":$request_time,"side":"$cockpit_side",\'\n'
            '    \'"ua":"$upstream_addr","us":"$upstream_status","urt":"$upstream_response_time",\'\n'
            f'    \'"k":"{key_hash}"}}\';'
        )
        return "\n".join(lines) + "\n"

    def render_location(self, balancer: Balancer) -> str:
        """The location snippet for `balancer` (does not depend on the split)."""
        lines = [
            f"# cockpit-location balancer={balancer.name}",
            "# Rendered by cockpit; include inside the location that proxies the app.",
            "proxy_pass http://$cockpit_upstream;",
            "proxy_http_version 1.1;",
            'proxy_set_header Connection "";',
            "proxy_set_header Host $host;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header X-Cockpit-Side $cockpit_side;",
            "add_header X-Cockpit-Side $cockpit_side always;",
        ]
        if balancer.access_log:
            lines.append(f'access_log "{balancer.access_log}" {LOG_FORMAT_NAME};')
        if self.keepalive_min_timeout and _supports_keepalive_min_timeout(balancer.test_command):
            ms = int(round(self.keepalive_min_timeout * 1000))
            lines.append(f"keepalive_min_timeout {ms}ms;")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------------------------------- actions
    def prepare(self, green_percent: float = 0.0) -> None:
        """Write missing include and location files (no test, no reload): the first install before nginx starts.

        Existing files are left as they are (their split is the live truth)."""
        with self._lock:
            for b in self.balancers:
                files = _files(b)
                files.include.parent.mkdir(parents=True, exist_ok=True)
                if b.access_log:
                    Path(b.access_log).parent.mkdir(parents=True, exist_ok=True)
                if not files.include.exists():
                    _write_atomic(files.include, self.render(b, green_percent).encode())
                if not files.location.exists():
                    _write_atomic(files.location, self.render_location(b).encode())

    def apply(self, green_percent: float) -> list[SplitStatus]:
        pct = normalise_percent(green_percent)
        with self._lock:
            done: list[tuple[Balancer, _Saved]] = []
            for b in self.balancers:
                try:
                    saved = self._apply_one(b, pct)
                except TrafficError as exc:
                    notes = self._put_back(done)
                    changed = ", ".join(x.name for x, _ in done)
                    msg = f"balancer {b.name}: {exc}"
                    if done:
                        msg += f"\nput back the previous split on {changed}"
                        msg += "".join(f"\n{n}" for n in notes) if notes else " (done)"
                    raise TrafficError(msg) from exc
                done.append((b, saved))
            return [self._status(b) for b in self.balancers]

    def live(self) -> list[SplitStatus]:
        return [self._status(b) for b in self.balancers]

    # ------------------------------------------------------------------------------------------- internals
    def _apply_one(self, b: Balancer, pct: float) -> _Saved:
        files = _files(b)
        files.include.parent.mkdir(parents=True, exist_ok=True)
        saved = _Saved(_read_or_none(files.include), _read_or_none(files.location))
        new_include = self.render(b, pct).encode()
        new_location = self.render_location(b).encode()
        pending = pending_path(files.include)
        _write_atomic(pending, f"green_percent={pct:.1f}\n".encode())
        try:
            if saved.include is not None:
                _write_atomic(prev_path(files.include), saved.include)
            _write_atomic(files.include, new_include)
            if saved.location != new_location:
                _write_atomic(files.location, new_location)
            ok, out = _run(b.test_command)
            if not ok:
                saved.restore(files)
                raise TrafficError(f"test failed ({_argv_text(b.test_command)}), nothing reloaded:\n{out}")
            ok, out = self._reload(b)
            if not ok:
                saved.restore(files)
                raise TrafficError(f"{out}; the previous file was put back")
        finally:
            with contextlib.suppress(FileNotFoundError):
                pending.unlink()
        got = self._status(b)
        if got.green_percent != pct:  # pragma: no cover - only if someone rewrites the file under us
            raise TrafficError(f"read back {got.green_percent} % instead of {pct} % from {files.include}")
        return saved

    def _put_back(self, done: list[tuple[Balancer, _Saved]]) -> list[str]:
        notes: list[str] = []
        for b, saved in reversed(done):
            files = _files(b)
            saved.restore(files)
            ok, out = _run(b.test_command)
            if ok:
                ok, out = self._reload(b)
            if not ok:
                notes.append(f"balancer {b.name}: putting back failed: {out}")
        return notes

    def _reload(self, b: Balancer) -> tuple[bool, str]:
        """Run the reload command and, for a local nginx master, wait until the new configuration serves."""
        master = find_master(b.reload_command)
        before = worker_pids(master) if master is not None else set()
        ok, out = _run(b.reload_command)
        if not ok:
            return False, f"reload failed ({_argv_text(b.reload_command)}):\n{out}"
        if master is not None and not wait_reloaded(master, before, self.reload_timeout):
            return False, (
                f"nginx (master pid {master.pid}) did not start workers with the new configuration within "
                f"{self.reload_timeout:g}s, so the old one stays live (see nginx's error log)"
            )
        return True, out

    def _status(self, b: Balancer) -> SplitStatus:
        files = _files(b)
        try:
            text = files.include.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SplitStatus(b.name, None, f"{files.include} does not exist")
        except OSError as exc:
            return SplitStatus(b.name, None, f"cannot read {files.include}: {exc.strerror or exc}")
        pct, problem = parse_split(text)
        detail = str(files.include)
        if problem:
            detail = f"{files.include}: {problem}"
        if pending_path(files.include).exists():
            detail += " (pending: written, reload not confirmed)"
        return SplitStatus(b.name, pct, detail)


def parse_split(text: str) -> tuple[float | None, str]:
    """The green share an include file holds, read from its split_clients block (the marker is a cross-check)."""
    block = _SPLIT_BLOCK.search(text)
    if not block:
        return None, "no cockpit split_clients block"
    body = block.group("body")
    green = _SPLIT_GREEN.search(body)
    rest = _SPLIT_REST.search(body)
    if green:
        pct = float(green.group("pct"))
    elif rest:
        pct = 100.0 if rest.group("side") == "green" else 0.0
    else:
        return None, "split_clients block without a green share"
    marker = _MARKER.search(text)
    if marker and abs(float(marker.group("pct")) - pct) > 1e-9:
        return pct, f"marker says {marker.group('pct')} % but split_clients gives {pct} %"
    return pct, ""


# ------------------------------------------------------------------------------------------------ helpers


@dataclass
class _Saved:
    include: bytes | None
    location: bytes | None

    def restore(self, files: _Files) -> None:
        for path, data in ((files.include, self.include), (files.location, self.location)):
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                _write_atomic(path, data)


def _files(b: Balancer) -> _Files:
    include = Path(b.include)
    return _Files(include, location_path(include))


def _check_upstreams(servers: Sequence[str], side: str) -> list[str]:
    out = [s.strip() for s in servers if s and s.strip()]
    if not out:
        raise TrafficError(f"{side}: at least one upstream server (host:port) is required")
    for s in out:
        if not _SERVER.match(s):
            raise TrafficError(f"{side}: upstream {s!r} is not host:port [parameters]")
    return out


def _header_var(header: str, what: str) -> str:
    if not header or not _HEADER_TOKEN.match(header):
        raise TrafficError(f"{what} {header!r}: use letters, digits and '-'")
    return header.lower().replace("-", "_")


def _key_variable(sticky: Sticky) -> str:
    if sticky.kind == "cookie":
        if not _NAME_TOKEN.match(sticky.name or ""):
            raise TrafficError(
                f"sticky cookie {sticky.name!r}: nginx reads cookies named with letters, digits, '_'"
            )
        return f"$cookie_{sticky.name}"
    if sticky.kind == "header":
        return "$http_" + _header_var(sticky.name, "sticky header")
    if sticky.kind == "address":
        return "$remote_addr"
    raise TrafficError(f"sticky kind {sticky.kind!r} is not cookie, header or address")


def _upstream(name: str, servers: list[str]) -> str:
    body = "".join(f"    server {s};\n" for s in servers)
    return f"upstream {name} {{\n{body}    keepalive 32;\n}}\n"


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(path.name + ".tmp")
    mode = 0o644
    with contextlib.suppress(FileNotFoundError):
        mode = path.stat().st_mode & 0o777
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _run(argv: Sequence[str]) -> tuple[bool, str]:
    """Run a command (argv list, no shell); (ok, its own stderr and stdout)."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        return False, f"command not found: {argv[0]}"
    except PermissionError as exc:
        return False, f"cannot run {argv[0]}: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return False, f"{_argv_text(argv)} did not finish within {COMMAND_TIMEOUT_S:g}s"
    out = "\n".join(p for p in (proc.stderr.strip(), proc.stdout.strip()) if p)
    if proc.returncode != 0 and not out:
        out = f"exit code {proc.returncode}"
    return proc.returncode == 0, out


def _argv_text(argv: Sequence[str]) -> str:
    return " ".join(argv)


_version_cache: dict[str, tuple[int, ...] | None] = {}


def nginx_version(binary: str = "nginx") -> tuple[int, ...] | None:
    """The version of an nginx binary (``nginx -v``), or None when it cannot be run."""
    if binary in _version_cache:
        return _version_cache[binary]
    version: tuple[int, ...] | None = None
    try:
        proc = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
        m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", proc.stderr + proc.stdout)
        if m:
            version = tuple(int(x) for x in m.groups())
    except (OSError, subprocess.TimeoutExpired):
        version = None
    _version_cache[binary] = version
    return version


def _supports_keepalive_min_timeout(test_command: Sequence[str]) -> bool:
    if not test_command or Path(test_command[0]).name != "nginx":
        return False
    version = nginx_version(test_command[0])
    return version is not None and version >= KEEPALIVE_MIN_TIMEOUT_SINCE


# ------------------------------------------------------------------------------------ watching a reload land


def _flag(args: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def _norm_path(value: str | None) -> str | None:
    return None if value is None else os.path.normpath(value)


def find_master(reload_command: Sequence[str]) -> psutil.Process | None:
    """The local nginx master a reload command signals, matched on its ``-p``/``-c``; None when the command is
    not a plain nginx one (systemctl, ssh, docker) or when no single master matches."""
    if not reload_command or Path(reload_command[0]).name != "nginx":
        return None
    want = (_norm_path(_flag(reload_command, "-p")), _norm_path(_flag(reload_command, "-c")))
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        words = " ".join(cmd).split()
        if words[:3] != ["nginx:", "master", "process"]:
            continue
        args = words[3:]
        if (_norm_path(_flag(args, "-p")), _norm_path(_flag(args, "-c"))) == want:
            found.append(proc)
    return found[0] if len(found) == 1 else None


def _live_children(master: psutil.Process) -> list[psutil.Process] | None:
    """The master's children that are not zombies; None when the master itself is gone."""
    try:
        children = master.children()
    except psutil.Error:
        return None
    out = []
    for c in children:
        try:
            if c.status() != psutil.STATUS_ZOMBIE:
                out.append(c)
        except psutil.Error:  # exited between the listing and the look
            continue
    return out


def worker_pids(master: psutil.Process) -> set[int]:
    return {c.pid for c in _live_children(master) or []}


def wait_reloaded(master: psutil.Process, before: set[int], timeout: float) -> bool:
    """After a reload signal: wait until a new worker runs and every old one has stopped accepting (gone or
    "worker process is shutting down"; the master waits ~100 ms before telling them). False at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        children = _live_children(master)
        if children is None:
            return False
        new = [c for c in children if c.pid not in before]
        old_accepting = 0
        for c in children:
            if c.pid in before:
                try:
                    title = " ".join(c.cmdline())
                except psutil.Error:
                    continue
                if "shutting down" not in title:
                    old_accepting += 1
        if new and not old_accepting:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
