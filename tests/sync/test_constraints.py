"""Schema fidelity: CHECK constraints, NOCASE, expression and partial indexes and views carry the same acceptance
to PostgreSQL (real SQLite files, real PostgreSQL: every candidate row is tried on both sides)."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cockpit.drivers.sync import constraints as K
from cockpit.drivers.sync.copy import copy_database
from tests.sync.test_copy_support import assert_copied_exactly

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL COLLATE NOCASE UNIQUE,
    name TEXT CHECK (length(name) <= 8),
    age INTEGER CHECK (age >= 0 AND age < 200),
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'active', 'gone')),
    active BOOLEAN NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    code TEXT CHECK (code GLOB '[A-Z][0-9]*' AND code NOT LIKE '%x%'),
    kind TEXT COLLATE NOCASE CHECK (kind IN ('a', 'b')),
    score REAL CHECK (typeof(score) IN ('real', 'null') AND score / 2 < 50),
    deleted_at DATETIME,
    CONSTRAINT name_not_blank CHECK (name IS NULL OR trim(name) <> ''),
    CONSTRAINT sane CHECK (CASE WHEN status = 'gone' THEN deleted_at IS NOT NULL ELSE 1 END)
);
CREATE UNIQUE INDEX users_name_live ON users (lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX users_lower_email ON users (lower(email));
CREATE INDEX users_active ON users (age) WHERE active;
CREATE TABLE tags (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), tag TEXT NOT NULL);
CREATE UNIQUE INDEX tags_user_tag ON tags (user_id, tag COLLATE NOCASE);
CREATE VIEW live_users AS
    SELECT id, email, active, upper(name) AS shout FROM users WHERE deleted_at IS NULL AND active;
CREATE VIEW tag_counts AS
    SELECT u.email, count(t.id) AS n, max(t.tag) AS last_tag, avg(u.age) AS mean_age
    FROM users u LEFT JOIN tags t ON t.user_id = u.id GROUP BY u.email;
CREATE VIEW over_view AS SELECT email FROM live_users WHERE email LIKE 'a%';
CREATE VIEW years AS SELECT strftime('%Y', deleted_at) AS y FROM users;
"""

ROWS = [
    "INSERT INTO users (email, name, age, status, active, code, kind, score, deleted_at) VALUES "
    "('Ann@x.com', 'Ann', 30, 'active', 1, 'A1', 'a', 1.5, NULL), "
    "('bob@x.com', 'Bob', 40, 'new', 0, NULL, 'B', NULL, NULL), "
    "('ÉLODIE@x.com', 'Élodie', 25, 'gone', 1, 'Z99', NULL, 99.0, '2024-01-01 10:00:00'), "
    "('carl@x.com', 'bob', 50, 'gone', 1, NULL, 'A', 2.0, '2024-02-01 10:00:00')",
    "INSERT INTO tags (user_id, tag) VALUES (1, 'red'), (1, 'Blue'), (2, 'red'), (3, 'green')",
]


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for stmt in ROWS:
        conn.execute(stmt)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def copied(tmp_path: Path, pg_url: str) -> tuple[Path, str, Any]:
    path = _source(tmp_path)
    report = copy_database(str(path), pg_url)
    return path, pg_url, report


def _accepts_sqlite(path: Path, stmt: str, args: tuple) -> bool:
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")
        conn.execute(stmt, args)
        return True
    except sqlite3.IntegrityError:
        return False
    finally:
        conn.rollback()
        conn.close()


def _accepts_pg(pg_url: str, stmt: str, args: tuple) -> bool:
    with psycopg.connect(pg_url) as pg:
        try:
            pg.execute(stmt.replace("?", "%s"), args)
            return True
        except psycopg.errors.IntegrityError:
            return False
        finally:
            pg.rollback()


