"""Every refusal says how to get through: the plan lines and the `--cast` arguments that carry a refused column,
and `cockpit sync copy --cast` end to end (real SQLite files, real PostgreSQL, the real command)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cockpit.core.plan import Cast, load_plan
from cockpit.drivers.sync.copy import copy_database
from cockpit.drivers.sync.schema import (
    Fix,
    SchemaRefused,
    TimestampPolicy,
    cast_arg,
    parse_cast_arg,
    plan_casts,
    read_mapping,
)
from tests.sync.test_copy_support import assert_copied_exactly

COCKPIT = [sys.executable, "-c", "import sys; from cockpit.cli.main import main; sys.exit(main())"]


def _cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COCKPIT, *args], capture_output=True, text=True, timeout=120)


def _public_tables(pg_url: str) -> list[str]:
    with psycopg.connect(pg_url) as pg:
        return [r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def _mismatch_db(tmp_path: Path) -> Path:
    """A text in an INTEGER column, and a table whose name needs quoting everywhere."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, name TEXT)")
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?)", [(1, 5, "a"), (2, "lots-of-it", "b"), (3, 7, "c")]
    )
    conn.execute('CREATE TABLE "my.odd ""table""" (id INTEGER PRIMARY KEY, "yes" INTEGER)')
    conn.executemany('INSERT INTO "my.odd ""table""" VALUES (?, ?)', [(1, 1), (2, 2.5)])
    conn.commit()
    conn.close()
    return path


# ------------------------------------------------------------------------------------------- --cast syntax


@pytest.mark.parametrize(
    ("text", "cast"),
    [
        ("products.qty=text", Cast("products", "qty", "text")),
        ("products.qty=BIGINT:null", Cast("products", "qty", "bigint", "null")),
        ("products.qty=double  precision", Cast("products", "qty", "double precision")),
        ('"my.odd ""table""".yes=numeric:text', Cast('my.odd "table"', "yes", "numeric", "text")),
        ('t."a.b=c"=bytea', Cast("t", "a.b=c", "bytea")),
    ],
)
def test_cast_arguments_are_read_and_written_back_alike(text: str, cast: Cast) -> None:
    assert parse_cast_arg(text) == cast
    assert parse_cast_arg(cast_arg(cast)) == cast


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("products.qty", "expected TABLE.COLUMN=TYPE"),
        ("qty=text", "no '.' between table and column"),
        ("products.qty=varchar", "type 'varchar' is not supported"),
        ("products.qty=text:ignore", "on_error 'ignore' is not one of"),
        ('"products.qty=text', "not closed"),
        ("a.b.c=text", "unexpected '.c'"),
    ],
)
def test_a_wrong_cast_argument_says_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_cast_arg(text)


# ----------------------------------------------------------------------------------------- the refusal text


def test_a_refusal_gives_the_plan_lines_and_they_carry_the_column(tmp_path: Path, pg_url: str) -> None:
    db = _mismatch_db(tmp_path)
    with pytest.raises(SchemaRefused) as err:
        copy_database(str(db), pg_url)
    refusal = err.value
    assert refusal.fixes == [Fix('my.odd "table"', "yes", "text"), Fix("products", "qty", "text")]
    message = str(refusal)
    assert "key id=2: text 'lots-of-it'; the way through: --cast products.qty=text" in message
    assert "      - {table: products, column: qty, to: text}" in message
    assert '      - {table: "my.odd \\"table\\"", column: "yes", to: text}' in message
    assert '--cast \'"my.odd ""table""".yes=text\' --cast products.qty=text' in message
    assert _public_tables(pg_url) == []

    # the plan lines, pasted under sync.casts, are a plan the loader reads back to the same casts
    lines = message.split("    casts:\n", 1)[1].split("\nor without a plan", 1)[0]
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: t\n"
        f"blue:\n  database: {{engine: sqlite, path: {db.name}}}\n"
        f'green:\n  database: {{engine: postgresql, url: "{pg_url}"}}\n'
        f"sync:\n  casts:\n{lines}\n"
        "phases:\n  - {name: p, green: 100}\n"
    )
    casts = load_plan(plan).sync.casts
    assert casts == [f.cast() for f in refusal.fixes]
    copy_database(str(db), pg_url, casts=casts)
    assert_copied_exactly(str(db), pg_url, casts=casts)


