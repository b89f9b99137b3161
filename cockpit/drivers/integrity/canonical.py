"""The one canonical text of a row, rendered three ways that must agree: by SQLite from blue's stored values, by
PostgreSQL from green's values (in SQL, brought to blue's forms as `ColumnMap.to_sqlite` brings them), and by
Python (`field_text`, the model both are tested against, and the rendering of a column PostgreSQL cannot render).

The canonical value is blue's stored value, as the sync and the row-level comparison see it: green's value is
equal when `to_sqlite(green) == blue`, storage class included. For a plan cast it is the value as carried,
`to_sqlite(to_pg(blue))` (a cast changes the stored class on purpose).

A field is a tag for the storage class (`i` integer, `r` real, `t` text, `b` blob, `n` NULL; `x` a blue value the
cast cannot carry) and a payload that cannot hold the field separator unescaped: decimal integers, a double's IEEE 754
bits in hex (PostgreSQL's `float8send`), text quoted as SQLite's `printf('%Q')` quotes it, a blob in lower-case
hex. Fields are joined by `,`, rows by a newline: the text of a
segment parses back into its rows, so equal texts mean equal rows. Green renders only the class each column's
`to_sqlite` gives, with its tag; a blue value of another class has another tag and never matches.

Blue renders a row with one `printf()` per row (one allocation, measured 2x cheaper than `||` over `quote()`);
reals and casts go through Python functions registered on blue's connection (SQLite has no way to a double's
bits, and its own float text is neither exact nor PostgreSQL's). Text holding a NUL character is
outside these forms (SQLite's printf stops at it; the copy and the sync refuse it).

Green renders each column by its PostgreSQL type and what its `to_sqlite` does, learnt from the converter's
documented behaviour: a boolean's spelling of true and false, an ISO column's `IsoFormat`, a number's epoch or Julian
scale. `verify` renders a set of probe values on green at the start of every check and compares them with Python's
rendering; a column whose rendering differs (an unknown converter, another server's settings) is compared from
streamed values instead ("rows for that column only").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import sql

from cockpit.drivers.sync.capture import qi
from cockpit.drivers.sync.schema import ColumnMap
from cockpit.drivers.sync.values import IsoFormat

# the session settings green's rendering relies on
GREEN_SETTINGS = (
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET jit = off",  # compiling the rendering costs ~0.3 s a query, more than it saves
)
NULL_TEXT = {"d": "n0", "Q": "nNULL", "b": "n", "v": "n"}  # what blue's printf gives for NULL, per format
PRINTF = {"d": "%.1s%d", "Q": "%.1s%Q", "b": "%.1s%s", "v": "%.1s%s"}
MAX_PRINTF_ARGS = 100  # SQLite's default limit on a function's arguments is 127 (100 before 3.45)
_DOUBLE = struct.Struct(">d").pack
TWO_52, TWO_63 = 4503599627370496.0, 9223372036854775808.0
_TAG = {int: "i", float: "r", str: "t", bytes: "b"}


def real_payload(x: float) -> str:
    """A double's payload, exact: `integer part:fraction x 2^52` for 1 <= |x| < 2^63 (both integers, computed
    exactly in double arithmetic by SQLite and PostgreSQL alike, no Python call on blue), else its IEEE 754 bits
    in hex, PostgreSQL's `float8send` (-0.0, tiny, huge and infinite values). Decimal texts would not do: SQLite's
    are not exact, and Python's and PostgreSQL's shortest forms differ where a candidate lies on the rounding
    boundary."""
    if 1.0 <= abs(x) < TWO_63:
        whole = int(x)
        return f"{whole}:{int((x - whole) * TWO_52)}"
    return _DOUBLE(x).hex()


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def payload(value: Any) -> str | None:
    """A value's payload by its storage class (the `v` format; None for NULL)."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        return real_payload(value)
    if kind is str:
        return quoted(value)
    if kind is bytes:
        return value.hex()
    return quoted(repr(value))  # nothing SQLite stores; never equal to a rendering of green's