USER_INSERT = (
    "INSERT INTO users (email, name, age, status, active, code, kind, score, deleted_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# (email, name, age, status, active, code, kind, score, deleted_at) on blue; green gets the same meaning
CANDIDATES: list[tuple] = [
    ("new1@x.com", "Dan", 20, "new", 1, None, None, None, None),  # fine
    ("ann@X.COM", "Dan", 20, "new", 1, None, None, None, None),  # NOCASE twin of Ann@x.com
    ("élodie@x.com", "Dan", 20, "new", 1, None, None, None, None),  # non-ASCII case: not a twin in SQLite
    ("new2@x.com", "Danielle9", 20, "new", 1, None, None, None, None),  # name too long
    ("new3@x.com", "Dan", -1, "new", 1, None, None, None, None),  # age below 0
    ("new4@x.com", "Dan", 20, "NEW", 1, None, None, None, None),  # status is BINARY: refused
    ("new5@x.com", "Dan", 20, "new", 1, "a1", None, None, None),  # GLOB is case-sensitive
    ("new6@x.com", "Dan", 20, "new", 1, "B2x", None, None, None),  # NOT LIKE '%x%'
    ("new7@x.com", "Dan", 20, "new", 1, "B2X", None, None, None),  # LIKE folds ASCII: refused too
    ("new8@x.com", "Dan", 20, "new", 1, "B2", "A", None, None),  # kind NOCASE IN: accepted
    ("new9@x.com", "Dan", 20, "new", 1, "B2", "c", None, None),  # kind not in the list
    ("newa@x.com", "Dan", 20, "new", 1, None, None, 120.0, None),  # score / 2 >= 50
    ("newb@x.com", "   ", 20, "new", 1, None, None, None, None),  # blank name
    ("newc@x.com", "Dan", 20, "gone", 1, None, None, None, None),  # gone without deleted_at
    ("newd@x.com", "ANN", 20, "new", 1, None, None, None, None),  # lower(name) twin among live rows
    ("newe@x.com", "ANN", 20, "gone", 1, None, None, None, "2024-03-01 00:00:00"),  # twin, but deleted
    ("newf@x.com", "ÉLODIE", 20, "new", 1, None, None, None, None),  # lower() is ASCII-only: not a twin
    ("newg@x.com", "BOB", 20, "new", 1, None, None, None, None),  # 'bob' of carl is deleted, Bob is live
]


def _green_args(args: tuple) -> tuple:
    email, name, age, status, active, code, kind, score, deleted_at = args
    return (email, name, age, status, bool(active), code, kind, score, deleted_at)


@pytest.mark.parametrize("candidate", CANDIDATES, ids=[f"{c[0]}-{c[1]}" for c in CANDIDATES])
def test_green_accepts_and_refuses_what_blue_does(copied, candidate: tuple) -> None:
    path, pg_url, _report = copied
    blue = _accepts_sqlite(path, USER_INSERT, candidate)
    green = _accepts_pg(pg_url, USER_INSERT, _green_args(candidate))
    assert blue == green, f"blue {'accepts' if blue else 'refuses'} {candidate}, green does not"


def test_the_candidates_cover_both_outcomes(copied) -> None:
    path, _pg_url, _report = copied
    outcomes = [_accepts_sqlite(path, USER_INSERT, c) for c in CANDIDATES]
    assert 4 <= sum(outcomes) <= len(outcomes) - 8


def test_nocase_unique_refuses_the_case_twin_on_green(copied) -> None:
    path, pg_url, report = copied
    twin = "INSERT INTO tags (user_id, tag) VALUES (?, ?)"
    assert not _accepts_sqlite(path, twin, (1, "RED")) and not _accepts_pg(pg_url, twin, (1, "RED"))
    assert _accepts_sqlite(path, twin, (2, "BLUE")) and _accepts_pg(pg_url, twin, (2, "BLUE"))
    with psycopg.connect(pg_url) as pg, pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute("UPDATE users SET email = 'BOB@X.COM' WHERE id = 1")
    assert any('"users_email_nocase_key"' in n for n in report.notes)


def test_expression_and_partial_indexes_exist_and_are_used(copied) -> None:
    _path, pg_url, _report = copied
    with psycopg.connect(pg_url) as pg:
        defs = dict(
            pg.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall()
        )
        pg.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in pg.execute("EXPLAIN SELECT id FROM users WHERE lower(email) = 'ann@x.com'").fetchall()
        )
    assert (
        "WHERE (deleted_at IS NULL)" in defs["users_name_live"]
        and "translate(name" in defs["users_name_live"]
    )
    assert "lower(email)" in defs["users_lower_email"]  # non-unique: PostgreSQL's lower(), as the app queries
    assert "WHERE active" in defs["users_active"]
    assert "users_lower_email" in plan


def test_views_answer_the_same_on_both_sides(copied) -> None:
    path, pg_url, report = copied
    conn = sqlite3.connect(path)
    with psycopg.connect(pg_url) as pg:
        for view in ("live_users", "tag_counts", "over_view"):
            blue = sorted(conn.execute(f"SELECT * FROM {view}").fetchall(), key=repr)
            green = sorted((tuple(r) for r in pg.execute(f"SELECT * FROM {view}").fetchall()), key=repr)
            assert [tuple(_plain(v) for v in r) for r in green] == blue, view
    conn.close()
    assert any(n == 'carried: view "over_view"' for n in report.notes)
    assert any(
        w.startswith('view "years" not carried: function') and "strftime" in w for w in report.warnings
    )


def _plain(value: Any) -> Any:
    from decimal import Decimal

    return int(value) if isinstance(value, Decimal) and value == int(value) else value


