"""CHECK constraints, expression, partial and NOCASE indexes, and views: SQLite's SQL translated to PostgreSQL with
the same acceptance, or named with the reason it is not.

sqlite_master's SQL is the source of truth (SQLAlchemy's inspector sees neither expressions nor partial indexes,
and pgloader builds a partial index as a full one, which refuses rows SQLite accepts). The CREATE TABLE text is
split into its column definitions and table constraints here (SQLite accepts type names such as `text nocase` or
`smallint unsigned` that no SQL parser takes); each expression is parsed by sqlglot and translated by a whitelist:
a node that is not known to mean the same on both sides makes the whole item untranslatable, with the reason.

What the translation keeps equal:
- SQLite's collations: `NOCASE` folds ASCII letters only, so a NOCASE comparison (the column's collation, or an
  explicit `COLLATE NOCASE`) compares `translate(x, 'A..Z', 'a..z')` on both operands: 'É' and 'é' stay
  different, as in SQLite (PostgreSQL's lower() and citext would fold them). A unique index or constraint on a
  NOCASE column gets a unique index on that fold, so green refuses the case twin blue refuses. Text ordering
  (`<`, `BETWEEN`, min/max, ORDER BY) is byte order (`COLLATE "C"`), as SQLite's BINARY.
- `lower()`/`upper()` are SQLite's ASCII-only ones (the same translate), except in the columns of a non-unique
  index, which refuses nothing: there PostgreSQL's own lower()/upper() are kept, so the app's queries on green
  still use the index.
- `LIKE` is SQLite's (ASCII case-insensitive, no escape character unless ESCAPE says): both sides folded,
  `ESCAPE ''`. `GLOB` with a literal pattern becomes an anchored regular expression in byte order.
- SQLite's truth values: a boolean column (0/1 or a text pair in SQLite) reads as SQLite's value where a value
  is used, as itself where a condition is; any other value used as a condition is `<> 0`.
- `typeof(col) = 'class'` is what the column's PostgreSQL type already enforces (`col IS NOT NULL`).
- division and modulo by zero give NULL (sqlglot's NULLIF); `avg()` is a double, as SQLite's.

Anything else (date functions, REGEXP, CAST of text, scalar max/min, subqueries in a CHECK, ...) is not
translated. PostgreSQL has the last word: a translated CHECK is added while the data is there, so one that the
copied rows do not all pass (a translation that would refuse what SQLite accepted) is dropped and named, as is
any item PostgreSQL rejects.

This module must never import the copy or the sync engine: it is pure translation over sqlglot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from cockpit.core.errors import CockpitError

ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"


class Untranslatable(CockpitError):
    """The SQL has no PostgreSQL form known to mean the same; the message says why."""


class UnknownRelation(Untranslatable):
    """A view reads a relation that is not (yet) known: a table not copied, or a view not yet translated."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"it reads {name!r}, which is not a copied table or view")


@dataclass(frozen=True)
class Col:
    """What the translation needs to know of a column."""

    pg_name: str  # the name PostgreSQL keeps
    pg_type: str
    nocase: bool = False
    bool_pair: tuple[Any, Any] | None = None  # (true, false) as SQLite stores them, for boolean columns


@dataclass
class Check:
    name: str | None
    sql: str  # PostgreSQL expression
    source: str  # SQLite expression, for the report


@dataclass
class Index:
    name: str
    unique: bool
    columns: list[str]  # PostgreSQL expressions (quoted identifiers, or expressions in parentheses)
    where: str | None = None
    source: str = ""  # SQLite text, for the report
    why: str = ""  # what made it more than a plain index (expression, partial, NOCASE)


@dataclass
class View:
    name: str
    select: str  # PostgreSQL SELECT
    source: str
    cols: dict[str, Col] = field(default_factory=dict)  # its output columns that are a table's column as is


@dataclass
class NotCarried:
    what: str  # e.g. 'CHECK constraint "pos" on table "t"'
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what} not carried: {self.reason} (SQLite: {_short(self.source)})"


