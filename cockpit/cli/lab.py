"""`cockpit lab up|down|status|fault` and `cockpit demo`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cockpit.core.errors import EXIT_FAILED, EXIT_USAGE
from cockpit.core.lock import refuse_beside_controller
from cockpit.core.plan import Plan, PlanError, load_plan
from cockpit.core.redact import redact, redact_text
from cockpit.lab.errors import LabError
from cockpit.lab.faults import parse_latency, parse_percent
from cockpit.lab.lab import DEFAULT_ROOT, METRICS, LabOptions, down, set_fault, status, up


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser("lab", help="the embedded lab: a real blue/green world on loopback")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    lab.set_defaults(func=lambda args: _usage(lab))

    def root_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--root", type=Path, default=DEFAULT_ROOT, help=f"the lab's folder (default {DEFAULT_ROOT})"
        )

    def up_args(p: argparse.ArgumentParser) -> None:
        root_arg(p)
        p.add_argument(
            "--rate", type=float, default=20.0, help="load: requests per second (0: no load; default 20)"
        )
        p.add_argument(
            "--users", type=int, default=200, help="load: distinct users with sticky keys (default 200)"
        )
        p.add_argument(
            "--rows", type=int, default=5000, help="seeded rows over the four tables (default 5000)"
        )
        p.add_argument(
            "--pg-url",
            default=os.environ.get("COCKPIT_LAB_PG_URL", ""),
            help="use this PostgreSQL server (a lab database is created there) instead of a private "
            "cluster (default: $COCKPIT_LAB_PG_URL)",
        )
        p.add_argument(
            "--tls",
            action="store_true",
            help="the private cluster serves TLS (a throwaway CA) and every client connects with "
            "sslmode=verify-full, as to Neon",
        )
        p.add_argument(
            "--metrics",
            choices=METRICS,
            default="access-log",
            help="where the plan reads each side's error rate, p95 and requests/s: nginx's access log "
            "(default), or a private Prometheus (Debian's `prometheus`) scraping the services each second",
        )

    p_up = lab_sub.add_parser("up", help="start PostgreSQL, the demo services, nginx and the load")
    up_args(p_up)
    p_up.add_argument(
        "--green", type=float, default=0.0, help="the split nginx starts with, in %% green (default 0)"
    )
    p_up.add_argument("--json", action="store_true", help="print the status document when up")
    p_up.set_defaults(func=_up)

    p_down = lab_sub.add_parser("down", help="stop everything the lab started")
    root_arg(p_down)
    p_down.add_argument(
        "--force",
        action="store_true",
        help="even while green holds acknowledged changes blue lacks (they are destroyed with green)",
    )
    p_down.set_defaults(func=_down)

    p_status = lab_sub.add_parser("status", help="what runs, where, and the load's figures")
    root_arg(p_status)
    p_status.add_argument(
        "--json", action="store_true", help="one JSON document (front door, plan, services...)"
    )
    p_status.set_defaults(func=_status)

    p_fault = lab_sub.add_parser("fault", help="inject errors, latency or a database outage on one side")
    p_fault.add_argument("side", choices=("blue", "green"))
    root_arg(p_fault)
    p_fault.add_argument("--errors", help="share of API requests answered 500, e.g. 10%%")
    p_fault.add_argument("--latency", help="delay added to each API request, e.g. 800ms")
    p_fault.add_argument("--db-down", action="store_true", help="every database access answers 503")
    p_fault.add_argument("--db-up", action="store_true", help="end a --db-down")
    p_fault.add_argument("--clear", action="store_true", help="remove every fault of this side")
    p_fault.set_defaults(func=_fault)

    demo = subparsers.add_parser(
        "demo", help="the lab, the initial copy, the sync, the load and the cockpit screen"
    )
    up_args(demo)
    demo.set_defaults(func=_demo)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return EXIT_USAGE


def _options(args: argparse.Namespace, quiet: bool = False) -> LabOptions:
    if args.rate < 0 or args.users <= 0 or args.rows < 10:
        raise LabError("--rate must be >= 0, --users > 0 and --rows >= 10")
    return LabOptions(
        root=args.root,
        rate=args.rate,
        users=args.users,
        rows=args.rows,
        pg_url=args.pg_url,
        green_percent=getattr(args, "green", 0.0),
        quiet=quiet,
        tls=args.tls,
        metrics=args.metrics,
    )


def _up(args: argparse.Namespace) -> int:
    up(_options(args, quiet=args.json))
    if args.json:
        print(json.dumps(redact(status(args.root)), indent=1))
    else:
        print(
            f"lab up: `cockpit lab status{_root_flag(args)}`, `cockpit -p {Path(args.root).resolve() / 'plan.yaml'} tui`, "
            f"`cockpit lab down{_root_flag(args)}`"
        )
    return 0


def _root_flag(args: argparse.Namespace) -> str:
    return "" if Path(args.root).resolve() == DEFAULT_ROOT.resolve() else f" --root {args.root}"


def _down(args: argparse.Namespace) -> int:
    plan_file = Path(args.root) / "plan.yaml"
    try:
        plan = load_plan(plan_file) if plan_file.is_file() else None
    except PlanError:  # a broken plan drives no controller: take the lab down all the same
        plan = None
    if plan is not None:
        refuse_beside_controller(
            plan.path(plan.journal.path), "cockpit lab down", "quit the cockpit (or stop `cockpit run`) first"
        )
        if not args.force:
            left = _green_only(plan)
            if left:
                print(
                    f"cockpit lab down: refused: green holds {left} acknowledged changes blue lacks; taking the lab "
                    f"down destroys them. Let the sync carry them (`cockpit -p {plan.source} sync run --once`, or "
                    "start the cockpit), or give --force to destroy them",
                    file=sys.stderr,
                )
                return EXIT_FAILED
    report = down(args.root)
    return 1 if report["errors"] else 0


def _green_only(plan: Plan) -> int:
    """Acknowledged changes on green that blue lacks (0 when the sync never ran, or green cannot be read: then
    there is nothing this process can save either)."""
    if plan.blue.database.engine != "sqlite" or plan.green.database.engine != "postgresql":
        return 0
    from cockpit.drivers.sync.runner import SyncRunner

    runner = None
    try:
        runner = SyncRunner.from_plan(plan, on_event=lambda kind, payload: None)
        return runner.green_only_pending()
    except Exception as exc:
        print(
            f"cockpit lab down: warning: cannot tell what green holds ({redact_text(str(exc))})",
            file=sys.stderr,
        )
        return 0
    finally:
        if runner is not None:
            runner.close()


def _status(args: argparse.Namespace) -> int:
    doc = status(args.root)
    if args.json:
        print(json.dumps(redact(doc), indent=1))
    else:
        print(redact(format_status(doc)))
    return 0 if doc.get("up") else 1


def _fault(args: argparse.Namespace) -> int:
    if not (args.errors or args.latency or args.db_down or args.db_up or args.clear):
        raise LabError("say which fault: --errors 10%, --latency 800ms, --db-down, --db-up or --clear")
    if args.db_down and args.db_up:
        raise LabError("--db-down and --db-up contradict each other")
    try:
        errors = parse_percent(args.errors) if args.errors else None
        latency = parse_latency(args.latency) if args.latency else None
    except ValueError as exc:
        raise LabError(str(exc)) from exc
    db = True if args.db_down else False if args.db_up else None
    faults = set_fault(args.root, args.side, errors=errors, latency_ms=latency, db_down=db, clear=args.clear)
    print(f"{args.side}: faults {faults.describe()}")
    return 0


# ---------------------------------------------------------------------------------------------- rendering


def format_status(doc: dict[str, Any]) -> str:
    if "front_door" not in doc:
        return f"no lab in {doc['root']} (cockpit lab up)"
    lines = [f"lab in {doc['root']}: {'up' if doc['up'] else 'DOWN (cockpit lab down to clean up)'}"]
    split = doc.get("green_percent")
    sticky = doc.get("sticky") or {}
    lines.append(
        f"front door  {doc['front_door']}   green {split if split is not None else '?'}%   "
        f"sticky {sticky.get('kind')} {sticky.get('name')}"
    )
    lines.append(f"plan        {doc['plan']}")
    lines.append(f"blue        sqlite {doc['sqlite']}")
    pg = doc.get("postgres") or {}
    where = (
        f"private cluster, pid {pg.get('pid')}"
        if pg.get("mode") == "private"
        else f"database {pg.get('database')} on a given server"
    )
    lines.append(
        f"green       {doc['postgres_url']}   ({where}{'' if pg.get('running') is not False else ', NOT RUNNING'})"
    )
    if doc.get("copy"):
        lines.append(f"copy        {doc['copy']}")
    sync = doc.get("sync") or {}
    if sync.get("error"):
        lines.append(f"sync        {sync['error']}")
    elif sync:
        lines.append(
            "sync        "
            + ", ".join(
                f"{d.replace('_', ' ')}: {v['pending']} pending, oldest {v['age_s']:.1f}s"
                for d, v in sync.items()
            )
        )
    for s in doc.get("services", []):
        health = "healthy" if s.get("health") == 200 else f"health {s.get('health') or 'no answer'}"
        state = health if s.get("running") else "NOT RUNNING"
        lines.append(
            f"service     {s['unit']:<12} {s['side']:<5} :{s['port']:<6} pid {s.get('pid')}  {state}"
        )
    n = doc.get("nginx") or {}
    if n:
        lines.append(
            f"nginx       :{n.get('port')}  pid {n.get('pid')}  {'running' if n.get('running') else 'NOT RUNNING'}  "
            f"log {n.get('access_log')}"
        )
    prom = doc.get("prometheus") or {}
    if prom:
        lines.append(
            f"metrics     Prometheus {prom.get('url')}  pid {prom.get('pid')}  "
            f"{'running' if prom.get('running') else 'NOT RUNNING'}  (the plan reads its figures from it)"
        )
    load = doc.get("load") or {}
    fig = load.get("figures") or {}
    if load.get("pid") or fig:
        r = fig.get("recent") or {}
        t = fig.get("total") or {}
        sides = r.get("by_side") or {}
        lines.append(
            f"load        pid {load.get('pid')} {'running' if load.get('running') else 'stopped'}  target "
            f"{load.get('rate', '?')} req/s from {load.get('users', '?')} users"
        )
        if fig:
            lines.append(
                f"            last {r.get('window_s', 10):g}s: {r.get('rps', 0)} req/s, errors {r.get('error_rate', 0)}%, "
                f"p50 {r.get('p50_ms')} ms, p95 {r.get('p95_ms')} ms, blue {sides.get('blue', 0)} / green "
                f"{sides.get('green', 0)}"
            )
            lines.append(
                f"            total: {t.get('requests', 0)} requests, {t.get('errors', 0)} errors, "
                f"{(t.get('status') or {}).get('404', 0)} not found, {t.get('retried', 0)} retried"
            )
            if fig.get("last_error"):
                lines.append(f"            last error: {fig['last_error']}")
    else:
        lines.append("load        not started (lab up --rate N)")
    faults = doc.get("faults") or {}
    desc = []
    for side in ("blue", "green"):
        f = faults.get(side) or {}
        parts = [
            f"errors {f['errors']:g}%" if f.get("errors") else "",
            f"latency {f['latency_ms']:g}ms" if f.get("latency_ms") else "",
            "db down" if f.get("db_down") else "",
        ]
        desc.append(f"{side}: {', '.join(p for p in parts if p) or 'none'}")
    lines.append(f"faults      {'   '.join(desc)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- demo


def _failing() -> bool:
    """True while an exception other than an interruption is on its way out (its traceback must be seen)."""
    exc = sys.exc_info()[1]
    return exc is not None and not isinstance(exc, KeyboardInterrupt)


def _demo(args: argparse.Namespace) -> int:
    """Lab up, initial copy, load flowing, the cockpit on the lab plan; everything stops on quit or signal."""
    opts = _options(args)

    quit_requested = threading.Event()
    screen_up = False

    def on_term(signum: int, frame: Any) -> None:
        # while the lab comes up, as a Ctrl-C: the `finally` below takes it down. Once the screen is starting, an
        # exception raised here could land anywhere in it (a weakref callback swallows it, and the screen runs
        # on): the flag makes the screen quit as soon as it is up, and from then its own handler has SIGTERM.
        quit_requested.set()
        if not screen_up:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = False  # a lab this demo did not start (already up: refused) is not taken down
    code = 0
    try:
        up(opts)
        started = True
        from cockpit.tui.app import run_tui

        screen_up = True
        if quit_requested.is_set():  # the signal came, and its KeyboardInterrupt was lost on the way
            return 0
        # the screen's controller runs the sync loop itself (controller_session(run_sync=True))
        plan_path = str(Path(opts.root).resolve() / "plan.yaml")
        code = int(run_tui(plan_path, quit_requested=quit_requested) or 0)
        return code
    except KeyboardInterrupt:
        return 0
    finally:
        # no second interruption while stopping: a late SIGINT or SIGTERM (a Ctrl-C twice, a supervisor's second
        # signal) would otherwise escape this `finally` and leave the lab half down
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if started:
            print("demo: stopping the lab", flush=True)
            down(opts.root)
        # the handlers stay ignored: the demo is the process's last act, and a late signal must not turn a clean
        # stop into a death by signal. A KeyboardInterrupt still pending from the screen's own SIGINT handling
        # (asyncio's runner) was seen escaping after a complete stop (exit -2 in CI): once the lab is down, the
        # process ends here with the demo's own code.
        if started and not _failing():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