def test_text_that_is_not_utf8_is_carried_as_its_bytes_with_the_proposed_cast(
    tmp_path: Path, pg_url: str
) -> None:
    path = tmp_path / "bytes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute(
        "INSERT INTO files VALUES (1, 'ok.txt'), (2, CAST(X'66696c65966e616d65' AS TEXT)), (3, NULL)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaRefused) as err:
        copy_database(str(path), pg_url)
    assert err.value.fixes == [Fix("files", "name", "bytea")]
    assert "id=2" in str(err.value) and "not valid UTF-8" in str(err.value)
    copy_database(str(path), pg_url, casts=[f.cast() for f in err.value.fixes])
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute("SELECT id, name FROM files ORDER BY id").fetchall()
    assert rows == [(1, b"ok.txt"), (2, b"file\x96name"), (3, None)]


# ---------------------------------------------------------------------------------------- the command line


def test_sync_copy_with_cast_carries_what_was_refused(tmp_path: Path, pg_url: str) -> None:
    db = _mismatch_db(tmp_path)
    refused = _cockpit("sync", "copy", "--from", str(db), "--to", pg_url)
    assert refused.returncode == 1
    assert "--cast products.qty=text" in refused.stderr and "to: text}" in refused.stderr
    assert _public_tables(pg_url) == []

    done = _cockpit(
        "sync",
        "copy",
        "--from",
        str(db),
        "--to",
        pg_url,
        "--cast",
        "products.qty=text",
        "--cast",
        '"my.odd ""table""".yes=numeric',
    )
    assert done.returncode == 0, done.stderr
    assert "SAWarning" not in done.stderr and "Warning" not in done.stderr
    casts = [Cast("products", "qty", "text"), Cast('my.odd "table"', "yes", "numeric")]
    assert_copied_exactly(str(db), pg_url, casts=casts)
    with psycopg.connect(pg_url) as pg:
        types = dict(
            pg.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'products'"
            ).fetchall()
        )
    assert types["qty"] == "text"


@pytest.mark.parametrize(
    ("cast", "why"),
    [
        ("products.qty=varchar", "type 'varchar' is not supported"),
        ("products.nope=text", "table 'products' has no column 'nope' (its columns: id, qty, name)"),
        ("nope.qty=text", "no table 'nope'"),
        ("products", "expected TABLE.COLUMN=TYPE"),
    ],
)
def test_a_wrong_cast_exits_2_before_anything_is_written(
    tmp_path: Path, pg_url: str, cast: str, why: str
) -> None:
    db = _mismatch_db(tmp_path)
    before = db.read_bytes()
    out = _cockpit("sync", "copy", "--from", str(db), "--to", pg_url, "--cast", cast)
    assert out.returncode == 2
    assert why in out.stderr
    assert _public_tables(pg_url) == []
    assert db.read_bytes() == before  # no capture installed, not even WAL mode


# --------------------------------------------------------------------------------- mixed ISO forms of instants

MIXED = [
    (1, "2026-03-04T03:03:00.123456"),  # Python's isoformat()
    (2, "2026-03-04 03:03:00"),  # CURRENT_TIMESTAMP
    (3, "2026-03-04T03:03:00"),  # isoformat() without microseconds
    (4, "2026-03-04 03:03:00.123"),  # strftime('%Y-%m-%d %H:%M:%f')
    (5, "2026-03-04 03:03"),
    (6, "2026-03-05"),
    (7, "2026-03-04T03:03:00.123456"),
    (8, None),
]


