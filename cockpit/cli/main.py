"""The CLI front door. Thin: it loads the plan, calls the controller, prints what came of it.

Exit codes: 0 done, 1 the action failed (or was refused), 2 usage or plan error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from cockpit.cli import show
from cockpit.control.factory import build_traffic
from cockpit.control.session import controller_session, journal_for
from cockpit.control.view import read_state
from cockpit.core import metric_names
from cockpit.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CockpitError, UsageError
from cockpit.core.journal import Journal, current_actor, format_event
from cockpit.core.lock import ControllerLock, LockHeld, refuse_beside_controller
from cockpit.core.plan import Plan, load_plan, plan_schema, plan_to_dict
from cockpit.core.recorder import Result
from cockpit.core.redact import redact, redact_text
from cockpit.core.state import CockpitState


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        if args.plan:  # plain `cockpit -p PLAN` opens the screen
            args.read_only = False
            return _tui(args)
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CockpitError as exc:  # the one place the command line maps an error to its exit code
        for line in exc.report(_prog(args)):
            print(line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _prog(args: argparse.Namespace) -> str:
    """The command as typed, for messages: `cockpit`, `cockpit sync run`, `cockpit backup verify`..."""
    words = [args.command, getattr(args, f"{args.command}_command", None)] if args.command else []
    return " ".join(["cockpit", *(w for w in words if w)])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cockpit",
        description="The control room for a zero-downtime SQLite to Neon (PostgreSQL) migration.",
    )
    p.add_argument(
        "-p", "--plan", default=os.environ.get("COCKPIT_PLAN"), help="the plan file (default: $COCKPIT_PLAN)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    plan = sub.add_parser("plan", help="check or show a plan, its JSON Schema, the metrics it may name")
    plan_sub = plan.add_subparsers(dest="plan_command", metavar="check|show|schema|metrics", required=True)
    plan_sub.add_parser(
        "check", help="validate the plan (exit 2 with every error as file:line:column)"
    ).set_defaults(func=_plan_check)
    plan_sub.add_parser(
        "schema", help="the plan's JSON Schema (for editors: `# yaml-language-server: $schema=FILE`)"
    ).set_defaults(func=_plan_schema)
    plan_sub.add_parser(
        "metrics", help="the metric names gates, thresholds and triggers may use"
    ).set_defaults(func=_plan_metrics)
    show = plan_sub.add_parser("show", help="print the resolved plan, secrets redacted")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_plan_show)

    status = sub.add_parser("status", help="where the migration stands")
    status.add_argument("--json", action="store_true", help="the stable status object (see README)")
    status.set_defaults(func=_status)

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        return action_parser(sub, name, help_)

    adv = action("advance", "move to the next phase (or --to PHASE)")
    adv.add_argument("--to", metavar="PHASE")
    adv.add_argument(
        "--force", action="store_true", help="advance even if soak or gates are not met (journaled)"
    )
    adv.add_argument("--reason", default="")
    adv.set_defaults(func=_action, verb="advance")
    hold = action("hold", "hold the current phase (no advance until resume)")
    hold.add_argument("--reason", default="")
    hold.set_defaults(func=_action, verb="hold")
    res = action("resume", "resume after a hold")
    res.add_argument("--reason", default="")
    res.set_defaults(func=_action, verb="resume")
    rb = action("rollback", "all traffic back to blue, drain the sync, stop green, check health, notify")
    rb.add_argument("--reason", required=True)
    rb.add_argument("--mode", choices=("immediate", "gradual"), default="immediate")
    rb.add_argument(
        "--force",
        action="store_true",
        help="stop green even while it holds changes blue lacks (the drain goes on; journaled)",
    )
    rb.set_defaults(func=_action, verb="rollback")

    bk = sub.add_parser("backup", help="blue's backups: take (and verify) one, list, verify, restore")
    bk_sub = bk.add_subparsers(dest="backup_command", metavar="take|list|verify|restore", required=True)
    take = bk_sub.add_parser(
        "take", help="online copy of blue, gzip, manifest with SHA-256, then verified (journaled)"
    )
    take.add_argument("--label", default="", help="added to the backup's folder name, e.g. pre-5pct")
    take.add_argument("--reason", default="")
    take.add_argument("--json", action="store_true")
    take.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when a controller is running: how long to wait for it to act",
    )
    take.set_defaults(func=_backup_take)
    ls = bk_sub.add_parser("list", help="the backups in the plan's backup folder, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_backup_list)
    vf = bk_sub.add_parser("verify", help="re-hash, decompress, integrity check and recount one backup")
    vf.add_argument("path", help="the backup's folder (or its name in the plan's backup folder)")
    vf.add_argument("--json", action="store_true")
    vf.set_defaults(func=_backup_verify)
    rs = bk_sub.add_parser("restore", help="decompress a verified backup into a NEW file (never overwrites)")
    rs.add_argument("path", help="the backup's folder (or its name in the plan's backup folder)")
    rs.add_argument("target", help="the SQLite file to create")
    rs.set_defaults(func=_backup_restore)

    jr = sub.add_parser("journal", help="the flight recorder as a timeline")
    jr.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    jr.add_argument("--json", action="store_true", help="one JSON object per line")
    jr.add_argument("--limit", type=int, default=200, help="last N events (default 200)")
    jr.set_defaults(func=_journal)

    run = sub.add_parser(
        "run", help="the headless controller (CI, servers): prints events until SIGINT/SIGTERM"
    )
    run.add_argument("--no-sync", action="store_true", help="do not run the sync loop in this process")
    run.add_argument("--json", action="store_true", help="events as JSON lines")
    run.set_defaults(func=_run)

    ig = sub.add_parser(
        "integrity",
        help="compare blue and green: counts, checksums, the rows that differ; or repair them",
        description="With a plan, refused while a controller runs it (its integrity watch compares); "
        "--from FILE.db --to URL works without a plan, for scripts. `integrity repair --prefer blue|green "
        "(--keys TABLE:KEY,... | --all)` brings rows that differ back in line through the sync (a controller "
        "action: journaled, queued to the running controller).",
    )
    ig.add_argument("action", nargs="?", choices=["repair"], help="repair the rows that differ")
    ig.add_argument("--prefer", choices=["blue", "green"], help="repair: the side whose version stays")
    ig.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="TABLE:KEY,...",
        help="repair: these rows (a composite key's parts joined by /)",
    )
    ig.add_argument("--all", action="store_true", help="repair: every row that differs")
    ig.add_argument("--reason", default="", help="repair: why (journaled)")
    ig.add_argument("--wait", type=float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)
    ig.add_argument(
        "--from",
        dest="source",
        metavar="FILE.db",
        help="the SQLite file (default: the plan's blue); with --to and no plan: for scripts",
    )
    ig.add_argument(
        "--to", dest="target", metavar="URL", help="the PostgreSQL URL (default: the plan's green)"
    )
    ig.add_argument("--tables", help="comma-separated tables (default: the plan's sync tables, or all)")
    ig.add_argument("--segment", type=int, default=1000, metavar="ROWS", help="keys per checksum segment")
    ig.add_argument(
        "--unmask", action="store_true", help="show e-mails, CPF and CNPJ in the output (LGPD: care)"
    )
    ig.add_argument("--json", action="store_true")
    ig.set_defaults(func=_integrity)

    tui = sub.add_parser("tui", help="the cockpit screen")
    tui.add_argument("--read-only", action="store_true", help="watch only (another controller acts)")
    tui.set_defaults(func=_tui)

    # these commands reuse this module's helpers
    from cockpit.cli import ending, lab, preflight, rehearse, report, serve, sync

    preflight.register(sub)
    ending.register(sub)
    sync.register(sub)
    lab.register(sub)
    serve.register(sub)
    report.register(sub)
    rehearse.register(sub)
    return p


def action_parser(sub: Any, name: str, help_: str) -> argparse.ArgumentParser:
    """A controller verb's command: --yes, --json, --wait."""
    a: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    a.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when a controller is running: how long to wait for it to act (default: plan's rollback max duration + 30s)",
    )
    return a