def field_text(fmt: str, value: Any) -> str:
    """The canonical text of one SQLite value in a column of format `fmt`, as blue's printf renders it."""
    if value is None:
        return NULL_TEXT[fmt]
    return _TAG.get(type(value), "?") + (payload(value) or "")


def row_text(fmts: Sequence[str], row: Sequence[Any]) -> str:
    return ",".join(field_text(f, v) for f, v in zip(fmts, row, strict=True))


# ------------------------------------------------------------------------------------------------ columns


@dataclass(frozen=True)
class ColumnForm:
    """How one column is rendered on both sides.

    `fmt`: blue's printf format (`d` integers, `Q` text, `b` blobs, `v` through Python). `green`: the kind of
    PostgreSQL rendering (None: green cannot render it; its values are streamed and rendered by `field_text`).
    `cast`: blue's value is compared as carried, `to_sqlite(to_pg(v))`.
    """

    column: ColumnMap
    fmt: str
    green: str | None
    iso: IsoFormat | None = None
    pair: tuple[Any, Any] | None = None
    cast: bool = False

    @property
    def name(self) -> str:
        return self.column.name

    def canonical(self, value: Any) -> Any:
        """Blue's stored value as compared (for a cast: as carried; None when it cannot be carried)."""
        if not self.cast:
            return value
        try:
            return self.column.to_sqlite(self.column.to_pg(value))
        except (ValueError, OverflowError, ArithmeticError, UnicodeDecodeError):
            return _Uncarried(value)

    def blue_text(self, value: Any) -> str:
        """Python's rendering of a blue value (what blue's SQL gives)."""
        value = self.canonical(value)
        if isinstance(value, _Uncarried):
            return "x" + (payload(value.value) or "")
        return field_text(self.fmt, value)

    def green_text(self, value: Any) -> str:
        """Python's rendering of a green value (what green's SQL gives)."""
        return field_text(self.fmt, self.column.to_sqlite(value))


@dataclass(frozen=True)
class _Uncarried:
    value: Any


def column_form(cm: ColumnMap, cast: bool = False, in_sql: bool = True) -> ColumnForm:
    """The rendering of one column, chosen by its PostgreSQL type and what its `to_sqlite` gives back.

    A column holding one meaning in several texts (`cm.canonical`: ISO instants in mixed forms) is compared as
    carried, like a cast: blue's `to_sqlite(to_pg(v))` is its instant in the column's one form, which is the form
    green renders."""
    cast = cast or cm.canonical is not None
    pg = cm.pg_type
    form: ColumnForm
    if pg == "bigint":
        form = ColumnForm(cm, "d", "int")
    elif pg == "text":
        form = ColumnForm(cm, "Q", "text")
    elif pg == "double precision":
        form = ColumnForm(cm, "v", "float")
    elif pg.startswith("numeric"):
        form = ColumnForm(cm, "v", "numeric")
    elif pg == "bytea":
        form = ColumnForm(cm, "b", "bytea")
    elif pg == "boolean":
        form = _bool_form(cm)
    elif pg in ("date", "timestamp", "timestamptz"):
        form = _time_form(cm)
    else:
        form = ColumnForm(cm, "v", None)
    if cast:
        form = ColumnForm(cm, form.fmt, form.green, form.iso, form.pair, cast=True)
    if not in_sql:
        form = ColumnForm(cm, form.fmt, None, form.iso, form.pair, form.cast)
    return form


def _probe(f: Callable[[Any], Any], value: Any) -> Any:
    try:
        return f(value)
    except Exception:  # a converter that refuses the probe is one this module does not know
        return None


def _bool_form(cm: ColumnMap) -> ColumnForm:
    pair = (_probe(cm.to_sqlite, True), _probe(cm.to_sqlite, False))
    if all(type(v) is int for v in pair):
        return ColumnForm(cm, "d", "bool", pair=pair)
    if all(type(v) is str for v in pair):
        return ColumnForm(cm, "Q", "bool", pair=pair)
    return ColumnForm(cm, "v", None)


