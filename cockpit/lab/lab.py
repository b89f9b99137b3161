"""The lab's orchestration: `up` starts a small real world on loopback, `status` reads it, `down` stops all of it.

Everything lives under one folder (`.cockpit/lab/` by default):

    state.json        what runs where (written after every step, so `down` works after a crash)
    plan.yaml         the resolved copy of plans/lab.yaml with the real ports and paths
    blue.db           blue's SQLite database (WAL)
    pg/               the private PostgreSQL cluster (or under the system temp dir, see cluster.py)
    nginx/            the private nginx: nginx.conf, the traffic driver's include, access.json, error.log
    run/              pid files and logs of the demo services and the load generator (processes driver)
    faults/           blue.json, green.json: the fault switches the services read on every request
    prometheus/       with `--metrics prometheus`: the private Prometheus's prometheus.yml and data/ (prometheus.py)
    load.json         the load generator's figures, rewritten every second
    journals/         one journal per run, RUN.db, beside RUN.plan.yaml (the plan of that run, pointing at it):
                      `lab up` and `lab down` never remove them, so `cockpit -p journals/RUN.plan.yaml journal`
                      reads an older run (RUN is when it went up, e.g. 20260112-093015)

Every process is detached (its own session, pid file), so `lab up` returns and the lab keeps running until
`lab down`, which also cleans up after a crashed `lab up` or `demo`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from cockpit.core import resources
from cockpit.core.plan import Plan, PlanError, load_plan
from cockpit.lab.cluster import (
    ClusterInfo,
    create_lab_database,
    drop_lab_database,
    find_pg_bindir,
    init_cluster,
    remove_cluster,
    start_cluster,
    stop_cluster,
)
from cockpit.lab.errors import LabError
from cockpit.lab.faults import Faults, read_faults, write_faults
from cockpit.lab.load import read_figures
from cockpit.lab.prometheus import SCRAPE_INTERVAL_S, LabPrometheus, find_prometheus, plan_section
from cockpit.lab.prometheus import UNIT as PROMETHEUS_UNIT
from cockpit.lab.seed import seed_sqlite

DEFAULT_ROOT = Path(".cockpit/lab")
TEMPLATE = resources.plan_template("lab.yaml")
LOAD_UNIT = "lab-load"
NGINX_HINT = "install it: apt-get install -y nginx-light (or nginx)"
_OWN_FILES = (
    "state.json",
    "plan.yaml",
    "blue.db",
    "blue.db-wal",
    "blue.db-shm",
    "load.json",
)
_OLD_JOURNAL = (
    "journal.db",
    "journal.db-wal",
    "journal.db-shm",
)  # before journals/: kept as journals/before-*.db
JOURNALS = "journals"
_OWN_DIRS = ("pg", "nginx", "run", "faults", "backups", "prometheus")
METRICS = ("access-log", "prometheus")  # where the lab's plan reads the per-side figures from


@dataclass
class LabOptions:
    root: Path = DEFAULT_ROOT
    rate: float = 20.0  # load requests per second (0: no load generator)
    users: int = 200
    rows: int = 5000
    pg_url: str = ""  # an existing server (COCKPIT_LAB_PG_URL): the lab creates its own database there
    green_percent: float = 0.0  # the split nginx starts with
    tls: bool = (
        False  # the private cluster serves TLS and everything connects with sslmode=verify-full (as to Neon)
    )
    quiet: bool = False
    # where the plan reads the per-side figures: "access-log", or "prometheus" (a private Prometheus scrapes the
    # services, see prometheus.py)
    metrics: str = "access-log"
    # a plan template with the ${COCKPIT_LAB_*} placeholders (default: plans/lab.yaml; `cockpit rehearse --plan`)
    template: Path | None = None


# --------------------------------------------------------------------------------------------------- state


def state_path(root: Path) -> Path:
    return Path(root).resolve() / "state.json"


def read_state(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads(state_path(root).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise LabError(
            f"{state_path(root)} is not readable JSON ({exc}); remove it after checking nothing runs"
        ) from exc


def _save(state: dict[str, Any]) -> None:
    path = state_path(Path(state["root"]))
    tmp = path.with_name(".state.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------- helpers


def find_nginx(
    path: str | None = None, fallbacks: tuple[str, ...] = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
) -> str:
    """The nginx binary: on PATH (or `path`), else in the usual sbin folders; LabError with the install hint."""
    found = shutil.which("nginx", path=path) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if not found:
        raise LabError(
            f"nginx not found on PATH or in {', '.join(fallbacks) or 'the sbin folders'}; {NGINX_HINT}"
        )
    return found


def _free_port() -> int:
    from cockpit.drivers.traffic.nginx_site import free_port

    return free_port()


def render_plan(template: Path, values: dict[str, str], out: Path, extra: str = "") -> Plan:
    """Fill the template's ${COCKPIT_LAB_*} with real values (JSON-escaped: they sit in double quotes), append
    `extra` (more top-level sections) and load it."""
    text = template.read_text(encoding="utf-8")

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            return m.group(0)
        return json.dumps(str(values[name]))[1:-1]

    resolved = re.sub(r"\$\{(COCKPIT_LAB_[A-Z0-9_]+)(?::-[^}]*)?\}", sub, text)
    header = "# Resolved by `cockpit lab up` from plans/lab.yaml: real ports and paths of this lab.\n"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(header + resolved + extra)
    try:
        return load_plan(out)
    except PlanError as exc:
        raise LabError(f"the resolved lab plan does not load:\n{exc}") from exc


def _http_status(port: int, path: str = "/health", timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def _wait_healthy(services: list[dict[str, Any]], run_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        for svc in list(pending):
            if _http_status(svc["port"]) == 200:
                pending.remove(svc)
            elif not _alive(svc.get("pid")):
                raise LabError(
                    f"service {svc['unit']} exited at start:\n{_tail(run_dir / (svc['unit'] + '.log'))}"
                )
        if pending and time.monotonic() > deadline:
            names = ", ".join(s["unit"] for s in pending)
            raise LabError(
                f"service(s) {names} not healthy within {timeout:g}s:\n"
                + "\n".join(_tail(run_dir / (s["unit"] + ".log")) for s in pending)
            )
        if pending:
            time.sleep(0.05)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pid_from_file(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    try:
        return int(json.loads(text)["pid"]) if text.startswith("{") else int(text.split()[0])
    except (ValueError, KeyError, IndexError):
        return None


def _say(opts: LabOptions, text: str) -> None:
    if not opts.quiet:
        print(text, flush=True)


def initial_copy(plan: Plan) -> str:
    """blue -> green through the sync's one copy sequence: capture on blue, the copy, capture on both sides."""
    from cockpit.drivers.sync.runner import SyncRunner

    runner = SyncRunner.from_plan(plan)
    try:
        report, tables = runner.initial_copy(int(plan.sync.copy_jobs))
        return (
            f"initial copy done ({report.rows:,} rows in {report.seconds:.2f}s); capture installed on both "
            f"sides for {', '.join(tables)}"
        )
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------------------- up