@dataclass
class TableDef:
    """What the CREATE TABLE text says beyond what PRAGMAs tell: collations and CHECK constraints."""

    collations: dict[str, str] = field(default_factory=dict)  # column -> collation name, upper case
    checks: list[tuple[str | None, str]] = field(default_factory=list)  # (constraint name, SQLite expression)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------- CREATE TABLE text

_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[A-Za-z_0-9$]+|.""",
    re.S,
)


def _tokens(sql: str) -> list[tuple[str, int, int]]:
    """(token, start, end) without blanks and comments."""
    out = []
    for m in _TOKEN.finditer(sql):
        tok = m.group(0)
        if tok.isspace() or tok.startswith("--") or tok.startswith("/*"):
            continue
        out.append((tok, m.start(), m.end()))
    return out


def _unquote(tok: str) -> str:
    if tok[:1] in "\"'`" and len(tok) >= 2:
        q = tok[0]
        return tok[1:-1].replace(q + q, q)
    if tok.startswith("[") and tok.endswith("]"):
        return tok[1:-1]
    return tok


def _closing(tokens: list[tuple[str, int, int]], i: int) -> int:
    """Index of the ')' matching the '(' at tokens[i]."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j][0] == "(":
            depth += 1
        elif tokens[j][0] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise Untranslatable("unbalanced parentheses")


_TABLE_CONSTRAINTS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}


def parse_table(sql: str) -> TableDef:
    """Column collations and CHECK constraints of a CREATE TABLE statement (SQLite's grammar, loosely)."""
    toks = _tokens(sql)
    try:
        start = next(i for i, t in enumerate(toks) if t[0] == "(")
    except StopIteration:
        return TableDef()  # CREATE TABLE ... AS SELECT: no constraints
    end = _closing(toks, start)
    items: list[list[tuple[str, int, int]]] = [[]]
    i = start + 1
    while i < end:
        tok = toks[i]
        if tok[0] == "(":
            j = _closing(toks, i)
            items[-1].extend(toks[i : j + 1])
            i = j + 1
            continue
        if tok[0] == ",":
            items.append([])
        else:
            items[-1].append(tok)
        i += 1
    out = TableDef()
    for item in items:
        if not item:
            continue
        first = item[0][0].upper()
        column = None if first in _TABLE_CONSTRAINTS else _unquote(item[0][0])
        name: str | None = None
        k = 0 if column is None else 1
        while k < len(item):
            word = item[k][0].upper()
            if word == "CONSTRAINT" and k + 1 < len(item):
                name = _unquote(item[k + 1][0])
                k += 2
                continue
            if word == "COLLATE" and column is not None and k + 1 < len(item):
                out.collations[column] = _unquote(item[k + 1][0]).upper()
                k += 2
                continue
            if word == "CHECK" and k + 1 < len(item) and item[k + 1][0] == "(":
                j = _closing(item, k + 1)
                out.checks.append((name, sql[item[k + 1][2] : item[j][1]].strip()))
                name = None
                k = j + 1
                continue
            if item[k][0] == "(":
                k = _closing(item, k) + 1
                continue
            k += 1
    return out


# ------------------------------------------------------------------------------------------------ translation


def _fold(node: exp.Expression) -> exp.Expression:
    """SQLite's NOCASE and lower(): ASCII letters only."""
    return exp.Anonymous(
        this="translate",
        expressions=[node, exp.Literal.string(ASCII_UPPER), exp.Literal.string(ASCII_LOWER)],
    )


