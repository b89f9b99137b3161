"""The copy's fast path, checked per chunk: what SQLite no longer checks per row, proven per chunk in C.

The fast path (`copy._Guards.select_sql(fast=True)`) renders text and fixed-width ISO instants as they are stored,
and returns beside each chunk of COPY text: each text column's values concatenated, and each row's ISO values
concatenated (NULL replaced by a valid placeholder, so that every row adds the same width). A chunk that fails
these checks is rendered again through the exact SQL, from the same snapshot, whose per-row checks accept each
value or name it. So these checks may refuse a good chunk (it only costs time) but must never pass a value that
the exact SQL would refuse and that PostgreSQL would read with another meaning.

ISO instants: the per-row check costs SQLite a date parse per value (about 0.5 s of 2.3 s for the copy
benchmark's three date columns). Per chunk, the shape is one `translate` and one compare against the template,
and the digits that PostgreSQL would read with another meaning are refused here: hour 24 (`24:00:00` is the next
day's midnight there), minute or second 60 (a leap second rolls over). What PostgreSQL refuses by itself (month
13, day 32, the 30th of February, year 0) stops the load with a data error, after which the copy examines the
whole source in its snapshot and refuses or re-plans, as for any value outside the sampled types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cockpit.drivers.sync.values import IsoFormat

ESCAPED = (b"\\", b"\t", b"\n", b"\r", b"\0")  # what COPY text escapes; NUL, which printf() would cut at


def needs_escaping(texts: tuple[bytes | None, ...]) -> bool:
    """True when a chunk's text values (concatenated per column) hold a character the fast path left as is."""
    return any(t is not None and any(ch in t for ch in ESCAPED) for t in texts)


_NINES = bytes.maketrans(b"0123456789", b"9999999999")
_HOUR_24_OR_MORE = re.compile(rb"2[4-9]")
# the tens digit of each field the template holds, and what it may be here (the rest is PostgreSQL's to refuse)
_TENS = {5: b"01", 8: b"0123", 11: b"012", 14: b"012345", 17: b"012345"}
_SHAPES = {
    "date": "9999-99-99",
    "minute": "9999-99-99S99:99",
    "second": "9999-99-99S99:99:99",
    "milli": "9999-99-99S99:99:99.999",
    "micro": "9999-99-99S99:99:99.999999",
}


@dataclass(frozen=True)
class IsoShape:
    """The one spelling of a fixed-width ISO column, e.g. `9999-99-99 99:99:99.999` (9: any digit)."""

    template: bytes  # digits as 9, with the separator and the zone suffix as they are written
    suffix: tuple[tuple[int, int], ...]  # (offset, byte) of each digit of a numeric zone suffix
    placeholder: str  # a valid value of the shape, standing for NULL in the concatenation

    @property
    def width(self) -> int:
        return len(self.template)


def isos_ok(shapes: tuple[IsoShape, ...], blob: bytes | None, rows: int) -> bool:
    """True when `blob` is `rows` rows, each the values of `shapes` one after the other, every value of its
    column's shape and none that PostgreSQL would read with another meaning."""
    w = sum(s.width for s in shapes)
    if blob is None or len(blob) != w * rows:
        return False
    if blob.translate(_NINES) != b"".join(s.template for s in shapes) * rows:
        return False
    start = 0
    for shape in shapes:
        for offset, allowed in _TENS.items():
            if offset < shape.width and blob[start + offset :: w].translate(None, allowed):
                return False
        for offset, byte in shape.suffix:
            if blob[start + offset :: w].count(byte) != rows:
                return False
        if shape.width > 11:
            pairs = bytearray(2 * rows)  # each hour's two digits side by side (tens <= 2, so none straddles)
            pairs[0::2] = blob[start + 11 :: w]
            pairs[1::2] = blob[start + 12 :: w]
            if _HOUR_24_OR_MORE.search(pairs):
                return False
        start += shape.width
    return True


def iso_shape(fmt: IsoFormat | None) -> IsoShape | None:
    """The shape of a column whose every value has one width, or None (mixed forms, `auto6`, unknown)."""
    if fmt is None or fmt.mixed or fmt.precision not in _SHAPES or len(fmt.sep) != 1 or fmt.sep.isdigit():
        return None
    body = _SHAPES[fmt.precision].replace("S", fmt.sep)
    template = (body + fmt.suffix).encode().translate(_NINES)
    suffix = tuple((len(body) + i, ord(ch)) for i, ch in enumerate(fmt.suffix) if ch.isdigit())
    sample = "2000-01-01 00:00:00.000000"[: len(body)]
    placeholder = (sample[:10] + fmt.sep + sample[11:] if len(body) > 10 else sample) + fmt.suffix
    return IsoShape(template, suffix, placeholder)
