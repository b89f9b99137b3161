"""Pure logic of the lab's domain: check digits, seeded rows, input checks, keys."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cockpit.lab.domain import (
    TABLES,
    ValidationError,
    cnpj_check_digits,
    make_cnpj,
    make_cpf,
    new_key,
    parse_input,
    present,
    valid_cnpj,
    valid_cpf,
)
from cockpit.lab.faults import parse_latency, parse_percent
from cockpit.lab.seed import generate, table_sizes


def test_cnpj_check_digits_of_known_numbers() -> None:
    assert cnpj_check_digits("112223330001") == "81"  # 11.222.333/0001-81, the classic example
    assert valid_cnpj("11.222.333/0001-81")
    assert not valid_cnpj("11.222.333/0001-82")
    assert not valid_cnpj("11.111.111/1111-11")  # all digits equal: refused although the digits add up
    assert valid_cpf("529.982.247-25")
    assert not valid_cpf("529.982.247-26")


def test_generated_documents_are_valid() -> None:
    rng = random.Random(1)
    assert all(valid_cnpj(make_cnpj(rng)) for _ in range(500))
    assert all(valid_cpf(make_cpf(rng)) for _ in range(500))


def test_seeded_rows_are_realistic_and_consistent() -> None:
    data = generate(1000, seed=7)
    sizes = table_sizes(1000)
    assert {t: len(rows) for t, rows in data.items()} == sizes
    assert data == generate(1000, seed=7)  # the same seed gives the same rows
    cnpjs = [r[3] for r in data["companies"]]
    assert len(set(cnpjs)) == len(cnpjs) and all(valid_cnpj(c) for c in cnpjs)
    emails = [r[2] for r in data["users"]]
    assert len(set(emails)) == len(emails)
    assert any("ã" in r[1] or "é" in r[1] or "ç" in r[1] for r in data["users"]), (
        "Brazilian names with accents"
    )
    for p in data["proposals"]:
        assert 1 <= p[1] <= sizes["opportunities"] and 1 <= p[2] <= sizes["companies"]
        assert p[4] > 0 and round(p[4], 2) == p[4]  # BRL with centavos
    for o in data["opportunities"]:
        assert o[5] < o[6]  # published before the deadline


def test_input_checks() -> None:
    companies = TABLES["companies"]
    ok = parse_input(
        companies, {"legal_name": "Silva Engenharia Ltda.", "cnpj": "11.222.333/0001-81"}, partial=False
    )
    assert ok["cnpj"] == "11.222.333/0001-81"
    with pytest.raises(ValidationError, match="check digits"):
        parse_input(companies, {"legal_name": "X", "cnpj": "11.222.333/0001-80"}, partial=False)
    with pytest.raises(ValidationError, match="required"):
        parse_input(companies, {"legal_name": "X"}, partial=False)
    with pytest.raises(ValidationError, match="unknown field"):
        parse_input(companies, {"nope": 1}, partial=True)
    proposals = TABLES["proposals"]
    with pytest.raises(ValidationError, match="not one of"):
        parse_input(proposals, {"status": "maybe"}, partial=True)
    assert parse_input(proposals, {"amount": "1234.567"}, partial=True) == {"amount": 1234.57}


def test_rows_look_the_same_from_either_engine() -> None:
    import datetime as dt
    from decimal import Decimal

    users = TABLES["users"]
    from_sqlite = {
        "id": 1,
        "name": "Ana",
        "email": "a@b.co",
        "cpf": None,
        "role": "analyst",
        "active": 1,
        "created_at": "2026-01-02 03:04:05",
        "updated_at": "2026-01-02 03:04:05",
    }
    from_pg = {
        **from_sqlite,
        "active": True,
        "created_at": dt.datetime(2026, 1, 2, 3, 4, 5),
        "updated_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    }
    assert present(users, from_sqlite) == present(users, from_pg)
    opp = TABLES["opportunities"]
    row = {c: None for c in opp.columns} | {
        "id": 2,
        "estimated_value": Decimal("10.50"),
        "published_at": dt.date(2026, 1, 2),
    }
    shown = present(opp, row)
    assert shown["estimated_value"] == 10.5 and shown["published_at"] == "2026-01-02"


def test_new_keys_never_collide_between_sides() -> None:
    blue = {new_key("blue") for _ in range(3000)}
    green = {new_key("green") for _ in range(3000)}
    assert len(blue) == 3000 and len(green) == 3000
    assert not blue & green
    assert all(k & 2048 == 0 for k in blue) and all(k & 2048 for k in green)
    assert max(blue | green) < 2**53  # exact in JSON


def test_fault_values() -> None:
    assert parse_percent("10%") == 10.0 and parse_percent("2.5") == 2.5
    assert parse_latency("800ms") == 800.0 and parse_latency("2s") == 2000.0
    for bad in ("110%", "-1%", "ten"):
        with pytest.raises(ValueError):
            parse_percent(bad)
    with pytest.raises(ValueError):
        parse_latency("fast")


def test_a_stopping_service_answers_the_requests_in_flight(tmp_path: Path) -> None:
    """SIGTERM (what the rollback's stop_green sends) lets a slow request finish instead of cutting it."""
    import signal
    import socket
    import subprocess
    import sys
    import threading

    import httpx

    from cockpit.lab.faults import Faults, write_faults
    from cockpit.lab.seed import seed_sqlite
    from tests.conftest import wait_for

    db = tmp_path / "blue.db"
    seed_sqlite(db, rows=50)
    faults = tmp_path / "faults.json"
    write_faults(faults, Faults(latency_ms=800))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cockpit.lab.service",
            "--side",
            "blue",
            "--db",
            str(db),
            "--port",
            str(port),
            "--fault-file",
            str(faults),
        ]
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=20, what="the service")
        answers: list[int] = []
        slow = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{url}/api/users/1", timeout=10).status_code)
        )
        slow.start()
        # the slow request is being served (health counts itself as one)
        wait_for(lambda: httpx.get(f"{url}/health", timeout=1).json()["in_flight"] >= 2, timeout=5)
        proc.send_signal(signal.SIGTERM)
        slow.join(15)
        assert answers == [200]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