_EPOCH_PROBE = dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)


def _time_form(cm: ColumnMap) -> ColumnForm:
    fmt = getattr(cm.to_sqlite, "__self__", None)  # `IsoFormat.render`, bound to the column's format
    if isinstance(fmt, IsoFormat):
        return ColumnForm(cm, "Q", "iso", iso=fmt)
    if cm.pg_type == "timestamptz":
        one = _probe(cm.to_sqlite, _EPOCH_PROBE)
        if one == 1 and type(one) is int:
            return ColumnForm(cm, "v", "epoch_s")
        if one == 1000 and type(one) is int:
            return ColumnForm(cm, "v", "epoch_ms")
        if type(one) is float and abs(one - 2440587.5) < 1e-3:
            return ColumnForm(cm, "v", "julian")
    return ColumnForm(cm, "v", None)


# ------------------------------------------------------------------------------------------------ blue's SQL


def cast_function(index: int) -> str:
    return f"cockpit_cast_{index}"


def register_blue(conn: sqlite3.Connection, forms: Sequence[ColumnForm]) -> None:
    """The Python functions blue's rendering calls: reals' payload, a row's md5, one per cast column."""
    conn.create_function("cockpit_value", 1, payload, deterministic=True)
    conn.create_function(
        "cockpit_md5", 1, lambda b: None if b is None else hashlib.md5(b).hexdigest(), deterministic=True
    )
    for i, form in enumerate(forms):
        if form.cast:
            conn.create_function(cast_function(i), 1, form.blue_text, deterministic=True)


def blue_row_sql(forms: Sequence[ColumnForm]) -> str:
    """SQLite expression for a row's canonical text (Python functions from `register_blue`)."""
    pieces: list[tuple[str, list[str]]] = []
    for i, form in enumerate(forms):
        c = qi(form.name)
        if form.cast:
            pieces.append(("%s", [f"{cast_function(i)}({c})"]))
        elif form.fmt == "b":
            pieces.append((PRINTF["b"], [f"typeof({c})", f"lower(hex({c}))"]))
        elif form.fmt == "v":
            pieces.append((PRINTF["v"], [f"typeof({c})", _blue_value_sql(c)]))
        else:
            pieces.append((PRINTF[form.fmt], [f"typeof({c})", c]))
    calls: list[str] = []
    fmt: list[str] = []
    args: list[str] = []
    for f, a in pieces:
        if len(args) + len(a) > MAX_PRINTF_ARGS:
            calls.append(f"printf('{','.join(fmt)}', {', '.join(args)})")
            fmt, args = [], []
        fmt.append(f)
        args += a
    if fmt:
        calls.append(f"printf('{','.join(fmt)}', {', '.join(args)})")
    return " || ',' || ".join(calls) if calls else "''"


def _blue_value_sql(c: str) -> str:
    """`payload` in SQLite's SQL: integers and most reals in C, the rest through `cockpit_value`."""
    real = (
        f"CASE WHEN abs({c}) >= 1.0 AND abs({c}) < {TWO_63!r} "
        f"THEN printf('%d:%d', {c}, ({c} - CAST({c} AS INTEGER)) * {TWO_52!r}) ELSE cockpit_value({c}) END"
    )
    return f"CASE typeof({c}) WHEN 'integer' THEN {c} WHEN 'real' THEN {real} WHEN 'null' THEN NULL ELSE cockpit_value({c}) END"


# ------------------------------------------------------------------------------------------------ green's SQL


def green_prepared(form: ColumnForm, col: sql.Composable) -> sql.Composable:
    """The column as the inner query hands it to the rendering (times as text, converted once per row)."""
    if form.green == "iso" and form.iso is not None and form.column.pg_type != "date":
        if form.iso.suffix:
            zone = "+00:00" if form.iso.suffix == "Z" else form.iso.suffix
            return sql.SQL("({} AT TIME ZONE INTERVAL {})::text").format(col, sql.Literal(zone))
        return sql.SQL("{}::text").format(col)
    return col


