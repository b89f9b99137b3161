"""Every file of the pgloader SQLite corpus is copied exactly, or refused naming table, column, key and value and
the way through; the casts a refusal proposes then copy the file exactly (sqlite.db: mostly keyless tables)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import warnings
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import SAWarning

from cockpit.core.plan import Cast
from cockpit.drivers.sync.copy import copy_database
from cockpit.drivers.sync.schema import Fix, SchemaRefused
from tests.sync.test_copy_support import assert_copied_exactly

# the corpus lives beside the repository (../shared/corpus), or where COCKPIT_CORPUS says
CORPUS = Path(
    os.environ.get("COCKPIT_CORPUS")
    or Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pgloader-sqlite"
)

FILES = sorted(p.name for p in CORPUS.glob("*") if p.suffix in (".db", ".sqlite"))
# what a skip says: where the files were looked for, and how to point the tests at them
MISSING = (
    f"corpus not found in {CORPUS}: set COCKPIT_CORPUS to a folder of pgloader's SQLite test files "
    "(pgloader's test/sqlite/, or ../shared/corpus/pgloader-sqlite beside this checkout)"
)

# file -> fragments that the refusal must contain (table, column, key, value)
REFUSED = {
    "bad-utf8.db": ['table "files"', 'column "filename"', "id=2", "file\\x96name.txt"],
    "collision.db": [
        'table "products"',
        "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaax",
        "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaay",
        "63-byte",
    ],
    "type-mismatch.db": ['table "products"', 'column "qty"', "id=2", "'lots-of-it'"],
    "sqlite.db": [
        'table "intege"',
        'column "id"',
        "rowid=2",
        "'toto'",
        "real 12.3",
        'table "stamps"',
        'column "StartTime"',
        "rowid=1: integer 0",
    ],
}

# file -> the way through its refusal proposes (collision.db: a rename in SQLite, no cast)
WAY_THROUGH = {
    "bad-utf8.db": [Fix("files", "filename", "bytea")],
    "collision.db": [],
    "type-mismatch.db": [Fix("products", "qty", "text")],
    "sqlite.db": [Fix("intege", "id", "text"), Fix("stamps", "StartTime", "text")],
}

# how a plan settles the refused files that can be settled (collision needs a rename in SQLite)
CASTS = {
    "type-mismatch.db": [Cast("products", "qty", "text")],
    "sqlite.db": [Cast("intege", "id", "text"), Cast("stamps", "StartTime", "text")],
}

pytestmark = pytest.mark.skipif(not FILES, reason=MISSING)


@pytest.fixture
def copy_of(tmp_path: Path):
    def make(name: str) -> str:
        dest = tmp_path / name
        shutil.copy(CORPUS / name, dest)  # the copy switches the file to WAL: never touch the shared corpus
        return str(dest)

    return make


def _table_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as pg:
        return pg.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]


@pytest.mark.parametrize("sample_rows", [100, None], ids=["sampled", "examined-first"])
@pytest.mark.parametrize("name", FILES)
def test_corpus_file_is_copied_exactly_or_refused(
    name: str, sample_rows: int | None, copy_of, pg_url: str
) -> None:
    path = copy_of(name)
    if name in REFUSED:
        with pytest.raises(SchemaRefused) as err:
            copy_database(path, pg_url, sample_rows=sample_rows)
        message = str(err.value)
        for fragment in REFUSED[name]:
            assert fragment in message, f"{fragment!r} missing from the refusal:\n{message}"
        assert err.value.fixes == WAY_THROUGH[name]
        for fix in err.value.fixes:
            assert fix.plan_line() in message and fix.cli_arg() in message
        if not err.value.fixes:
            assert "rename one in SQLite first" in message
        assert _table_count(pg_url) == 0, "a refused copy wrote to PostgreSQL"
        return
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        report = copy_database(path, pg_url, jobs=3, sample_rows=sample_rows)
    assert not [w for w in said if issubclass(w.category, SAWarning)]
    conn = sqlite3.connect(path)
    total = sum(conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] for t in report.tables)
    assert report.rows == total
    assert_copied_exactly(path, pg_url)


@pytest.mark.parametrize("name", sorted(CASTS))
def test_refused_corpus_file_is_copied_exactly_with_the_plans_casts(name: str, copy_of, pg_url: str) -> None:
    path = copy_of(name)
    copy_database(path, pg_url, casts=CASTS[name])
    assert_copied_exactly(path, pg_url, casts=CASTS[name])


def test_sqlite_db_copies_exactly_with_the_way_through_of_its_refusal(copy_of, pg_url: str) -> None:
    """Most of its tables have no primary key; the two columns refused are carried as its refusal proposes."""
    path = copy_of("sqlite.db")
    with pytest.raises(SchemaRefused) as err:
        copy_database(path, pg_url)
    casts = [f.cast() for f in err.value.fixes]
    report = copy_database(path, pg_url, casts=casts)
    assert_copied_exactly(path, pg_url, casts=casts)
    conn = sqlite3.connect(path)
    keyless = [
        t.name
        for t in report.tables
        if not conn.execute(f"SELECT count(*) FROM pragma_table_info('{t.name}') WHERE pk > 0").fetchone()[0]
    ]
    conn.close()
    assert len(keyless) >= len(report.tables) // 2


def test_bad_utf8_with_the_proposed_bytea_keeps_every_byte(copy_of, pg_url: str) -> None:
    path = copy_of("bad-utf8.db")
    copy_database(path, pg_url, casts=[WAY_THROUGH["bad-utf8.db"][0].cast()])
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    blue = dict(conn.execute("SELECT id, CAST(filename AS BLOB) FROM files").fetchall())
    conn.close()
    with psycopg.connect(pg_url) as pg:
        green = {k: bytes(v) for k, v in pg.execute("SELECT id, filename FROM files").fetchall()}
    assert green == blue


def test_bad_utf8_cast_to_text_with_null_on_error(copy_of, pg_url: str) -> None:
    path = copy_of("bad-utf8.db")
    report = copy_database(path, pg_url, casts=[Cast("files", "filename", "text", on_error="null")])
    assert any("written as NULL" in w for w in report.warnings)
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute("SELECT id, filename FROM files ORDER BY id").fetchall()
    assert rows == [(1, "valid-file.txt"), (2, None), (3, "another-valid.txt")]


def test_chinook_keys_indexes_and_foreign_keys_are_carried(copy_of, pg_url: str) -> None:
    copy_database(copy_of("Chinook_Sqlite_AutoIncrementPKs.sqlite"), pg_url)
    with psycopg.connect(pg_url) as pg:
        public = "connamespace = 'public'::regnamespace"
        fks = pg.execute(
            f"SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated AND {public}"
        ).fetchone()[0]
        pks = pg.execute(f"SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND {public}").fetchone()[0]
        idx = pg.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'IFK_TrackAlbumId'").fetchone()[0]
        types = dict(
            pg.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'Invoice'"
            ).fetchall()
        )
        pg.execute('INSERT INTO "Genre" ("Name") VALUES (%s)', ("new",))
        (new_id,) = pg.execute('SELECT max("GenreId") FROM "Genre"').fetchone()
    assert fks == 11 and pks == 11 and idx == 1
    assert types["InvoiceDate"] == "timestamp without time zone"
    assert types["Total"] == "numeric"
    assert types["InvoiceId"] == "bigint"
    assert new_id == 26  # the identity continues after the copied keys


def test_the_corpus_is_there() -> None:
    assert len(FILES) == 8, f"the pgloader corpus is missing at {CORPUS} (set COCKPIT_CORPUS)"
