"""The copy's fast path for ISO instants: checked per chunk (`chunk_check`), never less strict than the exact SQL.

Real SQLite (the exact per-row check) and real PostgreSQL (what it accepts, and as what) are the oracles.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import psycopg
import pytest

from cockpit.drivers.sync import chunk_check
from cockpit.drivers.sync.chunk_check import iso_shape, isos_ok
from cockpit.drivers.sync.copy import copy_database
from cockpit.drivers.sync.schema import SchemaRefused, _sql_iso_check
from cockpit.drivers.sync.values import IsoFormat
from tests.sync.test_copy_support import assert_copied_exactly

FORMATS = [
    IsoFormat(p, sep, sfx, as_date=(p == "date" and not sfx))
    for p in ("date", "minute", "second", "milli", "micro")
    for sep in (" ", "T")
    for sfx in ("", "Z", "+05:30")
    if not (p == "date" and (sep == "T" or sfx))
]
SPECIAL = ["24", "60", "59", "00", "13", "29", "30", "31", "32", "0000", "23", "12", "02", "99"]


def _near_misses(fmt: IsoFormat, rng: random.Random, n: int) -> list[str]:
    """Valid values with digits changed at random, and the famous bad ones spliced into each field."""
    shape = iso_shape(fmt)
    assert shape is not None
    out = []
    for _ in range(n):
        year, month, day = rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29)
        hms = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}"
        good = f"{year:04d}-{month:02d}-{day:02d}{fmt.sep}{hms}"[: shape.width - len(fmt.suffix)] + fmt.suffix
        chars = list(good)
        for _k in range(rng.choice((0, 1, 1, 2))):
            at = rng.randrange(len(chars))
            if chars[at].isdigit():
                chars[at] = str(rng.randrange(10))
        value = "".join(chars)
        if rng.random() < 0.5:  # one field replaced by a value that breaks it or means something else
            at = rng.choice([x for x in (0, 5, 8, 11, 14, 17, 20) if x < shape.width])
            bad = rng.choice(SPECIAL)
            width = 4 if at == 0 else 2
            value = value[:at] + bad.rjust(width, "0")[:width] + value[at + width :]
        out.append(value)
    return out


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.precision}|{f.sep}|{f.suffix or 'none'}")
def test_the_fast_check_never_passes_a_value_the_exact_sql_refuses_and_postgresql_takes(
    fmt: IsoFormat, pg_url: str
) -> None:
    """For every value the fast check passes: PostgreSQL refuses it (the load stops and the whole source is
    examined), or the exact SQL accepts it too and PostgreSQL reads the same instant. And whatever the exact SQL
    accepts, the fast check passes (no needless re-render)."""
    shape = iso_shape(fmt)
    assert shape is not None
    rng = random.Random(f"{fmt}")
    lite = sqlite3.connect(":memory:")
    strict_sql = f"SELECT {_sql_iso_check('c', fmt)} FROM (SELECT ? AS c)"
    seen = {"fast": 0, "pg_refused": 0, "both": 0}
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("SET TimeZone = 'UTC'")
        for value in _near_misses(fmt, rng, 400):
            fast = isos_ok((shape,), value.encode(), 1)
            strict = bool(lite.execute(strict_sql, (value,)).fetchone()[0])
            if strict:
                assert fast, f"{value!r}: the exact SQL accepts it, the fast check should too"
            if not fast:
                continue
            seen["fast"] += 1
            try:
                got = pg.execute(f"SELECT %s::{fmt.pg_type}", (value,)).fetchone()[0]
            except psycopg.errors.DataError:
                seen["pg_refused"] += 1
                continue
            assert strict, (
                f"{value!r}: passed the fast check, PostgreSQL took it as {got!r}, the exact SQL refuses"
            )
            assert fmt.render(got) == value, f"{value!r} read by PostgreSQL as {got!r}"
            seen["both"] += 1
    assert seen["both"] > 50 and seen["pg_refused"] > 0, seen


def test_a_chunk_of_rows_with_nulls_and_several_columns(tmp_path: Path) -> None:
    shapes = tuple(s for s in (iso_shape(IsoFormat("date")), iso_shape(IsoFormat("milli", "T", "Z"))) if s)
    row = b"2024-02-29" + b"2024-02-29T23:59:59.999Z"
    assert isos_ok(shapes, row * 3, 3)
    assert not isos_ok(shapes, row * 3, 4)
    assert not isos_ok(shapes, row * 2 + b"2024-02-29" + b"2024-02-29T24:00:00.000Z", 3)
    assert not isos_ok(shapes, None, 1)


def _dated(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, day DATE, at DATETIME, ms TEXT, zoned TEXT, note TEXT)"
        )
        conn.executemany(
            "INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    None if i % 11 == 0 else f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    f"2023-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}",
                    None if i % 5 == 0 else f"2023-03-{1 + i % 28:02d} 23:{i % 60:02d}:59.{i % 1000:03d}",
                    f"2023-06-{1 + i % 30:02d}T{i % 24:02d}:00:00Z",
                    f"note {i}",
                )
                for i in range(1, rows + 1)
            ),
        )


def test_the_copy_takes_the_fast_path_for_dates_and_every_value_arrives(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "dated.db"
    _dated(db, 3000)
    calls: list[bool] = []
    real = chunk_check.isos_ok

    def spy(shapes, blob, rows):  # noqa: ANN001, ANN202 - the signature of the function it wraps
        calls.append(real(shapes, blob, rows))
        return calls[-1]

    monkeypatch.setattr(chunk_check, "isos_ok", spy)
    report = copy_database(str(db), pg_url, chunk_rows=500, sample_rows=100)
    assert report.rows == 3000
    assert calls and all(calls)  # every chunk went through the fast path's check, and passed
    assert_copied_exactly(str(db), pg_url)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", "2023-01-05 24:00:00"),  # PostgreSQL: the next day's midnight; the chunk check refuses it
        ("at", "2023-01-05 10:59:60"),  # PostgreSQL: the next minute
        ("day", "2023-02-30"),  # passes the chunk check; PostgreSQL refuses it, the load stops
        ("at", "2023-01-05 10:00:0x"),  # not an instant: the chunk check refuses it, the exact SQL names it
    ],
)
def test_a_date_beyond_the_sample_that_postgresql_would_misread_or_refuse_is_named(
    tmp_path: Path, pg_url: str, column: str, value: str
) -> None:
    """Past the sample, each is found (by the chunk check and the exact SQL, or by PostgreSQL and then the
    whole examination), the copy is refused naming the row, and no table stays on the target."""
    db = tmp_path / "dated.db"
    _dated(db, 3000)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE ev SET {column} = ? WHERE id = 2500", (value,))
    with pytest.raises(SchemaRefused) as info:
        copy_database(str(db), pg_url, chunk_rows=500, sample_rows=100)
    text = "\n".join(info.value.problems)
    assert "id=2500" in text and value in text
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'ev'").fetchone()[0] == 0