def green_field_sql(form: ColumnForm, v: sql.Composable) -> sql.Composable:
    """PostgreSQL expression for one field's canonical text, from `green_prepared`'s value `v`."""
    assert form.green is not None
    null = sql.Literal(NULL_TEXT[form.fmt])
    return sql.SQL("coalesce({}, {})").format(_green_value_sql(form, v), null)


def _green_value_sql(form: ColumnForm, v: sql.Composable) -> sql.Composable:
    kind = form.green
    if kind == "int":
        return sql.SQL("'i' || {}").format(v)
    if kind == "text":
        return sql.SQL("'t''' || replace({}, '''', '''''') || ''''").format(v)
    if kind == "float":
        return sql.SQL("'r' || {}").format(_real_sql(v))
    if kind == "bytea":
        return sql.SQL("'b' || encode({}, 'hex')").format(v)
    if kind == "numeric":
        return _numeric_sql(v)
    if kind == "bool":
        assert form.pair is not None
        t, f = (sql.Literal(field_text(form.fmt, x)) for x in form.pair)
        return sql.SQL("CASE WHEN {} THEN {} WHEN NOT {} THEN {} END").format(v, t, v, f)
    if kind == "iso":
        assert form.iso is not None
        return sql.SQL("'t''' || {} || ''''").format(_iso_sql(form.iso, v, form.column.pg_type == "date"))
    if kind in ("epoch_s", "epoch_ms"):
        scale = sql.SQL(" * 1000" if kind == "epoch_ms" else "")
        e = sql.SQL("(extract(epoch FROM {}){})").format(v, scale)
        r = _real_sql(sql.SQL("{}::float8").format(e))
        return sql.SQL("CASE WHEN {e} = trunc({e}) THEN 'i' || trunc({e})::text ELSE 'r' || {r} END").format(
            e=e, r=r
        )
    if kind == "julian":
        # the exact Julian day is (us + 2440587.5 days in us) / us per day; 40 decimals, then one correct rounding
        us = sql.SQL("(extract(epoch FROM {}) * 1000000 + 210866760000000000)").format(v)
        day = sql.SQL("((div({} * 1e40, 86400000000))::text || 'e-40')::float8").format(us)
        return sql.SQL("'r' || {}").format(_real_sql(day))
    raise ValueError(f"no rendering for {kind!r}")


def _numeric_sql(v: sql.Composable) -> sql.Composable:
    """`numeric_to_sqlite`: an integer where the value is integral and fits 64 bits, else the nearest double."""
    return sql.SQL(
        "CASE WHEN {v} IS NULL THEN NULL WHEN {v} = 'NaN' THEN 'r' || {nan} "
        "WHEN {v} = 'Infinity' THEN 'r7ff0000000000000' WHEN {v} = '-Infinity' THEN 'rfff0000000000000' "
        "WHEN {v} = trunc({v}) AND {v} BETWEEN -9223372036854775808 AND 9223372036854775807 "
        "THEN 'i' || trunc({v})::text "
        # beyond doubles (PostgreSQL refuses what overflows or underflows to zero): compared in Python
        # (bounds rounded inwards: a value between them and the exact limits is compared in Python too)
        "WHEN abs({v}) >= 1.7976931348623158e308 OR ({v} <> 0 AND abs({v}) <= 2.4703282292062328e-324) "
        "THEN 'x' "
        "ELSE 'r' || {real} END"
    ).format(v=v, nan=sql.Literal(real_payload(math.nan)), real=_real_sql(sql.SQL("{}::float8").format(v)))


def _real_sql(x: sql.Composable) -> sql.Composable:
    """`real_payload` of a float8 expression."""
    return sql.SQL(
        "CASE WHEN abs({x}) >= 1 AND abs({x}) < '9223372036854775808'::float8 "
        "THEN trunc({x})::bigint || ':' || (({x} - trunc({x})) * '4503599627370496'::float8)::bigint "
        "ELSE encode(float8send({x}), 'hex') END"
    ).format(x=x)


