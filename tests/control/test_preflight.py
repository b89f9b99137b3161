"""`cockpit preflight` against a real PostgreSQL and real SQLite files: go, each broken variant no-go, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cockpit.cli.main import main
from cockpit.core.journal import Journal
from tests.control.preflight_support import make_plan, run_json


def _plan(tmp_path: Path, green_url: str, copied: bool = False) -> Path:
    return make_plan(tmp_path, green_url, copied=copied)


def _run(plan: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    return run_json(plan, capsys)


def _status(doc: dict, name: str) -> str:
    return next(c["status"] for c in doc["checks"] if c["name"] == name)


def test_go_is_journaled(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan(tmp_path, pg_url, copied=True)
    code, doc = _run(plan, capsys)
    assert code == 0, doc
    assert doc["verdict"] == "go"
    assert _status(doc, "tls") == "warn"  # loopback without sslmode only warns
    assert _status(doc, "integrity_check") == "pass"
    with Journal(tmp_path / ".cockpit" / "journal.db", readonly=True) as j:
        (event,) = j.events(kinds=["preflight"])
    assert event.payload["verdict"] == "go"


@pytest.mark.parametrize(
    ("url", "check"),
    [
        ("postgresql://postgres@127.0.0.2:1/x?connect_timeout=2", "server answers"),  # a wrong host
        ("postgresql://postgres@ep-x-pooler.example.invalid/db?sslmode=require", "direct host"),
        ("postgresql://postgres@db.example.invalid/db", "tls"),  # TLS off to a remote host
    ],
)
def test_a_broken_green_is_no_go(
    tmp_path: Path, url: str, check: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _run(_plan(tmp_path, url), capsys)
    assert code == 1 and doc["verdict"] == "no-go"
    assert _status(doc, check) == "fail"


def test_a_missing_blue_file_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, pg_url)
    (tmp_path / "blue.db").unlink()
    code, doc = _run(plan, capsys)
    assert code == 1 and _status(doc, "file") == "fail"
    assert not (tmp_path / "blue.db").exists()  # looked for, never created
    assert _status(doc, "server answers") == "pass"  # green's own checks still ran


def test_a_bad_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert main(["-p", str(bad), "preflight", "--json"]) == 2


def _gated(tmp_path: Path, pg_url: str) -> Path:
    plan = _plan(tmp_path, pg_url, copied=True)
    plan.write_text(
        plan.read_text().replace("phases:", "traffic: {driver: file, state_file: split.json}\nphases:")
    )
    return plan


def test_the_phase_gate_needs_a_fresh_go_or_force(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _gated(tmp_path, pg_url)
    assert main(["-p", str(plan), "advance", "--yes", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "preflight" in out["message"], out
    assert main(["-p", str(plan), "preflight", "--json", "--no-test-message"]) == 0
    capsys.readouterr()
    assert main(["-p", str(plan), "advance", "--yes", "--json"]) == 0, capsys.readouterr()


def test_force_passes_the_gate_and_is_journaled(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _gated(tmp_path, pg_url)
    assert main(["-p", str(plan), "advance", "--yes", "--json", "--force"]) == 0, capsys.readouterr()
    with Journal(tmp_path / ".cockpit" / "journal.db", readonly=True) as j:
        steps = [e.payload for e in j.events(kinds=["action.step"]) if e.payload.get("step") == "gates"]
    assert any("forced past" in str(s) and "preflight" in str(s) for s in steps), steps


def test_a_required_backup_missing_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, pg_url, copied=True)
    plan.write_text(plan.read_text() + "backup: {required: true, max_age: 1h}\n")
    code, doc = _run(plan, capsys)
    assert code == 1 and _status(doc, "fresh backup") == "fail"
    assert main(["-p", str(plan), "backup", "take"]) == 0
    capsys.readouterr()
    code, doc = _run(plan, capsys)
    assert code == 0 and _status(doc, "fresh backup") == "pass"


def test_system_past_critical_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, pg_url)
    plan.write_text(plan.read_text() + "metrics: {disk_usage: {warning: 0, critical: 0}}\n")
    code, doc = _run(plan, capsys)
    assert code == 1 and _status(doc, "disk_usage") == "fail"


def test_a_blue_unit_stopped_and_a_dead_health_check_are_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], refused_url: str
) -> None:
    plan = _plan(tmp_path, pg_url)
    text = plan.read_text().replace(
        "blue: {database: {engine: sqlite, path: blue.db}}",
        "blue: {database: {engine: sqlite, path: blue.db}, services: {driver: processes, units: [app], "
        "commands: {app: [sleep, '60']}, pid_dir: pids}}",
    )
    plan.write_text(text + f"health_checks: [{{name: front, url: '{refused_url}', retries: 1}}]\n")
    code, doc = _run(plan, capsys)
    assert code == 1
    assert _status(doc, "blue app") == "fail"
    assert _status(doc, "health front") == "fail"


def test_the_table_shows_every_check_the_json_has(
    tmp_path: Path,
    pg_url: str,
    refused_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = make_plan(tmp_path, pg_url, f"alerts: {{webhook: {{url: '{refused_url}'}}}}\n", copied=True)
    code, doc = run_json(plan, capsys)
    monkeypatch.setenv("COLUMNS", "240")
    assert main(["-p", str(plan), "preflight", "--no-test-message"]) == code == 1
    lines = capsys.readouterr().out.splitlines()
    assert "preflight pf: no-go:" in lines[0]
    rows = [[cell.strip() for cell in ln.split("│")[1:4]] for ln in lines if ln.startswith("│")]
    for c in doc["checks"]:  # one row each: area, check and status in their cells
        assert rows.count([c["area"], c["name"], c["status"]]) == 1, (c, rows)
    areas = {c["area"] for c in doc["checks"]}
    assert {"green", "blue", "sync", "backup", "alerts", "system"} <= areas


def test_a_backup_too_old_is_no_go(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan(tmp_path, pg_url, copied=True)
    text = plan.read_text()
    plan.write_text(text + "backup: {required: true, max_age: 1h}\n")
    assert main(["-p", str(plan), "backup", "take"]) == 0
    capsys.readouterr()
    plan.write_text(text + "backup: {required: true, max_age: 0s}\n")  # the same backup, now too old
    code, doc = _run(plan, capsys)
    fresh = next(c for c in doc["checks"] if c["name"] == "fresh backup")
    assert code == 1 and fresh["status"] == "fail" and "limit 0s" in fresh["found"], fresh


def test_tls_required_of_a_server_without_it_is_no_go(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test server has no TLS: a URL that requires it passes the tls check and fails to connect, saying why."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        if conn.execute("SHOW ssl").fetchone() != ("off",):
            pytest.skip("this server speaks TLS")
    code, doc = _run(_plan(tmp_path, pg_url + "?sslmode=require"), capsys)
    assert code == 1
    assert _status(doc, "tls") == "pass"
    answers = next(c for c in doc["checks"] if c["name"] == "server answers")
    assert answers["status"] == "fail" and "does not support SSL" in answers["found"], answers
