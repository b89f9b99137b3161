"""The write ledger: what the load appends, and the check against the side that serves (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cockpit.lab.ledger import Ledger, check, read_ledger, sqlite_present


def _db(path: Path, ids: list[int]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE proposals (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO proposals (id, v) VALUES (?, 'x')", [(i,) for i in ids])
    con.commit()
    con.close()


def test_every_acknowledged_write_present_is_ok(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.jsonl")
    for key in (1, 2, 3):
        led.record("create", "proposals", key, "blue")
    led.close()
    _db(tmp_path / "b.db", [1, 2, 3, 4])
    result = check(read_ledger(tmp_path / "ledger.jsonl"), sqlite_present(tmp_path / "b.db"))
    assert result.ok and result.acknowledged == 3 and not result.missing


def test_missing_writes_reported_deleted_and_parked_kept(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.jsonl")
    for key in (1, 2, 3, 4, 5):
        led.record("create", "proposals", key, "green", natural=f"n{key}")
    led.record("delete", "proposals", 2, "blue")
    led.close()
    with (tmp_path / "ledger.jsonl").open("a") as fh:
        fh.write('{"op": "create", "tab')  # a torn last line (load killed mid-write) is skipped
    _db(tmp_path / "b.db", [1])
    result = check(
        read_ledger(tmp_path / "ledger.jsonl"), sqlite_present(tmp_path / "b.db"), parked={("proposals", 3)}
    )
    assert result.acknowledged == 5 and result.deleted == 1 and result.kept_in_conflicts == 1
    assert [(e.key, e.natural) for e in result.missing] == [(4, "n4"), (5, "n5")]
    assert not result.ok


def test_a_reused_key_does_not_stand_for_the_row_that_had_it(tmp_path: Path) -> None:
    """SQLite hands the highest free key out again: after company 7 (CNPJ A) went, a new company 7 (CNPJ B) is
    another row. A is missing unless parked; a delete answered before a create does not delete it."""
    con = sqlite3.connect(tmp_path / "b.db")
    con.execute("CREATE TABLE companies (id INTEGER PRIMARY KEY, cnpj TEXT UNIQUE)")
    con.execute("INSERT INTO companies VALUES (7, 'B'), (8, 'C')")
    con.commit()
    con.close()
    led = Ledger(tmp_path / "ledger.jsonl")
    led.record("create", "companies", 7, "blue", natural="A")
    led.record("delete", "companies", 8, "blue")  # before 8 was created: not its delete
    led.record("create", "companies", 7, "green", natural="B")
    led.record("create", "companies", 8, "green", natural="C")
    led.close()
    entries = read_ledger(tmp_path / "ledger.jsonl")
    result = check(entries, sqlite_present(tmp_path / "b.db"))
    assert result.acknowledged == 3 and result.deleted == 0
    assert [(e.key, e.natural) for e in result.missing] == [(7, "A")]
    kept = check(entries, sqlite_present(tmp_path / "b.db"), parked={("companies", 7)})
    assert kept.ok and kept.kept_in_conflicts == 1


def test_a_new_lab_sets_the_last_ledger_aside(tmp_path: Path) -> None:
    """`lab up` makes new databases: the last lab's ledger is kept, renamed, and never read as the new one's."""
    from cockpit.lab.lab import _set_aside_ledger

    led = Ledger(tmp_path / "ledger.jsonl")
    led.record("create", "proposals", 1, "blue")
    led.close()
    _set_aside_ledger(tmp_path)
    _set_aside_ledger(tmp_path)  # nothing to set aside: nothing happens
    [kept] = tmp_path.glob("ledger-*.jsonl")
    assert read_ledger(kept)[0].key == 1 and read_ledger(tmp_path / "ledger.jsonl") == []
