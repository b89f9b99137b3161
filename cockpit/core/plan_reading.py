"""Reading a plan's YAML for the typed models of cockpit.core.plan: `${VAR}` and `${VAR:-default}` filled in
(secrets registered with the redactor), every node's position kept, and pydantic's validation errors told as
`file:line:column: where: message`, all of them at once, with "did you mean" where a name is close.

Also the plan's two scalar types, Duration and Percent. Model-agnostic: it walks any pydantic model's fields.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from pydantic_core import ErrorDetails as PydanticError

from cockpit.core.redact import register_secret

Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d))+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
SECRET_FIELDS = frozenset({"url", "password"})  # what these resolve to is registered with the redactor


# ------------------------------------------------------------------------------------------------ scalar types
def parse_duration(text: str | float | int) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    s = str(text).strip()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if not _DURATION.match(s):
        raise ValueError(f"{text!r} is not a duration (expected e.g. 30s, 5m, 6h, 1h30m, 250ms)")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(s))


def format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 1 and seconds > 0:
        return f"{seconds * 1000:.0f}ms"
    total = int(round(seconds))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s or not (h or m) else ""]
    return "".join(parts)


class _Scalar(float):
    """A float a plan writes its own way: `_read` turns what the YAML holds into one, or says why not."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(cls._read)

    @classmethod
    def _read(cls, value: Any) -> _Scalar:
        raise NotImplementedError


class Duration(_Scalar):
    """Seconds, written in a plan as `300`, `300s`, `5m`, `6h`, `1h30m` or `250ms`."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern.replace("\\s*", "")},
            ],
            "description": "seconds: 300, 300s, 5m, 6h, 1h30m, 250ms",
        }

    @classmethod
    def _read(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"expected {describe(cls)}, got a {kind(value)}")
        return cls(parse_duration(value))


class Percent(_Scalar):
    """A share from 0 to 100."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "number", "minimum": 0, "maximum": 100}

    @classmethod
    def _read(cls, value: Any) -> Percent:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, (dict, list)):
                raise ValueError(f"expected {describe(cls)}, got a {kind(value)}")
            raise ValueError(f"{value!r} is not a number (expected a share from 0 to 100)")
        if not 0 <= value <= 100:
            raise ValueError(f"{value} is outside 0..100")
        return cls(value)


# ------------------------------------------------------------------------------------------------ the reading
@dataclass
class Source:
    """A plan's YAML as plain data for a model, and where each part of it stands."""

    filename: str
    data: Any = None
    nodes: dict[Loc, yaml.Node] = field(default_factory=dict)  # loc -> the node of its value
    keys: dict[Loc, yaml.Node] = field(default_factory=dict)  # loc -> the node of its key
    errors: list[tuple[yaml.Node | None, str]] = field(default_factory=list)
    failed: set[Loc] = field(default_factory=set)  # locs whose value could not be read (already reported)

    def at(self, loc: Loc, *, key: bool = False) -> yaml.Node | None:
        """The node of `loc` (its key's node with key=True), else of its nearest ancestor."""
        if key and loc in self.keys:
            return self.keys[loc]
        while loc not in self.nodes and loc:
            loc = loc[:-1]
        return self.nodes.get(loc)

    def error(self, node: yaml.Node | None, message: str) -> None:
        self.errors.append((node, message))

    def messages(self) -> list[str]:
        """Every error as `file:line:column: message`, in the order of the file."""
        placed = []
        for node, message in self.errors:
            line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
            placed.append((line, col, f"{self.filename}:{line}:{col}: {message}"))
        seen: set[str] = set()
        out = []
        for _, _, text in sorted(placed, key=lambda p: (p[0], p[1])):
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out


def read(root: yaml.Node, model: type[BaseModel], filename: str, env: Mapping[str, str]) -> Source:
    """The data of `root` for `model`: values interpolated; a str field gets its text as written (YAML's
    reading of `1.10` or `0755` is not applied to it)."""
    src = Source(filename)
    src.data = _Reader(src, env).value(root, model, (), False)
    return src


class _Reader:
    def __init__(self, src: Source, env: Mapping[str, str]):
        self.src = src
        self.env = env

    def value(self, node: yaml.Node, tp: Any, loc: Loc, secret: bool) -> Any:
        self.src.nodes[loc] = node
        tp = _plain(tp)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, tp, loc, secret)
        if isinstance(node, yaml.SequenceNode):
            item = _item_type(tp)
            return [self.value(n, item, (*loc, i), secret) for i, n in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, tp, loc, secret)

    def mapping(self, node: yaml.MappingNode, tp: Any, loc: Loc, secret: bool) -> dict[str, Any]:
        names = _field_types(tp) if _is_model(tp) else None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if names is not None and key not in names and key.replace("-", "_") in names:
                key = key.replace("-", "_")
            child = (*loc, key)
            if key in out:
                self.src.error(key_node, f"{where(loc) or 'plan'}: duplicate key {key!r}")
                continue
            self.src.keys[child] = key_node
            if names is not None:
                child_tp, child_secret = names.get(key), key in SECRET_FIELDS
            else:
                child_tp, child_secret = _value_type(tp), secret
            out[key] = self.value(value_node, child_tp, child, child_secret)
        return out

    def scalar(self, node: yaml.ScalarNode, tp: Any, loc: Loc, secret: bool) -> Any:
        raw = self.interpolate(node, secret)
        if raw is None:
            self.src.failed.add(loc)
            return node.value
        if tp is str or typing.get_origin(tp) is Literal:
            return None if node.tag == _NULL and raw == node.value else raw
        tag = node.tag
        if node.tag == _STR and node.style is None and raw != node.value:  # interpolated: read as YAML would
            tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, raw, (True, False))  # type: ignore[no-untyped-call]
        return yaml.SafeLoader("").construct_object(yaml.ScalarNode(tag, raw))

    def interpolate(self, node: yaml.ScalarNode, secret: bool) -> str | None:
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if self.env.get(name, "") != "":
                value = self.env[name]
                if secret or _looks_secret(name):
                    register_secret(value)
                return value
            if default is not None:
                return default
            missing.append(name)
            return ""

        out = _VAR.sub(sub, str(node.value))
        for name in missing:
            self.src.error(
                node, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            )
        return None if missing else out