def _iso_sql(fmt: IsoFormat, t: sql.Composable, is_date: bool) -> sql.Composable:
    """`IsoFormat.render` of a timestamp whose ISO text (`DateStyle = ISO`: fraction without trailing zeros) is
    `t`: the column's precision, lengthened to what the value needs; its separator; its zone suffix."""
    if is_date:
        return t
    ranks = ["date", "minute", "second", "milli", "micro"]
    forms = {
        "date": sql.SQL("left({}, 10)").format(t),
        "minute": sql.SQL("left({}, 16)").format(t),
        "second": sql.SQL("left({}, 19)").format(t),
        "milli": sql.SQL("rpad(CASE WHEN length({t}) = 19 THEN {t} || '.' ELSE {t} END, 23, '0')").format(
            t=t
        ),
        "micro": sql.SQL("rpad(CASE WHEN length({t}) = 19 THEN {t} || '.' ELSE {t} END, 26, '0')").format(
            t=t
        ),
    }
    needs = [  # what the value needs, most first (the text is 19 characters when there is no fraction)
        ("micro", sql.SQL("length({}) > 23").format(t)),
        ("milli", sql.SQL("length({}) > 19").format(t)),
        ("second", sql.SQL("substr({}, 18, 2) <> '00'").format(t)),
        ("minute", sql.SQL("substr({}, 12, 5) <> '00:00'").format(t)),
        ("date", sql.SQL("true")),
    ]

    def chosen(need: str) -> str:
        if fmt.precision == "auto6":
            return "micro" if need in ("micro", "milli") else "second"
        return max(need, fmt.precision, key=ranks.index)

    def spelt(form: str, need: str) -> sql.Composable:
        text = (
            t if form == "second" and need in ("second", "minute", "date") else forms[form]
        )  # 19 characters
        if form == "date" or fmt.sep == " ":
            return text
        return sql.SQL("overlay({} PLACING {} FROM 11 FOR 1)").format(text, sql.Literal(fmt.sep))

    # one branch per distinct result, the last one as ELSE (the common case costs one or two tests)
    branches: list[tuple[sql.Composable, str, str]] = []
    for need, cond in needs:
        if branches and branches[-1][1] == chosen(need):
            continue
        branches.append((cond, chosen(need), need))
    out = spelt(branches[-1][1], branches[-1][2])
    if len(branches) > 1:
        out = sql.SQL("CASE {} ELSE {} END").format(
            sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(c, spelt(f, n)) for c, f, n in branches[:-1]),
            out,
        )
    if fmt.suffix:
        out = sql.SQL("{} || {}").format(out, sql.Literal(fmt.suffix))
    return out


# ------------------------------------------------------------------------------------------------ probes


def probes(form: ColumnForm) -> list[Any]:
    """Green values that exercise a column's rendering (each must be one its `to_sqlite` accepts)."""
    kind = form.green
    if kind == "int":
        return [0, 1, -1, 2**63 - 1, -(2**63), 1234567890123]
    if kind == "text":
        return ["", "a", "it's", "'", "a,b\nc", "ção 日本 🎉", "NULL"]
    if kind == "float":
        return [0.0, -0.0, 1.0, -2.5, 0.1, 1e15, 1234567890123456.7, 1e16, 1e-5, 5e-324, 1.7976931348623157e308,
                float("nan"), float("inf"), float("-inf"), 0.30000000000000004]  # fmt: skip
    if kind == "numeric":
        return [Decimal(0), Decimal("5.00"), Decimal("-3"), Decimal("0.1"), Decimal("2448.92"),
                Decimal("9223372036854775807"), Decimal("9223372036854775808"), Decimal("1e20"),
                Decimal("123456789.123456789123")]  # fmt: skip
    if kind == "bytea":
        return [b"", b"\x00\xff", b"abc"]
    if kind == "bool":
        return [True, False]
    if kind == "iso" and form.iso is not None:
        if form.column.pg_type == "date":
            return [dt.date(2020, 1, 2), dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(999, 3, 4)]
        tz = form.iso.zone()
        base = [
            dt.datetime(2020, 1, 2),
            dt.datetime(2020, 1, 2, 3, 4),
            dt.datetime(2020, 1, 2, 3, 4, 5),
            dt.datetime(2020, 1, 2, 3, 4, 5, 120000),
            dt.datetime(2020, 1, 2, 3, 4, 5, 123400),
            dt.datetime(2020, 1, 2, 0, 0, 0, 1),
            dt.datetime(999, 12, 31, 23, 59, 59, 999999),
        ]
        return [b.replace(tzinfo=dt.UTC).astimezone(tz) if tz else b for b in base]
    if kind in ("epoch_s", "epoch_ms", "julian"):
        base = [dt.datetime(2020, 1, 2, tzinfo=dt.UTC), dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]
        return base + [
            dt.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
            dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),
            dt.datetime(2000, 1, 1, 0, 0, 0, 1000, tzinfo=dt.UTC),
        ]
    return []


