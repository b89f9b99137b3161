"""The initial copy on a generated database holding every pitfall, against the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from cockpit.drivers.sync import capture, chunk_check
from cockpit.drivers.sync import copy as copy_module
from cockpit.drivers.sync.copy import CopyError, CopyProgress, copy_database
from cockpit.drivers.sync.schema import SchemaRefused, TimestampPolicy, read_mapping
from tests.sync.test_copy_support import assert_copied_exactly, make_pitfalls


@pytest.fixture
def pitfalls(tmp_path: Path) -> str:
    path = str(tmp_path / "pitfalls.db")
    make_pitfalls(path)
    return path


def _columns(pg: psycopg.Connection, table: str) -> dict[str, tuple[str, str | None, str]]:
    rows = pg.execute(
        "SELECT column_name, data_type, column_default, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _public_tables(pg_url: str) -> list[str]:
    with psycopg.connect(pg_url) as pg:
        return [
            r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        ]


def test_every_pitfall_is_copied_exactly(pitfalls: str, pg_url: str) -> None:
    seen: list[CopyProgress] = []
    report = copy_database(pitfalls, pg_url, jobs=2, progress=seen.append)
    assert report.rows == 4 + 3 + 3 + 3 + 4
    assert_copied_exactly(pitfalls, pg_url)
    final = {p.table: p for p in seen}
    assert final["user"].rows_done == final["user"].rows_total == 4
    assert all(p.eta_s == 0 for p in final.values())


def test_types_defaults_and_names(pitfalls: str, pg_url: str) -> None:
    copy_database(pitfalls, pg_url)
    with psycopg.connect(pg_url) as pg:
        user = _columns(pg, "user")
        events = _columns(pg, "events")
        mixed = _columns(pg, "Mixed Table")
    assert user["id"][0] == "bigint"
    assert user["references"][0] == "text" and user["references"][2] == "NO"
    assert user["select"][1] == "'abc'::text"
    assert user["MixedCase"] == ("bigint", "42", "YES")
    assert user["active"] == ("boolean", "false", "NO")
    assert user["flag"][0] == "boolean"
    assert user["created"][0] == "timestamp without time zone"
    assert "now()" in user["created"][1] and "utc" in user["created"][1]
    assert "milliseconds" in user["ms"][1]
    assert user["born"][0] == "date"
    assert user["score"] == ("double precision", "1.5", "YES")
    assert user["price"][0] == "numeric"
    assert user["data"][0] == "bytea"
    assert events["seen_iso_tz"][0] == "timestamp with time zone"
    assert events["seen_py"][0] == "timestamp without time zone"
    assert events["seen_julian"][0] == "timestamp with time zone"
    assert events["seen_epoch"][0] == "timestamp with time zone"
    assert set(mixed) == {"Id", "Name", "owner"}


def test_values_read_back_in_postgresql_form(pitfalls: str, pg_url: str) -> None:
    copy_database(pitfalls, pg_url)
    with psycopg.connect(pg_url) as pg:
        row = pg.execute(
            'SELECT "references", active, flag, created, born, score, price, data FROM "user" WHERE id = 1'
        ).fetchone()
        ev = pg.execute(
            "SELECT seen_iso_tz, seen_julian, seen_epoch, seen_epoch_ms FROM events WHERE seen_epoch = "
            "'2024-01-02 03:04:05+00'"
        ).fetchone()
        precision = pg.execute(
            "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_name = 'user' AND column_name = 'price'"
        ).fetchone()
    assert row[0] == "tab\there"
    assert row[1] is True and row[2] is True
    assert row[3] == dt.datetime(2024, 1, 31, 10, 20, 30)
    assert row[4] == dt.date(1999, 12, 31)
    assert row[5] == 0.1 + 0.2
    assert str(row[6]) == "1.98"
    assert bytes(row[7]) == bytes(range(256))
    assert precision == (10, 2)
    utc = dt.UTC
    assert ev[0] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)
    assert abs(ev[1] - dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)) < dt.timedelta(milliseconds=1)
    assert ev[3] == dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=utc)


def test_identity_continues_after_the_highest_key_and_sqlite_sequence(pitfalls: str, pg_url: str) -> None:
    copy_database(pitfalls, pg_url)
    with psycopg.connect(pg_url) as pg:
        (user_id,) = pg.execute(
            'INSERT INTO "user" ("references") VALUES (%s) RETURNING id', ("n",)
        ).fetchone()
        (order_id,) = pg.execute("INSERT INTO orders (code) VALUES ('Z') RETURNING id").fetchone()
        row = pg.execute(
            'SELECT active, "select", "MixedCase", score, created FROM "user" WHERE id = %s', (user_id,)
        ).fetchone()
    assert user_id == 10  # 9 was handed out by AUTOINCREMENT and deleted: never reused
    assert order_id == 5
    assert row[:4] == (False, "abc", 42, 1.5)
    assert abs(row[4] - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=1)


def test_keys_and_indexes_are_built_after_the_data(pitfalls: str, pg_url: str) -> None:
    copy_database(pitfalls, pg_url)
    with psycopg.connect(pg_url) as pg:
        indexes = {r[0] for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        pk = pg.execute(
            "SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'pairs'::regclass "
            "AND i.indisprimary"
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation):
            pg.execute("INSERT INTO orders (code) VALUES ('A1')")
    assert {"Orders_Code", "orders_user"} <= indexes
    assert sorted(pk) == ["a", "b"]


def test_orphan_foreign_keys_are_reported_and_left_not_valid(pitfalls: str, pg_url: str) -> None:
    report = copy_database(pitfalls, pg_url)
    assert len(report.not_valid) == 1
    issue = report.not_valid[0]
    assert (issue.table, issue.references, issue.orphans) == ("orders", "user", 2)
    assert "key id=2 -> missing id=77" in issue.examples
    assert "NOT VALID" in report.summary() and "id=88" in report.summary()
    assert report.as_dict()["not_valid"][0]["orphans"] == 2
    with psycopg.connect(pg_url) as pg:
        state = dict(
            pg.execute(
                "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                "AND connamespace = 'public'::regnamespace"
            ).fetchall()
        )
    assert state["orders_user_id_fkey"] is False
    assert state["Mixed Table_owner_fkey"] is True


def test_problems_are_all_refused_before_any_write(tmp_path: Path, pg_url: str) -> None:
    path = str(tmp_path / "bad.db")
    long_a = "t" * 63 + "_one"
    long_b = "t" * 63 + "_two"
    conn = sqlite3.connect(path)
    conn.executescript(
        f"""
        CREATE TABLE fine (id INTEGER PRIMARY KEY, v TEXT);
        INSERT INTO fine VALUES (1, 'ok');
        CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, name TEXT, note TEXT, at DATETIME, ok BOOLEAN);
        INSERT INTO items VALUES (1, 5, 'a', 'x', '2024-01-01 00:00:00', 1);
        INSERT INTO items VALUES (2, 'many', CAST(X'61FF62' AS TEXT), 'y', '2024-01-02 00:00:00', 0);
        INSERT INTO items VALUES (3, 7, 'c', CAST(X'610062' AS TEXT), '01/03/2024', 2);
        CREATE TABLE "{long_a}" (id INTEGER PRIMARY KEY);
        CREATE TABLE "{long_b}" (id INTEGER PRIMARY KEY);
        """
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaRefused) as err:
        copy_database(path, pg_url)
    problems = err.value.problems
    text = "\n".join(problems)
    assert len(problems) == 6, text
    assert 'table "items", column "qty"' in text and "key id=2: text 'many'" in text
    assert 'column "name"' in text and "b'a\\xffb' (not UTF-8)" in text
    assert 'column "note"' in text and "key id=3" in text and "(holds NUL)" in text
    assert 'column "at"' in text and "'01/03/2024'" in text
    assert 'column "ok"' in text and "key id=3: integer 2" in text
    assert long_a in text and long_b in text and "collide" in text
    assert _public_tables(pg_url) == []


def test_existing_target_table_is_refused_and_nothing_is_touched(pitfalls: str, pg_url: str) -> None:
    with psycopg.connect(pg_url) as pg:
        pg.execute("CREATE TABLE orders (x int)")
        pg.execute("INSERT INTO orders VALUES (42)")
    with pytest.raises(CopyError, match="already in schema 'public'.*orders"):
        copy_database(pitfalls, pg_url)
    assert _public_tables(pg_url) == ["orders"]
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT x FROM orders").fetchall() == [(42,)]


def test_failure_during_the_load_drops_what_was_created(pitfalls: str, pg_url: str) -> None:
    def explode(p: CopyProgress) -> None:
        if p.table == "user":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        copy_database(pitfalls, pg_url, jobs=1, progress=explode)
    assert _public_tables(pg_url) == []


def test_other_schema_and_subset_of_tables(pitfalls: str, pg_url: str) -> None:
    report = copy_database(pitfalls, pg_url, tables=["pairs", "Mixed Table"], schema="app")
    assert sorted(t.name for t in report.tables) == ["Mixed Table", "pairs"]
    assert any('refers to "user", which is not copied' in w for w in report.warnings)
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT count(*) FROM app.pairs").fetchone()[0] == 3
    assert _public_tables(pg_url) == []


def test_mapping_converts_values_written_on_postgresql_back_to_the_sqlite_form(
    pitfalls: str, pg_url: str
) -> None:
    copy_database(pitfalls, pg_url)
    mapping = read_mapping(sqlite3.connect(pitfalls))
    user = mapping["user"]
    with psycopg.connect(pg_url) as pg:
        pg.execute("""INSERT INTO "user" (id, "references", flag, stamp, ms, born, data)
                      VALUES (20, 'g', false, '2024-05-05 05:05:05.250001', '2024-05-05 05:05:05',
                      '2024-05-05', '\\x0102')""")
        row = pg.execute(
            'SELECT active, flag, stamp, ms, born, data, created FROM "user" WHERE id = 20'
        ).fetchone()
    names = ["active", "flag", "stamp", "ms", "born", "data", "created"]
    back = {n: user.column(n).to_sqlite(v) for n, v in zip(names, row, strict=True)}
    assert back["active"] == 0 and back["flag"] == "false"
    assert back["stamp"] == "2024-05-05 05:05:05.250001"  # the seconds form is lengthened, not truncated
    assert back["ms"] == "2024-05-05 05:05:05.000"
    assert back["born"] == "2024-05-05" and back["data"] == b"\x01\x02"
    assert len(back["created"]) == 19  # the default gives what SQLite's datetime('now') gives
    assert user.primary_key == ("id",)
    assert mapping["pairs"].primary_key == ("a", "b")
    assert mapping["events"].primary_key == ()


@pytest.mark.parametrize("readers", [1, 3])
def test_copy_while_the_app_writes_records_the_change_log_position(
    pitfalls: str, pg_url: str, readers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        copy_module, "_readers", lambda jobs: readers
    )  # 3: snapshots pinned under the write lock
    setup = sqlite3.connect(pitfalls)
    capture.install_sqlite(setup, ["orders"])
    setup.close()
    stop = threading.Event()
    written: list[int] = []

    def app() -> None:
        conn = sqlite3.connect(pitfalls, timeout=10)
        next_id = 1000
        while not stop.is_set() or len(written) < 200:
            conn.execute(
                "INSERT INTO orders (id, user_id, code) VALUES (?, NULL, ?)", (next_id, f"c{next_id}")
            )
            conn.commit()
            written.append(next_id)
            next_id += 1
        conn.close()

    writer = threading.Thread(target=app)
    writer.start()
    try:
        while len(written) < 50:
            writer.join(0.01)
        report = copy_database(pitfalls, pg_url, tables=["orders", "user"])
    finally:
        stop.set()
        writer.join()
    conn = sqlite3.connect(pitfalls)
    after = conn.execute(
        "SELECT count(*) FROM _cockpit_changes WHERE tbl = 'orders' AND seq > ?", (report.sqlite_position,)
    ).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    with psycopg.connect(pg_url) as pg:
        copied = pg.execute("SELECT count(*) FROM orders").fetchone()[0]
        recorded = pg.execute(
            "SELECT position FROM cockpit.positions WHERE direction = %s", (capture.BLUE_TO_GREEN,)
        ).fetchone()
    assert report.sqlite_position > 0
    assert copied + after == total, "the copy holds exactly the changes up to its position"
    assert recorded == (report.sqlite_position,)
    assert not any(t.name.startswith("_cockpit") for t in report.tables)


@pytest.mark.parametrize("jobs", [1, 4])
def test_large_table_in_chunks_with_any_number_of_jobs(
    tmp_path: Path, pg_url: str, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_module, "SPLIT_ROWS", 4000)  # big is read in rowid ranges by several writers
    monkeypatch.setattr(copy_module, "_readers", lambda jobs: jobs)  # as on a machine with many CPUs
    path = str(tmp_path / "big.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, r REAL, t TEXT, at DATETIME)")
    conn.execute("CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany(
        "INSERT INTO big VALUES (?, ?, ?, ?)",
        ((i, i / 7.0, f"row {i}\t{i % 13}", f"2024-01-01 00:{i % 60:02d}:00") for i in range(1, 20001)),
    )
    conn.executemany("INSERT INTO small VALUES (?, ?)", ((i, str(i)) for i in range(10)))
    conn.commit()
    conn.close()
    seen: list[CopyProgress] = []
    report = copy_database(path, pg_url, jobs=jobs, progress=seen.append, chunk_rows=1000)
    assert report.rows == 20010
    big = [p.rows_done for p in seen if p.table == "big"]
    assert big == sorted(big) and big[-1] == 20000 and len(big) == 21  # every chunk, then the end once
    assert [p.rows_total for p in seen if p.table == "big"][-1] == 20000
    assert_copied_exactly(path, pg_url)


def test_values_beyond_the_sample_replan_or_refuse_without_writing(tmp_path: Path, pg_url: str) -> None:
    path = str(tmp_path / "late.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE late (id INTEGER PRIMARY KEY, amount NUMERIC, at DATETIME)")
    conn.executemany(
        "INSERT INTO late VALUES (?, ?, ?)", ((i, i, "2024-01-01 00:00:00") for i in range(1, 5001))
    )
    conn.execute("UPDATE late SET amount = 2.5, at = '2024-01-01 00:00:00.500000' WHERE id = 4000")
    conn.commit()
    report = copy_database(path, pg_url)  # the sample says bigint; the full read says numeric
    with psycopg.connect(pg_url) as pg:
        kind = pg.execute(
            "SELECT data_type FROM information_schema.columns WHERE column_name = 'amount'"
        ).fetchone()
    assert kind == ("numeric",) and report.rows == 5000
    assert_copied_exactly(path, pg_url)

    with psycopg.connect(pg_url) as pg:
        pg.execute("DROP TABLE late")
    conn.execute("UPDATE late SET amount = 'n/a' WHERE id = 4500")
    conn.commit()
    conn.close()
    for sample_rows in (2000, None):  # found during the load (tables dropped), or before any write
        with pytest.raises(SchemaRefused) as err:
            copy_database(path, pg_url, sample_rows=sample_rows)
        assert "key id=4500: text 'n/a'" in str(err.value)
        assert _public_tables(pg_url) == []


def test_a_busy_write_lock_makes_the_copy_read_through_one_connection(
    pitfalls: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_module, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(copy_module, "_readers", lambda jobs: jobs)
    app = sqlite3.connect(pitfalls, isolation_level=None)
    app.execute("PRAGMA journal_mode = WAL")
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO orders (id, code) VALUES (500, 'uncommitted')")
    try:
        report = copy_database(pitfalls, pg_url, jobs=3)
    finally:
        app.execute("ROLLBACK")
        app.close()
    assert any("read through one connection" in w for w in report.warnings)
    assert_copied_exactly(pitfalls, pg_url)


def test_a_missing_or_broken_source_is_a_clear_error_and_creates_nothing(tmp_path: Path, pg_url: str) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(CopyError, match="cannot open the SQLite database"):
        copy_database(str(missing), pg_url)
    assert not missing.exists()
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CopyError, match="cannot open the SQLite database"):
        copy_database(str(broken), pg_url)


def test_no_tables_is_an_empty_copy(pitfalls: str, pg_url: str) -> None:
    report = copy_database(pitfalls, pg_url, tables=[])
    assert report.rows == 0 and report.tables == []
    assert "copied 0 rows in 0 tables" in report.summary()


def test_a_wide_table(tmp_path: Path, pg_url: str) -> None:
    path = str(tmp_path / "wide.db")
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE wide (id INTEGER PRIMARY KEY, " + ", ".join(f"c{i} TEXT" for i in range(130)) + ")"
    )
    conn.execute(
        "INSERT INTO wide VALUES (1, " + ", ".join("?" for _ in range(130)) + ")",
        [f"v{i}\t" for i in range(130)],
    )
    conn.commit()
    conn.close()
    copy_database(path, pg_url)
    assert_copied_exactly(path, pg_url)


def test_text_beyond_the_sample_that_is_not_utf8_or_holds_nul_is_refused(tmp_path: Path, pg_url: str) -> None:
    path = str(tmp_path / "late_text.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", ((i, f"note {i}") for i in range(1, 3001)))
    conn.execute("UPDATE notes SET body = CAST(X'6100620063' AS TEXT) WHERE id = 2500")
    conn.execute("UPDATE notes SET body = CAST(X'61E962' AS TEXT) WHERE id = 2700")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaRefused) as err:
        copy_database(path, pg_url, sample_rows=100)
    text = str(err.value)
    assert "key id=2500" in text and "(holds NUL)" in text
    assert "key id=2700" in text and "(not UTF-8)" in text
    assert _public_tables(pg_url) == []


def test_doubles_that_sqlite_prints_wrongly_arrive_exactly(tmp_path: Path, pg_url: str) -> None:
    """SQLite's 15-digit CAST passes its own round-trip check for these, yet PostgreSQL reads them differently."""
    import math
    import random

    rng = random.Random(3)
    values = [
        -3.4520983990612703e-299,
        -8.491953139073969e-301,
        9.119244669364399e-297,
        0.1 + 0.2,
        1 / 3,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        -0.0,
        math.inf,
        -math.inf,
    ]
    values += [rng.random() * 10 ** rng.randint(-308, 300) * rng.choice((1, -1)) for _ in range(5000)]
    db = tmp_path / "reals.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, x REAL)")
        conn.executemany("INSERT INTO r (x) VALUES (?)", [(v,) for v in values])
        stored = [row[0] for row in conn.execute("SELECT x FROM r ORDER BY id")]  # SQLite keeps no -0.0
    copy_database(str(db), pg_url, jobs=2)
    with psycopg.connect(pg_url) as pg:
        got = [row[0] for row in pg.execute("SELECT x FROM r ORDER BY id")]
    assert [v.hex() for v in got] == [v.hex() for v in stored]  # bit for bit


