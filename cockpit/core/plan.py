"""The typed plan (pydantic models) and its loader.

A plan is YAML (`plans/*.yaml`). It is read into the frozen models below (cockpit.core.plan_reading keeps every
node's position), so that a wrong plan is refused before anything runs with *all* its errors at once, each as
`file:line:column: message`: wrong types and values, unknown keys (with "did you mean"), rules that span fields,
and metric names the cockpit does not know. Values may use `${VAR}` and `${VAR:-default}`. `plan_schema()` is the
JSON Schema an editor validates a plan with.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cockpit.core import metric_names
from cockpit.core.errors import EXIT_USAGE, CockpitError
from cockpit.core.plan_reading import Duration as Duration
from cockpit.core.plan_reading import Loc, explain, read, where, yaml_keys
from cockpit.core.plan_reading import Percent as Percent
from cockpit.core.plan_reading import format_duration as format_duration
from cockpit.core.plan_reading import parse_duration as parse_duration
from cockpit.core.redact import redact
from cockpit.core.vocabulary import RollbackStep

RollbackMode = Literal["immediate", "gradual"]
# a services host: [user@]host[:port], no whitespace, nothing ssh would read as an option
_HOST = re.compile(r"^(?:[A-Za-z0-9_.+-]+@)?[A-Za-z0-9_.\[\]:]+[A-Za-z0-9_.\]-]*$")

# --------------------------------------------------------------------------------------------------- the model


class _Part(BaseModel):
    """Every part of a plan: frozen; unknown keys refused; no silent coercion (a quoted "5" is no number).
    Made in Python, its fields may also be given in order (`Cast("t", "n", "text")`)."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:
            data.update(zip(type(self).model_fields, args, strict=False))
        super().__init__(**data)


class Database(_Part):
    engine: Literal["sqlite", "postgresql"]
    path: str = ""  # sqlite
    url: str = ""  # postgresql (secret: comes from the environment)


class Ssh(_Part):
    """How the systemd driver reaches `services.hosts`: the `ssh` client, BatchMode (never a prompt)."""

    user: str = ""  # empty: ssh's own default (the config, or the controller's user)
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: str = ""  # empty: the agent or ssh's default keys
    known_hosts: str = ""  # empty: ssh's default known_hosts files
    strict_host_key_checking: bool = True  # an unknown or changed host key is refused
    connect_timeout: Duration = Duration(5)
    command_timeout: Duration = Duration(60)  # per host, per systemctl run, connection included


class Services(_Part):
    driver: Literal["systemd", "processes", "none"] = "none"
    units: list[str] = []
    # systemd driver: run systemctl on each of these hosts over ssh ([user@]host[:port]); empty: this machine
    hosts: list[str] = []
    ssh: Ssh = Ssh()

    @field_validator("hosts")
    @classmethod
    def _hosts_are_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST.match(host):
                raise ValueError(
                    f"host {host!r} is not [user@]host[:port] (no spaces, not starting with '-')"
                )
        if len(set(hosts)) != len(hosts):
            raise ValueError("a host is listed twice")
        return hosts

    @model_validator(mode="after")
    def _hosts_need_systemd(self) -> Services:
        if self.hosts and self.driver != "systemd":
            raise ValueError(f"hosts are for the systemd driver (over ssh); driver is {self.driver!r}")
        return self

    # processes driver: unit name -> argv, run without a shell; pid files under pid_dir
    commands: dict[str, list[str]] = {}
    pid_dir: str = ""
    stop_timeout: Duration = Duration(10)
    # connections each unit's pool opens to its side's database (0: not known); preflight weighs green's
    # `max_connections` against them
    pool_size: int = 0


class Side(_Part):
    database: Database
    services: Services = Services()
    upstreams: list[str] = []


class Sticky(_Part):
    kind: Literal["cookie", "header", "address"] = "cookie"
    name: str = "session_id"


class Beta(_Part):
    header: str = "X-User-Segment"
    value: str = "beta"


class Balancer(_Part):
    name: str
    include: str
    access_log: str = ""
    test_command: list[str] = ["nginx", "-t"]
    reload_command: list[str] = ["nginx", "-s", "reload"]


