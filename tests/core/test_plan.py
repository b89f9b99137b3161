"""Plan validation: one test per error class, with the message checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.plan import PlanError, load_plan, parse_duration
from tests.core.plans import BASE, write_plan

ROOT = Path(__file__).resolve().parents[2]


def errors_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = write_plan(tmp_path, text)
    with pytest.raises(PlanError) as info:
        load_plan(path, env=env or {})
    return info.value.errors


def test_production_plan_encodes_the_strategy() -> None:
    env = {
        "NEON_DATABASE_URL": "postgresql://app:s3cret@ep-x.neon.tech/db?sslmode=require",
        "SLACK_WEBHOOK_URL": "https://hooks.example/T/B/xyz",
    }
    plan = load_plan(ROOT / "plans" / "licitacoes.yaml", env=env)
    assert [p.green for p in plan.phases] == [5, 20, 50, 80, 100]
    assert plan.blue.services.units == [f"licitacoes-sqlite@{i}" for i in (1, 2, 3)]
    assert plan.green.services.units == [f"licitacoes-neon@{i}" for i in (1, 2, 3)]
    assert plan.green.database.url.startswith("postgresql://app:s3cret@")
    assert plan.sync.tables == ["users", "companies", "opportunities", "proposals"]
    m = plan.metrics
    assert (m["cpu_usage"].warning, m["cpu_usage"].critical) == (80, 95)
    assert (m["memory_usage"].warning, m["memory_usage"].critical) == (85, 95)
    assert (m["disk_usage"].warning, m["disk_usage"].critical) == (80, 90)
    assert (m["response_time_p95"].warning, m["response_time_p95"].critical) == (500, 2000)
    assert (m["error_rate"].warning, m["error_rate"].critical) == (1, 5)
    assert m["throughput"].min == 100 and m["cache_hit_ratio"].min == 80
    assert (m["connection_pool_usage"].warning, m["connection_pool_usage"].critical) == (80, 95)
    assert (m["query_execution_time"].warning, m["query_execution_time"].critical) == (1000, 5000)
    assert (m["sync_lag"].warning, m["sync_lag"].critical) == (60, 300)
    assert m["data_integrity_score"].min == 99.9
    triggers = {t.name: (t.threshold, t.for_, t.action) for t in plan.rollback.triggers}
    assert triggers == {
        "error_rate_spike": (10, 300, "immediate"),
        "response_time_degradation": (5000, 180, "gradual"),
        "data_integrity_failure": (99, 0, "immediate"),
        "database_connection_failure": (50, 60, "immediate"),
    }
    assert plan.rollback.max_duration == 300
    assert plan.alerts.webhook is not None and plan.alerts.email is not None
    assert plan.health_checks[0].retries == 5


def test_unknown_key_says_did_you_mean(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("tick: 0.1s", "tick: 0.1s\nphasez: []"))
    assert any(":21:1: plan: unknown key 'phasez'; did you mean 'phases'?" in e for e in errs), errs
    errs = errors_of(tmp_path, BASE.replace("soak: 0s}", "soek: 0s}", 1))
    assert any("phases[0]: unknown key 'soek'; did you mean 'soak'?" in e for e in errs), errs


def test_wrong_type_names_expected(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("gradual_soak: 0s", "gradual_soak: [1]"))
    assert any("rollback.gradual_soak: expected a duration" in e and "got a list" in e for e in errs), errs
    errs = errors_of(tmp_path, BASE.replace("phases:\n", "phases: 12\nx:\n"))
    assert any("phases: expected a list" in e for e in errs), errs


def test_weight_outside_range_and_not_increasing(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("green: 100,", "green: 120,"))
    assert any("phases[4].green: 120 is outside 0..100" in e for e in errs), errs
    errs = errors_of(tmp_path, BASE.replace("green: 50,", "green: 10,"))
    assert any(
        "phases[2] (ab-test): green 10% must be greater than the previous phase's 20%" in e for e in errs
    ), errs


def test_bad_duration(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("drain_timeout: 5s", "drain_timeout: five minutes"))
    assert any("rollback.drain_timeout: 'five minutes' is not a duration" in e for e in errs), errs
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25 and parse_duration(7) == 7


def test_missing_variable_and_default(tmp_path: Path) -> None:
    text = BASE.replace("path: green.db", 'path: "${GREEN_DB}"').replace(
        "path: blue.db", 'path: "${BLUE_DB:-blue.db}"'
    )
    errs = errors_of(tmp_path, text)
    assert errs == [
        f"{tmp_path / 'plan.yaml'}:5:36: environment variable GREEN_DB is not set (use ${{GREEN_DB:-default}} for a default)"
    ]
    plan = load_plan(write_plan(tmp_path, text), env={"GREEN_DB": "g.db"})
    assert plan.green.database.path == "g.db" and plan.blue.database.path == "blue.db"


def test_duplicate_phase_names(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("name: limited", "name: validation"))
    assert any("phases[1]: duplicate phase name 'validation' (first at phases[0])" in e for e in errs), errs


def test_all_errors_at_once_with_positions(tmp_path: Path) -> None:
    text = (
        BASE.replace("soak: 0s}", "soak: forever}", 1)
        .replace("driver: file", "driver: haproxy")
        .replace("tick: 0.1s", "tik: 1")
    )
    errs = errors_of(tmp_path, text)
    assert len(errs) == 3, errs
    for e in errs:
        file, line, col, _ = e.split(":", 3)
        assert file == str(tmp_path / "plan.yaml") and int(line) > 0 and int(col) > 0
    assert any("'haproxy' is not one of 'nginx', 'file', 'none'" in e for e in errs)


def test_invalid_yaml_and_empty_file(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "name: [unclosed\n")
    assert "not valid YAML" in errs[0] and errs[0].count(":") >= 3
    errs = errors_of(tmp_path, "")
    assert "the plan is empty" in errs[0]


def test_missing_required_key(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("name: rehearsal\n", ""))
    assert any("plan: missing required key 'name'" in e for e in errs), errs


def test_choice_with_hint(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, BASE.replace("tick: 0.1s", "tick: 0.1s\nsync: {conflict_policy: newst}"))
    assert any(
        "'newst' is not one of 'newest', 'blue-wins', 'green-wins' (did you mean 'newest'?)" in e
        for e in errs
    ), errs


def test_unknown_metric_names_are_refused_where_they_stand(tmp_path: Path, capsys) -> None:
    from cockpit.cli.main import main

    text = (
        BASE.replace(
            "{name: limited, green: 20, soak: 0s}",
            "{name: limited, green: 20, soak: 0s, gates: [{metric: green.eror_rate, op: '<', value: 1}]}",
        )
        .replace(
            "rollback:\n", "rollback:\n  triggers:\n    - {name: lag, metric: sync_lga, threshold: 60}\n"
        )
        .replace(
            "tick: 0.1s",
            "tick: 0.1s\nmetrics:\n  cpu_usage: {warning: 80}\n  response_time_p59: {warning: 1}",
        )
    )
    path = write_plan(tmp_path, text)
    assert main(["-p", str(path), "plan", "check"]) == 2
    err = capsys.readouterr().err.splitlines()
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if "green.eror_rate" in line)
    col = lines[row].index("green.eror_rate")
    assert (
        f"{path}:{row + 1}:{col + 1}: phases[1].gates[0].metric: unknown metric 'green.eror_rate' "
        "(did you mean 'green.error_rate'?)" in err[0]
    ), err
    assert "rollback.triggers[0].metric: unknown metric 'sync_lga' (did you mean 'sync_lag'?)" in err[1], err
    assert "metrics.response_time_p59: unknown metric 'response_time_p59' (did you mean" in err[2], err
    assert err[3:] == ["plan refused: 3 error(s)"]  # cpu_usage is known: a threshold on it stands


def test_every_metric_of_the_shipped_plans_is_known() -> None:
    env = {"NEON_DATABASE_URL": "postgresql://u:p@h/db", "SLACK_WEBHOOK_URL": "https://hooks.example/x"}
    for name in ("licitacoes.yaml", "lab.yaml"):
        load_plan(ROOT / "plans" / name, env=env)


def test_the_schema_is_json_schema_for_editors(capsys) -> None:
    import json

    from cockpit.cli.main import main

    assert main(["plan", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert (
        schema["$schema"].startswith("https://json-schema.org/") and schema["additionalProperties"] is False
    )
    assert {"name", "blue", "green", "phases", "rollback"} <= set(schema["properties"])
    trigger = schema["$defs"]["Trigger"]["properties"]
    assert "for" in trigger and "for_" not in trigger  # the YAML key
    assert {"type": "number", "minimum": 0} in trigger["for"]["anyOf"]  # 300, or "5m"
    green = schema["$defs"]["Phase"]["properties"]["green"]
    assert (green["type"], green["minimum"], green["maximum"]) == ("number", 0, 100)


def test_fleet_hosts_and_ssh_are_read_and_checked(tmp_path: Path) -> None:
    env = {"NEON_DATABASE_URL": "postgresql://u@h/db", "SLACK_WEBHOOK_URL": "http://x"}
    text = (ROOT / "plans" / "fleet.yaml").read_text()
    plan = load_plan(write_plan(tmp_path, text), env=env)
    assert plan.green.services.hosts == [
        "deploy@app1.internal",
        "deploy@app2.internal",
        "deploy@app3.internal",
    ]
    assert plan.green.services.ssh.strict_host_key_checking is True
    assert float(plan.green.services.ssh.connect_timeout) == 5
    bad = text.replace("deploy@app2.internal", "-oProxyCommand=x", 1).replace("port: 22", "port: 0")
    bad = bad.replace("connect_timeout: 5s", "connect_timeout: 5s\n      port: 70000", 1)
    errs = errors_of(tmp_path, bad, env)
    assert any("blue.services.hosts: host '-oProxyCommand=x' is not [user@]host[:port]" in e for e in errs), (
        errs
    )
    assert any("blue.services.ssh.port" in e for e in errs), errs
    errs = errors_of(tmp_path, text.replace("driver: systemd", "driver: processes", 1), env)
    assert any("hosts are for the systemd driver (over ssh); driver is 'processes'" in e for e in errs), errs