def _old_iso_check(c: str, precision: str, sep: str) -> str:
    """The checks `_sql_iso_check` made before datetime() + GLOB replaced strftime() (the reference semantics),
    with the '+0 days' modifier that makes SQLite normalise impossible dates such as 2023-02-29."""
    if precision == "micro":
        head = f"substr({c}, 1, 19)"
        return (
            f"length({c}) = 26 AND strftime('%Y-%m-%d{sep}%H:%M:%S', {head}, '+0 days') IS {head} COLLATE BINARY "
            f"AND substr({c}, 20, 1) = '.' AND substr({c}, 21) GLOB '[0-9][0-9][0-9][0-9][0-9][0-9]'"
        )
    return f"strftime('%Y-%m-%d{sep}%H:%M:%f', {c}, '+0 days') IS {c} COLLATE BINARY"


@pytest.mark.parametrize(
    ("precision", "sep"), [("milli", " "), ("milli", "T"), ("micro", " "), ("micro", "T")]
)
def test_the_fraction_date_checks_accept_exactly_what_strftime_accepted(precision: str, sep: str) -> None:
    import random

    from cockpit.drivers.sync import values as V
    from cockpit.drivers.sync.schema import _sql_iso_check

    rng = random.Random(f"{precision}{sep}")
    digits = 3 if precision == "milli" else 6
    good = [
        f"2024-01-01{sep}10:00:59.{'9' * digits}",
        f"2024-02-29{sep}23:59:59.{'0' * digits}",
        f"0001-01-01{sep}00:00:00.{'1' * digits}",
        f"9999-12-31{sep}23:59:59.{'5' * digits}",
    ]
    for _ in range(300):
        good.append(
            f"{rng.randint(1, 9999):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}{sep}"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
            + "".join(rng.choice("0123456789") for _ in range(digits))
        )
    texts = list(good)
    texts += [
        f"2023-02-29{sep}10:00:00.{'1' * digits}",
        f"2024-01-01{sep}24:00:00.{'0' * digits}",
        f"2024-01-01{sep}10:00:60.{'0' * digits}",
        f"2024-01-01{sep}10:00:00.{'1' * (digits - 1)}",
        f"2024-01-01{sep}10:00:00.{'1' * (digits + 1)}",
        f"2024-01-01{sep}10:00:00.{'1' * (digits - 1)}Z",
        f"2024-01-01{sep}10:00:00.{'1' * (digits - 2)} Z",
        f"2024-01-01{sep}10:00:00,{'1' * digits}",
        f" 2024-01-01{sep}10:00:00.{'1' * (digits - 1)}",
        f"2024-1-01{sep}10:00:00.{'1' * (digits + 1)}",
        f"2024-01-01{sep}10:00:00.{'1' * (digits - 1)}x",
        f"2024-01-01{sep}10:00:00.{'1' * (digits - 1)}\u00e9",
    ]
    texts += [t.replace(sep, "T" if sep == " " else " ", 1) for t in good[:20]]
    for text in good[:200]:  # one character changed, dropped or added, anywhere
        i = rng.randrange(len(text))
        ch = rng.choice("0123456789 -:.TZz+x")
        texts += [text[:i] + ch + text[i + 1 :], text[:i] + text[i + 1 :], text[:i] + ch + text[i:]]
    new = _sql_iso_check("x", V.IsoFormat(precision, sep))
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x TEXT COLLATE NOCASE)")
    conn.executemany("INSERT INTO t VALUES (?)", [(t,) for t in texts])
    rows = conn.execute(
        f"SELECT x, coalesce({new}, 0) <> 0, coalesce({_old_iso_check('x', precision, sep)}, 0) <> 0 FROM t"
    ).fetchall()
    assert [r for r in rows if r[1] != r[2]] == []
    accepted = {r[0] for r in rows if r[1]}
    assert set(good) <= accepted and len(accepted) < len(set(texts))
    assert f"2023-02-29{sep}10:00:00.{'1' * digits}" not in accepted