class Traffic(_Part):
    driver: Literal["nginx", "file", "none"] = "none"
    balancers: list[Balancer] = []
    sticky: Sticky = Sticky()
    beta: Beta = Beta()
    window: Duration = Duration(60)
    state_file: str = ""  # `file` driver: where the split is written (dry runs, rehearsals)


class Cast(_Part):
    """How to carry a column whose stored values do not all fit one PostgreSQL type."""

    table: str
    column: str
    to: str  # a PostgreSQL type, e.g. text
    on_error: Literal["refuse", "null", "text"] = "refuse"


class Sync(_Part):
    tables: list[str] | Literal["all"] = "all"
    interval: Duration = Duration(1)
    batch_size: int = 1000
    conflict_policy: Literal["newest", "blue-wins", "green-wins"] = "newest"
    copy_jobs: int = 4
    drain_timeout: Duration = Duration(30)
    integrity_interval: Duration = Duration(
        60
    )  # how often blue and green are compared (data_integrity_score)
    casts: list[Cast] = []

    @field_validator("tables", mode="before")
    @classmethod
    def _all_or_a_list(cls, value: Any) -> Any:
        if isinstance(value, list) or value == "all":
            return value
        if isinstance(value, dict):
            raise ValueError("expected a list of table names or 'all', got a mapping")
        hint = " (did you mean 'all'?)" if difflib.get_close_matches(str(value), ["all"], n=1) else ""
        raise ValueError(f"{value!r} is not one of 'all' or a list of table names{hint}")

    # ISO texts of instants in several forms in one column: carried as timestamp by meaning, or refused
    timestamps: Literal["meaning", "strict"] = "meaning"
    # Keys while both sides take writes (cockpit.drivers.sync.keys): green's database-chosen keys count down from
    # `key_ceiling` (default: halfway between the highest key and the key type's limit, below 2**53); the install is
    # refused when fewer than `key_headroom` keys lie between the highest key and the ceiling. Tables in
    # `disjoint_keys` already hand out disjoint keys (UUIDs, a side bit) and are left alone.
    key_ceiling: int | None = None
    key_headroom: int = 1_000_000
    key_alarm: int = (
        100_000  # fewer keys left than this before a table's ceiling: a warning (a tenth: critical)
    )
    disjoint_keys: list[str] = []
    # A table without a primary key is a multiset (every column together is a row's identity) unless named here
    # with the columns that identify its rows.
    row_keys: dict[str, list[str]] = {}


class Gate(_Part):
    """A condition that must hold to leave a phase: `metric op value`."""

    metric: str
    op: Literal["<", "<=", ">", ">=", "=="] = "<"
    value: float = 0.0
    missing: Literal["block", "pass"] = "block"


class Phase(_Part):
    name: str
    green: Percent
    soak: Duration = Duration(0)
    gates: list[Gate] = []
    description: str = ""
    # the advance INTO this phase needs a passing `cockpit preflight` journaled within `preflight.max_age`
    preflight: bool = False


class Threshold(_Part):
    """A DEPLOYMENT_METRICS entry: warning and critical above, or a minimum below which it warns."""

    warning: float | None = None
    critical: float | None = None
    min: float | None = None
    unit: str = ""
    description: str = ""


class Trigger(_Part):
    """A ROLLBACK_CONDITIONS entry: `metric op threshold` held for `for` seconds starts a rollback."""

    name: str
    metric: str
    threshold: float
    op: Literal["<", "<=", ">", ">="] = ">"
    for_: Duration = Field(Duration(0), alias="for")
    action: RollbackMode = "immediate"
    missing: Literal["ignore", "hold", "trigger"] = "ignore"
    description: str = ""


class Rollback(_Part):
    triggers: list[Trigger] = []
    drain_timeout: Duration = Duration(30)
    gradual_soak: Duration = Duration(30)
    steps: list[str] = [s.value for s in RollbackStep]
    max_duration: Duration = Duration(300)


class HealthCheck(_Part):
    name: str
    url: str
    side: Literal["blue", "green", "front"] = "blue"
    expect_status: int = 200
    timeout: Duration = Duration(5)
    retries: int = 5
    interval: Duration = Duration(10)


class Webhook(_Part):
    url: str
    min_level: Literal["info", "warning", "critical"] = "warning"


class Email(_Part):
    to: list[str]
    sender: str = "cockpit@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    min_level: Literal["info", "warning", "critical"] = "critical"


