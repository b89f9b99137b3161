"""The canonical row text, rendered by SQLite, by PostgreSQL and by Python, on random values of every kind the copy
produces: the three agree, and blue's text equals green's exactly when the row-level comparison says equal."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg import sql

from cockpit.core.plan import Cast
from cockpit.drivers.integrity.canonical import (
    GREEN_SETTINGS,
    blue_row_sql,
    column_form,
    green_field_sql,
    green_prepared,
    register_blue,
)
from cockpit.drivers.integrity.table import _canon_row
from cockpit.drivers.sync.copy import copy_database
from cockpit.drivers.sync.schema import pg_truncate, read_mapping

US_PER_DAY = 86_400_000_000
EPOCH = dt.datetime(1970, 1, 1)

texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
stamps = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59))
late = st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 31, 20))  # in UTC too (Python has no year 0)
reals = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 0.1, 1e15, 1234567890123456.7, 1e16, 1e-5, 5e-324, 0.30000000000000004, 9007199254740993.0]
)


def _julian(t: dt.datetime) -> float:
    us = (t - EPOCH) // dt.timedelta(microseconds=1)
    f = Fraction(us, US_PER_DAY) + Fraction(4881175, 2)
    return f.numerator / f.denominator


# (column, declared type, stored values): one column per kind of value the copy produces
COLUMNS = [
    ("i", "INTEGER", st.integers(-(2**63), 2**63 - 1)),
    ("f", "REAL", reals),
    ("fu", "", reals),  # no affinity: -0.0 keeps its sign
    ("n", "NUMERIC(12,3)", st.integers(-(10**8), 10**8) | st.sampled_from([0.5, -2.125, 1234.567])),
    ("nn", "NUMERIC", st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)),
    ("t", "TEXT", texts | st.sampled_from(["", "it's", "a,b\nc", "ção 日本 🎉", "NULL", "'"])),
    ("b", "BLOB", st.binary(max_size=8)),
    ("bo", "BOOLEAN", st.sampled_from([0, 1])),
    ("bt", "BOOL", st.sampled_from(["yes", "no"])),
    ("d", "DATE", st.dates().map(lambda d: d.isoformat())),
    ("ts", "DATETIME", stamps.map(lambda t: t.isoformat(" ", "seconds"))),
    ("tm", "TIMESTAMP", stamps.map(lambda t: t.isoformat("T", "milliseconds"))),
    ("tu", "DATETIME", stamps.map(lambda t: t.isoformat(" ", "microseconds"))),
    ("ta", "DATETIME", stamps.map(lambda t: t.isoformat(" "))),  # auto6: Python's own isoformat
    ("tn", "DATETIME", stamps.map(lambda t: t.isoformat(" ", "minutes"))),
    ("tz", "DATETIME", stamps.map(lambda t: t.isoformat("T", "seconds") + "Z")),
    ("to", "DATETIME", late.map(lambda t: t.isoformat(" ", "microseconds") + "+03:00")),
    ("es", "DATETIME", st.integers(0, 4_000_000_000)),
    ("em", "TIMESTAMP", st.integers(10**11, 4 * 10**12)),
    ("jd", "DATETIME", stamps.map(_julian)),
    ("c", "TEXT", st.integers(-(10**12), 10**12).map(str) | st.sampled_from(["x1", " 7 "])),  # plan cast
]
CASTS = [Cast("t", "c", "bigint", "null")]

rows = st.lists(
    st.tuples(*(st.none() | values for _, _, values in COLUMNS)),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    from tests.conftest import PG_ADMIN_URL

    name = f"cockpit_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", tmp_path_factory.mktemp("canonical")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[
        Phase.explicit,
        Phase.reuse,
        Phase.generate,
    ],  # a database per example: shrinking would take minutes
)
@given(rows)
def test_sql_renderings_match_python_on_both_sides(server: tuple[str, Path], data: list[tuple]) -> None:
    url, folder = server
    schema = f"s{uuid.uuid4().hex[:8]}"
    db = folder / f"{schema}.db"
    cols = ", ".join(f'"{name}" {decl}' for name, decl, _ in COLUMNS)
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {cols})")
        marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
        conn.executemany(f"INSERT INTO t VALUES ({marks})", [(i, *r) for i, r in enumerate(data)])
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f'CREATE SCHEMA "{schema}"')
    copy_database(str(db), url, casts=CASTS, schema=schema, jobs=1)
    blue = sqlite3.connect(db)
    tm = read_mapping(blue, casts=CASTS)["t"]
    forms = [column_form(c, c.name == "c") for c in tm.columns]
    kinds = {f.name: f.green for f in forms}
    assert None not in kinds.values(), kinds  # every kind has a rendering in SQL
    register_blue(blue, forms)

    names = ", ".join(f'"{f.name}"' for f in forms)
    stored = blue.execute(f"SELECT {names} FROM t ORDER BY id").fetchall()
    blue_sql = [r[0] for r in blue.execute(f"SELECT {blue_row_sql(forms)} FROM t ORDER BY id")]
    blue_py = [",".join(f.blue_text(v) for f, v in zip(forms, r, strict=True)) for r in stored]
    for r, got, want in zip(stored, blue_sql, blue_py, strict=True):
        assert got == want, r

    with psycopg.connect(url, autocommit=True) as pg:
        for s in GREEN_SETTINGS:
            pg.execute(s)
        idents = [sql.Identifier(pg_truncate(f.name)) for f in forms]
        row = sql.SQL(" || ',' || ").join(
            green_field_sql(f, green_prepared(f, i)) for f, i in zip(forms, idents, strict=True)
        )
        table = sql.Identifier(schema, "t")
        green_sql = [r[0] for r in pg.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(row, table))]
        values = pg.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(sql.SQL(", ").join(idents), table)
        )
        green_values = values.fetchall()
    green_py = [",".join(f.green_text(v) for f, v in zip(forms, r, strict=True)) for r in green_values]
    for r, got, want in zip(green_values, green_sql, green_py, strict=True):
        assert got == want, r

    # equal texts exactly where the row-level comparison finds the rows equal
    for b, g, bt, gt in zip(stored, green_values, blue_sql, green_sql, strict=True):
        carried = [f.canonical(v) for f, v in zip(forms, b, strict=True)]
        in_blue_form = [f.column.to_sqlite(v) for f, v in zip(forms, g, strict=True)]
        assert (bt == gt) == (_canon_row(carried) == _canon_row(in_blue_form)), (b, g)
    blue.close()
