"""`cockpit report`: the report of any Day 0 (a rehearsal or the real one), from its journal alone."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from cockpit.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from cockpit.core.plan import Plan, PlanError, plan_from_record


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="the report of a run: Markdown, SVG charts and one HTML file")
    p.add_argument("--journal", help="the journal file (default: the plan's journal)")
    p.add_argument("--since", "--from", dest="since", help="start of the window: ISO time or epoch seconds")
    p.add_argument("--until", "--to", dest="until", help="end of the window: ISO time or epoch seconds")
    p.add_argument("--out", default="report", help="directory to write into (default ./report)")
    p.set_defaults(func=_report)

    r = subparsers.add_parser(
        "replay",
        help="the cockpit screen over a recorded journal, read-only (space, n, + / -, q)",
    )
    r.add_argument("--journal", help="the journal file (default: the plan's journal)")
    r.add_argument("--speed", type=float, default=60.0, help="replay seconds per real second (default 60)")
    r.add_argument(
        "--at", help="start at this time: ISO time or epoch seconds (default: the journal's start)"
    )
    r.set_defaults(func=_replay)


def _journal_path(args: argparse.Namespace) -> Path:
    if args.journal:
        return Path(args.journal)
    from cockpit.cli.main import require_plan

    plan = require_plan(args)
    return plan.path(plan.journal.path)


def parse_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (give ISO 8601, e.g. 2026-12-05T04:00:00, or epoch seconds)"
        ) from None


def _report(args: argparse.Namespace) -> int:
    from cockpit.report import write_report

    journal = _journal_path(args)
    since, until = parse_time(args.since), parse_time(args.until)
    if not journal.exists():
        print(f"no journal at {journal}", file=sys.stderr)
        return EXIT_FAILED
    paths = write_report(journal, args.out, since=since, until=until)
    print(f"{paths.events} events; wrote {paths.markdown}, {paths.html} and {len(paths.charts)} charts")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from cockpit.cli.main import require_plan

    if not args.plan and not args.journal:
        raise UsageError(
            "nothing to replay: give --journal FILE (it carries the plan it was recorded with), or -p PLAN for "
            "the plan's own journal"
        )
    if args.speed <= 0:
        raise UsageError("--speed must be above 0")
    at = parse_time(args.at)
    plan = require_plan(args) if args.plan else None
    journal = plan.path(plan.journal.path) if plan is not None and not args.journal else Path(args.journal)
    if not journal.exists():
        print(f"no journal at {journal}", file=sys.stderr)
        return EXIT_FAILED
    if plan is None:
        plan = recorded_plan(journal)
    from cockpit.tui.replay import ReplayApp

    ReplayApp(plan, journal, speed=args.speed, at=at).run()
    return EXIT_OK


def recorded_plan(journal: Path) -> Plan:
    """The plan of the journal's last controller start (journals from before it was recorded have none)."""
    from cockpit.core.journal import Journal

    with Journal(journal, readonly=True) as j:
        starts = [e for e in j.events(kinds=["controller.start"]) if isinstance(e.payload.get("plan"), dict)]
    if not starts:
        raise UsageError(
            f"{journal} does not record its plan (it was written before plans were journaled): give -p PLAN, "
            "the plan it was recorded with"
        )
    try:
        return plan_from_record(starts[-1].payload["plan"], journal.with_suffix(".plan.yaml"))
    except PlanError as exc:
        raise UsageError(f"{exc}; give -p PLAN, the plan it was recorded with") from None
