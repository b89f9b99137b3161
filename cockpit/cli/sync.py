"""`cockpit sync copy|run|install|uninstall|status|keys|conflicts`: the sync from the command line.

Each command works from the plan (`-p PLAN`: blue's SQLite file, green's URL, `sync.tables`, policy, batch size)
or without one (`--from FILE.db --to URL [--tables a,b]`). Exit codes: 0 done, 1 the action failed (PostgreSQL
unreachable, copy refused, ...), 2 usage or plan error.

`cockpit sync status --json` prints one object:

    {"blue": "path/to/blue.db", "green": "postgresql://user:***@host/db",
     "reachable": true,                       # could PostgreSQL be reached
     "installed": {"blue": ["t1", ...], "green": ["t1", ...]},   # tables carrying capture triggers
     "tables": ["t1", ...],                   # the synced tables
     "lag": {"blue_to_green": {"age_s": 0.0, "pending": 0},
             "green_to_blue": {"age_s": 0.0, "pending": 0}},
     "error": null,                           # why PostgreSQL could not be read, or why the running sync is stuck
     "sync_error": null,                      # what the running sync reported: {"error", "stalled", "since"}
     "stalled": false,                        # the running sync says it is not moving
     "conflicts_waiting": 0,                  # parked versions not yet resolved (`cockpit sync conflicts`)
     "keys_left": {"t1": 4503599627370000},   # per table with disjoint keys (`cockpit sync keys`)
     "schema_changed": {}}                    # table -> what changed since install (its changes are held)

`age_s` is the age in seconds of the oldest change not yet applied in that direction (0 when caught up) and
`pending` the number of changes waiting. The running sync (`cockpit sync run`, the controller) writes what stops it to
blue, so `error` shows it from any process. With PostgreSQL unreachable, blue→green counts what waits in SQLite after
the last position known and green→blue is reported as unknown (`null`); the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from cockpit.cli.show import CopyProgress, show, sync_status
from cockpit.core.errors import EXIT_FAILED, EXIT_OK, CockpitError, UsageError
from cockpit.core.lock import refuse_beside_controller
from cockpit.core.plan import Cast
from cockpit.core.redact import redact, redact_text
from cockpit.drivers.sync.apply import POLICIES, EventSink
from cockpit.drivers.sync.capture import qi, sqlite_installed, sqlite_tables
from cockpit.drivers.sync.conflicts import ResolveRefused
from cockpit.drivers.sync.runner import (
    DIRECTIONS,
    SyncRunner,
    connect_sqlite,
    journal_sink,
    pooler_warning,
    read_problem,
)
from cockpit.drivers.sync.schema import TimestampPolicy, cast_arg, parse_cast_arg, plan_casts


@dataclass
class _Target:
    sqlite_path: Path
    pg_url: str
    tables: list[str] | str
    policy: str
    batch_size: int
    interval: float
    jobs: int
    casts: list[Any]
    journal: Path | None
    plan: Any = None  # the Plan, when the target came from one
    keys: dict[str, Any] | None = None  # the plan's key settings (SyncRunner keyword arguments)


class _Usage(UsageError):
    pass


def register(subparsers: Any) -> None:
    """Add `sync copy|run|install|uninstall|status` to the cockpit CLI."""
    sync = subparsers.add_parser(
        "sync",
        help="copy the data and keep SQLite and PostgreSQL in sync both ways",
        description="With a plan, a running controller owns the sync: `sync copy` is queued to it, and run, "
        "install and uninstall refuse beside it. --from FILE.db --to URL works without a plan, for scripts.",
    )
    sub = sync.add_subparsers(
        dest="sync_command", metavar="copy|run|install|uninstall|status|keys|conflicts", required=True
    )

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument(
            "--from",
            dest="source",
            metavar="FILE.db",
            help="the SQLite file (default: the plan's blue); with --to and no plan: for scripts, beside no "
            "controller and no journal",
        )
        p.add_argument(
            "--to", dest="target", metavar="URL", help="the PostgreSQL URL (default: the plan's green)"
        )
        p.add_argument(
            "--tables", metavar="a,b", help="only these tables (default: the plan's sync.tables, or all)"
        )
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    cp = command("copy", "initial copy of SQLite into PostgreSQL, then capture installed on both sides")
    cp.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="tables copied in parallel (default: plan or 4)"
    )
    cp.add_argument(
        "--cast",
        action="append",
        default=[],
        metavar="TABLE.COLUMN=TYPE[:ON_ERROR]",
        help="carry a column as TYPE (text, bigint, integer, double precision, numeric, bytea), as the plan's "
        "sync.casts would; ON_ERROR: refuse (default), null or text; repeatable; quote a name holding '.' as "
        '"my.table".col; overrides the plan\'s cast of the same column, and runs the copy here',
    )
    cp.add_argument(
        "--timestamps",
        choices=("meaning", "strict"),
        default=None,
        help="ISO texts of instants in several forms in one column: carry them as timestamp (meaning, the "
        "default) or refuse the column (strict); default: the plan's sync.timestamps",
    )
    cp.set_defaults(func=_copy)

    run = command("run", "run the two-way sync loop (Ctrl-C stops it cleanly)")
    run.add_argument("--once", action="store_true", help="one pass in both directions, then exit")
    run.add_argument("--policy", choices=POLICIES, help="conflict policy (default: the plan's, or newest)")
    run.add_argument("--interval", type=float, default=None, metavar="SECONDS", help="time between passes")
    run.add_argument("--batch-size", type=int, default=None, metavar="N", help="changes per batch")
    run.set_defaults(func=_run)

    ins = command("install", "install the change-capture triggers on both sides (idempotent)")
    ins.set_defaults(func=_install)

    un = command("uninstall", "remove every cockpit trigger and table from both sides (idempotent)")
    un.add_argument("--yes", "-y", action="store_true", help="remove even with changes still pending")
    un.set_defaults(func=_uninstall)

    st = command("status", "lag per direction and pending changes")
    st.set_defaults(func=_status)

    ks = command("keys", "disjoint database-chosen keys: where each table stands, keys left")
    ks.add_argument(
        "--restore",
        action="store_true",
        help="green counts up again above the highest key (end of the migration)",
    )
    ks.set_defaults(func=_keys)

    cf = command(
        "conflicts", "parked versions (conflicts, refused changes); `resolve ID --keep SIDE` settles one"
    )
    cf.add_argument("action", nargs="?", choices=["resolve"], help="resolve one parked version")
    cf.add_argument("uid", nargs="?", metavar="ID", help="the conflict to resolve (blue:N, green:N)")
    cf.add_argument(
        "--keep", choices=["blue", "green", "both"], help="the version to keep (both: add the parked row)"
    )
    cf.add_argument("--all", action="store_true", help="list resolved ones too")
    cf.set_defaults(func=_conflicts)


# ------------------------------------------------------------------------------------------------- resolution


def _target(args: argparse.Namespace) -> _Target:
    """Where to sync from and to: --from/--to, else the plan."""
    plan = None
    if not (args.source and args.target):
        plan_path = getattr(args, "plan", None)
        if not plan_path:
            raise _Usage("give --from FILE.db and --to URL, or a plan (-p PLAN or $COCKPIT_PLAN)")
        from cockpit.core.plan import load_plan

        plan = load_plan(plan_path)  # PlanError: printed by cockpit.cli with exit 2
    if plan is not None:
        if plan.blue.database.engine != "sqlite" or plan.green.database.engine != "postgresql":
            raise _Usage("the plan's blue database must be sqlite and its green database postgresql")
        s = plan.sync
        sqlite_path = Path(args.source) if args.source else plan.path(plan.blue.database.path)
        pg_url = args.target or plan.green.database.url
        tables: list[str] | str = s.tables
        policy, batch, interval, jobs, casts = (
            s.conflict_policy,
            s.batch_size,
            float(s.interval),
            s.copy_jobs,
            s.casts,
        )
        journal: Path | None = plan.path(plan.journal.path)
        keys = {
            "row_keys": s.row_keys,
            "key_ceiling": s.key_ceiling,
            "key_headroom": s.key_headroom,
            "disjoint_keys": s.disjoint_keys,
        }
    else:
        keys = {}
        sqlite_path, pg_url, tables = Path(args.source), args.target, "all"
        policy, batch, interval, jobs, casts, journal = "newest", 1000, 1.0, 4, [], None
    if args.tables:
        tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    if not sqlite_path.is_file():
        raise _Usage(f"SQLite database not found: {sqlite_path}")
    if not pg_url:
        raise _Usage("no PostgreSQL URL (--to URL, or green.database.url in the plan)")
    if getattr(args, "policy", None):
        policy = args.policy
    if getattr(args, "batch_size", None):
        if args.batch_size < 1:
            raise _Usage("--batch-size must be at least 1")
        batch = args.batch_size
    if getattr(args, "interval", None) is not None:
        if args.interval <= 0:
            raise _Usage("--interval must be positive")
        interval = args.interval
    if getattr(args, "jobs", None) is not None:
        if args.jobs < 1:
            raise _Usage("--jobs must be at least 1")
        jobs = args.jobs
    warning = pooler_warning(pg_url)
    if warning:
        print(f"cockpit sync: warning: {redact_text(warning)}", file=sys.stderr)
    return _Target(
        sqlite_path, pg_url, tables, policy, batch, interval, jobs, list(casts), journal, plan, keys
    )


def _runner(t: _Target, on_event: EventSink | None) -> SyncRunner:
    return SyncRunner(
        t.sqlite_path,
        t.pg_url,
        tables=t.tables,
        conflict_policy=t.policy,
        batch_size=t.batch_size,
        interval=t.interval,
        on_event=on_event,
        casts=t.casts,
        **(t.keys or {}),
    )


def _event_sink(t: _Target, as_json: bool) -> EventSink:
    """Conflicts and errors: into the plan's journal when there is a plan, and on stderr."""
    journal = journal_sink(t.journal) if t.journal is not None else None

    def sink(kind: str, payload: dict[str, Any]) -> None:
        if journal is not None:
            journal(kind, payload)
        line = (
            json.dumps({"event": kind, **redact(payload)}, default=str)
            if as_json
            else (f"{kind}: {json.dumps(redact(payload), default=str)}")
        )
        print(line, file=sys.stderr, flush=True)

    return sink