def green_base_type(form: ColumnForm) -> str:
    """The PostgreSQL type a probe is cast to (typmods dropped: the rendering does not depend on them)."""
    return "numeric" if form.column.pg_type.startswith("numeric") else form.column.pg_type


def _signature(form: ColumnForm) -> tuple[Any, ...]:
    to_sqlite = form.column.to_sqlite
    return (
        form.green,
        form.fmt,
        form.iso,
        form.pair,
        green_base_type(form),
        getattr(to_sqlite, "__func__", to_sqlite),
    )


def _probe_sql(form: ColumnForm, index: int) -> sql.Composable:
    c = sql.Identifier("c")
    return sql.SQL("SELECT {} AS k, o, {} AS r FROM unnest(%s::{}[]) WITH ORDINALITY AS p(c, o)").format(
        sql.Literal(index), green_field_sql(form, green_prepared(form, c)), sql.SQL(green_base_type(form))
    )


Run = Callable[[sql.Composable, list[Any]], list[tuple[Any, ...]]]


def verify(run: Run, forms: Sequence[ColumnForm]) -> tuple[list[ColumnForm], list[ColumnForm]]:
    """Green's rendering of each form checked on its probes, one query for every distinct rendering:
    (`forms` with those that fail streamed instead, the ones that failed)."""
    distinct: dict[tuple[Any, ...], ColumnForm] = {}
    for form in forms:
        if form.green is not None:
            distinct.setdefault(_signature(form), form)
    reps = list(distinct.values())
    failed = _failing(run, reps)
    if failed is None:  # the query failed as a whole: each on its own, to tell which
        failed = set()
        for i, rep in enumerate(reps):
            if _failing(run, [rep]) != set():
                failed.add(i)
    bad = {_signature(reps[i]) for i in failed}
    out, demoted = [], []
    for form in forms:
        if form.green is not None and _signature(form) in bad:
            form = ColumnForm(form.column, form.fmt, None, form.iso, form.pair, form.cast)
            demoted.append(form)
        out.append(form)
    return out, demoted


def _failing(run: Run, reps: Sequence[ColumnForm]) -> set[int] | None:
    if not reps:
        return set()
    query = sql.SQL(" UNION ALL ").join(_probe_sql(f, i) for i, f in enumerate(reps))
    values = [probes(f) for f in reps]
    try:
        rows = run(sql.SQL("SELECT k, o, r FROM ({}) x ORDER BY k, o").format(query), values)
    except Exception:  # psycopg.Error, or a probe value psycopg cannot send
        return None
    got: dict[int, list[str]] = {}
    for k, _, r in rows:
        got.setdefault(int(k), []).append(r)
    bad = set()
    for i, f in enumerate(reps):
        try:
            want = [f.green_text(v) for v in values[i]]
        except Exception:  # the converter refuses a probe: not the converter this rendering assumes
            want = None
        if got.get(i, []) != want:
            bad.add(i)
    return bad