def _set_aside_ledger(root: Path) -> None:
    """A new lab has new databases: the last lab's ledger is kept beside them (ledger-<when>.jsonl), never read
    as this lab's."""
    old = root / "ledger.jsonl"
    if old.exists():
        when = time.strftime("%Y%m%d-%H%M%S", time.localtime(old.stat().st_mtime))
        old.rename(root / f"ledger-{when}.jsonl")


def up(opts: LabOptions) -> dict[str, Any]:
    """Start the lab. On any failure, stop what was started and raise LabError."""
    if opts.tls and opts.pg_url:
        raise LabError(
            "--tls makes the lab's private cluster serve TLS; with an existing server (--pg-url or "
            "COCKPIT_LAB_PG_URL) put sslmode=require in its URL instead"
        )
    if opts.metrics not in METRICS:
        raise LabError(f"unknown metrics source {opts.metrics!r}; known: {', '.join(METRICS)}")
    prometheus_bin = find_prometheus() if opts.metrics == "prometheus" else ""
    root = Path(opts.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    previous = read_state(root)
    if previous is not None:
        running = _running_parts(previous)
        if running:
            raise LabError(
                f"a lab is already up in {root} ({', '.join(running)}); run `cockpit lab down"
                f"{'' if root == DEFAULT_ROOT.resolve() else f' --root {root}'}` first"
            )
        down(root, quiet=True)  # a stale one: clean it before starting again
    nginx_bin = find_nginx()
    if not opts.pg_url:
        find_pg_bindir()  # fail early with the install hint
    if not (opts.template or TEMPLATE).is_file():
        raise LabError(f"the lab plan template {opts.template or TEMPLATE} is missing")
    _set_aside_ledger(root)
    for name in _OWN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    for name in _OWN_DIRS:
        shutil.rmtree(root / name, ignore_errors=True)
    _keep_old_journal(root)
    run_dir, nginx_dir, faults_dir = root / "run", root / "nginx", root / "faults"
    for d in (run_dir, nginx_dir, faults_dir):
        d.mkdir(parents=True)
    state: dict[str, Any] = {
        "root": str(root),
        "created": time.time(),
        "run": new_run_id(root),
        "up_pid": os.getpid(),
        "ports": [],
        "options": {"rate": opts.rate, "users": opts.users, "rows": opts.rows, "metrics": opts.metrics},
    }
    _save(state)
    try:
        _up_steps(opts, root, state, nginx_bin, prometheus_bin)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            down(root, quiet=True)
        if isinstance(exc, LabError) or not isinstance(exc, Exception):
            raise
        raise LabError(
            f"lab up failed at {state.get('step', 'start')}: {type(exc).__name__}: {exc} "
            "(everything it had started is stopped again)"
        ) from exc
    return state


def _up_steps(
    opts: LabOptions, root: Path, state: dict[str, Any], nginx_bin: str, prometheus_bin: str
) -> None:
    from cockpit.drivers.services.factory import build_services
    from cockpit.drivers.traffic.nginx import NginxDriver
    from cockpit.drivers.traffic.nginx_site import PrivateNginx

    # 1. PostgreSQL
    state["step"] = "postgres"
    if opts.pg_url:
        url, name = create_lab_database(opts.pg_url)
        state["postgres"] = {"mode": "server", "url": url, "server_url": opts.pg_url, "database": name}
        _save(state)
        _say(opts, f"postgres: database {name} on the server of COCKPIT_LAB_PG_URL")
    else:
        port = _free_port()
        info = init_cluster(root, port, ssl=opts.tls)
        url = info.verify_full_url if opts.tls else info.url
        state["postgres"] = {"mode": "private", "url": url, "cluster": dataclasses.asdict(info)}
        state["ports"].append(port)
        _save(state)
        start_cluster(info)
        _say(
            opts,
            f"postgres: private cluster on 127.0.0.1:{port}{' with TLS' if opts.tls else ''} ({info.base}{', as user ' + info.owner if info.owner else ''})",
        )
    pg_url = state["postgres"]["url"]

    # 2. fault switches, ports, the resolved plan
    state["step"] = "plan"
    sqlite_path = root / "blue.db"
    for side in ("blue", "green"):
        write_faults(root / "faults" / f"{side}.json", Faults())
    ports = {k: _free_port() for k in ("FRONT", "BLUE_1", "BLUE_2", "GREEN_1", "GREEN_2")}
    prometheus = (
        LabPrometheus(root / "prometheus", _free_port(), prometheus_bin, root / "run")
        if prometheus_bin
        else None
    )
    state["ports"] += list(ports.values()) + ([prometheus.port] if prometheus else [])
    nginx_dir = root / "nginx"
    site = PrivateNginx(
        nginx_dir, ports["FRONT"], nginx_dir / "cockpit-split.conf", daemon=True, binary=nginx_bin
    )
    values = {
        "COCKPIT_LAB_ROOT": str(root),
        "COCKPIT_LAB_SQLITE": str(sqlite_path),
        "COCKPIT_LAB_GREEN_URL": pg_url,
        "COCKPIT_LAB_PYTHON": sys.executable,
        "COCKPIT_LAB_FAULTS": str(root / "faults"),
        "COCKPIT_LAB_RUN": str(root / "run"),
        "COCKPIT_LAB_NGINX": str(nginx_dir),
        "COCKPIT_LAB_NGINX_BIN": nginx_bin,
        "COCKPIT_LAB_FRONT_PORT": str(ports["FRONT"]),
        "COCKPIT_LAB_BLUE_PORT_1": str(ports["BLUE_1"]),
        "COCKPIT_LAB_BLUE_PORT_2": str(ports["BLUE_2"]),
        "COCKPIT_LAB_GREEN_PORT_1": str(ports["GREEN_1"]),
        "COCKPIT_LAB_GREEN_PORT_2": str(ports["GREEN_2"]),
        "COCKPIT_LAB_JOURNAL": str(root / JOURNALS / f"{state['run']}.db"),
    }
    plan_path = root / "plan.yaml"
    template = opts.template or TEMPLATE
    plan = render_plan(template, values, plan_path)
    if prometheus is not None:  # the same window as the access log's, so the two sources' figures compare
        section = plan_section(prometheus.url, f"{max(1, round(plan.traffic.window))}s")
        plan = render_plan(template, values, plan_path, section)
    shutil.copyfile(plan_path, root / JOURNALS / f"{state['run']}.plan.yaml")  # this run's, readable later
    if plan.traffic.balancers[0].test_command != site.test_argv():  # the template and the site must agree
        raise LabError(
            f"plans/lab.yaml's nginx test_command {plan.traffic.balancers[0].test_command} does not "
            f"match the private nginx's {site.test_argv()}"
        )
    state.update(
        plan=str(plan_path),
        sqlite=str(sqlite_path),
        front_door=site.url,
        sticky={"kind": plan.traffic.sticky.kind, "name": plan.traffic.sticky.name},
    )
    _save(state)

    # 3. blue's data, then green's by the initial copy (capture installed on both sides)
    state["step"] = "seed and initial copy"
    t0 = time.monotonic()
    counts = seed_sqlite(sqlite_path, opts.rows)
    state["seeded"] = counts
    _save(state)
    _say(
        opts,
        f"blue:     seeded {sum(counts.values())} rows into {sqlite_path} ({time.monotonic() - t0:.1f}s)",
    )
    t0 = time.monotonic()
    state["copy"] = initial_copy(plan)
    _save(state)
    _say(opts, f"green:    {state['copy']} ({time.monotonic() - t0:.1f}s)")

    # 4. the demo services (through the plan's processes driver: the controller uses the same pid files)
    state["step"] = "services"
    services: list[dict[str, Any]] = []
    for side_name in ("blue", "green"):
        side = getattr(plan, side_name)
        services_driver = build_services(side.services, plan)
        if services_driver is None:
            raise LabError(f"plans/lab.yaml: {side_name}.services must use the processes driver")
        services_driver.start(list(side.services.units))
        for unit, upstream in zip(side.services.units, side.upstreams, strict=True):
            pid = _pid_from_file(root / "run" / f"{unit}.pid")
            services.append(
                {"unit": unit, "side": side_name, "port": int(upstream.rsplit(":", 1)[1]), "pid": pid}
            )
        state["services"] = services
        _save(state)
    _wait_healthy(services, root / "run")
    _say(opts, "services: " + ", ".join(f"{s['unit']} :{s['port']}" for s in services))

    # 4b. the private Prometheus scraping them (--metrics prometheus)
    if prometheus is not None:
        state["step"] = "prometheus"
        state["prometheus"] = {
            "url": prometheus.url,
            "port": prometheus.port,
            "folder": str(prometheus.folder),
        }
        _save(state)
        prometheus.start({side: list(getattr(plan, side).upstreams) for side in ("blue", "green")})
        state["prometheus"]["pid"] = _pid_from_file(root / "run" / f"{PROMETHEUS_UNIT}.pid")
        _save(state)
        _say(opts, f"metrics:  Prometheus {prometheus.url} scrapes the services every {SCRAPE_INTERVAL_S}s")

    # 5. nginx with the traffic driver's include, at the starting split
    state["step"] = "nginx"
    NginxDriver.from_plan(plan).prepare(opts.green_percent)
    state["nginx"] = {
        "root": str(nginx_dir),
        "port": ports["FRONT"],
        "include": str(nginx_dir / "cockpit-split.conf"),
        "access_log": plan.traffic.balancers[0].access_log
        and str(plan.path(plan.traffic.balancers[0].access_log)),
        "binary": nginx_bin,
    }
    _save(state)
    site.start()
    state["nginx"]["pid"] = site.pid()
    _save(state)
    _say(opts, f"nginx:    front door {site.url} (green {opts.green_percent:g}%)")

    # 6. the load
    state["step"] = "load"
    if opts.rate > 0:
        load = load_driver(root, site.url, opts, plan)
        load.start([LOAD_UNIT])
        state["load"] = {
            "pid": _pid_from_file(root / "run" / f"{LOAD_UNIT}.pid"),
            "stats": str(root / "load.json"),
            "rate": opts.rate,
            "users": opts.users,
        }
        _save(state)
        _say(opts, f"load:     {opts.rate:g} req/s from {opts.users} users through the front door")
    _say(opts, f"plan:     {plan_path}")


def new_run_id(root: Path) -> str:
    """When this run goes up (local time, to the second), unique among the runs kept in journals/."""
    (root / JOURNALS).mkdir(parents=True, exist_ok=True)
    base = time.strftime("%Y%m%d-%H%M%S")
    run, n = base, 1
    while (root / JOURNALS / f"{run}.plan.yaml").exists() or (root / JOURNALS / f"{run}.db").exists():
        n += 1
        run = f"{base}-{n}"
    return run


def _keep_old_journal(root: Path) -> None:
    """A journal.db from before per-run journals moves to journals/before-<its time>.db (never deleted)."""
    old = root / _OLD_JOURNAL[0]
    if not old.exists():
        return
    (root / JOURNALS).mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(old.stat().st_mtime))
    for name in _OLD_JOURNAL:
        with contextlib.suppress(FileNotFoundError):
            (root / name).rename(root / JOURNALS / name.replace("journal", f"before-{stamp}", 1))
    with contextlib.suppress(FileNotFoundError):
        (root / "journal.db.lock").unlink()


