"""`cockpit status` with no controller running tells the truth: the state and its times come from the journal, or
are marked unknown (never counted from 1970). Real processes, real journal files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cockpit.core.journal import Journal
from tests.core.plans import write_plan
from tests.core.test_processes import cockpit


def test_no_journal_no_machine_means_an_unknown_time(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    doc = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
    assert doc["state"] == "ready" and doc["controller"] is None
    assert doc["phase"]["since"] is None and doc["phase"]["seconds_in_phase"] is None
    Journal(tmp_path / "journal.db").event("lab.up")  # a journal that no controller has written its state to
    doc = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
    assert doc["phase"]["since"] is None and doc["phase"]["seconds_in_phase"] is None
    text = cockpit("-p", str(plan), "status", check=True).stdout
    assert "time in this state unknown" in text


def test_the_times_come_from_the_journal_after_a_controller_ran(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    before = time.time()
    cockpit("-p", str(plan), "advance", "--yes", check=True)
    doc = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
    assert doc["state"] == "active" and doc["controller"] is None
    assert before <= doc["phase"]["since"] <= time.time()
    assert 0 <= doc["phase"]["seconds_in_phase"] < 60
    assert "0m0" in cockpit("-p", str(plan), "status", check=True).stdout  # seconds, not 498998h


def test_a_controller_that_changed_nothing_still_journals_when_its_state_began(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    before = time.time()
    cockpit("-p", str(plan), "hold", "--reason", "x", check=True)
    cockpit("-p", str(plan), "resume", check=True)
    doc = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
    assert doc["state"] == "ready" and before <= doc["phase"]["since"] <= time.time()
