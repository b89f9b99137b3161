"""`cockpit rehearse`: the whole Day 0 in a fresh lab with the write ledger (logic in cockpit.cli.rehearsal: it drives the controller, which the lab may not import)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cockpit.cli.rehearsal import SCENARIOS, Outcome, Rehearsal
from cockpit.core.errors import EXIT_FAILED
from cockpit.lab.errors import LabError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rehearse", help="rehearse Day 0 in a fresh lab: every phase, then each scenario"
    )
    p.add_argument("--root", type=Path, default=Path(".cockpit/rehearsal"), help="the rehearsal lab's folder")
    p.add_argument("--scenario", default="all", help=f"one of {', '.join(SCENARIOS)}, or all (default)")
    p.add_argument("--fast", action="store_true", help="advance past the soaks (forced, journaled)")
    p.add_argument("--report", type=Path, help="write the report of the whole rehearsal here")
    p.add_argument("--rate", type=float, default=20.0, help="the load's requests per second (default 20)")
    p.set_defaults(func=_rehearse)


def _rehearse(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise LabError(f"no scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)} or all")
    reh = Rehearsal(args.root, fast=args.fast, rate=args.rate, say=lambda t: print(t, flush=True))
    outcomes: list[Outcome] = []
    try:
        reh.start()
        reh.advance_to(None)
        for name in names:
            print(f"scenario {name}: {SCENARIOS[name].what}", flush=True)
            outcomes.append(reh.run_scenario(SCENARIOS[name]))
        if args.report is not None:
            _report(reh, args.report)
    finally:
        reh.stop()
    _table(outcomes)
    return 0 if outcomes and all(o.ok for o in outcomes) else EXIT_FAILED


def _report(reh: Rehearsal, out: Path) -> None:
    from cockpit.report import write_report

    assert reh.plan is not None
    written = write_report(reh.plan.path(reh.plan.journal.path), out)
    print(f"report: {written.html}")


def _table(outcomes: list[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="cockpit rehearse")
    for col in (
        "scenario",
        "fired",
        "fault→trigger (for)",
        "fault→0%",
        "rollback steps / total",
        "failed in / out",
        "writes ack / missing",
        "result",
    ):
        t.add_column(col)
    for o in outcomes:
        led = o.ledger
        t.add_row(
            o.scenario,
            ", ".join(o.fired) or "-",
            f"{_s(o.trigger_s)} ({o.trigger_for_s:g}s)",
            _s(o.zero_s),
            f"{o.rollback_steps} / {_s(o.rollback_s)}",
            f"{o.failed_inside} / {o.failed_outside}",
            f"{led.acknowledged} / {len(led.missing)}" if led else "-",
            "ok" if o.ok else "; ".join(o.problems),
        )
    # a pipe or a CI log gets every column whole (rich would fold them into 80)
    Console(width=None if sys.stdout.isatty() else 160).print(t)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g}s"