def runs(root: Path) -> list[dict[str, str]]:
    """The runs whose journals are kept, newest first: run id, its plan, its journal."""
    folder = Path(root).resolve() / JOURNALS
    found = sorted(folder.glob("*.plan.yaml"), reverse=True) if folder.is_dir() else []
    return [
        {
            "run": p.name.removesuffix(".plan.yaml"),
            "plan": str(p),
            "journal": str(p.with_name(p.name.removesuffix(".plan.yaml") + ".db")),
        }
        for p in found
    ]


def load_driver(root: Path, front_door: str, opts: LabOptions, plan: Plan) -> Any:
    from cockpit.drivers.services.processes import ProcessesDriver

    argv = [
        sys.executable,
        "-m",
        "cockpit.lab.load",
        "--url",
        front_door,
        "--rate",
        f"{opts.rate:g}",
        "--users",
        str(opts.users),
        "--rows",
        str(opts.rows),
        "--stats",
        str(root / "load.json"),
        "--ledger",
        str(root / "ledger.jsonl"),
        "--sticky-kind",
        plan.traffic.sticky.kind,
        "--sticky-name",
        plan.traffic.sticky.name,
    ]
    return ProcessesDriver({LOAD_UNIT: argv}, pid_dir=root / "run", stop_timeout=5.0)


