"""`cockpit rehearse` end to end in a real lab (private PostgreSQL, nginx, SQLite, services, load).

The whole rehearsal (`--scenario all`, several minutes) is marked `slow`: `./scripts/test -m "not slow"` skips it
for a quick local run; the default run (and .ci/run) runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cockpit.cli.rehearsal import SCENARIOS

ROLLING_BACK = {"error-spike", "neon-down", "slow", "webhook-hangs", "diverging", "controller-killed"}


def rehearse(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("COCKPIT_PLAN", None)
    return subprocess.run(
        [sys.executable, "-m", "cockpit", "rehearse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_error_spike_rehearsal_fires_its_trigger_and_loses_no_write(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    lab_plan = Path(__file__).resolve().parents[2] / "plans" / "lab.yaml"  # --plan: the template given
    out = rehearse(
        "--root", str(tmp_path / "lab"), "--plan", str(lab_plan), "--fast", "--scenario", "error-spike",
        "--json", str(figures), "--report", str(tmp_path / "report"),
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert "advanced to complete (100% green)" in text, text
    row = next(line for line in text.splitlines() if "error-spike" in line and "│" in line)
    assert "error_rate_spike" in row, text
    o, final = json.loads(figures.read_text())
    assert final["scenario"] == "all writes" and final["ledger"]["missing"] == 0, final
    assert o["scenario"] == "error-spike" and "error_rate_spike" in o["fired"], o
    assert o["ledger"]["acknowledged"] > 0 and o["ledger"]["missing"] == 0, o
    assert re.fullmatch(r"b→g \d+\.\ds/\d+, g→b \d+\.\ds/\d+; 0 in \d+\.\ds", o["lag_after"]), o
    assert out.returncode == 0, text
    # the report of a real controller's journal: the metric names it charts are the ones the controller journals
    md = (tmp_path / "report" / "report.md").read_text()
    for needle in ("| complete |", "| rolled back (blue) |", "error_rate_spike", "full check(s) ended"):
        assert needle in md, needle
    charts = {p.stem: p.read_text() for p in (tmp_path / "report" / "charts").glob("*.svg")}
    assert {"split", "error", "p95", "lag", "integrity"} <= set(charts), sorted(charts)
    for label in ("configured (the phase)", "live (nginx)", "observed (access log)"):
        assert label in charts["split"], label
    assert "blue" in charts["error"] and "green" in charts["error"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_scenario_rehearsed_at_once(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    out = rehearse(
        "--root", str(tmp_path / "lab"), "--fast", "--scenario", "all", "--json", str(figures), timeout=1500
    )
    text = out.stdout + out.stderr
    print(text)
    outcomes: dict[str, dict[str, Any]] = {o["scenario"]: o for o in json.loads(figures.read_text())}
    final = outcomes.pop("all writes")  # the load stopped, the sync settled: the whole ledger
    assert final["ok"] and final["ledger"]["missing"] == 0, final
    assert list(outcomes) == list(SCENARIOS), text
    for name, o in outcomes.items():
        sc = SCENARIOS[name]
        assert o["ok"], (name, o["problems"], text)
        assert o["ledger"]["acknowledged"] > 0 and o["ledger"]["missing"] == 0, (name, o)
        assert o["failed_outside"] == 0, (name, o)
        if sc.trigger:
            assert sc.trigger in o["fired"], (name, o)
        assert (o["rollback_s"] is not None) == (name in ROLLING_BACK), (name, o)
    assert outcomes["duplicates"]["ledger"]["kept_in_conflicts"] > 0, outcomes["duplicates"]
    assert any("refused" in f or "failed" in f for f in outcomes["nginx-t-fails"]["facts"]), outcomes
    assert any(f.startswith("notify failed") for f in outcomes["webhook-hangs"]["facts"]), outcomes
    assert out.returncode == 0, text


def test_a_plan_that_cannot_be_rehearsed_is_refused_before_anything_starts(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    lab = Path(__file__).resolve().parents[2] / "plans" / "lab.yaml"
    # the lab's plan without the trigger the error spike must fire
    text = lab.read_text(encoding="utf-8").replace("- name: error_rate_spike", "- name: some_other_trigger")
    plan.write_text(text, encoding="utf-8")
    out = rehearse("--root", str(tmp_path / "lab"), "--plan", str(plan), "--scenario", "error-spike")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "must fire the trigger error_rate_spike, which the plan lacks" in out.stderr, out.stderr
    assert not (tmp_path / "lab").exists()
    plan.write_text("name: [", encoding="utf-8")  # not YAML: file:line:column
    out = rehearse("--root", str(tmp_path / "lab"), "--plan", str(plan))
    assert out.returncode == 2 and f"{plan}:1" in out.stderr, out.stderr
    out = rehearse("--root", str(tmp_path / "lab"), "--scenario", "no-such")
    assert out.returncode == 2 and "no scenario 'no-such'" in out.stderr, out.stderr