def require_plan(args: argparse.Namespace) -> Plan:
    if not args.plan:
        raise UsageError("no plan: give -p PLAN or set COCKPIT_PLAN")
    return load_plan(args.plan)


# ------------------------------------------------------------------------------------------------ plan
def _plan_check(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    print(
        f"{args.plan}: ok: plan {plan.name!r}, {len(plan.phases)} phases "
        f"({' -> '.join(f'{p.green:g}%' for p in plan.phases)}), {len(plan.rollback.triggers)} rollback triggers"
    )
    return EXIT_OK


def _plan_schema(args: argparse.Namespace) -> int:
    print(json.dumps(plan_schema(), indent=2))
    return EXIT_OK


def _plan_metrics(args: argparse.Namespace) -> int:
    for name in sorted(metric_names.KNOWN):
        print(name)
    return EXIT_OK


def _plan_show(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    doc = redact(plan_to_dict(plan))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ status
def _status(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    path = plan.path(plan.journal.path)
    if path.exists():
        journal = Journal(path, readonly=True)
        try:
            state = read_state(plan, journal, _traffic_or_none(plan))
        finally:
            journal.close()
    else:
        from cockpit.control.view import build_state
        from cockpit.core.phases import Machine
        from cockpit.drivers.traffic.base import live_percent

        traffic = _traffic_or_none(plan)
        state = build_state(
            plan,
            Machine(),  # since unknown: nothing has journaled this plan
            green_live=live_percent(traffic.live()) if traffic else None,
            read_only=True,
            message="no journal yet: no controller has run this plan",
        )
    if args.json:
        print(json.dumps(redact(state.to_json()), indent=2, default=str))
    else:
        show.show(show.status(state))
    return EXIT_OK


def _traffic_or_none(plan: Plan) -> Any:
    try:
        return build_traffic(plan)
    except Exception:  # a status must still answer when the traffic driver cannot be built
        return None


# ------------------------------------------------------------------------------------------------ actions
def _action(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    verb = args.verb
    cmd_args: dict[str, Any] = {"reason": getattr(args, "reason", "") or ""}
    if verb == "advance":
        cmd_args.update(to=args.to, force=args.force)
    if verb == "rollback":
        cmd_args.update(mode=args.mode, force=args.force)
    if (
        not args.yes
        and sys.stdin.isatty()
        and verb in ("advance", "rollback")
        and not _confirm(plan, verb, cmd_args)
    ):
        print("cancelled: nothing was done")
        return EXIT_FAILED
    return print_result(perform(plan, verb, cmd_args, args.wait), args.json)


Watch = Callable[[CockpitState], None]


def perform(
    plan: Plan, verb: str, cmd_args: dict[str, Any], wait: float | None = None, watch: Watch | None = None
) -> dict[str, Any]:
    """Run a controller verb from the CLI: queued to the controller that holds the lock, else in a one-shot
    controller of this process. `watch` gets a snapshot about twice a second while the action runs (progress)."""
    journal_path = plan.path(plan.journal.path)
    holder = ControllerLock(journal_path).holder() if journal_path.exists() else None
    wait = wait if wait is not None else float(plan.rollback.max_duration) + 30
    if holder is None:
        try:
            return asyncio.run(_one_shot(plan, verb, cmd_args, watch))
        except LockHeld:  # a controller started between the probe and now
            pass
    return _queue(plan, verb, cmd_args, wait, watch)


async def _one_shot(plan: Plan, verb: str, cmd_args: dict[str, Any], watch: Watch | None) -> dict[str, Any]:
    async with controller_session(plan, run_sync=False) as controller:
        await controller.refresh()
        task = asyncio.ensure_future(controller.dispatch(verb, cmd_args))
        while watch is not None and not task.done():
            await asyncio.wait({task}, timeout=WATCH_S)
            watch(controller.snapshot())
        result: Result = await task
        return result.as_dict()


WATCH_S = 0.5


def _queue(
    plan: Plan, verb: str, cmd_args: dict[str, Any], wait: float, watch: Watch | None
) -> dict[str, Any]:
    journal = journal_for(plan)
    try:
        cid = journal.enqueue(verb, cmd_args, current_actor())
        print(f"a controller is running: queued {verb} as command {cid}", file=sys.stderr)
        deadline = time.monotonic() + wait
        watched = 0.0
        while time.monotonic() < deadline:
            cmd = journal.command(cid)
            if cmd is not None and cmd.status not in ("queued", "taken"):
                return cmd.result or {"outcome": cmd.status, "ok": False}
            if (
                watch is not None
                and cmd is not None
                and cmd.status == "taken"
                and time.monotonic() - watched >= WATCH_S
            ):
                watched = time.monotonic()
                watch(read_state(plan, journal))
            time.sleep(0.1)
        if journal.cancel_command(cid, f"nobody took it within {wait:g}s"):
            return {
                "verb": verb,
                "outcome": "timeout",
                "ok": False,
                "message": f"the running controller did not take the command within {wait:g}s; it was withdrawn",
            }
        return {
            "verb": verb,
            "outcome": "timeout",
            "ok": False,
            "message": f"the controller took the command but did not finish within {wait:g}s; see `cockpit journal`",
        }
    finally:
        journal.close()


def _confirm(plan: Plan, verb: str, cmd_args: dict[str, Any]) -> bool:
    what = f"{verb} {plan.name}" + (f" to {cmd_args['to']}" if cmd_args.get("to") else "")
    if verb == "rollback":
        what += f" ({cmd_args['mode']}): {cmd_args['reason']}"
    answer = input(f"{what}? [y/N] ").strip().lower()
    return answer in ("y", "yes", "s", "sim")


def print_result(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        dur = result.get("duration_s")
        head = f"{result.get('verb', 'action')} {result.get('outcome')}" + (
            f" in {dur:.3f}s" if dur is not None else ""
        )
        print(head + (f": {result['message']}" if result.get("message") else ""))
        for s in result.get("steps", []):
            detail = f" ({s['detail']})" if s.get("detail") else ""
            print(f"  {s['step']}: {s['status']} in {s['duration_s']:.3f}s{detail}")
    return EXIT_OK if result.get("ok") else EXIT_FAILED


# ------------------------------------------------------------------------------------------------ backup
def _backup_take(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    result = perform(plan, "backup", {"reason": args.reason, "label": args.label}, args.wait)
    return print_result(result, args.json)


def _backup_path(plan: Plan, path: str) -> Path:
    given = Path(path)
    if given.is_dir():
        return given
    return plan.path(plan.backup.folder) / path


def _backup_list(args: argparse.Namespace) -> int:
    from cockpit.drivers.backup import list_backups

    plan = require_plan(args)
    found = list_backups(plan.path(plan.backup.folder))
    if args.json:
        print(json.dumps([redact(m.as_dict()) for m in found], indent=2, default=str))
    elif not found:
        print(f"no backups in {plan.path(plan.backup.folder)}")
    else:
        show.show(show.backups(found))
    return EXIT_OK


def _backup_verify(args: argparse.Namespace) -> int:
    from cockpit.drivers.backup import BackupError, verify_backup

    plan = require_plan(args)
    try:
        report = verify_backup(_backup_path(plan, args.path))
    except BackupError as exc:  # not a backup at all: the path given is wrong
        raise UsageError(str(exc)) from exc
    print(
        json.dumps(redact(report.as_dict()), indent=2, default=str)
        if args.json
        else redact_text(report.summary())
    )
    return EXIT_OK if report.ok else EXIT_FAILED


def _backup_restore(args: argparse.Namespace) -> int:
    from cockpit.drivers.backup import restore_backup

    plan = require_plan(args)
    target = restore_backup(_backup_path(plan, args.path), args.target)
    print(f"restored into {target} (mode 0600; give it to the app's user before use)")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ journal
def _journal(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    path = plan.path(plan.journal.path)
    if not path.exists():
        print(f"no journal at {path}: no controller has run this plan yet", file=sys.stderr)
        return EXIT_FAILED
    journal = Journal(path, readonly=True)
    try:
        last = 0
        events = journal.events(limit=args.limit)
        while True:
            if args.json:
                for e in events:
                    print(json.dumps(e.as_dict(), default=str), flush=True)
            elif events:
                show.show(show.journal(events))
            last = events[-1].id if events else last
            if not args.follow:
                return EXIT_OK
            time.sleep(0.5)
            events = journal.events(since_id=last)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        journal.close()


# ------------------------------------------------------------------------------------------------ integrity
def _integrity(args: argparse.Namespace) -> int:
    if args.action == "repair":
        return _repair(args)
    if args.prefer or args.keys or args.all:
        raise UsageError("--prefer, --keys and --all go with `cockpit integrity repair`")
    return _compare(args)


def _repair(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    if not args.prefer:
        raise UsageError("integrity repair: say which side's version stays: --prefer blue|green")
    keys = ",".join(args.keys)
    if bool(keys) == bool(args.all):
        raise UsageError("integrity repair: give the rows (--keys TABLE:KEY,...) or --all")
    cmd = {
        "reason": args.reason or "cockpit integrity repair",
        "prefer": args.prefer,
        "keys": keys,
        "all": args.all,
    }
    return print_result(perform(plan, "repair", cmd, args.wait), args.json)


def _compare(args: argparse.Namespace) -> int:
    import sqlite3

    from cockpit.drivers.integrity import check
    from cockpit.drivers.sync.schema import SchemaRefused, plan_casts, read_mapping

    casts, plan = None, None
    if args.source and args.target:
        source, target, tables = args.source, args.target, None
    else:
        plan = require_plan(args)
        if plan.blue.database.engine != "sqlite" or plan.green.database.engine != "postgresql":
            raise UsageError(
                "integrity compares a SQLite blue with a PostgreSQL green; give --from FILE.db --to URL"
            )
        refuse_beside_controller(
            plan.path(plan.journal.path),
            "cockpit integrity",
            "its integrity watch compares the sides (data_integrity_score in `cockpit status`)",
        )
        source, target = str(plan.path(plan.blue.database.path)), plan.green.database.url
        tables = None if plan.sync.tables == "all" else list(plan.sync.tables)
        casts = plan_casts(plan.sync) or None
    if args.tables:
        tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    if not Path(source).exists():
        raise UsageError(f"no SQLite file at {source}")
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        mapping = read_mapping(conn, tables=tables, casts=casts)
    except SchemaRefused as exc:  # the problems and the way through (the casts that carry the columns)
        head, *rest = str(exc).splitlines()
        print(f"cockpit integrity: {len(exc.problems)} problem(s) stop the comparison:", file=sys.stderr)
        print(redact_text("\n".join(rest)), file=sys.stderr)
        return exc.exit_code
    finally:
        conn.close()
    settle, runner = _settle(plan, source, target, tables or "all", casts)
    try:
        report = check(source, target, mapping, segment_rows=args.segment, casts=casts, settle=settle)
    except Exception as exc:  # the green database unreachable, a table missing there...
        print(f"cockpit: integrity check failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if runner is not None:
            runner.close()
    if args.json:
        print(json.dumps(report.as_dict(unmask=args.unmask), indent=2, default=str))
    else:
        show.show(show.integrity(report, unmask=args.unmask))
    return EXIT_OK if report.ok else EXIT_FAILED


def _settle(
    plan: Plan | None, source: str, target: str, tables: list[str] | str, casts: Any
) -> tuple[Any, Any]:
    """What the periodic check does before it looks again at rows that differ: let the sync carry what is in
    flight (passes of the sync, bounded; safe beside another sync's applier, which the positions' locks
    serialize). None when capture is not installed: then nothing is in flight."""
    from cockpit.drivers.sync.runner import SyncRunner

    if plan is not None:  # its keys settings; conflicts met on the way go to its journal
        runner = SyncRunner.from_plan(plan)
    else:
        runner = SyncRunner(source, target, tables=tables, casts=casts)
    try:
        installed = not runner.check_installed()
    except Exception:  # green unreachable: the check itself says so
        installed = False
    if not installed:
        runner.close()
        return None, None
    return (lambda: runner.drain(SETTLE_S)), runner


SETTLE_S = 30.0  # the periodic check's own bound (cockpit.control.factory)


# ------------------------------------------------------------------------------------------------ run / tui
def _run(args: argparse.Namespace) -> int:
    plan = require_plan(args)
    return asyncio.run(_headless(plan, not args.no_sync, args.json))


async def _headless(plan: Plan, run_sync: bool, as_json: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with controller_session(plan, run_sync=run_sync) as controller:
        journal = controller.journal
        last = journal.last_event_id()
        for e in journal.events(limit=5):
            _emit(e, as_json)
        print(
            f"controller running for plan {plan.name} (pid {os.getpid()}); SIGINT or SIGTERM stops it",
            file=sys.stderr,
            flush=True,
        )
        runner = asyncio.ensure_future(controller.run())
        try:
            while not stop.is_set():
                for e in journal.events(since_id=last):
                    _emit(e, as_json)
                    last = e.id
                try:
                    await asyncio.wait_for(stop.wait(), timeout=0.2)
                except TimeoutError:
                    pass
        finally:
            await controller.close()
            await runner
            for e in journal.events(since_id=last):
                _emit(e, as_json)
    return EXIT_OK


def _emit(e: Any, as_json: bool) -> None:
    print(json.dumps(e.as_dict(), default=str) if as_json else format_event(e), flush=True)


def _tui(args: argparse.Namespace) -> int:
    plan_path = args.plan
    if not plan_path:
        raise UsageError("no plan: give -p PLAN or set COCKPIT_PLAN")
    load_plan(plan_path)  # refuse a wrong plan before the screen opens
    from cockpit.tui.app import run_tui

    return run_tui(str(Path(plan_path)), read_only=bool(getattr(args, "read_only", False)))