# -------------------------------------------------------------------------------------------------- down


def down(root: Path, quiet: bool = False) -> dict[str, Any]:
    """Stop everything the lab in `root` started (from its state and pid files); nothing left running or listening."""
    from cockpit.drivers.services.processes import ProcessesDriver

    root = Path(root).resolve()
    state = read_state(root) or {"root": str(root), "ports": []}
    report: dict[str, Any] = {"stopped": [], "errors": [], "left": []}

    def step(what: str, fn: Any) -> None:
        try:
            fn()
            report["stopped"].append(what)
        except Exception as exc:
            report["errors"].append(f"{what}: {exc}")

    # load generator and services: every pid file under run/ (works without a readable plan)
    run_dir = root / "run"
    units = sorted(p.stem for p in run_dir.glob("*.pid")) if run_dir.is_dir() else []
    if units:
        # stop the load first, so it does not count the services going away as errors
        ordered = [u for u in units if u == LOAD_UNIT] + [u for u in units if u != LOAD_UNIT]
        for unit in ordered:
            drv = ProcessesDriver({unit: ["true"]}, pid_dir=run_dir, stop_timeout=5.0)
            step(f"process {unit}", lambda d=drv, u=unit: d.stop([u]))

    # nginx
    nginx_state = state.get("nginx") or {}
    nginx_dir = Path(nginx_state.get("root") or root / "nginx")
    if (nginx_dir / "nginx.pid").exists():
        from cockpit.drivers.traffic.nginx_site import PrivateNginx

        site = PrivateNginx(
            nginx_dir, int(nginx_state.get("port") or 0), nginx_dir / "cockpit-split.conf", daemon=True
        )
        step("nginx", site.stop)

    # PostgreSQL
    pg = state.get("postgres") or {}
    if pg.get("mode") == "private" and pg.get("cluster"):
        info = ClusterInfo(**pg["cluster"])
        step("postgres (private cluster)", lambda: stop_cluster(info))
        if not _alive(info.server_pid()):  # its data goes with it (blue.db and the logs stay for a look)
            remove_cluster(info)
    elif pg.get("mode") == "server":
        step(
            f"postgres database {pg['database']}", lambda: drop_lab_database(pg["server_url"], pg["database"])
        )

    # anything of this lab still alive (a crash between spawn and pid file): found by its folder in its argv
    markers = [str(root) + os.sep]
    cluster = pg.get("cluster") or {}
    if cluster.get("base"):
        markers.append(str(cluster["base"]))
    stray = _stray_processes(markers)
    if stray:
        for p in stray:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _gone, alive = psutil.wait_procs(stray, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        report["stopped"].append(f"{len(stray)} stray process(es): " + ", ".join(str(p.pid) for p in stray))

    report["left"] = listening(state.get("ports", []))
    if report["left"]:
        report["errors"].append(f"still listening: {', '.join(map(str, report['left']))}")
    if not report["errors"]:  # with errors the state stays, so that another `down` can finish the job
        with contextlib.suppress(FileNotFoundError):
            state_path(root).unlink()
    if not quiet:
        for s in report["stopped"]:
            print(f"stopped  {s}")
        for e in report["errors"]:
            print(f"error    {e}", file=sys.stderr)
        if not report["stopped"] and not report["errors"]:
            print(f"nothing ran in {root}")
    return report


def _stray_processes(markers: list[str]) -> list[psutil.Process]:
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] in skip:
            continue
        argv = p.info["cmdline"] or []
        cmd = " ".join(argv)
        ours = any(m in cmd for m in ("cockpit.lab.service", "cockpit.lab.load")) or (
            bool(argv) and Path(argv[0]).name.startswith(("nginx", "postgres", "prometheus"))
        )
        if ours and any(m in cmd for m in markers):
            out.append(p)
    return out