def test_a_date_text_beyond_the_sample_in_another_form_is_refused_without_writing(
    tmp_path: Path, pg_url: str
) -> None:
    path = str(tmp_path / "late_dates.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME)")
    conn.executemany(
        "INSERT INTO ev VALUES (?, ?)",
        ((i, f"2024-01-01 10:00:{i % 60:02d}.{i % 1000:03d}") for i in range(1, 4001)),
    )
    conn.execute("UPDATE ev SET at = '2024-01-01 10:00:00.12' WHERE id = 3000")
    conn.execute("UPDATE ev SET at = '2024-01-01T10:00:00.120' WHERE id = 3500")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaRefused) as err:  # '.12' is in none of the forms; 'T...120' is one (by meaning)
        copy_database(path, pg_url, sample_rows=100)
    assert "key id=3000" in str(err.value) and "key id=3500" not in str(err.value)
    with pytest.raises(SchemaRefused) as err:
        copy_database(path, pg_url, sample_rows=100, casts=[TimestampPolicy("strict")])
    assert "key id=3000" in str(err.value) and "key id=3500" in str(err.value)
    assert _public_tables(pg_url) == []


def test_a_key_build_failing_while_other_tables_load_drops_everything(
    pitfalls: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = copy_module._key_statements
    built: list[str] = []

    def statements(st, table, warnings):  # noqa: ANN001, ANN202 - the signature of the function it wraps
        out = real(st, table, warnings)
        built.append(st.name)
        return [*out, "CREATE INDEX broken ON no_such_table (x)"] if st.name == "orders" else out

    monkeypatch.setattr(copy_module, "_key_statements", statements)
    with pytest.raises(CopyError, match="no_such_table"):
        copy_database(pitfalls, pg_url)
    assert "orders" in built
    assert _public_tables(pg_url) == []


def test_an_impossible_date_is_refused_naming_its_key(tmp_path: Path, pg_url: str) -> None:
    """SQLite's date() hands '2023-02-29' back unchanged; the copy must still see it is no date."""
    db = tmp_path / "dates.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, day DATE, at DATETIME)")
        conn.executemany(
            "INSERT INTO ev VALUES (?, ?, ?)",
            [(i, f"2023-01-{i:02d}", f"2023-01-{i:02d} 10:00:00") for i in range(1, 29)],
        )
        conn.execute("INSERT INTO ev VALUES (29, '2023-02-29', '2023-01-29 10:00:00')")
        conn.execute("INSERT INTO ev VALUES (30, '2023-01-30', '2023-04-31 12:00:00')")
    with pytest.raises(SchemaRefused) as info:
        copy_database(str(db), pg_url, jobs=1)
    text = "\n".join(info.value.problems)
    assert "2023-02-29" in text and "id=29" in text and "2023-04-31 12:00:00" in text and "id=30" in text
    with psycopg.connect(pg_url) as pg:  # refused before any write
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'ev'").fetchone()[0] == 0


