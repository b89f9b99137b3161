"""`cockpit preflight [--json] [--no-test-message]`: the go/no-go checklist, journaled. Exit 0 go, 1 no-go, 2 bad
input (a wrong plan)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cockpit.core.errors import EXIT_FAILED, EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("preflight", help="the go/no-go checklist before a phase (journaled)")
    p.add_argument("--json", action="store_true", help="the verdict and every check as JSON")
    p.add_argument("--no-test-message", action="store_true", help="do not send the alerts' test message")
    p.set_defaults(func=_preflight)


def _preflight(args: argparse.Namespace) -> int:
    from cockpit.cli.main import require_plan
    from cockpit.control.preflight import record, run_preflight

    plan = require_plan(args)
    verdict = run_preflight(plan, test_message=not args.no_test_message)
    record(plan, verdict)
    if args.json:
        print(json.dumps(verdict.as_dict(), indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"preflight {plan.name}: {verdict.summary()}")
        for col in ("area", "check", "status", "found", "what to do"):
            table.add_column(col)
        style = {"pass": "green", "warn": "yellow", "fail": "bold red"}
        for c in verdict.checks:
            table.add_row(c.area, c.name, f"[{style[c.status]}]{c.status}[/]", c.found, c.do)
        Console().print(table)
    return EXIT_OK if verdict.go else EXIT_FAILED