def listening(ports: list[int]) -> list[int]:
    """Which of `ports` something listens on (TCP, any address)."""
    wanted = set(int(p) for p in ports)
    if not wanted:
        return []
    found = set()
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in wanted:
            found.add(c.laddr.port)
    return sorted(found)


# ------------------------------------------------------------------------------------------------ status


def _running_parts(state: dict[str, Any]) -> list[str]:
    parts = [
        s["unit"]
        for s in state.get("services", [])
        if _alive(_pid_from_file(Path(state["root"]) / "run" / f"{s['unit']}.pid"))
    ]
    if _alive((state.get("nginx") or {}).get("pid")):
        parts.append("nginx")
    cluster = (state.get("postgres") or {}).get("cluster")
    if cluster and _alive(ClusterInfo(**cluster).server_pid()):
        parts.append("postgres")
    if _alive(_pid_from_file(Path(state["root"]) / "run" / f"{LOAD_UNIT}.pid")):
        parts.append("load")
    if _alive(_pid_from_file(Path(state["root"]) / "run" / f"{PROMETHEUS_UNIT}.pid")):
        parts.append("prometheus")
    return parts


def status(root: Path) -> dict[str, Any]:
    """What runs, where, and the load's figures (the `lab status --json` document)."""
    root = Path(root).resolve()
    state = read_state(root)
    if state is None:
        return {"root": str(root), "up": False, "runs": runs(root)}
    run_dir = root / "run"
    services = []
    for s in state.get("services", []):
        pid = _pid_from_file(run_dir / f"{s['unit']}.pid")
        alive = _alive(pid)
        services.append(
            {
                **s,
                "pid": pid,
                "running": alive,
                "url": f"http://127.0.0.1:{s['port']}",
                "health": _http_status(s["port"], timeout=1.0) if alive else 0,
            }
        )
    nginx = dict(state.get("nginx") or {})
    if nginx:
        nginx["running"] = _alive(nginx.get("pid"))
    pg = dict(state.get("postgres") or {})
    if pg.get("cluster"):
        info = ClusterInfo(**pg["cluster"])
        pg["pid"] = info.server_pid()
        pg["running"] = _alive(pg["pid"])
    elif pg:
        pg["running"] = None  # an outside server: not ours to watch
    load_pid = _pid_from_file(run_dir / f"{LOAD_UNIT}.pid")
    figures = read_figures(root / "load.json")
    prometheus = dict(state.get("prometheus") or {})
    if prometheus:
        prometheus["pid"] = _pid_from_file(run_dir / f"{PROMETHEUS_UNIT}.pid")
        prometheus["running"] = _alive(prometheus["pid"])
    split = None
    sync: dict[str, Any] | None = None
    plan = None
    with contextlib.suppress(Exception):
        plan = load_plan(state["plan"])
    if plan is not None and nginx:
        with contextlib.suppress(Exception):
            from cockpit.drivers.traffic.nginx import NginxDriver

            split = NginxDriver.from_plan(plan).live()[0].green_percent
    if plan is not None and pg.get("running") is not False:
        sync = _sync_lag(plan)
    doc = {
        "root": str(root),
        "up": bool(_running_parts(state)),
        "front_door": state.get("front_door"),
        "plan": state.get("plan"),
        "sticky": state.get("sticky"),
        "sqlite": state.get("sqlite"),
        "postgres_url": pg.get("url"),
        "postgres": pg,
        "green_percent": split,
        "sync": sync,
        "services": services,
        "nginx": nginx,
        "metrics": (state.get("options") or {}).get("metrics", "access-log"),
        "prometheus": prometheus or None,
        "load": {
            **(state.get("load") or {}),
            "pid": load_pid,
            "running": _alive(load_pid),
            "figures": figures,
        },
        "faults": {
            side: dataclasses.asdict(read_faults(root / "faults" / f"{side}.json"))
            for side in ("blue", "green")
        },
        "copy": state.get("copy"),
        "seeded": state.get("seeded"),
        "run": state.get("run"),
        "runs": runs(root),  # every run's journal, kept: `cockpit -p PLAN journal` reads it
    }
    return doc


def _sync_lag(plan: Plan) -> dict[str, Any]:
    """What each sync direction has pending (whoever runs the sync: the cockpit's controller, `cockpit sync run`)."""
    from cockpit.drivers.sync.runner import SyncRunner

    runner = None
    try:
        runner = SyncRunner.from_plan(plan)
        return {direction: lag.as_dict() for direction, lag in runner.lag().items()}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.close()


def set_fault(
    root: Path,
    side: str,
    *,
    errors: float | None = None,
    latency_ms: float | None = None,
    db_down: bool | None = None,
    clear: bool = False,
) -> Faults:
    """Change one side's fault switches (the others stay as they are); `clear` resets them all."""
    root = Path(root).resolve()
    if read_state(root) is None:
        raise LabError(f"no lab in {root} (cockpit lab up first)")
    path = root / "faults" / f"{side}.json"
    current = Faults() if clear else read_faults(path)
    given: dict[str, Any] = {"errors": errors, "latency_ms": latency_ms, "db_down": db_down}
    changed = dataclasses.replace(current, **{k: v for k, v in given.items() if v is not None})
    write_faults(path, changed)
    return changed