def test_text_that_needs_escaping_goes_through_the_exact_path_for_its_chunk_only(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path sends text unescaped; a chunk holding a backslash, tab, newline or carriage return (in
    either text column, first or last row of its chunk) is rendered again exactly, and every value arrives."""
    path = str(tmp_path / "escapes.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, a TEXT, n INTEGER, b TEXT)")
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?, ?, ?)",
        ((i, f"plain {i}", i, None if i % 7 else "") for i in range(1, 1001)),
    )
    specials = {
        100: ("a", "back\\slash"),
        101: ("b", "tab\there"),
        550: ("a", "new\nline"),
        1000: ("b", "cr\r"),
    }
    for key, (col, value) in specials.items():
        conn.execute(f"UPDATE notes SET {col} = ? WHERE id = ?", (value, key))
    conn.commit()
    conn.close()
    checked: list[bool] = []
    real = chunk_check.needs_escaping

    def spy(texts: tuple[bytes | None, ...]) -> bool:
        checked.append(real(texts))
        return checked[-1]

    monkeypatch.setattr(chunk_check, "needs_escaping", spy)
    report = copy_database(path, pg_url, chunk_rows=100)
    assert report.rows == 1000
    # chunks of 100 rows from id 1: 100 and 101 fall in two chunks, 550 in the sixth, 1000 in the tenth
    assert checked == [i in (0, 1, 5, 9) for i in range(10)]
    assert_copied_exactly(path, pg_url)
    with psycopg.connect(pg_url) as pg:
        got = dict(pg.execute("SELECT id, coalesce(a, '') || '|' || coalesce(b, '') FROM notes").fetchall())
    assert got[100] == "back\\slash|" and got[101] == "plain 101|tab\there"
    assert got[550] == "new\nline|" and got[1000] == "plain 1000|cr\r" and got[7] == "plain 7|"


def test_needs_escaping_sees_every_character_copy_text_escapes() -> None:
    assert not chunk_check.needs_escaping((b"plain", None, b"caf\xc3\xa9 ok"))
    for ch in (b"\\", b"\t", b"\n", b"\r", b"\0"):
        assert chunk_check.needs_escaping((b"ok", None, b"x" + ch + b"y"))


def test_text_holding_nul_beyond_the_sample_is_refused_not_cut(tmp_path: Path, pg_url: str) -> None:
    """printf() would cut the fast path's unescaped text at a NUL: the chunk check sees it, the exact path
    rejects it, and the copy is refused naming the row (nothing silently shortened)."""
    path = str(tmp_path / "nul.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", ((i, f"note {i}") for i in range(1, 3001)))
    conn.execute("UPDATE notes SET body = CAST(X'6100620063' AS TEXT) WHERE id = 2500")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaRefused) as err:
        copy_database(path, pg_url, sample_rows=100)
    assert "key id=2500" in str(err.value) and "(holds NUL)" in str(err.value)
    assert _public_tables(pg_url) == []
