"""The typed plan and its loader.

A plan is YAML (`plans/*.yaml`). It is read into the frozen dataclasses below by a small schema walker that keeps
every node's position, so that a wrong plan is refused before anything runs with *all* its errors at once, each as
`file:line:column: message`. Values may use `${VAR}` and `${VAR:-default}`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cockpit.core.redact import register_secret

# --------------------------------------------------------------------------------------------------- the model


class Duration(float):
    """Seconds, written in a plan as `300`, `300s`, `5m`, `6h`, `1h30m` or `250ms`."""


class Percent(float):
    """A share from 0 to 100."""


@dataclass(frozen=True)
class Database:
    engine: Literal["sqlite", "postgresql"]
    path: str = ""  # sqlite
    url: str = ""  # postgresql (secret: comes from the environment)


@dataclass(frozen=True)
class Services:
    driver: Literal["systemd", "processes", "none"] = "none"
    units: list[str] = field(default_factory=list)
    # processes driver: unit name -> argv, run without a shell; pid files under pid_dir
    commands: dict[str, list[str]] = field(default_factory=dict)
    pid_dir: str = ""
    stop_timeout: Duration = Duration(10)


@dataclass(frozen=True)
class Side:
    database: Database
    services: Services = field(default_factory=Services)
    upstreams: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sticky:
    kind: Literal["cookie", "header", "address"] = "cookie"
    name: str = "session_id"


@dataclass(frozen=True)
class Beta:
    header: str = "X-User-Segment"
    value: str = "beta"


@dataclass(frozen=True)
class Balancer:
    name: str
    include: str
    access_log: str = ""
    test_command: list[str] = field(default_factory=lambda: ["nginx", "-t"])
    reload_command: list[str] = field(default_factory=lambda: ["nginx", "-s", "reload"])


@dataclass(frozen=True)
class Traffic:
    driver: Literal["nginx", "file", "none"] = "none"
    balancers: list[Balancer] = field(default_factory=list)
    sticky: Sticky = field(default_factory=Sticky)
    beta: Beta = field(default_factory=Beta)
    window: Duration = Duration(60)
    state_file: str = ""  # `file` driver: where the split is written (dry runs, rehearsals)


@dataclass(frozen=True)
class Cast:
    """How to carry a column whose stored values do not all fit one PostgreSQL type."""

    table: str
    column: str
    to: str  # a PostgreSQL type, e.g. text
    on_error: Literal["refuse", "null", "text"] = "refuse"


@dataclass(frozen=True)
class Sync:
    tables: list[str] | Literal["all"] = "all"
    interval: Duration = Duration(1)
    batch_size: int = 1000
    conflict_policy: Literal["newest", "blue-wins", "green-wins"] = "newest"
    copy_jobs: int = 4
    drain_timeout: Duration = Duration(30)
    integrity_interval: Duration = Duration(
        60
    )  # how often blue and green are compared (data_integrity_score)
    casts: list[Cast] = field(default_factory=list)
    # ISO texts of instants in several forms in one column: carried as timestamp by meaning, or refused
    timestamps: Literal["meaning", "strict"] = "meaning"
    # Keys while both sides take writes (cockpit.drivers.sync.keys): green's database-chosen keys count down from
    # `key_ceiling` (default: halfway between the highest key and the key type's limit, below 2**53); the install is
    # refused when fewer than `key_headroom` keys lie between the highest key and the ceiling. Tables in
    # `disjoint_keys` already hand out disjoint keys (UUIDs, a side bit) and are left alone.
    key_ceiling: int | None = None
    key_headroom: int = 1_000_000
    disjoint_keys: list[str] = field(default_factory=list)
    # A table without a primary key is a multiset (every column together is a row's identity) unless named here
    # with the columns that identify its rows.
    row_keys: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """A condition that must hold to leave a phase: `metric op value`."""

    metric: str
    op: Literal["<", "<=", ">", ">=", "=="] = "<"
    value: float = 0.0
    missing: Literal["block", "pass"] = "block"


@dataclass(frozen=True)
class Phase:
    name: str
    green: Percent
    soak: Duration = Duration(0)
    gates: list[Gate] = field(default_factory=list)
    description: str = ""


@dataclass(frozen=True)
class Threshold:
    """A DEPLOYMENT_METRICS entry: warning and critical above, or a minimum below which it warns."""

    warning: float | None = None
    critical: float | None = None
    min: float | None = None
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Trigger:
    """A ROLLBACK_CONDITIONS entry: `metric op threshold` held for `for_` seconds starts a rollback."""

    name: str
    metric: str
    threshold: float
    op: Literal["<", "<=", ">", ">="] = ">"
    for_: Duration = Duration(0)
    action: Literal["immediate", "gradual"] = "immediate"
    missing: Literal["ignore", "hold", "trigger"] = "ignore"
    description: str = ""


@dataclass(frozen=True)
class Rollback:
    triggers: list[Trigger] = field(default_factory=list)
    drain_timeout: Duration = Duration(30)
    gradual_soak: Duration = Duration(30)
    steps: list[str] = field(
        default_factory=lambda: [
            "traffic",
            "drain",
            "stop_green",
            "start_blue",
            "health",
            "integrity",
            "notify",
        ]
    )
    max_duration: Duration = Duration(300)


@dataclass(frozen=True)
class HealthCheck:
    name: str
    url: str
    side: Literal["blue", "green", "front"] = "blue"
    expect_status: int = 200
    timeout: Duration = Duration(5)
    retries: int = 5
    interval: Duration = Duration(10)


@dataclass(frozen=True)
class Webhook:
    url: str
    min_level: Literal["info", "warning", "critical"] = "warning"


@dataclass(frozen=True)
class Email:
    to: list[str]
    sender: str = "cockpit@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    min_level: Literal["info", "warning", "critical"] = "critical"


@dataclass(frozen=True)
class Alerts:
    webhook: Webhook | None = None
    email: Email | None = None


@dataclass(frozen=True)
class Backup:
    folder: str = "backups"
    keep: int = 10  # complete backups kept in the folder (the oldest beyond are removed after a new one)
    required: bool = False  # the first advance (from ready) needs a backup of blue younger than max_age
    max_age: Duration = Duration(24 * 3600)


@dataclass(frozen=True)
class JournalSpec:
    path: str = ".cockpit/journal.db"
    keep_samples: Duration = Duration(7 * 86400)  # older metric samples are dropped at start, then hourly


@dataclass(frozen=True)
class Plan:
    name: str
    blue: Side
    green: Side
    phases: list[Phase]
    traffic: Traffic = field(default_factory=Traffic)
    sync: Sync = field(default_factory=Sync)
    metrics: dict[str, Threshold] = field(default_factory=dict)
    rollback: Rollback = field(default_factory=Rollback)
    health_checks: list[HealthCheck] = field(default_factory=list)
    alerts: Alerts = field(default_factory=Alerts)
    backup: Backup = field(default_factory=Backup)
    journal: JournalSpec = field(default_factory=JournalSpec)
    tick: Duration = Duration(1)
    description: str = ""
    # where it was read from; relative paths in the plan are relative to its folder
    source: str = ""

    def phase_index(self, name: str) -> int:
        for i, phase in enumerate(self.phases):
            if phase.name == name:
                return i
        raise KeyError(name)

    def path(self, value: str) -> Path:
        """A path from the plan, relative to the plan file's folder."""
        p = Path(value).expanduser()
        if p.is_absolute() or not self.source:
            return p
        return Path(self.source).resolve().parent / p