def _guard(handler: Any) -> Any:
    """Turn the failures every command shares that are not the cockpit's own into CockpitErrors (the CLI maps
    those onto exit codes and messages)."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from exc
        except psycopg.OperationalError as exc:
            raise CockpitError(f"PostgreSQL unreachable: {str(exc).strip()}") from exc

    wrapped.__name__ = handler.__name__
    return wrapped


def _one_path(t: _Target, command: str, advice: str) -> None:
    """With a plan, a running controller owns the sync: this command refuses beside it (naming it)."""
    if t.journal is not None:
        refuse_beside_controller(t.journal, f"cockpit sync {command}", advice)


def _table_names(t: _Target) -> list[str]:
    if isinstance(t.tables, list):
        return t.tables
    conn = connect_sqlite(t.sqlite_path)
    try:
        return sqlite_tables(conn)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------- commands


@_guard
def _copy(args: argparse.Namespace) -> int:
    """With a plan alone, the copy is the controller's `copy` action (journaled, locked, its progress on the
    screen; queued to the running controller if there is one). With --from/--to/--tables/--cast/--timestamps
    it runs here, with the plan's casts and timestamp policy overridden by those given."""
    try:
        cli_casts = [parse_cast_arg(text) for text in args.cast]
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    t = _target(args)
    printer = CopyProgress(enabled=not args.json)
    here = args.source or args.target or args.tables or cli_casts or args.timestamps
    if t.plan is not None and not here:
        return _copy_by_controller(t.plan, args, printer)
    _one_path(t, "copy", "leave out --from/--to/--tables/--cast/--timestamps to queue the copy to it")
    t.casts = _copy_casts(t, cli_casts, args.timestamps)
    runner = _runner(t, None)
    only = _table_names(t) if args.tables else None
    # with --tables, the synced set stays the plan's (or all): those tables are copied, or re-seeded when the
    # migration is under way
    runner.tables = (
        t.plan.sync.tables
        if t.plan is not None and args.tables
        else ("all" if args.tables else _table_names(t))
    )
    try:
        report, tables = runner.initial_copy(t.jobs, printer, tables=only)
    except psycopg.OperationalError:
        raise
    except Exception as exc:
        print(f"cockpit sync copy: refused: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        runner.close()
        printer.done()
    if args.json:
        print(
            json.dumps(
                redact({"copy": report.as_dict(), "capture": {"tables": tables}}), default=str, indent=2
            )
        )
    else:
        print(redact_text(report.summary()))
        print(f"capture installed on both sides for: {', '.join(tables)}")
    return EXIT_OK


def _copy_casts(t: _Target, cli_casts: list[Cast], timestamps: str | None) -> list[Any]:
    """The plan's casts and timestamp policy, overridden by --cast and --timestamps; each --cast must name a
    table and a column of the SQLite file (checked before anything is written)."""
    by_column: dict[tuple[str, str], Any] = {}
    policy: Any = None
    for c in plan_casts(t.plan.sync) if t.plan is not None else []:
        if isinstance(c, TimestampPolicy):
            policy = c
        else:
            by_column[(c.table, c.column)] = c
    if cli_casts:
        conn = connect_sqlite(t.sqlite_path)
        try:
            for c in cli_casts:
                columns = [r[1] for r in conn.execute(f"PRAGMA table_xinfo({qi(c.table)})").fetchall()]
                if not columns:
                    raise _Usage(f"--cast {cast_arg(c)}: no table {c.table!r} in {t.sqlite_path}")
                if c.column not in columns:
                    raise _Usage(
                        f"--cast {cast_arg(c)}: table {c.table!r} has no column {c.column!r} "
                        f"(its columns: {', '.join(columns)})"
                    )
                by_column[(c.table, c.column)] = c
        finally:
            conn.close()
    if timestamps is not None:
        policy = TimestampPolicy(timestamps) if timestamps != "meaning" else None
    return [*by_column.values(), *([policy] if policy is not None else [])]


def _copy_by_controller(plan: Any, args: argparse.Namespace, printer: CopyProgress) -> int:
    from cockpit.cli.main import perform, print_result

    cmd_args: dict[str, Any] = {"reason": "cockpit sync copy"}
    if args.jobs is not None:
        cmd_args["jobs"] = args.jobs
    result = perform(plan, "copy", cmd_args, watch=printer.state)
    printer.done()
    extra = result.pop("extra", None) or {}
    if args.json:
        print(json.dumps(redact({**extra, "action": result}), default=str, indent=2))
        return EXIT_OK if result.get("ok") else EXIT_FAILED
    code = print_result(result, False)
    for note in (extra.get("copy") or {}).get("notes", []):
        print(f"  note: {redact_text(note)}")
    for warning in (extra.get("copy") or {}).get("warnings", []):
        print(f"  warning: {redact_text(warning)}")
    return code


@_guard
def _run(args: argparse.Namespace) -> int:
    t = _target(args)
    _one_path(t, "run", "it runs the sync loop itself (`cockpit status` shows the lag)")
    runner = _runner(t, _event_sink(t, args.json))
    try:
        problems = runner.check_installed()
        if problems:
            raise _Usage("; ".join(problems) + " (run `cockpit sync install`, or `cockpit sync copy` first)")
        if args.once:
            result = runner.run_once()
            lag = runner.lag()
            _print_pass(result, lag, args.json)
            return EXIT_OK
        return _loop(runner, args.json)
    finally:
        runner.close()


def _loop(runner: SyncRunner, as_json: bool) -> int:
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        runner.start()
        while not stop.wait(max(runner.interval, 0.2)):
            try:
                lag = runner.lag()
            except Exception as exc:  # SQLite busy for long: say so, keep going
                print(f"lag unavailable: {redact_text(str(exc))}", file=sys.stderr)
                continue
            _print_lag(lag, runner, as_json)
    finally:
        runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _lag_text(lag: dict[str, Any]) -> str:
    return " | ".join(
        f"{d.replace('_to_', '→')} lag {lag[d].age_s:.2f}s pending {lag[d].pending}" for d in DIRECTIONS
    )


def _print_lag(lag: dict[str, Any], runner: SyncRunner, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "ts": time.time(),
                    "lag": {d: lag[d].as_dict() for d in DIRECTIONS},
                    "totals": runner.totals,
                    "last_error": runner.last_error,
                }
            ),
            flush=True,
        )
    else:
        totals = runner.totals
        print(
            f"{time.strftime('%H:%M:%S')} {_lag_text(lag)} | applied blue→green {totals['blue_to_green']}, "
            f"green→blue {totals['green_to_blue']}, conflicts {totals['conflicts']}"
            + (f" | {runner.last_error}" if runner.last_error and totals["errors"] else ""),
            flush=True,
        )


