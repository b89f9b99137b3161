"""The preflight's verdict model and the phase gate's reading of it (pure logic)."""

from __future__ import annotations

from cockpit.core.checks import FAIL, PASS, WARN, Check, Verdict, fresh_go
from cockpit.core.plan import Percent, Phase, Plan


def _verdict(*statuses: str) -> Verdict:
    return Verdict(tuple(Check("green", f"c{i}", s, "found") for i, s in enumerate(statuses)), 1000.0, 1.5)  # type: ignore[arg-type]


def test_a_fail_is_no_go_and_warns_are_go() -> None:
    assert _verdict(PASS, WARN).go
    assert not _verdict(PASS, FAIL).go
    doc = _verdict(PASS, WARN, FAIL).as_dict()
    assert doc["verdict"] == "no-go" and doc["counts"] == {"pass": 1, "warn": 1, "fail": 1}
    assert "1 fail" in _verdict(FAIL).summary()


def test_fresh_go_needs_a_recent_go() -> None:
    go = _verdict(PASS).as_dict()
    assert fresh_go(go, 1000.0, 1060.0, 600.0) == (True, "go 1m ago")
    met, why = fresh_go(go, 1000.0, 2000.0, 600.0)
    assert not met and "older than" in why
    met, why = fresh_go(_verdict(FAIL).as_dict(), 1000.0, 1001.0, 600.0)
    assert not met and "no-go" in why and "green/c0" in why
    assert fresh_go(None, None, 1.0, 600.0)[0] is False


def test_the_plan_knows_preflight_fields() -> None:
    assert Phase(name="p", green=Percent(5), preflight=True).preflight
    schema = Plan.model_json_schema()
    assert "preflight" in schema["properties"]
    assert "pool_size" in schema["$defs"]["Services"]["properties"]


def test_counted_says_one_and_many() -> None:
    from cockpit.core.checks import counted

    assert (counted(1, "table"), counted(0, "table"), counted(1200, "table")) == (
        "1 table",
        "0 tables",
        "1,200 tables",
    )