def test_what_does_not_translate_is_named_and_the_rest_is_copied(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE ev (id INTEGER PRIMARY KEY, at TEXT CHECK (datetime(at) IS NOT NULL),
                         n INTEGER CHECK (length(n) < 5), t TEXT CHECK (t <> printf('%d', 1)),
                         s TEXT COLLATE RTRIM UNIQUE);
        CREATE INDEX ev_year ON ev (strftime('%Y', at));
        INSERT INTO ev VALUES (1, '2024-01-01 10:00:00', 12, 'x', 'a');
        """
    )
    conn.commit()
    conn.close()
    report = copy_database(str(path), pg_url)
    warnings = "\n".join(report.warnings)
    assert 'CHECK constraint on table "ev" not carried: function' in warnings  # datetime()
    assert "printf" in warnings.lower()
    assert 'CHECK constraint on table "ev" (length(n) < 5) not carried: PostgreSQL refused' in warnings
    assert 'index "ev_year" on table "ev" not carried' in warnings
    assert "RTRIM" in warnings
    assert_copied_exactly(str(path), pg_url)


def test_sync_copy_prints_no_library_warning(tmp_path: Path, pg_url: str) -> None:
    path = _source(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "import sys; from cockpit.cli.main import main; sys.exit(main())",
            "sync",
            "copy",
            "--from",
            str(path),
            "--to",
            pg_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr and "sqlalchemy" not in out.stderr.lower()
    assert 'view "years" not carried' in out.stdout


# ------------------------------------------------------------------------------- LIKE and GLOB, both engines

ALPHABET = ["a", "A", "b", "é", "É", "%", "_", "*", "?", "[", "]", "^", "-", "\\", ".", "$", "(", "x", "\n"]


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, n)))


def _random_glob(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.2:
            parts.append("*")
        elif kind < 0.35:
            parts.append("?")
        elif kind < 0.55:
            body = "".join(
                rng.choice(["a", "b", "A", "é", "-", "]", "^", "x", "\\", "."])
                for _ in range(rng.randint(1, 3))
            )
            parts.append("[" + body + "]")
        else:
            parts.append(rng.choice([c for c in ALPHABET if c not in "*?["]))
    return "".join(parts)


def test_like_and_glob_mean_the_same_on_both_engines(pg_url: str) -> None:
    """Random patterns and texts: SQLite's LIKE and GLOB against their translations, evaluated by PostgreSQL."""
    rng = random.Random(8)
    mem = sqlite3.connect(":memory:")
    cols = {"v": K.Col("v", "text")}
    cases = []
    for _ in range(400):
        text = _random_text(rng, 5)
        like = _random_text(rng, 4)
        glob = _random_glob(rng)
        for op, pattern in (("LIKE", like), ("GLOB", glob)):
            literal = "'" + pattern.replace("'", "''") + "'"
            try:
                translated = K.translate_check(None, f"v {op} {literal}", cols).sql
            except K.Untranslatable:
                continue
            blue = mem.execute(f"SELECT ? {op} {literal}", (text,)).fetchone()[0]
            cases.append((text, pattern, op, translated, blue))
    assert len(cases) > 600
    with psycopg.connect(pg_url) as pg:
        for text, pattern, op, translated, blue in cases:
            query = sql.SQL("SELECT {} FROM (SELECT %s::text AS v) s").format(
                sql.SQL(translated.replace("%", "%%"))
            )
            green = pg.execute(query, (text,)).fetchone()[0]
            assert bool(green) == bool(blue), f"{text!r} {op} {pattern!r}: SQLite {blue}, PostgreSQL {green}"


def test_the_create_table_reader_finds_collations_and_checks() -> None:
    tdef = K.parse_table(
        'CREATE TABLE [t x] ("a b" INTEGER CONSTRAINT pos CHECK (a > 0) /* c, CHECK (no) */, '
        "b text nocase, c TEXT COLLATE NOCASE, -- CHECK (no)\n"
        "CONSTRAINT tc CHECK (a < 100 OR c IN ('x,y', ')')), d BOOLEAN CHECK (d IN (0,1)))"
    )
    assert tdef.collations == {"c": "NOCASE"}  # `text nocase` is a type name, not a collation
    assert tdef.checks == [("pos", "a > 0"), ("tc", "a < 100 OR c IN ('x,y', ')')"), (None, "d IN (0,1)")]


def test_a_nocase_text_primary_key_and_a_two_column_unique_refuse_case_twins(
    tmp_path: Path, pg_url: str
) -> None:
    path = tmp_path / "keys.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE accounts (login TEXT PRIMARY KEY COLLATE NOCASE, org TEXT COLLATE NOCASE, n INTEGER,
                               UNIQUE (org, n));
        INSERT INTO accounts VALUES ('Ann', 'ACME', 1), ('Éva', 'acme', 2);
        """
    )
    conn.commit()
    conn.close()
    copy_database(str(path), pg_url)
    insert = "INSERT INTO accounts VALUES (?, ?, ?)"
    for row, accepted in [
        (("ANN", "x", 1), False),  # the key's case twin
        (("éva", "y", 1), True),  # non-ASCII case differs in SQLite's NOCASE too
        (("Bob", "Acme", 1), False),  # (org, n) twin of ('ACME', 1)
        (("Bob", "Acme", 3), True),
    ]:
        assert _accepts_sqlite(path, insert, row) is accepted, row
        assert _accepts_pg(pg_url, insert, row) is accepted, row