def _print_pass(result: dict[str, Any], lag: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"pass": result, "lag": {d: lag[d].as_dict() for d in DIRECTIONS}}, default=str))
        return
    b, g = result["blue_to_green"], result["green_to_blue"]
    print(f"blue→green: {b['changes']} changes, {b['upserts']} upserts, {b['deletes']} deletes")
    print(f"green→blue: {g['changes']} changes, {g['upserts']} upserts, {g['deletes']} deletes")
    print(f"conflicts: {result['conflicts']}; {_lag_text(lag)}")


@_guard
def _install(args: argparse.Namespace) -> int:
    t = _target(args)
    _one_path(t, "install", "its copy installs capture; stop it first to install by hand")
    runner = _runner(t, None)
    try:
        out = runner.install()
    finally:
        runner.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"capture installed on both sides for: {', '.join(out['tables'])}")
    return EXIT_OK


@_guard
def _uninstall(args: argparse.Namespace) -> int:
    t = _target(args)
    _one_path(t, "uninstall", "its sync loop needs capture; stop it first")
    runner = _runner(t, None)
    try:
        if not args.yes:
            lag = runner.lag()
            waiting = {d: lag[d].pending for d in DIRECTIONS if lag[d].pending}
            if waiting:
                print(
                    "cockpit sync uninstall: changes are still waiting to be applied "
                    f"({', '.join(f'{d}: {n}' for d, n in waiting.items())}); run `cockpit sync run` until caught "
                    "up, or give --yes to drop them",
                    file=sys.stderr,
                )
                return EXIT_FAILED
        out = runner.uninstall()
    finally:
        runner.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"removed from blue: {len(out['blue'])} objects; from green: {len(out['green'])} objects")
    return EXIT_OK


