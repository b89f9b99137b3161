"""The sync's alarms (core.rules.sync_alarms) and the alerts' gathering (control.alerts): pure logic."""

from __future__ import annotations

from cockpit.control.alerts import Alerts
from cockpit.core.plan import Sync
from cockpit.core.rules import SyncFacts, sync_alarms


def by_metric(
    metrics: dict, facts: SyncFacts | None = None, spec: Sync | None = None
) -> dict[str, tuple[str, str]]:
    return {
        a.metric: (a.level, a.message) for a in sync_alarms(spec or Sync(), metrics, facts or SyncFacts())
    }


def test_all_quiet_is_no_alarm() -> None:
    quiet = {"sync.conflicts_waiting": 0.0, "sync.keys_left_min": 1e15, "sync.stalled": 0.0}
    assert by_metric(quiet) == {}


def test_each_alarm_says_what_and_what_to_do() -> None:
    got = by_metric(
        {
            "sync.conflicts_waiting": 1.0,
            "sync.keys_left_min": 5_000.0,
            "sync.stalled": 1.0,
            "sync.stalled_s": 7.0,
            "sync.blue_to_green.pending": 3.0,
        },
        SyncFacts(
            schema_changed={"companies": "column added"},
            stranded=12,
            mismatched={"users": (["(7)"], 1)},
        ),
    )
    assert got["sync.conflicts_waiting"] == (
        "critical",
        "1 sync conflict waiting: `cockpit sync conflicts`, then "
        "`cockpit sync conflicts resolve ID --keep blue|green|both`",
    )
    assert got["sync.keys_left_min"][0] == "critical" and "5,000 keys left" in got["sync.keys_left_min"][1]
    assert got["sync.stalled"] == ("critical", "sync stalled: 3 changes pending, not going down for 7s")
    level, text = got["sync.schema_changed"]
    assert (
        level == "critical" and "companies: column added" in text and "sync copy --tables companies" in text
    )
    assert got["sync.green_only_pending"][1].startswith("12 changes still on green only after the rollback")
    assert "1 row differ" in got["data_integrity_score"][1] and "users (7)" in got["data_integrity_score"][1]


def test_keys_warn_under_the_plans_alarm_and_the_error_says_why_it_stalled() -> None:
    spec = Sync(key_alarm=1000)
    assert by_metric({"sync.keys_left_min": 999.0}, spec=spec)["sync.keys_left_min"][0] == "warning"
    assert by_metric({"sync.keys_left_min": 1000.0}, spec=spec) == {}
    stalled = by_metric({"sync.stalled": 1.0}, SyncFacts(problem="UniqueViolation: companies_cnpj_key"))
    assert stalled["sync.stalled"][1] == "sync stalled: UniqueViolation: companies_cnpj_key"
    unknown = by_metric({}, SyncFacts(stranded=-1))["sync.green_only_pending"][1]
    assert unknown.startswith("changes (how many: green unreadable) still on green only")


def test_a_storm_is_one_alert_with_its_count_then_one_per_period() -> None:
    alerts = Alerts("lab", gather_s=2.0, every_s=60.0)
    conflict = {"table": "companies", "key": [8], "winner": "blue", "parked": "green", "constraint": "x_key"}
    for i in range(40):
        alerts.note("sync.conflict", conflict, 100.0 + i * 0.01)
    assert not alerts.note("sync.resumed", {}, 100.0)  # not an alerting kind
    assert alerts.due(101.0) == []  # still gathering
    (first,) = alerts.due(102.0)
    assert first.count == 40 and first.level == "warning" and "(40 in 2s)" in first.title
    assert first.text.count("companies key (8)") == 3 and first.text.endswith("… and 37 more")
    alerts.note("sync.conflict", conflict, 110.0)
    alerts.note("sync.conflict", conflict, 120.0)
    assert alerts.due(150.0) == []  # one alert a minute at most
    (second,) = alerts.due(162.0)
    assert second.count == 2
    alerts.note("sync.stalled", {"error": "boom"}, 163.0)
    assert [a.kind for a in alerts.due(165.0)] == ["sync.stalled"]  # its own kind, its own pace


def test_personal_data_is_masked_in_alerts() -> None:
    alerts = Alerts("lab", gather_s=0.0, every_s=60.0)
    alerts.note("sync.conflict", {"table": "companies", "key": ["12.345.678/0001-95"]}, 0.0)
    (a,) = alerts.due(0.0)
    assert "12.345.678/0001-95" not in a.text and "**.***.***/****-95" in a.text
