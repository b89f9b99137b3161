"""Type choice and value conversions (pure logic on real SQLite files; no PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from cockpit.core.plan import Cast
from cockpit.drivers.sync import values as V
from cockpit.drivers.sync.schema import (
    Fix,
    SchemaRefused,
    TimestampPolicy,
    affinity,
    pg_truncate,
    read_mapping,
)


def _db(tmp_path: Path, ddl: str, rows: list[tuple] = (), table: str = "t") -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute(ddl)
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    conn.commit()
    return conn


@pytest.mark.parametrize(
    ("decl", "expected"),
    [
        ("INTEGER", "INTEGER"),
        ("tinyint", "INTEGER"),
        ("NVARCHAR(160)", "TEXT"),
        ("", "BLOB"),
        ("double precision", "REAL"),
        ("NUMERIC(10,2)", "NUMERIC"),
        ("DATETIME", "NUMERIC"),
        ("point", "INTEGER"),
    ],
)
def test_affinity_follows_sqlite_rules(decl: str, expected: str) -> None:
    assert affinity(decl) == expected


def test_truncation_is_on_bytes_and_characters() -> None:
    assert pg_truncate("a" * 70) == "a" * 63
    assert pg_truncate("é" * 40).encode() == ("é" * 31).encode()  # 62 bytes: the 32nd é would split


@pytest.mark.parametrize(
    ("decl", "values", "pg_type"),
    [
        ("INTEGER", [1, 2**62], "bigint"),
        ("smallint", [1], "bigint"),
        ("REAL", [1.5, 2.0], "double precision"),
        ("NUMERIC(10,2)", [1.98, 2], "numeric(10,2)"),
        ("NUMERIC(10,2)", [0.125], "numeric"),
        ("BOOLEAN", [0, 1], "boolean"),
        ("BOOLEAN", ["true", "false"], "boolean"),
        ("BOOL", ["Y", "N"], "boolean"),
        ("DATE", ["2024-02-29"], "date"),
        ("DATETIME", ["2024-02-29"], "timestamp"),
        ("DATETIME", ["2024-02-29 10:00:00"], "timestamp"),
        ("TIMESTAMP", ["2024-02-29T10:00:00.123+02:00"], "timestamptz"),
        ("DATETIME", [1700000000, 0], "timestamptz"),
        ("DATETIME", [2460000.25], "timestamptz"),
        ("DATETIME", [1700000000.1234567], "double precision"),  # sub-microsecond: kept as a number
        ("TEXT", ["x"], "text"),
        ("BLOB", [b"\x00"], "bytea"),
        ("", [1, 2], "bigint"),
        ("", ["a"], "text"),
        ("money", [1, 2.5], "numeric"),
        ("CHARACTER(20)", [], "text"),
        ("BOOLEAN", [], "boolean"),
    ],
)
def test_type_is_chosen_from_declaration_and_stored_values(
    tmp_path: Path, decl: str, values: list, pg_type: str
) -> None:
    conn = _db(tmp_path, f"CREATE TABLE t (c {decl})", [(v,) for v in values])
    col = read_mapping(conn)["t"].columns[0]
    assert col.pg_type == pg_type
    for v in values:
        stored = conn.execute("SELECT c FROM t WHERE c IS ?", (v,)).fetchone()[0]
        assert col.to_sqlite(col.to_pg(stored)) == stored


def test_refusal_names_table_column_key_and_value(tmp_path: Path) -> None:
    conn = _db(
        tmp_path, "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)", [("a", 1), ("b", "two"), ("c", 2.5)]
    )
    with pytest.raises(SchemaRefused) as err:
        read_mapping(conn)
    (problem,) = err.value.problems
    assert problem.startswith('table "t", column "n"')
    assert "key k='b': text 'two'" in problem and "key k='c': real 2.5" in problem


def test_mixed_date_forms_are_refused_when_the_plan_is_strict(tmp_path: Path) -> None:
    conn = _db(
        tmp_path,
        "CREATE TABLE t (d DATETIME)",
        [("2024-01-01 00:00:00",), ("2024-01-02 00:00",), ("2024-01-03 00:00:00",)],
    )
    with pytest.raises(SchemaRefused, match=r"rowid=2: text '2024-01-02 00:00'") as err:
        read_mapping(conn, casts=[TimestampPolicy("strict")])
    assert err.value.fixes == [Fix("t", "d", "text")]
    assert read_mapping(conn)["t"].columns[0].pg_type == "timestamp"


def test_cast_settles_a_column(tmp_path: Path) -> None:
    conn = _db(tmp_path, "CREATE TABLE t (n INTEGER)", [(1,), ("two",)])
    col = read_mapping(conn, casts=[Cast("t", "n", "text")])["t"].columns[0]
    assert col.pg_type == "text" and col.to_pg(1) == "1" and col.to_pg("two") == "two"
    with pytest.raises(SchemaRefused, match="cast to bigint cannot convert"):
        read_mapping(conn, casts=[Cast("t", "n", "bigint")])
    col = read_mapping(conn, casts=[Cast("t", "n", "bigint", on_error="null")])["t"].columns[0]
    assert col.to_pg("two") is None and col.to_pg(1) == 1
    col = read_mapping(conn, casts=[Cast("t", "n", "bigint", on_error="text")])["t"].columns[0]
    assert col.pg_type == "text"


def test_reals_round_trip_exactly() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        x = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-200, 200)
        assert float(V.copy_text(x)) == x
        back = V.numeric_to_sqlite(V.numeric_to_pg(x))
        assert (
            back == x if isinstance(back, float) else float(back) == x
        )  # integral: as NUMERIC affinity stores it


def test_numbers_as_dates_round_trip() -> None:
    to_pg, to_sqlite = V.number_converters("julian")
    for jd in (2451545.0, 2460311.6278356481, 1721425.5, 5373484.49):
        assert to_sqlite(to_pg(jd)) == jd
    to_pg, to_sqlite = V.number_converters("epoch_ms")
    assert to_pg(1704164645123) == dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=dt.UTC)
    assert to_sqlite(to_pg(1704164645123)) == 1704164645123
    to_pg, to_sqlite = V.number_converters("epoch_s")
    assert to_sqlite(dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC)) == 1704164645.5


def test_iso_forms_render_back_as_stored() -> None:
    fmt = V.IsoFormat("auto6")
    for text in ("2024-01-02 03:04:05", "2024-01-02 03:04:05.000001"):
        assert fmt.render(fmt.parse(text)) == text
    fmt = V.IsoFormat("milli", "T", "Z")
    value = fmt.parse("2024-01-02T03:04:05.120Z")
    assert fmt.render(value.astimezone(dt.timezone(dt.timedelta(hours=5)))) == "2024-01-02T03:04:05.120Z"
    assert V.IsoFormat("date", as_date=True).render(dt.date(5, 1, 2)) == "0005-01-02"


def test_iso_render_is_the_stored_form_for_any_datetime() -> None:
    """Every precision, both separators, zone suffixes and years below 1000: the text is the ISO form padded as
    stored, with at least the digits the value needs (written out by hand here, independently of the code)."""
    rng = random.Random(7)
    for _ in range(3000):
        value = dt.datetime(
            rng.randint(1, 9999),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 0, rng.randint(0, 999) * 1000, rng.randint(0, 999_999)]),
        )
        precision, sep, suffix = rng.choice(V.PRECISIONS), rng.choice("T "), rng.choice(["", "Z"])
        text = V.IsoFormat(precision, sep, suffix).render(value.replace(tzinfo=dt.UTC) if suffix else value)
        digits = f"{value.microsecond:06d}"
        need = (
            "micro"
            if value.microsecond % 1000
            else "milli"
            if value.microsecond
            else "second"
            if value.second
            else "minute"
            if value.hour or value.minute
            else "date"
        )
        shown = max(precision, need, key=V.PRECISIONS.index)
        expected = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        if shown != "date":
            expected += f"{sep}{value.hour:02d}:{value.minute:02d}"
            if shown != "minute":
                expected += f":{value.second:02d}"
                expected += {"second": "", "milli": "." + digits[:3], "micro": "." + digits}[shown]
        assert text == expected + suffix, (value, precision, sep, suffix)
        assert V.IsoFormat(precision, sep, suffix).parse(text).replace(tzinfo=None) == value


def test_copy_text_escapes() -> None:
    assert V.copy_text("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"
    assert V.copy_text(None) == "\\N" and V.copy_text(b"\x01") == "\\\\x01"
    assert V.copy_text(Decimal("1.50")) == "1.50" and V.copy_text(True) == "t"


def test_to_pg_rejects_a_later_value_of_another_kind(tmp_path: Path) -> None:
    conn = _db(tmp_path, "CREATE TABLE t (n INTEGER, b BOOLEAN)", [(1, 0)])
    cols = read_mapping(conn)["t"].columns
    with pytest.raises(ValueError, match="not an integer"):
        cols[0].to_pg("x")
    with pytest.raises(ValueError, match="neither"):
        cols[1].to_pg(7)


def test_nocase_columns_are_compared_exactly(tmp_path: Path) -> None:
    conn = _db(
        tmp_path,
        "CREATE TABLE t (b BOOLEAN COLLATE NOCASE, d DATETIME COLLATE NOCASE)",
        [("true", "2024-01-01T10:00:00"), ("TRUE", "2024-01-01t10:00:00"), ("false", None)],
    )
    with pytest.raises(SchemaRefused) as err:
        read_mapping(conn)
    text = str(err.value)
    assert 'column "b"' in text and "'TRUE'" in text
    assert 'column "d"' in text and "'2024-01-01t10:00:00'" in text