@_guard
def _status(args: argparse.Namespace) -> int:
    t = _target(args)
    runner = _runner(t, None)
    out: dict[str, Any] = {
        "blue": str(t.sqlite_path),
        "green": redact_text(t.pg_url),
        "reachable": True,
        "installed": {"blue": [], "green": []},
        "tables": [],
        "lag": {},
        "error": None,
        "sync_error": None,
        "stalled": False,
        "conflicts_waiting": None,
        "keys_left": None,
        "schema_changed": {},
    }
    try:
        conn = connect_sqlite(t.sqlite_path)
        try:
            problem = read_problem(conn)  # what the running sync (another process) reported
        finally:
            conn.close()
        out["tables"] = runner.table_names()
        try:
            out["installed"] = runner.installed()
        except psycopg.OperationalError as exc:
            out["reachable"] = False
            out["error"] = redact_text(str(exc).strip())
            conn = connect_sqlite(t.sqlite_path)
            try:
                out["installed"] = {"blue": sqlite_installed(conn), "green": None}
            finally:
                conn.close()
        lag = runner.lag()
        out["lag"] = {d: lag[d].as_dict() for d in DIRECTIONS}
        if not out["reachable"]:
            out["lag"]["green_to_blue"] = None
        else:
            out.update(runner.health())
        if problem:
            out["sync_error"] = problem
            out["stalled"] = bool(problem.get("stalled") or problem.get("error"))
            out["error"] = out["error"] or problem.get("error")
    finally:
        runner.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        show(sync_status(out, DIRECTIONS))
    return EXIT_OK if out["reachable"] else EXIT_FAILED


