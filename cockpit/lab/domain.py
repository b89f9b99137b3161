"""The demo app's domain (the strategy's licitações app): tables, fields, check digits and new keys.

The SQLite schema below is the source of truth: the lab seeds it on blue and the sync's initial copy carries it to
PostgreSQL (green). Both services describe their rows with the same logical field types, so a row reads the same
whichever side serves it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cockpit.core.errors import CockpitError


class ValidationError(CockpitError, ValueError):
    """A field value the API refuses (answered with 400)."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # int | text | bool | money | date | timestamp | cnpj | cpf | email
    required: bool = False
    choices: tuple[str, ...] = ()
    ref: str = ""  # table this key refers to


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]

    @property
    def columns(self) -> list[str]:
        return ["id", *(f.name for f in self.fields), "created_at", "updated_at"]

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "users",
            (
                Field("name", "text", required=True),
                Field("email", "email", required=True),
                Field("cpf", "cpf"),
                Field("role", "text", choices=("analyst", "manager", "admin", "viewer")),
                Field("active", "bool"),
            ),
        ),
        Table(
            "companies",
            (
                Field("legal_name", "text", required=True),
                Field("trade_name", "text"),
                Field("cnpj", "cnpj", required=True),
                Field("city", "text"),
                Field("state", "text"),
                Field("owner_id", "int", ref="users"),
            ),
        ),
        Table(
            "opportunities",
            (
                Field("title", "text", required=True),
                Field("agency", "text", required=True),
                Field("modality", "text"),
                Field("estimated_value", "money"),
                Field("published_at", "date"),
                Field("deadline", "date"),
                Field("status", "text", choices=("open", "closed", "awarded", "cancelled")),
                Field("state", "text"),
            ),
        ),
        Table(
            "proposals",
            (
                Field("opportunity_id", "int", required=True, ref="opportunities"),
                Field("company_id", "int", required=True, ref="companies"),
                Field("user_id", "int", ref="users"),
                Field("amount", "money", required=True),
                Field("status", "text", choices=("draft", "submitted", "won", "lost")),
                Field("submitted_at", "timestamp"),
                Field("notes", "text"),
            ),
        ),
    )
}

# How the services key new rows: 'database' (the default, as the strategy's app: SQLite's max+1, green's identity,
# kept apart by the sync's disjoint keys) or 'side-bit' (the service chooses keys that cannot meet: new_key).
KEY_MODES = ("database", "side-bit")

