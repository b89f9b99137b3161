"""The preflight's checks of green's rights for the sync and of the keys left, against the real PostgreSQL: the
superuser the tests connect as, then a real restricted role (LOGIN, no superuser) created here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from tests.control.preflight_support import check, make_plan, run_json


@pytest.fixture
def role(pg_url: str) -> Iterator[str]:
    """A login role without superuser; dropped (with what it owns in the test database) afterwards."""
    name = f"cockpit_r_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER')
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" OWNER TO postgres')
            conn.execute(f'DROP OWNED BY "{name}"')
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{name}"')


def _as(plan: Path, pg_url: str, role: str) -> None:
    plan.write_text(plan.read_text().replace(pg_url, pg_url.replace("postgres@", f"{role}@", 1)))


def _green(doc: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"] if c["area"] == "green"}


def test_the_superuser_has_every_right(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_json(make_plan(tmp_path, pg_url, copied=True), capsys)
    assert code == 0, doc
    green = _green(doc)
    assert [green[n] for n in ("table rights", "cockpit schema", "event trigger", "keys left")] == [
        "pass"
    ] * 4
    assert "fewest" in check(doc, "green", "keys left")["found"]


def test_a_restricted_role_on_a_copied_green_is_no_go(
    tmp_path: Path, pg_url: str, role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan(tmp_path, pg_url, copied=True)  # copied by the superuser
    _as(plan, pg_url, role)
    code, doc = run_json(plan, capsys)
    assert code == 1
    tables = check(doc, "green", "table rights")
    assert tables["status"] == "fail" and "t: no SELECT, INSERT, UPDATE, DELETE, TRIGGER" in tables["found"]
    assert f"TO {role}" in tables["do"]
    schema = check(doc, "green", "cockpit schema")
    assert schema["status"] == "fail" and "lacks USAGE or CREATE" in schema["found"], schema
    assert check(doc, "green", "event trigger")["status"] == "pass"  # installed by the superuser


def test_a_database_owner_without_superuser_only_misses_the_event_trigger(
    tmp_path: Path, pg_url: str, role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" OWNER TO "{role}"')
    plan = make_plan(tmp_path, pg_url)  # nothing copied yet
    _as(plan, pg_url, role)
    code, doc = run_json(plan, capsys)
    green = _green(doc)
    assert green["table rights"] == "pass", doc  # may create the tables the copy makes
    assert green["cockpit schema"] == "pass"
    trigger = check(doc, "green", "event trigger")
    assert trigger["status"] == "warn" and "not a superuser" in trigger["found"], trigger
    assert "keys left" not in green  # no disjoint keys before the copy


@pytest.mark.parametrize(("alarm", "status"), [(10**16, "warn"), (10**17, "fail")])
def test_keys_left_under_the_alarm(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], alarm: int, status: str
) -> None:
    # the default ceiling leaves about 4.5e15 keys (half of 2**53): under 1e16 warns, under a tenth of 1e17 fails
    plan = make_plan(tmp_path, pg_url, f"sync: {{key_alarm: {alarm}}}\n", copied=True)
    code, doc = run_json(plan, capsys)
    keys = check(doc, "green", "keys left")
    assert keys["status"] == status and "on t" in keys["found"], keys
    assert code == (1 if status == "fail" else 0)