@_guard
def _keys(args: argparse.Namespace) -> int:
    t = _target(args)
    if args.restore:
        _one_path(t, "keys --restore", "it runs the sync on these keys; stop it first")
    runner = _runner(t, None)
    try:
        states = runner.restore_keys() if args.restore else runner.key_states()
    finally:
        runner.close()
    rows = [k.as_dict() for k in states]
    if args.json:
        print(json.dumps({"keys": rows, "keys_left_min": min((r["keys_left"] for r in rows), default=None)}))
        return EXIT_OK
    if not rows:
        print("no synced table has a key both databases choose")
        return EXIT_OK
    if args.restore:
        print("green counts up again above the highest key (blue must no longer take writes)")
    print(f"{'table':24} {'green':>6} {'green next':>18} {'blue next':>18} {'ceiling':>18} {'keys left':>20}")
    for r in rows:
        print(
            f"{r['table'][:24]:24} {r['state']:>6} {r['green_next']:>18} {r['blue_next']:>18} "
            f"{'' if r['ceiling'] is None else r['ceiling']:>18} {r['keys_left']:>20,}"
        )
    return EXIT_OK


@_guard
def _conflicts(args: argparse.Namespace) -> int:
    from cockpit.drivers.sync.conflicts import shown, shown_key

    t = _target(args)
    runner = _runner(t, journal_sink(t.journal) if t.journal is not None else None)
    try:
        if args.action == "resolve":
            if not args.uid or not args.keep:
                raise _Usage(
                    "give the conflict and the version to keep: conflicts resolve ID --keep blue|green|both"
                )
            try:
                out = runner.resolve_conflict(args.uid, args.keep)
            except ResolveRefused as exc:
                print(f"cockpit sync conflicts: {redact_text(str(exc))}", file=sys.stderr)
                return EXIT_FAILED
            print(json.dumps(redact(out)) if args.json else f"{out['uid']}: {redact_text(out['done'])}")
            return EXIT_OK
        records = runner.conflicts(everything=args.all)
    finally:
        runner.close()
    listed = redact(
        [
            {
                **{k: v for k, v in r.items() if k not in ("blue", "green", "restore", "pk", "kept_pk")},
                "key": shown_key(r["pk"]),
                "kept_key": None if r["kept_pk"] is None else shown_key(r["kept_pk"]),
                "blue": shown(r["blue"]),
                "green": shown(r["green"]),
            }
            for r in records
        ]
    )
    if args.json:
        print(json.dumps({"conflicts": listed}, default=str, indent=2))
        return EXIT_OK
    if not listed:
        print("no conflicts waiting" if not args.all else "no conflicts")
        return EXIT_OK
    for r in listed:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["ts"]))
        why = r["constraint_name"] or r["policy"] or ""
        print(
            f"{r['uid']:10} {when} {r['kind']:9} {r['tbl']} key {r['key']}: kept {r['kept']}, parked {r['parked']}"
            f" ({why}) [{r['status']}]"
        )
        for side in ("blue", "green"):
            print(f"    {side:5} {json.dumps(r[side], default=str)}")
        if r["message"]:
            print(f"    {r['message']}")
    print("resolve one with: cockpit sync conflicts resolve ID --keep blue|green|both")
    return EXIT_OK