# SQLite DDL (blue). INTEGER PRIMARY KEY is SQLite's 64-bit rowid alias.
SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    cpf TEXT,
    role TEXT NOT NULL DEFAULT 'analyst',
    active BOOLEAN NOT NULL DEFAULT 1,
    created_at DATETIME NOT NULL DEFAULT (datetime('now')),
    updated_at DATETIME NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS companies (
    id INTEGER PRIMARY KEY,
    legal_name TEXT NOT NULL,
    trade_name TEXT,
    cnpj TEXT NOT NULL UNIQUE,
    city TEXT,
    state TEXT,
    owner_id INTEGER REFERENCES users(id),
    created_at DATETIME NOT NULL DEFAULT (datetime('now')),
    updated_at DATETIME NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS opportunities (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    agency TEXT NOT NULL,
    modality TEXT,
    estimated_value REAL,
    published_at DATE,
    deadline DATE,
    status TEXT NOT NULL DEFAULT 'open',
    state TEXT,
    created_at DATETIME NOT NULL DEFAULT (datetime('now')),
    updated_at DATETIME NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY,
    opportunity_id INTEGER NOT NULL REFERENCES opportunities(id),
    company_id INTEGER NOT NULL REFERENCES companies(id),
    user_id INTEGER REFERENCES users(id),
    amount REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    submitted_at DATETIME,
    notes TEXT,
    created_at DATETIME NOT NULL DEFAULT (datetime('now')),
    updated_at DATETIME NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS proposals_opportunity ON proposals(opportunity_id);
CREATE INDEX IF NOT EXISTS proposals_company ON proposals(company_id);
CREATE INDEX IF NOT EXISTS companies_owner ON companies(owner_id);
"""

TABLE_ORDER = ["users", "companies", "opportunities", "proposals"]  # parents before children


# ------------------------------------------------------------------------------------------ check digits


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def cnpj_check_digits(base12: str) -> str:
    """The two check digits of a CNPJ whose first 12 digits are `base12`."""

    def digit(numbers: str, weights: list[int]) -> str:
        rest = sum(int(n) * w for n, w in zip(numbers, weights, strict=True)) % 11
        return "0" if rest < 2 else str(11 - rest)

    first = digit(base12, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    second = digit(base12 + first, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    return first + second


def format_cnpj(digits14: str) -> str:
    d = digits14
    return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}"


def make_cnpj(rng: random.Random) -> str:
    """A formatted CNPJ (headquarters branch 0001) with correct check digits."""
    base = "".join(str(rng.randint(0, 9)) for _ in range(8)) + "0001"
    return format_cnpj(base + cnpj_check_digits(base))


def valid_cnpj(text: str) -> bool:
    d = _digits(text)
    return len(d) == 14 and len(set(d)) > 1 and cnpj_check_digits(d[:12]) == d[12:]


def cpf_check_digits(base9: str) -> str:
    def digit(numbers: str) -> str:
        weights = range(len(numbers) + 1, 1, -1)
        return str(sum(int(n) * w for n, w in zip(numbers, weights, strict=True)) * 10 % 11 % 10)

    first = digit(base9)
    return first + digit(base9 + first)


def make_cpf(rng: random.Random) -> str:
    base = "".join(str(rng.randint(0, 9)) for _ in range(9))
    d = base + cpf_check_digits(base)
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"


def valid_cpf(text: str) -> bool:
    d = _digits(text)
    return len(d) == 11 and len(set(d)) > 1 and cpf_check_digits(d[:9]) == d[9:]


# ------------------------------------------------------------------------------------------------- keys

_KEY_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_key_lock = threading.Lock()
_key_last = [0, 0]  # the last (millisecond, sequence) handed out by this process
_key_random = random.SystemRandom()


def new_key(side: str) -> int:
    """A new primary key that cannot collide with the other side's (blue and green both write while syncing).

    Milliseconds since 2024 times 4096, one bit for the side, 11 bits of sequence: below 2**53 (exact in JSON)
    for a century, far above the seeded keys, distinct between sides by construction and strictly increasing in one
    process. Each millisecond's sequence starts at a random point, so two instances of one side seldom meet; when
    they do, the unique key refuses the second insert and the service takes another key.
    """
    with _key_lock:
        ms = max(int(time.time() * 1000) - _KEY_EPOCH_MS, _key_last[0])
        if ms == _key_last[0]:
            seq = _key_last[1] + 1
            if seq > 0x7FF:
                ms, seq = ms + 1, 0
        else:
            seq = _key_random.randrange(0x400)
        _key_last[:] = [ms, seq]
    return ms * 4096 + (2048 if side == "green" else 0) + seq


# ------------------------------------------------------------------------------------------ conversions


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_input(table: Table, body: Any, partial: bool) -> dict[str, Any]:
    """Check a JSON body for create (partial=False) or update (partial=True); values in their logical kinds."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(body) - {f.name for f in table.fields} - {"id", "created_at", "updated_at"})
    if unknown:
        raise ValidationError(f"unknown field(s) for {table.name}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for f in table.fields:
        if f.name not in body:
            if f.required and not partial:
                raise ValidationError(f"{f.name} is required")
            continue
        out[f.name] = _coerce(f, body[f.name])
    if partial and not out:
        raise ValidationError("nothing to update")
    return out


def _coerce(f: Field, value: Any) -> Any:
    if value is None:
        if f.required:
            raise ValidationError(f"{f.name} cannot be null")
        return None
    try:
        if f.kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if f.kind == "bool":
            if isinstance(value, bool):
                return value
            if value in (0, 1, "0", "1", "true", "false"):
                return value in (1, "1", "true")
            raise ValueError
        if f.kind == "money":
            if isinstance(value, bool):
                raise ValueError
            return round(float(value), 2)
        if f.kind == "date":
            return dt.date.fromisoformat(str(value)).isoformat()
        if f.kind == "timestamp":
            return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValidationError(f"{f.name}: {value!r} is not a valid {f.kind}") from None
    text = str(value)
    if f.kind == "cnpj" and not valid_cnpj(text):
        raise ValidationError(f"{f.name}: {text!r} is not a valid CNPJ (check digits)")
    if f.kind == "cpf" and not valid_cpf(text):
        raise ValidationError(f"{f.name}: {text!r} is not a valid CPF (check digits)")
    if f.kind == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise ValidationError(f"{f.name}: {text!r} is not an e-mail address")
    if f.choices and text not in f.choices:
        raise ValidationError(f"{f.name}: {text!r} is not one of {', '.join(f.choices)}")
    return text


def present(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row (from either engine) as the API shows it: one JSON shape whatever the side."""
    out: dict[str, Any] = {}
    kinds = {f.name: f.kind for f in table.fields}
    kinds.update(id="int", created_at="timestamp", updated_at="timestamp")
    for name in table.columns:
        value = row.get(name)
        kind = kinds[name]
        if value is None:
            out[name] = None
        elif kind == "bool":
            out[name] = value in (True, 1, "1", "true", "t")
        elif kind == "money":
            out[name] = round(float(value), 2)
        elif kind == "int":
            out[name] = int(value)
        elif kind == "date":
            out[name] = value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
        elif kind == "timestamp":
            if isinstance(value, dt.datetime):
                if value.tzinfo is not None:
                    value = value.astimezone(dt.UTC)
                out[name] = value.strftime("%Y-%m-%d %H:%M:%S")
            else:
                out[name] = str(value).replace("T", " ")[:19]
        elif isinstance(value, Decimal):
            out[name] = float(value)
        else:
            out[name] = value
    return out
