"""The report from a journal written through the real journal writer: files, valid SVG, masking, self-contained
HTML that headless Chromium opens and shows."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cockpit.cli.main import main
from cockpit.core.journal import Journal
from cockpit.report import write_report
from tests.tui.browser import Browser, chromium

SECRET_URL = "postgresql://app:hunter2secret@db.example/app"


def _journal(path: Path) -> Path:
    t0 = time.time() - 600
    with Journal(path) as j:
        j.event(
            "controller.start",
            {"machine": {"host": "box", "user": "ana"}, "dsn": SECRET_URL},
            actor="ana@box",
        )
        j.event(
            "action.intent", {"verb": "rollback", "reason": "errors high"}, actor="ana@box", action_id="r1"
        )
        j.event("action.step", {"step": "split to 0", "status": "ok", "duration_s": 1.25}, action_id="r1")
        j.event("action.outcome", {"outcome": "ok"}, action_id="r1")
        j.event(
            "action.intent", {"verb": "advance", "args": {"to": "canary"}, "reason": "go"}, action_id="a1"
        )
        j.event("action.outcome", {"outcome": "ok"}, action_id="a1")
        j.event("action.intent", {"verb": "backup", "args": {}, "reason": "before phase 2"}, action_id="b1")
        j.event("action.step", {"step": "verify", "status": "ok", "detail": "integrity ok"}, action_id="b1")
        j.event("action.outcome", {"outcome": "ok"}, action_id="b1")
        j.event("sync.conflict", {"table": "companies", "key": 7}, actor="controller")
        j.event("sync.conflict_resolved", {"uid": "blue:1", "keep": "green"}, actor="ana@box")
        j.event("integrity.mismatch", {"tables": {"companies": [7]}}, actor="controller")
        j.event("alarm.raised", {"rule": "error_rate_spike", "value": 0.07}, actor="controller")
        j.event("rollback.completed", {"to": 0, "seconds": 2.5}, actor="controller", action_id="a2")
        for i in range(300):
            j.samples(
                {
                    "green_configured": 5.0,
                    "traffic_distribution": 4.0 + i % 3,
                    "green.error_rate": 0.5 * (i % 7),
                    "blue.error_rate": 0.1,
                    "green.response_time_p95": 80.0 + i % 10,
                    "data_integrity_score": 100.0 if i < 200 else 99.5,
                    "data_integrity_checked_at": t0 + (i // 100) * 100,
                    "client_error_rate": 50.0,  # charted nowhere: only the named series are
                },
                ts=t0 + i,
            )
    return path


def test_report_files_charts_masking_and_html(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "journal.db")
    paths = write_report(journal, tmp_path / "out")
    assert paths.markdown.exists() and paths.html.exists()
    assert {c.name for c in paths.charts} == {"split.svg", "error.svg", "p95.svg", "integrity.svg"}
    for chart in paths.charts:
        assert ET.parse(chart).getroot().tag.endswith("svg")
    md = paths.markdown.read_text()
    for needle in (
        "| canary |",  # the Phases table
        "alarm.raised",
        "| error_rate_spike | - | 1 |",  # the alarms summary (this one names a rule, no metric or level)
        "1 parked, 1 resolved.",
        "verify: integrity ok",  # the backup's steps
        "3 full check(s) ended, 1 mismatch(es), 0 repair(s).",
        "lowest score 99.5 %",
        "rollback.completed",
        "ana@box",
        "Verdict",
        "## Machine",
        "host box",
        "split to 0 ok 1.25 s",
        "errors high",
    ):
        assert needle in md
    page = paths.html.read_text()
    assert "hunter2secret" not in md and "hunter2secret" not in page
    assert (
        page.count("<svg") == 4 and "src=" not in page and 'href="http' not in page and "url(http" not in page
    )


def test_cli_report_and_bad_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = _journal(tmp_path / "journal.db")
    out = tmp_path / "cli"
    assert main(["report", "--journal", str(journal), "--out", str(out), "--since", "0"]) == 0
    assert (out / "report.html").exists()
    assert main(["report", "--journal", str(journal), "--out", str(out), "--since", "yesterday"]) == 2
    assert "not a time" in capsys.readouterr().err


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup installs it)")
def test_html_opens_in_chromium(tmp_path: Path) -> None:
    paths = write_report(_journal(tmp_path / "journal.db"), tmp_path / "out")
    with Browser(tmp_path) as browser:
        browser.open(paths.html.as_uri())
        deadline = time.monotonic() + 60
        shown = ""
        while not ("Day 0 report" in shown and "rollback.completed" in shown):
            assert time.monotonic() < deadline, f"the page never showed the report; it shows:\n{shown}"
            shown = browser.evaluate("document.body ? document.body.innerText : ''") or ""
            time.sleep(0.2)
        assert browser.evaluate("document.querySelectorAll('svg').length") == 4
