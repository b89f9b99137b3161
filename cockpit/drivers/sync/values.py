"""Value conversions between what SQLite stores and what PostgreSQL holds, both ways, exactly.

Every converter pair is lossless for the values the schema reader accepted: `to_sqlite(to_pg(v)) == v` (same
storage class once SQLite's column affinity is applied). `to_pg` raises `ValueError` for a value that does not fit
(a later write of another kind than the copy saw); `None` always maps to `None`.

`copy_text` renders a `to_pg` result in PostgreSQL's COPY text format (the slow, general path of the copy; the
common kinds are formatted by SQLite itself, see `cockpit.drivers.sync.copy`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
JULIAN_EPOCH = Fraction(4881175, 2)  # 2440587.5, the Julian day of 1970-01-01 00:00 UTC
US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
PRECISIONS = ("date", "minute", "second", "milli", "micro")

Converter = Callable[[Any], Any]


def identity(value: Any) -> Any:
    """The converter of a value that is the same on both sides (callers may skip it)."""
    return value


# ------------------------------------------------------------------------------------------------ simple kinds


def _int_to_pg(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{value!r} is not an integer")


def _float_to_pg(value: Any) -> Any:
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{value!r} is not a real number")


def _text_to_pg(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{value!r} contains a NUL character")
        return value
    raise ValueError(f"{value!r} is not text")


def _bytes_to_pg(value: Any) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    raise ValueError(f"{value!r} is not a blob")


def _bytes_to_sqlite(value: Any) -> Any:
    return None if value is None else bytes(value)


def numeric_to_pg(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return Decimal(repr(value).replace("inf", "Infinity"))
        return Decimal(repr(value))  # shortest text that reads back as the same double
    if isinstance(value, Decimal):
        return value
    raise ValueError(f"{value!r} is not a number")


def numeric_to_sqlite(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float):
        return value
    d = Decimal(value)
    if d.is_finite() and d == d.to_integral_value() and -(2**63) <= d < 2**63:
        return int(d)  # what SQLite's NUMERIC affinity stores for an integral value
    return float(d)


def bool_converters(true: Any, false: Any) -> tuple[Converter, Converter]:
    """0/1 or a text pair such as 'true'/'false'; `to_sqlite` gives back the same spelling."""

    def to_pg(value: Any) -> Any:
        if value is None:
            return None
        if value == true and type(value) is type(true):
            return True
        if value == false and type(value) is type(false):
            return False
        raise ValueError(f"{value!r} is neither {true!r} nor {false!r}")

    def to_sqlite(value: Any) -> Any:
        if value is None:
            return None
        return true if value else false

    return to_pg, to_sqlite


SIMPLE: dict[str, tuple[Converter, Converter]] = {
    "int": (_int_to_pg, identity),
    "float": (_float_to_pg, identity),
    "text": (_text_to_pg, identity),
    "bytes": (_bytes_to_pg, _bytes_to_sqlite),
    "numeric": (numeric_to_pg, numeric_to_sqlite),
}


# ------------------------------------------------------------------------------------ dates stored as ISO text


@dataclass(frozen=True)
class IsoFormat:
    """How a column spells its dates: precision of the shortest value form, date/time separator, zone suffix.

    precision `auto6` is Python's `isoformat()`: seconds, plus `.ffffff` only when the microseconds are not zero.
    Values written back to SQLite use the column's form, lengthened only when the value has more precision
    (a PostgreSQL `now()` in a seconds column comes back with its microseconds rather than truncated).

    `mixed`: the column holds several ISO forms of its instants (see `MIXED_FORMS`), carried by meaning; the
    form above is the most common one, in which values are written back, and `canonical` brings any of the
    forms to it, so that two texts of one instant compare equal.
    """

    precision: str = "second"  # one of PRECISIONS or "auto6"
    sep: str = " "
    suffix: str = ""  # "", "Z" or "+HH:MM" / "-HH:MM"
    as_date: bool = False  # PostgreSQL `date` rather than a timestamp
    mixed: bool = False

    def canonical(self, value: Any) -> Any:
        """The text of `value`'s instant in the column's form (a value that is not such a text: unchanged)."""
        try:
            return self.render(self.parse(value))
        except (ValueError, OverflowError):
            return value

    @property
    def pg_type(self) -> str:
        if self.as_date:
            return "date"
        return "timestamptz" if self.suffix else "timestamp"

    def zone(self) -> dt.tzinfo | None:
        if not self.suffix:
            return None
        if self.suffix == "Z":
            return UTC
        sign = -1 if self.suffix[0] == "-" else 1
        hours, minutes = int(self.suffix[1:3]), int(self.suffix[4:6])
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))

    def parse(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a date text")
        try:
            if self.as_date:
                return dt.date.fromisoformat(value)
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO date: {exc}") from None
        if (parsed.tzinfo is not None) != bool(self.suffix):
            raise ValueError(f"{value!r} does not match the column's zone form {self.suffix or 'none'!r}")
        return parsed

    def render(self, value: Any) -> Any:
        if value is None:
            return None
        if self.as_date or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
            if isinstance(value, dt.datetime):
                value = value.date()
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        zone = self.zone()
        if zone is not None:
            value = value.astimezone(zone) if value.tzinfo else value.replace(tzinfo=zone)
        elif value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return _render_datetime(value, self.precision, self.sep) + self.suffix


def _needed_precision(value: dt.datetime) -> str:
    if value.microsecond % 1000:
        return "micro"
    if value.microsecond:
        return "milli"
    if value.second:
        return "second"
    if value.hour or value.minute:
        return "minute"
    return "date"


def _render_datetime(value: dt.datetime, precision: str, sep: str) -> str:
    need = _needed_precision(value)
    if precision == "auto6":
        precision = "micro" if value.microsecond else "second"
    if _RANK[need] > _RANK[precision]:
        precision = need
    if precision == "date":
        return value.date().isoformat()
    if value.tzinfo is not None:  # the zone is the caller's business (its suffix)
        value = value.replace(tzinfo=None)
    return value.isoformat(sep, _TIMESPEC[precision])  # C code: ~10x the f-strings it replaced


_RANK = {p: i for i, p in enumerate(PRECISIONS)}
_TIMESPEC = {"minute": "minutes", "second": "seconds", "milli": "milliseconds", "micro": "microseconds"}


def iso_converters(fmt: IsoFormat) -> tuple[Converter, Converter]:
    return fmt.parse, fmt.render


MIXED_FORMS = (
    "YYYY-MM-DD, then ' ' or 'T' and HH:MM, HH:MM:SS, HH:MM:SS.fff or HH:MM:SS.ffffff, then nothing (timestamp) "
    "or in every value 'Z' or +HH:MM/-HH:MM (timestamptz); a bare date (midnight) only without zones"
)


# --------------------------------------------------------------------------- dates stored as numbers (timestamptz)


def _number_fraction(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError(f"{value!r} is not a finite number")
    return Fraction(value)


def _from_us(us: int) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(microseconds=us)
    except OverflowError:
        raise ValueError("out of the date range") from None


def _to_us(value: Any) -> int:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{value!r} is not a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def number_converters(kind: str) -> tuple[Converter, Converter]:
    """`epoch_s`, `epoch_ms` (integers or reals) and `julian` (Julian day reals) <-> timestamptz."""
    scale = {"epoch_s": US_PER_S, "epoch_ms": 1000, "julian": US_PER_DAY}[kind]
    offset = JULIAN_EPOCH if kind == "julian" else Fraction(0)

    def to_pg(value: Any) -> Any:
        if value is None:
            return None
        return _from_us(round((_number_fraction(value) - offset) * scale))

    def to_sqlite(value: Any) -> Any:
        if value is None:
            return None
        number = Fraction(_to_us(value), scale) + offset
        if kind != "julian" and number.denominator == 1:
            return int(number)
        return number.numerator / number.denominator  # correctly rounded

    return to_pg, to_sqlite


def round_trips(to_pg: Converter, to_sqlite: Converter, value: Any) -> bool:
    """True when `value` comes back from PostgreSQL exactly (numbers compare by value and by int/real class)."""
    try:
        back = to_sqlite(to_pg(value))
    except (ValueError, OverflowError, ArithmeticError):
        return False
    if isinstance(value, int | float) and isinstance(back, int | float):
        return back == value and (isinstance(back, float) == isinstance(value, float) or float(back) == value)
    return back == value


# ------------------------------------------------------------------------------------------- casts (plan-driven)


def cast_to_pg(kind: str, on_error: str, base: Converter) -> Converter:
    """Wrap a converter for a plan cast: `null` turns a value that does not fit into NULL."""
    if on_error != "null":
        return base

    def to_pg(value: Any) -> Any:
        try:
            return base(value)
        except (ValueError, OverflowError, ArithmeticError, UnicodeDecodeError):
            return None

    return to_pg


def any_to_text(value: Any) -> Any:
    """Any stored value as text (a cast to text): numbers in their exact shortest form, blobs if UTF-8."""
    if value is None or isinstance(value, str):
        return _text_to_pg(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a SQLite value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        try:
            return _text_to_pg(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{value!r} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    raise ValueError(f"{value!r} cannot be text")


def any_to_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _int_to_pg(value)


def any_to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return _float_to_pg(value)


def any_to_numeric(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"{value!r} is not a number") from None
    return numeric_to_pg(value)


# ------------------------------------------------------------------------------------------------ COPY text

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: Any) -> str:
    """One field of PostgreSQL's COPY text format for a `to_pg` result."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return str(value).translate(_COPY_ESCAPES)