class Alerts(_Part):
    webhook: Webhook | None = None
    email: Email | None = None
    # alerts of one kind (sync conflicts, ...) are gathered: the first after `gather`, with what came meanwhile;
    # later ones at most once per `every`, as one alert with their count
    gather: Duration = Duration(2)
    every: Duration = Duration(60)


class Backup(_Part):
    folder: str = "backups"
    keep: int = 10  # complete backups kept in the folder (the oldest beyond are removed after a new one)
    required: bool = False  # the first advance (from ready) needs a backup of blue younger than max_age
    max_age: Duration = Duration(24 * 3600)
    # `cockpit finalize` archives blue here as a verified backup, kept for `archive_keep` (the strategy: 30 days);
    # older archives in that folder are removed after a new one verifies
    archive_folder: str = "archive"
    archive_keep: Duration = Duration(30 * 86400)


class Preflight(_Part):
    """`cockpit preflight`: how fresh a go must be for a phase with `preflight: true`, and each check's bound."""

    max_age: Duration = Duration(30 * 60)
    timeout: Duration = Duration(10)


class JournalSpec(_Part):
    path: str = ".cockpit/journal.db"
    keep_samples: Duration = Duration(7 * 86400)  # older metric samples are dropped at start, then hourly


# the PromQL a `prometheus` section may override, one per figure per side (and `fresh`: the age of the newest scrape)
PrometheusQuery = Literal["rps", "error_rate", "connection_failure_rate", "response_time_p95", "fresh"]


class Prometheus(_Part):
    """Prometheus as the metric source (issue 12), in place of the access log. `jobs` maps a side to its
    scrape job; `queries` overrides a preset's PromQL per metric (PrometheusQuery; `{job}` and `{window}` are
    filled in)."""

    url: str
    jobs: dict[str, str] = {"blue": "blue", "green": "green"}
    preset: Literal["app", "nginx-exporter"] = "app"
    queries: dict[str, str] = {}
    window: str = "30s"
    stale_after: float = 30.0
    timeout: float = 2.0

    @field_validator("queries")
    @classmethod
    def _known_queries(cls, queries: dict[str, str]) -> dict[str, str]:
        known = typing.get_args(PrometheusQuery)
        unknown = [name for name in queries if name not in known]
        if unknown:
            raise ValueError(
                f"unknown quer{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(known)}"
            )
        return queries


class Plan(_Part):
    """A migration plan: the two sides, how traffic moves between them, the phases, the rules."""

    name: str
    blue: Side
    green: Side
    phases: list[Phase]
    traffic: Traffic = Traffic()
    sync: Sync = Sync()
    metrics: dict[str, Threshold] = {}
    prometheus: Prometheus | None = None
    rollback: Rollback = Rollback()
    health_checks: list[HealthCheck] = []
    alerts: Alerts = Alerts()
    backup: Backup = Backup()
    preflight: Preflight = Preflight()
    journal: JournalSpec = JournalSpec()
    tick: Duration = Duration(1)
    description: str = ""
    _source: str = PrivateAttr("")

    def located(self, source: str | os.PathLike[str]) -> Plan:
        """This plan as read from `source` (never a key of the YAML: load_plan sets it)."""
        plan = self.model_copy()
        plan._source = str(source)
        return plan

    @property
    def source(self) -> str:
        """Where the plan was read from; relative paths in the plan are relative to its folder."""
        return self._source

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


class PlanError(CockpitError):
    """A plan that cannot be used. `errors` holds every `file:line:column: message`."""

    exit_code = EXIT_USAGE

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))

    def report(self, prog: str) -> list[str]:
        return [*self.errors, f"plan refused: {len(self.errors)} error(s)"]


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
    if root is None:
        raise PlanError(
            [f"{filename}:1:1: the plan is empty; expected a mapping with keys {', '.join(yaml_keys(Plan))}"]
        )
    src = read(root, Plan, filename, env)
    try:
        plan = Plan.model_validate(src.data)
    except ValidationError as exc:
        explain(src, Plan, exc)
        raise PlanError(src.messages()) from None
    if src.errors:  # a missing variable in a value the model leaves free (a str)
        raise PlanError(src.messages())
    for loc, message in _rules(plan):
        src.error(src.at(loc), message)
    if src.errors:
        raise PlanError(src.messages())
    return plan.located(Path(filename).resolve())


