"""Rollback time in the lab: a real nginx, real services (processes driver), the sync running, load flowing.

Each run: advance to ab-test (50 % green) through the controller, let the load write on both sides, then roll
back (immediate) and print the total and every step's time; a last run does a gradual rollback. The strategy
allows 300 s.

Run: .venv/bin/python tests/bench/bench_rollback.py [--runs N]
Uses the PostgreSQL server of the tests (COCKPIT_TEST_PG) for the lab's database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from cockpit.control.session import controller_session
from cockpit.core.plan import load_plan
from cockpit.lab.lab import LabOptions, down, up

ADMIN = os.environ.get("COCKPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def one_run(plan_path: Path, mode: str) -> tuple[float, list[tuple[str, str, float]]]:
    plan = load_plan(plan_path)
    async with controller_session(plan, run_sync=True) as c:
        r = await c.advance(to="ab-test", force=True, reason="bench")
        assert r.ok, r.as_dict()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # writes land on both sides while green serves half the users
            await c.refresh()
            await asyncio.sleep(0.5)
        rb = await c.rollback("bench", mode)
        assert rb.outcome in ("ok", "partial"), rb.as_dict()
        return rb.duration_s, [(name, status, d) for name, status, d, _x in rb.steps]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cockpit-bench-rollback-"))
    up(LabOptions(root=root / "lab", rate=40, users=200, rows=5000, pg_url=ADMIN, quiet=True))
    try:
        plan_path = root / "lab" / "plan.yaml"
        totals = []
        for i in range(args.runs):
            total, steps = asyncio.run(one_run(plan_path, "immediate"))
            totals.append(total)
            print(
                f"run {i + 1}: immediate rollback {total:.3f}s  "
                + "  ".join(f"{n} {s} {d * 1000:.0f}ms" for n, s, d in steps),
                flush=True,
            )
        total, steps = asyncio.run(one_run(plan_path, "gradual"))
        print(
            f"gradual rollback from 50%: {total:.3f}s  "
            + "  ".join(f"{n} {s} {d * 1000:.0f}ms" for n, s, d in steps)
        )
        print(
            f"immediate rollback: median {statistics.median(totals):.3f}s, max {max(totals):.3f}s over {len(totals)} runs "
            f"(the strategy allows 300 s)"
        )
    finally:
        down(root / "lab", quiet=True)


if __name__ == "__main__":
    main()