def _upper(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(
        this="translate",
        expressions=[node, exp.Literal.string(ASCII_LOWER), exp.Literal.string(ASCII_UPPER)],
    )


def _byte_order(node: exp.Expression) -> exp.Expression:
    return exp.Collate(this=node, expression=exp.Identifier(this="C", quoted=True))


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
_ORDERING = (exp.GT, exp.GTE, exp.LT, exp.LTE)
_PREDICATES = (
    *_COMPARISONS,
    exp.In,
    exp.Between,
    exp.Is,
    exp.Like,
    exp.Escape,
    exp.Glob,
    exp.And,
    exp.Or,
    exp.Not,
)
_TYPEOF_CLASS = {
    "bigint": "integer",
    "double precision": "real",
    "text": "text",
    "bytea": "blob",
    "boolean": None,  # integer or text, by its pair
}


def _bracket_char(ch: str) -> str:
    return ch if ch.isalnum() else "\\" + ch  # an ARE escape: literal inside brackets too


def glob_to_regex(pattern: str) -> str:
    """SQLite's GLOB pattern as an anchored PostgreSQL regular expression (ARE), read as SQLite reads it
    (`patternCompare`: '^' first negates, ']' first is literal, 'a-z' a range, a reversed range only its
    first character, '-' literal where no range can start)."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1
            items: list[str] = []
            invert = j < len(pattern) and pattern[j] == "^"
            j += invert
            if j < len(pattern) and pattern[j] == "]":
                items.append(_bracket_char("]"))
                j += 1
            prior = ""
            while j < len(pattern) and pattern[j] != "]":
                c = pattern[j]
                if c == "-" and prior and j + 1 < len(pattern) and pattern[j + 1] != "]":
                    hi = pattern[j + 1]
                    if hi >= prior:
                        items.append(f"{_bracket_char(prior)}-{_bracket_char(hi)}")
                    prior = ""
                    j += 2
                    continue
                items.append(_bracket_char(c))
                prior = c
                j += 1
            if j >= len(pattern):
                raise Untranslatable(f"GLOB pattern {pattern!r} has an unclosed '['")
            out.append("[" + ("^" if invert else "") + "".join(items) + "]")
            i = j
        else:
            out.append(ch if ch.isalnum() else re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


class Translator:
    """One SQLite expression -> PostgreSQL, for a CHECK, an index or a view.

    `columns` resolves a column reference (name, and table or alias for views) to its `Col`; None: a name not
    known (a view's output alias, say), carried as it is with BINARY comparison.
    """

    def __init__(
        self, resolve: Callable[[exp.Column], Col | None], *, view: bool = False, plain_case: bool = False
    ):
        self.resolve = resolve
        self.view = view
        self.plain_case = plain_case  # lower()/upper() may be PostgreSQL's own (a non-unique index)

    # -- entry points

    def condition(self, sql: str) -> str:
        return self.sql(self.cond(self.parse(sql)))

    def value_sql(self, node: exp.Expression) -> str:
        return self.sql(self.value(node))

    @staticmethod
    def parse(sql: str) -> exp.Expression:
        try:
            return sqlglot.parse_one(sql, read="sqlite")  # type: ignore[return-value]
        except sqlglot.errors.SqlglotError as exc:
            raise Untranslatable(f"not understood ({str(exc).splitlines()[0]})") from None

    @staticmethod
    def sql(node: exp.Expression) -> str:
        return node.sql(dialect="postgres")

    # -- helpers

    def col(self, node: exp.Expression) -> Col | None:
        node = node.unnest() if isinstance(node, exp.Paren) else node  # type: ignore[assignment]
        return self.resolve(node) if isinstance(node, exp.Column) else None

    def collation(self, *operands: exp.Expression) -> str:
        """SQLite's rule: an explicit COLLATE on an operand (left first), else a column's own (left first)."""
        for op in operands:
            if isinstance(op, exp.Collate):
                return op.expression.name.upper()
        for op in operands:
            c = self.col(op)
            if c is not None:
                return "NOCASE" if c.nocase else "BINARY"
        return "BINARY"

    def compared(self, node: exp.Expression, coll: str, ordering: bool) -> exp.Expression:
        inner = node.this if isinstance(node, exp.Collate) else node
        out = self.value(inner)
        if coll == "NOCASE":
            return _byte_order(_fold(out)) if ordering else _fold(out)
        if coll not in ("BINARY", ""):
            raise Untranslatable(f"COLLATE {coll} has no PostgreSQL equivalent")
        if ordering and self.is_text(inner):
            return _byte_order(out)
        return out

    def is_text(self, node: exp.Expression) -> bool:
        c = self.col(node)
        if c is not None:
            return c.pg_type == "text"
        return isinstance(node, exp.Literal) and node.is_string

    # -- conditions (SQLite's truth: a value is true when it is not 0)

    def cond(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Paren):
            return exp.Paren(this=self.cond(node.this))
        if isinstance(node, _PREDICATES):
            return self.predicate(node)
        c = self.col(node)
        if c is not None and c.bool_pair is not None:
            return exp.column(c.pg_name, quoted=True)
        if isinstance(node, exp.Boolean):
            return node.copy()
        return exp.NEQ(this=exp.Paren(this=self.value(node)), expression=exp.Literal.number(0))

    # -- values

    def predicate(self, node: exp.Expression) -> exp.Expression:
        """A comparison, IN, BETWEEN, IS, LIKE, GLOB, AND, OR or NOT: a PostgreSQL boolean."""
        if isinstance(node, exp.And | exp.Or):
            return node.__class__(this=self.cond(node.this), expression=self.cond(node.expression))
        if isinstance(node, exp.Not):
            return exp.Not(this=exp.Paren(this=self.cond(node.this)))
        if isinstance(node, _COMPARISONS):
            typeof = self.typeof_test(node)
            if typeof is not None:
                return typeof
            coll = self.collation(node.this, node.expression)
            ordering = isinstance(node, _ORDERING)
            return node.__class__(
                this=self.compared(node.this, coll, ordering),
                expression=self.compared(node.expression, coll, ordering),
            )
        if isinstance(node, exp.In):
            if node.args.get("query") is not None and not self.view:
                raise Untranslatable("IN (SELECT ...) in a constraint")
            typeof = self.typeof_test(node)
            if typeof is not None:
                return typeof
            coll = self.collation(node.this)
            if node.args.get("query") is not None:
                return exp.In(
                    this=self.compared(node.this, coll, False), query=self.value(node.args["query"])
                )
            return exp.In(
                this=self.compared(node.this, coll, False),
                expressions=[self.compared(e, coll, False) for e in node.expressions],
            )
        if isinstance(node, exp.Between):
            coll = self.collation(node.this)
            return exp.Between(
                this=self.compared(node.this, coll, True),
                low=self.compared(node.args["low"], coll, True),
                high=self.compared(node.args["high"], coll, True),
            )
        if isinstance(node, exp.Is):
            return exp.Is(
                this=self.value(node.this),
                expression=self.value(node.expression),
                negate=node.args.get("negate"),
            )
        if isinstance(node, exp.Escape | exp.Like):
            return self.like(node)
        if isinstance(node, exp.Glob):
            pattern = node.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                raise Untranslatable("GLOB with a pattern that is not a literal")
            out = exp.RegexpLike(
                this=_byte_order(self.value(node.this)),
                expression=exp.Literal.string(glob_to_regex(pattern.this)),
            )
            return exp.Not(this=out) if node.args.get("negate") else out
        raise Untranslatable(f"{_describe(node)} has no PostgreSQL form known to mean the same")

    def value(self, node: exp.Expression) -> exp.Expression:  # noqa: C901 - one branch per node kind
        if isinstance(node, exp.Paren):
            return exp.Paren(this=self.value(node.this))
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Literal | exp.Null):
            return node.copy()
        if isinstance(node, exp.Boolean):  # SQLite's TRUE and FALSE are 1 and 0
            return exp.Literal.number(1 if node.this else 0)
        if isinstance(node, _PREDICATES):  # a truth used as a value is SQLite's 0 or 1
            return exp.Cast(this=exp.Paren(this=self.predicate(node)), to=exp.DataType.build("integer"))
        if isinstance(node, exp.Collate):
            raise Untranslatable("COLLATE outside a comparison")
        if isinstance(node, exp.Neg):
            return exp.Neg(this=self.value(node.this))
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.DPipe):
            return node.__class__(this=self.value(node.this), expression=self.value(node.expression))
        if isinstance(node, exp.Div):  # typed: integer division of integers; safe: NULL for a zero divisor
            return exp.Div(
                this=self.value(node.this), expression=self.value(node.expression), typed=True, safe=True
            )
        if isinstance(node, exp.Mod):
            return exp.Mod(
                this=self.value(node.this),
                expression=exp.Nullif(this=self.value(node.expression), expression=exp.Literal.number(0)),
            )
        if isinstance(node, exp.Lower | exp.Upper):
            arg = self.value(node.this)
            if self.plain_case:
                return node.__class__(this=arg)
            return _fold(arg) if isinstance(node, exp.Lower) else _upper(arg)
        if isinstance(node, exp.Length | exp.Abs):
            return node.__class__(this=self.value(node.this))
        if isinstance(node, exp.Trim):
            args = {
                k: (self.value(v) if isinstance(v, exp.Expression) else v)
                for k, v in node.args.items()
                if v is not None
            }
            return exp.Trim(**args)
        if isinstance(node, exp.Substring):
            start, length = node.args.get("start"), node.args.get("length")
            ok = isinstance(start, exp.Literal) and start.is_int and int(start.this) >= 1
            ok = ok and (
                length is None
                or (isinstance(length, exp.Literal) and length.is_int and int(length.this) >= 0)
            )
            if not ok:
                raise Untranslatable(
                    "substr() with a start below 1 or a bound that is not an integer literal"
                )
            return exp.Substring(
                this=self.value(node.this),
                start=start.copy(),  # type: ignore[union-attr]
                length=length and length.copy(),
            )
        if isinstance(node, exp.StrPosition):
            return exp.StrPosition(this=self.value(node.this), substr=self.value(node.args["substr"]))
        if isinstance(node, exp.Coalesce):
            return exp.Coalesce(
                this=self.value(node.this), expressions=[self.value(e) for e in node.expressions]
            )
        if isinstance(node, exp.Case):
            return exp.Case(
                this=self.value(node.this) if node.this is not None else None,
                ifs=[
                    exp.If(
                        this=self.value(i.this) if node.this is not None else self.cond(i.this),
                        true=self.value(i.args["true"]),
                    )
                    for i in node.args.get("ifs", [])
                ],
                default=self.value(node.args["default"]) if node.args.get("default") is not None else None,
            )
        if isinstance(node, exp.If):
            return exp.Case(
                ifs=[exp.If(this=self.cond(node.this), true=self.value(node.args["true"]))],
                default=self.value(node.args["false"]) if node.args.get("false") is not None else None,
            )
        if self.view:
            return self.view_node(node)
        raise Untranslatable(f"{_describe(node)} has no PostgreSQL form known to mean the same")

    def column(self, node: exp.Column) -> exp.Expression:
        c = self.resolve(node)
        if c is None:
            if not self.view:
                raise Untranslatable(f"column {node.name!r} is not in the table")
            return node.copy()
        table = node.table
        ref = exp.column(c.pg_name, table=table or None, quoted=True)
        if c.bool_pair is None:
            return ref
        true, false = c.bool_pair
        if isinstance(true, int):  # SQLite's 0/1
            return exp.Cast(this=ref, to=exp.DataType.build("integer"))
        return exp.Case(
            ifs=[
                exp.If(this=ref, true=exp.Literal.string(true)),
                exp.If(this=exp.Not(this=ref), true=exp.Literal.string(false)),
            ]
        )

    def like(self, node: exp.Expression) -> exp.Expression:
        escape: exp.Expression = exp.Literal.string("")
        if isinstance(node, exp.Escape):
            escape = node.expression
            node = node.this
            if not (isinstance(escape, exp.Literal) and escape.is_string and len(escape.this) == 1):
                raise Untranslatable("LIKE ... ESCAPE with an escape that is not one character")
            if escape.this.isalpha():
                raise Untranslatable("LIKE ... ESCAPE with a letter (case folding would change it)")
        if not isinstance(node, exp.Like):
            raise Untranslatable(f"{_describe(node)} with ESCAPE")
        like = exp.Like(this=_fold(self.value(node.this)), expression=_fold(self.value(node.expression)))
        out = exp.Escape(this=like, expression=escape.copy())
        return exp.Not(this=exp.Paren(this=out)) if node.args.get("negate") else out

    def typeof_test(self, node: exp.Expression) -> exp.Expression | None:
        """`typeof(col) = 'class'` (or IN a list): what the column's PostgreSQL type enforces."""
        left = node.this
        if not isinstance(left, exp.Typeof):
            if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Typeof):
                left, right = node.expression, [node.this]
            else:
                return None
        else:
            right = node.expressions if isinstance(node, exp.In) else [node.expression]
        if not isinstance(node, exp.EQ | exp.In):
            raise Untranslatable("typeof() compared otherwise than with = or IN")
        c = self.col(left.this)
        if c is None or not all(isinstance(r, exp.Literal) and r.is_string for r in right):
            raise Untranslatable("typeof() of something other than a column of the table")
        own = _TYPEOF_CLASS.get(c.pg_type)
        if c.bool_pair is not None:
            own = "integer" if isinstance(c.bool_pair[0], int) else "text"
        wanted = {r.this.lower() for r in right}
        if wanted - {own, "null"} or own is None:
            raise Untranslatable(
                f"typeof({c.pg_name}) tests a storage class its PostgreSQL type {c.pg_type} cannot hold"
            )
        ref = exp.column(c.pg_name, quoted=True)
        tests: list[exp.Expression] = []
        if own in wanted:
            tests.append(exp.Not(this=exp.Is(this=ref.copy(), expression=exp.Null())))
        if "null" in wanted:
            tests.append(exp.Is(this=ref.copy(), expression=exp.Null()))
        return exp.Paren(this=tests[0] if len(tests) == 1 else exp.Boolean(this=True))

    # -- views

    _VIEW_PASS = (
        exp.Select,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Limit,
        exp.Offset,
        exp.Alias,
        exp.TableAlias,
        exp.Table,
        exp.Identifier,
        exp.Star,
        exp.Count,
        exp.Distinct,
        exp.Subquery,
        exp.Union,
        exp.Order,
    )

    def view_node(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Ordered):
            target = node.this
            coll = self.collation(target)
            out = node.copy()
            out.set("this", self.compared(target, coll, True))
            return out
        if isinstance(node, exp.Min | exp.Max):
            coll = self.collation(node.this)
            return node.__class__(this=self.compared(node.this, coll, True))
        if isinstance(node, exp.Sum):
            return exp.Sum(this=self.value(node.this))
        if isinstance(node, exp.Avg):  # SQLite's avg() is a double; PostgreSQL's of integers is numeric
            return exp.Cast(this=exp.Avg(this=self.value(node.this)), to=exp.DataType.build("double"))
        if isinstance(node, exp.Where | exp.Having):
            return node.__class__(this=self.cond(node.this))
        if isinstance(node, exp.Join) and node.args.get("on") is not None:
            out = node.copy()  # type: ignore[assignment]
            out.set("this", self.value(node.this))
            out.set("on", self.cond(node.args["on"]))
            return out
        if not isinstance(node, self._VIEW_PASS):
            raise Untranslatable(f"{_describe(node)} has no PostgreSQL form known to mean the same")
        out = node.copy()  # type: ignore[assignment]
        for key, arg in node.args.items():
            if isinstance(arg, exp.Expression):
                out.set(key, self.value(arg))
            elif isinstance(arg, list):
                out.set(key, [self.value(a) if isinstance(a, exp.Expression) else a for a in arg])
        return out


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}()"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name().lower()}()"
    return f"{node.key.upper()} ({_short(node.sql(dialect='sqlite'), 60)})"