def _rules(plan: Plan) -> list[tuple[Loc, str]]:
    """Rules that span fields: phases increasing, unique names, driver settings complete, known step and
    metric names."""
    out: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    previous = -1.0
    for i, phase in enumerate(plan.phases):
        if phase.name in names:
            out.append(
                (
                    ("phases", i, "name"),
                    f"phases[{i}]: duplicate phase name {phase.name!r} (first at phases[{names[phase.name]}])",
                )
            )
        names.setdefault(phase.name, i)
        if phase.green <= previous:
            out.append(
                (
                    ("phases", i, "green"),
                    f"phases[{i}] ({phase.name}): green {phase.green:g}% must be greater than the previous phase's {previous:g}%",
                )
            )
        previous = phase.green
        for j, gate in enumerate(phase.gates):
            _metric(out, ("phases", i, "gates", j, "metric"), gate.metric)
    if not plan.phases:
        out.append((("phases",), "phases: at least one phase is required"))
    for side_name, side in (("blue", plan.blue), ("green", plan.green)):
        db = side.database
        if db.engine == "sqlite" and not db.path:
            out.append(((side_name, "database"), f"{side_name}.database: engine sqlite needs 'path'"))
        if db.engine == "postgresql" and not db.url:
            out.append(((side_name, "database"), f"{side_name}.database: engine postgresql needs 'url'"))
        svc = side.services
        for unit in svc.units if svc.driver == "processes" else ():
            if unit not in svc.commands:
                out.append(
                    (
                        (side_name, "services"),
                        f"{side_name}.services: unit {unit!r} has no entry in 'commands' (the processes driver needs its argv)",
                    )
                )
    if plan.traffic.driver == "nginx" and not plan.traffic.balancers:
        out.append((("traffic",), "traffic: driver nginx needs at least one entry in 'balancers'"))
    if plan.traffic.driver == "file" and not plan.traffic.state_file:
        out.append((("traffic",), "traffic: driver file needs 'state_file'"))
    known_steps = sorted(s.value for s in RollbackStep)
    for i, step in enumerate(plan.rollback.steps):
        if step not in known_steps:
            hint = difflib.get_close_matches(step, known_steps, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            out.append(
                (
                    ("rollback", "steps", i),
                    f"rollback.steps: unknown step {step!r}{did}; expected some of {', '.join(known_steps)}",
                )
            )
    for name, t in plan.metrics.items():
        if t.warning is not None and t.critical is not None and t.critical < t.warning:
            out.append(
                (("metrics", name), f"metrics.{name}: critical {t.critical:g} is below warning {t.warning:g}")
            )
        why = metric_names.unknown(name, threshold=True)
        if why:
            out.append((("metrics", name), f"metrics.{name}: {why}"))
    for i, trigger in enumerate(plan.rollback.triggers):
        _metric(out, ("rollback", "triggers", i, "metric"), trigger.metric)
    return out


def _metric(out: list[tuple[Loc, str]], loc: Loc, name: str) -> None:
    why = metric_names.unknown(name)
    if why:
        out.append((loc, f"{where(loc)}: {why}"))


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The resolved plan as plain data (for `plan show`); callers redact before printing."""

    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Duration):
            return format_duration(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    doc: dict[str, Any] = conv(plan.model_dump(by_alias=True))
    doc["source"] = plan.source
    return doc


def plan_record(plan: Plan) -> dict[str, Any]:
    """The plan as the journal keeps it at each controller start (redacted): `cockpit replay --journal` draws the
    day with the plan it was recorded with."""
    doc = plan_to_dict(plan)
    doc.pop("source", None)
    return typing.cast(dict[str, Any], redact(doc))


def plan_from_record(doc: dict[str, Any], where: str | os.PathLike[str]) -> Plan:
    """A plan kept by `plan_record`, read back (for drawing only: its secrets are masked). Raises PlanError."""
    try:
        return Plan.model_validate(doc).located(where)
    except ValidationError as exc:
        raise PlanError([f"{where}: the plan recorded in the journal cannot be read back: {exc}"]) from None


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan, for editors (the YAML language server's `# yaml-language-server: $schema=`)."""
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cockpit plan"}