def _mixed_db(tmp_path: Path, rows: list[tuple]) -> Path:
    path = tmp_path / "mixed.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME)")
    conn.executemany("INSERT INTO ev VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("sample_rows", [3, None], ids=["sampled", "examined-first"])
def test_mixed_iso_forms_copy_as_timestamp_with_equal_meanings(
    tmp_path: Path, pg_url: str, sample_rows: int | None
) -> None:
    db = _mixed_db(tmp_path, MIXED)
    report = copy_database(str(db), pg_url, sample_rows=sample_rows)
    assert any(
        'column "at": instants written in 6 ISO forms' in n and "as timestamp" in n for n in report.notes
    )
    assert "note: " in report.summary()
    conn = sqlite3.connect(db)
    meanings = dict(conn.execute("SELECT id, strftime('%Y-%m-%d %H:%M:%f', at) FROM ev").fetchall())
    col = read_mapping(conn)["ev"].column("at")
    stored = dict(conn.execute("SELECT id, at FROM ev").fetchall())
    with psycopg.connect(pg_url) as pg:
        (pg_type,) = pg.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'ev' AND column_name = 'at'"
        ).fetchone()
        rows = dict(pg.execute("SELECT id, to_char(at, 'YYYY-MM-DD HH24:MI:SS.MS') FROM ev").fetchall())
        green = dict(pg.execute("SELECT id, at FROM ev").fetchall())
    assert pg_type == "timestamp without time zone"
    assert rows == meanings  # the same instants, to the millisecond SQLite's strftime shows
    # green -> blue writes the most common form (isoformat()), whose meaning is the same; the canonical forms of
    # what blue holds and of what green gives back are equal, so integrity compares meanings
    assert col.to_sqlite(green[2]) == "2026-03-04T03:03:00"
    for key, value in stored.items():
        assert col.canonical(value) == col.canonical(col.to_sqlite(green[key]))
        assert col.to_pg(value) == green[key]


def test_mixed_iso_forms_with_offsets_are_timestamptz_and_zoneless_with_zoned_is_refused(
    tmp_path: Path, pg_url: str
) -> None:
    db = _mixed_db(
        tmp_path,
        [(1, "2026-03-04T03:03:00Z"), (2, "2026-03-04 00:03:00-03:00"), (3, "2026-03-04T03:03:00.5+00:00")],
    )
    conn = sqlite3.connect(db)
    with pytest.raises(SchemaRefused, match="in none of the ISO forms"):  # one fraction digit: not a form
        read_mapping(conn)
    conn.execute("UPDATE ev SET at = '2026-03-04T03:03:00.500+00:00' WHERE id = 3")
    conn.commit()
    col = read_mapping(conn)["ev"].column("at")
    assert col.pg_type == "timestamptz"
    assert col.to_pg("2026-03-04T03:03:00Z") == col.to_pg("2026-03-04 00:03:00-03:00")
    copy_database(str(db), pg_url)
    with psycopg.connect(pg_url) as pg:
        instants = pg.execute("SELECT DISTINCT date_trunc('second', at) FROM ev").fetchall()
    assert len(instants) == 1
    conn.execute("INSERT INTO ev VALUES (4, '2026-03-04 03:03:00')")
    conn.commit()
    with pytest.raises(SchemaRefused, match="with a zone and without one") as err:
        read_mapping(conn)
    assert "key id=4" in str(err.value) and "key id=1" not in str(err.value)


def test_strict_timestamps_refuse_from_the_plan_and_from_the_command_line(
    tmp_path: Path, pg_url: str
) -> None:
    db = _mixed_db(tmp_path, MIXED)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: t\n"
        f"blue:\n  database: {{engine: sqlite, path: {db.name}}}\n"
        f'green:\n  database: {{engine: postgresql, url: "{pg_url}"}}\n'
        "sync:\n  timestamps: strict\n"
        "phases:\n  - {name: p, green: 100}\n"
    )
    casts = plan_casts(load_plan(plan).sync)
    assert casts == [TimestampPolicy("strict")]
    with pytest.raises(SchemaRefused, match="strict") as err:
        copy_database(str(db), pg_url, casts=casts)
    assert err.value.fixes == [Fix("ev", "at", "text")]

    out = _cockpit("sync", "copy", "--from", str(db), "--to", pg_url, "--timestamps", "strict")
    assert out.returncode == 1 and "--cast ev.at=text" in out.stderr
    assert _public_tables(pg_url) == []
    # the plan is strict, the command line says meaning: the command line wins, and the copy runs here
    out = _cockpit("-p", str(plan), "sync", "copy", "--timestamps", "meaning", "--json")
    assert out.returncode == 0, out.stderr
    assert '"notes"' in out.stdout and "as timestamp" in out.stdout