# --------------------------------------------------------------------------------------------------- items


def translate_check(name: str | None, source: str, columns: dict[str, Col]) -> Check:
    t = Translator(lambda c: None if c.table else columns.get(c.name))
    return Check(name, t.condition(source), source)


def translate_index(name: str, sql: str, columns: dict[str, Col], unique: bool) -> Index:
    """A CREATE INDEX statement with expressions, collations or a WHERE clause."""
    tree = Translator.parse(sql)
    index = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(index, exp.Index):
        raise Untranslatable("not a CREATE INDEX statement")
    params = index.args.get("params")
    resolve = lambda c: None if c.table else columns.get(c.name)  # noqa: E731
    keys = Translator(resolve, plain_case=not unique)
    cond = Translator(resolve)
    out: list[str] = []
    why: list[str] = []
    for ordered in params.args.get("columns") or []:  # type: ignore[union-attr]
        node = ordered.this if isinstance(ordered, exp.Ordered) else ordered
        coll = keys.collation(node)
        inner = node.this if isinstance(node, exp.Collate) else node
        c = keys.col(inner)
        if c is None:
            why.append("expression")
        if coll == "NOCASE":
            why.append("NOCASE")
        # a non-unique index refuses nothing: its keys stay what the app's queries on green can use
        key = keys.compared(node, coll, False) if unique else keys.value(inner)
        text = keys.sql(key)
        out.append(text if isinstance(key, exp.Column) else f"({text})")
    where = params.args.get("where")  # type: ignore[union-attr]
    where_sql = None
    if where is not None:
        why.append("partial")
        where_sql = cond.sql(cond.cond(where.this))
    return Index(name, unique, out, where_sql, sql, ", ".join(dict.fromkeys(why)))