def _looks_secret(name: str) -> bool:
    return bool(re.search(r"(?i)password|secret|token|key|url|dsn", name))


# ------------------------------------------------------------------------------------------------ the errors
def explain(src: Source, model: type[BaseModel], exc: ValidationError) -> None:
    """Add pydantic's errors to `src` in the plan's words, placed at their nodes."""
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        if any(loc[: len(f)] == f for f in src.failed):
            continue  # its value was never read (a missing variable): already reported
        node, message = _explain(src, model, err, loc)
        src.error(node, message)


def _explain(
    src: Source, model: type[BaseModel], err: PydanticError, loc: Loc
) -> tuple[yaml.Node | None, str]:
    kind_ = err["type"]
    here = where(loc)
    if kind_ == "missing":
        parent = loc[:-1]
        return src.at(parent), f"{where(parent) or 'plan'}: missing required key {loc[-1]!r}"
    if kind_ == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        keys = yaml_keys(_type_at(model, parent))
        hint = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        did = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of {', '.join(keys)}"
        return src.at(loc, key=True), f"{where(parent) or 'plan'}: unknown key {key!r}{did}"
    node = src.at(loc)
    if kind_ == "value_error":
        return node, f"{here}: {err.get('ctx', {}).get('error', err['msg'])}"
    tp = _plain(_type_at(model, loc))
    value = err["input"]
    raw = node.value if isinstance(node, yaml.ScalarNode) else value
    if isinstance(value, (dict, list)) or _is_container(tp):
        got = kind(value) if not isinstance(node, yaml.ScalarNode) else f"value {raw!r}"
        expected = describe(tp)
        if _is_model(tp):
            expected = f"a mapping with keys {', '.join(yaml_keys(tp))}"
        elif typing.get_origin(tp) is list:
            expected = f"a list of {describe(_item_type(tp))}"
        return node, f"{here or 'plan'}: expected {expected}, got a {got}"
    if typing.get_origin(tp) is Literal:
        choices = [str(c) for c in typing.get_args(tp)]
        hint = difflib.get_close_matches(str(raw), choices, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return node, f"{here}: {raw!r} is not one of {', '.join(map(repr, choices))}{did}"
    if tp is str and value is None:
        return node, f"{here}: a value is required"
    what = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(tp)
    if what == "true or false":
        return node, f"{here}: {raw!r} is not true or false"
    if what is not None:
        return node, f"{here}: {raw!r} is not {what}"
    return node, f"{here}: {err['msg']}"


def where(loc: Loc) -> str:
    """`phases[0].gates[1].metric` for ("phases", 0, "gates", 1, "metric")."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return f"value {value!r}"


def describe(tp: Any) -> str:
    tp = _plain(tp)
    if tp is Duration:
        return "a duration (e.g. 30s, 5m, 6h)"
    if tp is Percent:
        return "a share from 0 to 100"
    simple = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
    if tp in simple:
        return simple[tp]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin is list:
        return "a list"
    if origin is dict or _is_model(tp):
        return "a mapping"
    return " or ".join(describe(a) for a in typing.get_args(tp) if a is not type(None)) or str(tp)


def yaml_keys(tp: Any) -> list[str]:
    """The keys a model takes in YAML (aliases where it has them)."""
    if not _is_model(tp):
        return []
    return [f.alias or name for name, f in tp.model_fields.items()]


# ------------------------------------------------------------------------------------------------ the types
def _plain(tp: Any) -> Any:
    """The type without Annotated metadata and without `| None`."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _plain(args[0])
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_container(tp: Any) -> bool:
    return _is_model(tp) or typing.get_origin(tp) in (list, dict)


def _field_types(model: type[BaseModel]) -> dict[str, Any]:
    """YAML key (alias or name) -> annotation."""
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        out[name] = f.annotation
        if f.alias:
            out[f.alias] = f.annotation
    return out


def _item_type(tp: Any) -> Any:
    tp = _plain(tp)
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0]
    for a in typing.get_args(tp):  # list[str] | Literal["all"]
        if typing.get_origin(a) is list:
            return typing.get_args(a)[0]
    return None


def _value_type(tp: Any) -> Any:
    tp = _plain(tp)
    return typing.get_args(tp)[1] if typing.get_origin(tp) is dict else None


def _type_at(model: type[BaseModel], loc: Loc) -> Any:
    tp: Any = model
    for part in loc:
        tp = _plain(tp)
        if isinstance(part, int):
            tp = _item_type(tp)
        elif _is_model(tp):
            tp = _field_types(tp).get(part)
        else:
            tp = _value_type(tp)
    return tp