# ------------------------------------------------------------------------------------------------- the loader


class PlanError(Exception):
    """A plan that cannot be used. `errors` holds every `file:line:column: message`."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# YAML keys that are Python keywords or read better with a dash
_KEY_ALIASES = {"for": "for_"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d))+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# keys whose value is a secret: what they resolve to is registered with the redactor
_SECRET_FIELDS = {"url", "password"}


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


class _Walker:
    def __init__(self, filename: str, env: typing.Mapping[str, str]):
        self.filename = filename
        self.env = env
        self.errors: list[str] = []

    def error(self, node: yaml.Node | None, message: str) -> None:
        if node is None:
            self.errors.append(f"{self.filename}:1:1: {message}")
        else:
            m = node.start_mark
            self.errors.append(f"{self.filename}:{m.line + 1}:{m.column + 1}: {message}")

    # -- scalars ------------------------------------------------------------------------------------------
    def interpolate(self, node: yaml.ScalarNode, secret: bool) -> str | None:
        text = node.value
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in self.env and self.env[name] != "":
                value = self.env[name]
                if secret or _looks_secret(name):
                    register_secret(value)
                return value
            if default is not None:
                return default
            missing.append(name)
            return ""

        out = _VAR.sub(sub, text)
        if missing:
            for name in missing:
                self.error(
                    node, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                )
            return None
        return out

    def scalar(self, node: yaml.Node, tp: Any, where: str, secret: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{where}: expected {_describe(tp)}, got a {_kind(node)}")
            return _FAIL
        raw = self.interpolate(node, secret)
        if raw is None:
            return _FAIL
        plain = node.tag == "tag:yaml.org,2002:str" and node.style is None
        if plain and raw != node.value:  # interpolated: re-read the result as YAML would
            resolved_tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, raw, (True, False))
        else:
            resolved_tag = node.tag
        try:
            if tp is Duration:
                return Duration(parse_duration(_yaml_value(raw, resolved_tag)))
            if tp is Percent:
                value = _yaml_value(raw, resolved_tag)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{raw!r} is not a number (expected a share from 0 to 100)")
                if not 0 <= value <= 100:
                    raise ValueError(f"{value} is outside 0..100")
                return Percent(value)
            if tp is bool:
                value = _yaml_value(raw, resolved_tag)
                if not isinstance(value, bool):
                    raise ValueError(f"{raw!r} is not true or false")
                return value
            if tp is int:
                value = _yaml_value(raw, resolved_tag)
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{raw!r} is not a whole number")
                return value
            if tp is float:
                value = _yaml_value(raw, resolved_tag)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{raw!r} is not a number")
                return float(value)
            if tp is str:
                if resolved_tag == "tag:yaml.org,2002:null":
                    raise ValueError("a value is required")
                return raw
            if typing.get_origin(tp) is Literal:
                choices = typing.get_args(tp)
                if raw not in choices:
                    hint = difflib.get_close_matches(raw, [str(c) for c in choices], n=1)
                    did = f" (did you mean {hint[0]!r}?)" if hint else ""
                    raise ValueError(f"{raw!r} is not one of {', '.join(map(repr, choices))}{did}")
                return raw
        except ValueError as exc:
            self.error(node, f"{where}: {exc}")
            return _FAIL
        raise TypeError(f"no scalar reader for {tp}")  # pragma: no cover - a bug in the model

    # -- any node -----------------------------------------------------------------------------------------
    def value(self, node: yaml.Node, tp: Any, where: str, secret: bool = False) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            null = isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
            if null and type(None) in typing.get_args(tp):
                return None
            if len(args) == 1:
                return self.value(node, args[0], where, secret)
            # list[str] | Literal["all"]: pick by node kind
            for a in args:
                if isinstance(node, yaml.SequenceNode) and typing.get_origin(a) is list:
                    return self.value(node, a, where, secret)
                if isinstance(node, yaml.ScalarNode) and typing.get_origin(a) is not list:
                    return self.value(node, a, where, secret)
            self.error(node, f"{where}: expected {_describe(tp)}, got a {_kind(node)}")
            return _FAIL
        if origin is list:
            (item_tp,) = typing.get_args(tp)
            if not isinstance(node, yaml.SequenceNode):
                self.error(node, f"{where}: expected a list of {_describe(item_tp)}, got a {_kind(node)}")
                return _FAIL
            items = [self.value(n, item_tp, f"{where}[{i}]", secret) for i, n in enumerate(node.value)]
            return _FAIL if any(i is _FAIL for i in items) else items
        if origin is dict:
            _, val_tp = typing.get_args(tp)
            if not isinstance(node, yaml.MappingNode):
                self.error(node, f"{where}: expected a mapping, got a {_kind(node)}")
                return _FAIL
            out: dict[str, Any] = {}
            for k, v in node.value:
                if k.value in out:
                    self.error(k, f"{where}: duplicate key {k.value!r}")
                out[k.value] = self.value(v, val_tp, f"{where}.{k.value}", secret)
            return _FAIL if any(v is _FAIL for v in out.values()) else out
        if dataclasses.is_dataclass(tp):
            return self.record(node, tp, where)
        return self.scalar(node, tp, where, secret)

    def record(self, node: yaml.Node, cls: Any, where: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            self.error(
                node,
                f"{where}: expected a mapping with keys {', '.join(_yaml_keys(cls))}, got a {_kind(node)}",
            )
            return _FAIL
        label = where or "plan"
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
        values: dict[str, Any] = {}
        seen: set[str] = set()
        failed = False
        for key_node, value_node in node.value:
            key = key_node.value
            name = _KEY_ALIASES.get(key, key.replace("-", "_"))
            if name not in fields:
                hint = difflib.get_close_matches(key, _yaml_keys(cls), n=1, cutoff=0.6)
                did = (
                    f"; did you mean {hint[0]!r}?"
                    if hint
                    else f"; expected one of {', '.join(_yaml_keys(cls))}"
                )
                self.error(key_node, f"{label}: unknown key {key!r}{did}")
                failed = True
                continue
            if name in seen:
                self.error(key_node, f"{label}: duplicate key {key!r}")
                failed = True
                continue
            seen.add(name)
            v = self.value(
                value_node, hints[name], f"{where}.{key}" if where else key, secret=name in _SECRET_FIELDS
            )
            if v is _FAIL:
                failed = True
            else:
                values[name] = v
        for name, f in fields.items():
            if (
                name not in seen
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                self.error(node, f"{label}: missing required key {name.rstrip('_')!r}")
                failed = True
        if failed:
            return _FAIL
        return cls(**values)


_FAIL = object()


def _looks_secret(name: str) -> bool:
    return bool(re.search(r"(?i)password|secret|token|key|url|dsn", name))


def _yaml_value(raw: str, tag: str) -> Any:
    return yaml.SafeLoader("").construct_object(yaml.ScalarNode(tag, raw))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return f"value {node.value!r}"


def _describe(tp: Any) -> str:
    if tp is Duration:
        return "a duration (e.g. 30s, 5m, 6h)"
    if tp is Percent:
        return "a share from 0 to 100"
    if tp is str:
        return "a string"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin is list:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None)) or str(tp)


def _yaml_keys(cls: Any) -> list[str]:
    back = {v: k for k, v in _KEY_ALIASES.items()}
    return [back.get(f.name, f.name) for f in dataclasses.fields(cls) if f.name != "source"]


def _check_semantics(plan: Plan, root: yaml.MappingNode, w: _Walker) -> None:
    """Rules that span fields: phases increasing, unique names, driver settings complete."""
    phases_node = _child(root, "phases")
    names: dict[str, int] = {}
    previous = -1.0
    for i, phase in enumerate(plan.phases):
        pnode = phases_node.value[i] if phases_node is not None else None
        if phase.name in names:
            w.error(
                _child(pnode, "name") or pnode,
                f"phases[{i}]: duplicate phase name {phase.name!r} (first at phases[{names[phase.name]}])",
            )
        names.setdefault(phase.name, i)
        if phase.green <= previous:
            w.error(
                _child(pnode, "green") or pnode,
                f"phases[{i}] ({phase.name}): green {phase.green:g}% must be greater than the previous phase's {previous:g}%",
            )
        previous = phase.green
    if not plan.phases:
        w.error(phases_node or root, "phases: at least one phase is required")
    for side_name in ("blue", "green"):
        side: Side = getattr(plan, side_name)
        snode = _child(root, side_name)
        db = side.database
        dnode = _child(snode, "database")
        if db.engine == "sqlite" and not db.path:
            w.error(dnode, f"{side_name}.database: engine sqlite needs 'path'")
        if db.engine == "postgresql" and not db.url:
            w.error(dnode, f"{side_name}.database: engine postgresql needs 'url'")
        svc = side.services
        if svc.driver == "processes":
            for unit in svc.units:
                if unit not in svc.commands:
                    w.error(
                        _child(snode, "services"),
                        f"{side_name}.services: unit {unit!r} has no entry in 'commands' (the processes driver needs its argv)",
                    )
    if plan.traffic.driver == "nginx" and not plan.traffic.balancers:
        w.error(
            _child(root, "traffic") or root, "traffic: driver nginx needs at least one entry in 'balancers'"
        )
    if plan.traffic.driver == "file" and not plan.traffic.state_file:
        w.error(_child(root, "traffic") or root, "traffic: driver file needs 'state_file'")
    known_steps = {"traffic", "drain", "stop_green", "start_blue", "health", "integrity", "notify"}
    for step in plan.rollback.steps:
        if step not in known_steps:
            hint = difflib.get_close_matches(step, sorted(known_steps), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            w.error(
                _child(_child(root, "rollback"), "steps") or root,
                f"rollback.steps: unknown step {step!r}{did}; expected some of {', '.join(sorted(known_steps))}",
            )
    for name, t in plan.metrics.items():
        if t.warning is not None and t.critical is not None and t.critical < t.warning:
            w.error(
                _child(_child(root, "metrics"), name),
                f"metrics.{name}: critical {t.critical:g} is below warning {t.warning:g}",
            )


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def load_plan(path: str | os.PathLike[str], env: typing.Mapping[str, str] | None = None) -> Plan:
    """Read, interpolate and validate a plan. Raises PlanError with every problem found."""
    filename = str(path)
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([f"{filename}:1:1: cannot read the plan: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise PlanError([f"{filename}:1:1: the plan is not UTF-8 text ({exc.reason})"]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError([f"{where}: not valid YAML: {problem}"]) from exc
    w = _Walker(filename, env)
    if root is None:
        raise PlanError(
            [f"{filename}:1:1: the plan is empty; expected a mapping with keys {', '.join(_yaml_keys(Plan))}"]
        )
    plan = w.record(root, Plan, "")
    if plan is _FAIL:
        raise PlanError(w.errors)
    plan = dataclasses.replace(plan, source=str(Path(filename).resolve()))
    _check_semantics(plan, root, w)
    if w.errors:
        raise PlanError(w.errors)
    return plan


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The resolved plan as plain data (for `plan show`); callers redact before printing."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            back = {val: key for key, val in _KEY_ALIASES.items()}
            return {back.get(f.name, f.name): conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Duration):
            return format_duration(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    return conv(plan)