def nocase_unique(name: str, table: str, cols: list[str], columns: dict[str, Col]) -> Index:
    """The fold index that makes a unique constraint on NOCASE columns refuse case twins, as SQLite does."""
    keys = []
    for col in cols:
        c = columns[col]
        ref = exp.column(c.pg_name, quoted=True)
        keys.append(f"({Translator.sql(_fold(ref))})" if c.nocase else Translator.sql(ref))
    return Index(
        name, True, keys, None, f"UNIQUE ({', '.join(cols)}) on NOCASE column(s) of {table}", "NOCASE"
    )


def translate_view(name: str, sql: str, tables: dict[str, dict[str, Col]]) -> View:
    tree = Translator.parse(sql)
    if not isinstance(tree, exp.Create) or not isinstance(tree.expression, exp.Query):
        raise Untranslatable("not a CREATE VIEW ... AS SELECT statement")
    query = tree.expression
    if query.find(exp.With) is not None:
        raise Untranslatable("WITH in a view")
    aliases: dict[str, dict[str, Col]] = {}
    for t in query.find_all(exp.Table):
        cols = tables.get(t.name)
        if cols is None:
            raise UnknownRelation(t.name)
        aliases[t.alias_or_name] = cols
        aliases.setdefault(t.name, cols)

    def resolve(c: exp.Column) -> Col | None:
        if c.table:
            return aliases.get(c.table, {}).get(c.name)
        found = [cols[c.name] for cols in aliases.values() if c.name in cols]
        return found[0] if len({id(f) for f in found}) == 1 else None

    t = Translator(resolve, view=True)  # type: ignore[assignment]
    out = t.value(query)  # type: ignore[attr-defined]
    outputs: dict[str, Col] = {}
    if isinstance(query, exp.Select):
        for e in query.expressions:
            inner = e.this if isinstance(e, exp.Alias) else e
            c = resolve(inner) if isinstance(inner, exp.Column) else None
            if c is not None and c.bool_pair is None:
                outputs[e.alias_or_name] = Col(_pg_name(e.alias_or_name), c.pg_type, c.nocase)
    # table names: the names PostgreSQL keeps, quoted
    for tab in out.find_all(exp.Table):
        tab.set("this", exp.Identifier(this=_pg_table(tab.name, tables), quoted=True))
    return View(name, Translator.sql(out), sql, outputs)


def _pg_name(name: str) -> str:
    from cockpit.drivers.sync.schema import pg_truncate  # the one rule for names (schema imports this module)

    return pg_truncate(name)


def _pg_table(name: str, tables: dict[str, dict[str, Col]]) -> str:
    return _pg_name(name)
