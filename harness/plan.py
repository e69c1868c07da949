"""The upgrade plan: one reviewed YAML file -> frozen :class:`Plan` values.

Every error is a :class:`PlanError` naming the field path (``traffic.steps[2]``), the bad value and
what would be valid; misspelt keys get a "did you mean"; unknown keys are rejected; secrets written as
values are rejected (credentials are named by environment variable, never written in the plan).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compat import RULE_IDS, Version
from harness.config import AllowRule
from harness.errors import HarnessError, PlanError

PLAN_FORMAT = 1
MODES = ("dbless", "hybrid")
PROVIDERS = ("process", "docker", "auto", "existing")
ROLES = ("dbless", "cp", "dp")
SPLITTERS = ("haproxy", "nginx", "command")
UPSTREAMS = ("echo", "none")
FAIL_ON = ("error", "warning", "never")
DEFAULT_IMAGE = "kuh/kong-emulator:dev"
MAX_NODES = 32

#: emulator faults: lower-case suffix of KONG_EMULATOR_FAULT_* -> checker of the value
FAULTS: Mapping[str, str] = {
    "error_rate": "a fraction 0..1",
    "latency_ms": "milliseconds >= 0",
    "latency_jitter_ms": "milliseconds >= 0",
    "keyauth": "accept_any | reject_valid",
    "drop_routes": "a comma-separated list of route names",
    "crash_after_requests": "a count >= 1",
    "crash_after_seconds": "seconds > 0",
    "refuse_cp": "true | false",
    "config_drift_after_seconds": "seconds > 0",
    "after_requests": "a count >= 0 (error_rate and latency start after this many proxied requests)",
}

#: keys that hold secrets by value; the plan must name an environment variable instead
_SECRET_KEYS = re.compile(r"(^|_)(token|password|secret|api_?key|apikey|credential_value)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# ---------------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True)
class ExistingNode:
    """A node the harness did not start (reached by URL, never stopped, never written to on X)."""

    role: str
    admin_url: str | None = None
    proxy_url: str | None = None
    status_url: str | None = None


@dataclass(frozen=True)
class ClusterPlan:
    """Cluster X (running) or Y (new)."""

    provider: str
    version: str | None
    count: int
    initial: int
    image: str | None
    nodes: tuple[ExistingNode, ...] = ()
    faults: Mapping[str, str] = field(default_factory=dict)
    dp_version: str | None = None

    @property
    def data_plane_version(self) -> str | None:
        """The DPs' version in hybrid mode (``dp_version`` when given, else the CP's)."""
        return self.dp_version or self.version


@dataclass(frozen=True)
class ConfigPlan:
    source: Path | None            # absolute path of the declarative template
    upstream: str                  # "echo" | "none"


@dataclass(frozen=True)
class CommandSplitter:
    set_weights: str               # shell command with {x} and {y}
    get_weights: str | None = None
    listen_url: str | None = None


@dataclass(frozen=True)
class TrafficPlan:
    splitter: str
    steps: tuple[int, ...]
    hold_seconds: float
    soak_seconds: float
    command: CommandSplitter | None = None


@dataclass(frozen=True)
class ProbePlan:
    rate: float
    timeout_seconds: float


@dataclass(frozen=True)
class GatePlan:
    max_error_rate: float
    max_p99_ms: float
    max_error_rate_delta: float
    max_latency_shift_ms: float
    alpha: float
    min_samples: int
    max_probe_error_rate: float
    observe_only: bool


@dataclass(frozen=True)
class ParityPlan:
    """Expected X -> Y differences that the parity check moves to its ``allowed`` group."""

    allow: tuple[AllowRule, ...] = ()


@dataclass(frozen=True)
class AcceptedFinding:
    id: str
    reason: str


@dataclass(frozen=True)
class ConsiderationsPlan:
    fail_on: str
    accept: tuple[AcceptedFinding, ...]
    kong_conf: Mapping[str, Any] = field(default_factory=dict)

    def accepted(self, finding_id: str) -> AcceptedFinding | None:
        return next((a for a in self.accept if a.id == finding_id), None)


@dataclass(frozen=True)
class Credentials:
    admin_token_env: str | None = None

    def admin_token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The admin token from the named environment variable (None when none is named)."""
        if self.admin_token_env is None:
            return None
        env = os.environ if environ is None else environ
        value = env.get(self.admin_token_env)
        if not value:
            raise PlanError(
                f"credentials.admin_token_env names {self.admin_token_env!r}, but that environment "
                "variable is not set (or empty)",
                hint=f"export {self.admin_token_env}=<token> before running, or remove admin_token_env",
            )
        return value


@dataclass(frozen=True)
class Plan:
    """A validated upgrade plan."""

    name: str
    description: str
    mode: str
    x: ClusterPlan
    y: ClusterPlan
    config: ConfigPlan
    traffic: TrafficPlan
    probe: ProbePlan
    gates: GatePlan
    parity: ParityPlan
    considerations: ConsiderationsPlan
    credentials: Credentials
    path: Path | None = None
    format: int = PLAN_FORMAT

    @property
    def y_version(self) -> str:
        """The version Y runs (its CP's in hybrid mode): the plan must say it, Y does not exist yet."""
        if self.y.version is None:
            raise PlanError("y.version is missing; expected the Kong version cluster Y will run, such as \"3.8.1\"")
        return self.y.version


# ---------------------------------------------------------------------------------------------------
# validation helpers


class _Section:
    """A mapping being validated: remembers its path and which keys were read."""

    def __init__(self, data: Any, path: str, keys: tuple[str, ...]) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise PlanError(f"{path or 'the plan'} must be a mapping of keys, got {_show(data)}",
                            hint=f"valid keys: {', '.join(keys)}")
        self.data = data
        self.path = path
        self.keys = keys
        for key in data:
            _reject_secret(self.sub(str(key)), str(key), data[key])
            if key not in keys:
                raise PlanError(_unknown_key(self.sub(str(key)), str(key), keys),
                                hint=f"valid keys under {path or 'the top level'}: {', '.join(keys)}")

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def required(self, key: str, what: str) -> Any:
        if self.data.get(key) is None:
            raise PlanError(f"{self.sub(key)} is missing; expected {what}")
        return self.data[key]

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str:
        value = self.raw(key, default)
        if value is None:
            raise PlanError(f"{self.sub(key)} is missing; expected one of: {', '.join(choices)}")
        if value not in choices:
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected one of: {', '.join(choices)}"
                            + _did_you_mean(str(value), choices))
        return str(value)

    def text(self, key: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None,
             what: str = "a string") -> str | None:
        value = self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected {what}")
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected a whole number from {lo} to {hi}")
        return value

    def number(self, key: str, default: float, lo: float, hi: float, *, lo_open: bool = False) -> float:
        value = self.raw(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            low = f"more than {lo:g}" if lo_open else f"from {lo:g}"
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected a number {low} to {hi:g}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected true or false")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise PlanError(f"{self.sub(key)} is {_show(value)}; expected a list")
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:80]}..." if len(text) > 80 else text


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(path: str, key: str, valid: tuple[str, ...]) -> str:
    return f"{path}: unknown key {key!r}" + _did_you_mean(key, valid)


def _reject_secret(path: str, key: str, value: Any) -> None:
    if key.endswith("_env") or not _SECRET_KEYS.search(key) or value in (None, ""):
        return
    raise PlanError(
        f"{path}: the plan holds a secret by value ({key!r}); plans are reviewed and committed, secrets "
        "must not be",
        hint="put the token in an environment variable and name it in credentials.admin_token_env",
    )


def _url(section: _Section, key: str) -> str | None:
    return section.text(key, None, pattern=re.compile(r"^https?://[^/\s:]+(:\d+)?/?$"),
                        what="http(s)://host:port")


def _version(section: _Section, key: str) -> str | None:
    value = section.raw(key)
    if value is None:
        return None
    if isinstance(value, float | int) and not isinstance(value, bool):
        raise PlanError(f"{section.sub(key)} is the number {value!r}; expected a version string such as "
                        f"\"{value}.0\"", hint="quote versions in YAML: version: \"3.4.2\"")
    try:
        Version.parse(value)
    except HarnessError as exc:
        raise PlanError(f"{section.sub(key)}: {exc.message}", hint=exc.hint) from None
    return str(value)


# ---------------------------------------------------------------------------------------------------
# sections


def _faults(section: _Section, key: str) -> dict[str, str]:
    data = section.raw(key, {})
    sub = _Section(data, section.sub(key), tuple(FAULTS))
    out: dict[str, str] = {}
    for name, value in sub.data.items():
        path = sub.sub(str(name))
        text = str(value).lower() if isinstance(value, bool) else str(value)
        checks: dict[str, Callable[[str], bool]] = {
            "error_rate": lambda t: _float_in(t, 0, 1),
            "latency_ms": lambda t: _float_in(t, 0, 600_000),
            "latency_jitter_ms": lambda t: _float_in(t, 0, 600_000),
            "keyauth": lambda t: t in ("accept_any", "reject_valid"),
            "drop_routes": lambda t: bool(t.strip()),
            "crash_after_requests": lambda t: t.isdigit() and int(t) >= 1,
            "crash_after_seconds": lambda t: _float_in(t, 0, 86_400, lo_open=True),
            "refuse_cp": lambda t: t in ("true", "false"),
            "config_drift_after_seconds": lambda t: _float_in(t, 0, 86_400, lo_open=True),
            "after_requests": lambda t: t.isdigit(),
        }
        if isinstance(value, list | dict) or not checks[str(name)](text):
            raise PlanError(f"{path} is {_show(value)}; expected {FAULTS[str(name)]}")
        out[str(name)] = text
    return out


def _float_in(text: str, lo: float, hi: float, *, lo_open: bool = False) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return (value > lo if lo_open else value >= lo) and value <= hi


def _cluster(data: Any, path: str, *, is_y: bool, mode: str) -> ClusterPlan:
    keys: tuple[str, ...] = ("provider", "version", "count", "image", "nodes", "faults")
    if is_y:
        keys = (*keys, "initial", "dp_version")
    s = _Section(data, path, keys)
    provider = s.choice("provider", PROVIDERS, "auto")
    version = _version(s, "version")
    nodes: tuple[ExistingNode, ...] = ()
    if provider == "existing":
        nodes = _existing_nodes(s, mode)
        count = sum(1 for n in nodes if n.role != "cp")
        if s.has("image") or s.has("faults"):
            raise PlanError(f"{s.sub('image' if s.has('image') else 'faults')} is set but {path}.provider is "
                            "'existing': the harness neither starts nor alters existing nodes",
                            hint="remove it, or use provider: process | docker")
    else:
        if version is None:
            raise PlanError(f"{s.sub('version')} is missing; expected a Kong version such as \"3.8.1\" "
                            f"(required unless {path}.provider is existing)")
        if s.items("nodes"):
            raise PlanError(f"{s.sub('nodes')} is only for provider: existing (here {provider!r})",
                            hint=f"set {path}.provider: existing, or remove nodes")
        count = s.integer("count", 3, 1, MAX_NODES)
    initial = count
    if is_y:
        initial = s.integer("initial", 1, 1, max(1, count))
    image = s.text("image", None, what="a Docker image name such as kong:3.4 or kuh/kong-emulator:dev")
    if image is not None and provider in ("process",):
        raise PlanError(f"{s.sub('image')} is {image!r} but {path}.provider is 'process'; images are for "
                        "docker", hint=f"set {path}.provider: docker (or auto), or remove image")
    faults = _faults(s, "faults")
    if faults and image is not None and "emulator" not in image:
        raise PlanError(f"{s.sub('faults')} are emulator faults, but {s.sub('image')} is {image!r} "
                        "(real Kong cannot inject them)",
                        hint=f"remove faults, or use the emulator image {DEFAULT_IMAGE}")
    dp_version = _version(s, "dp_version") if is_y else None
    # A dp_version the CP would refuse is a valid plan: the considerations stage reports it as a
    # blocking finding, and a rehearsal may accept that finding to show the live check catch it.
    if dp_version is not None and mode != "hybrid":
        raise PlanError(f"{s.sub('dp_version')} is set but mode is {mode!r}; it only applies to hybrid")
    return ClusterPlan(provider, version, count, initial, image, nodes, faults, dp_version)


def _existing_nodes(s: _Section, mode: str) -> tuple[ExistingNode, ...]:
    items = s.items("nodes")
    if not items:
        raise PlanError(f"{s.sub('nodes')} is empty; provider 'existing' needs the nodes' URLs, e.g. "
                        "[{role: dbless, admin_url: http://127.0.0.1:8001, proxy_url: http://127.0.0.1:8000}]")
    nodes = []
    for i, item in enumerate(items):
        n = _Section(item, f"{s.sub('nodes')}[{i}]", ("role", "admin_url", "proxy_url", "status_url"))
        role = n.choice("role", ROLES, "dbless" if mode == "dbless" else None)
        node = ExistingNode(role, _url(n, "admin_url"), _url(n, "proxy_url"), _url(n, "status_url"))
        if mode == "dbless" and role != "dbless":
            raise PlanError(f"{n.sub('role')} is {role!r} but mode is 'dbless'; expected dbless",
                            hint="set mode: hybrid for CP/DP clusters")
        if mode == "hybrid" and role == "dbless":
            raise PlanError(f"{n.sub('role')} is 'dbless' but mode is 'hybrid'; expected cp or dp")
        if role in ("dbless", "cp") and node.admin_url is None:
            raise PlanError(f"{n.sub('admin_url')} is missing; a {role} node is read through its Admin API")
        if role == "dp" and node.status_url is None:
            raise PlanError(f"{n.sub('status_url')} is missing; a DP has no Admin API, only the Status API")
        if role in ("dbless", "dp") and node.proxy_url is None:
            raise PlanError(f"{n.sub('proxy_url')} is missing; traffic goes to a {role} node's proxy")
        nodes.append(node)
    if mode == "hybrid":
        cps = [n for n in nodes if n.role == "cp"]
        if len(cps) != 1:
            raise PlanError(f"{s.sub('nodes')} has {len(cps)} cp nodes; a hybrid cluster needs exactly one")
        if not any(n.role == "dp" for n in nodes):
            raise PlanError(f"{s.sub('nodes')} has no dp node; traffic goes to DPs in hybrid mode")
    return tuple(nodes)


def _traffic(data: Any) -> TrafficPlan:
    s = _Section(data, "traffic", ("splitter", "steps", "hold_seconds", "soak_seconds", "command"))
    splitter = s.choice("splitter", SPLITTERS, "haproxy")
    steps_raw = s.items("steps") or [5, 25, 50, 100]
    steps: list[int] = []
    for i, step in enumerate(steps_raw):
        path = f"traffic.steps[{i}]"
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            raise PlanError(f"{path} is {_show(step)}; expected a whole percentage from 1 to 100")
        if steps and step <= steps[-1]:
            raise PlanError(f"{path} is {step}, not more than the step before ({steps[-1]}); steps must "
                            "strictly increase, e.g. [5, 25, 50, 100]")
        steps.append(step)
    if steps[-1] != 100:
        raise PlanError(f"traffic.steps[{len(steps) - 1}] is {steps[-1]}; the last step must be 100 "
                        "(all traffic on Y before decommission)")
    command = None
    if splitter == "command":
        c = _Section(s.required("command", "set_weights (with {x} and {y}), get_weights, listen_url"),
                     "traffic.command", ("set_weights", "get_weights", "listen_url"))
        set_weights = c.text("set_weights", None, what="a shell command containing {x} and {y}")
        if set_weights is None or "{x}" not in set_weights or "{y}" not in set_weights:
            raise PlanError(f"traffic.command.set_weights is {_show(set_weights)}; expected a shell command "
                            "containing {x} and {y} (the weights 0..100)")
        listen_url = _url(c, "listen_url")
        if listen_url is None:
            raise PlanError("traffic.command.listen_url is missing; expected http(s)://host:port where your "
                            "load balancer listens (the probe sends traffic there)")
        command = CommandSplitter(set_weights, c.text("get_weights"), listen_url)
    elif s.has("command"):
        raise PlanError(f"traffic.command is set but traffic.splitter is {splitter!r}",
                        hint="set traffic.splitter: command, or remove traffic.command")
    return TrafficPlan(splitter, tuple(steps), s.number("hold_seconds", 3, 0, 3600),
                       s.number("soak_seconds", 2, 0, 3600), command)


def _gates(data: Any) -> GatePlan:
    keys = ("max_error_rate", "max_p99_ms", "max_error_rate_delta", "max_latency_shift_ms", "alpha",
            "min_samples", "max_probe_error_rate", "observe_only")
    s = _Section(data, "gates", keys)
    return GatePlan(
        max_error_rate=s.number("max_error_rate", 0.01, 0, 1),
        max_p99_ms=s.number("max_p99_ms", 500, 0, 600_000, lo_open=True),
        max_error_rate_delta=s.number("max_error_rate_delta", 0.01, 0, 1),
        max_latency_shift_ms=s.number("max_latency_shift_ms", 25, 0, 600_000),
        alpha=s.number("alpha", 0.01, 0, 0.5, lo_open=True),
        min_samples=s.integer("min_samples", 50, 1, 10_000_000),
        max_probe_error_rate=s.number("max_probe_error_rate", 0.02, 0, 1),
        observe_only=s.boolean("observe_only", False),
    )


def _parity(data: Any) -> ParityPlan:
    s = _Section(data, "parity", ("allow",))
    rules = []
    for i, item in enumerate(s.items("allow")):
        e = _Section(item, f"parity.allow[{i}]", ("path", "reason"))
        path = e.text("path", None, what="a path glob such as \"plugins['key-auth@global'].config.realm\"")
        reason = e.text("reason", None, what="a sentence saying why the difference is expected")
        if not path:
            raise PlanError(f"parity.allow[{i}].path is missing; expected a path glob such as "
                            "\"plugins['key-auth@global'].config.realm\"")
        if not reason or not reason.strip():
            raise PlanError(f"parity.allow[{i}].reason is missing; every allowed difference needs a reason "
                            "(it is shown in the report)")
        rules.append(AllowRule(path, reason.strip()))
    return ParityPlan(tuple(rules))


def _considerations(data: Any) -> ConsiderationsPlan:
    s = _Section(data, "considerations", ("fail_on", "accept", "kong_conf"))
    fail_on = s.choice("fail_on", FAIL_ON, "error")
    accepted = []
    ids = sorted(RULE_IDS)
    for i, item in enumerate(s.items("accept")):
        e = _Section(item, f"considerations.accept[{i}]", ("id", "reason"))
        rule_id = e.text("id", None, what="a finding id")
        if rule_id is None:
            raise PlanError(f"considerations.accept[{i}].id is missing; expected a finding id")
        if rule_id not in RULE_IDS:
            raise PlanError(f"considerations.accept[{i}].id is {rule_id!r}, which is no known finding"
                            + _did_you_mean(rule_id, ids), hint=f"known ids: {', '.join(ids)}")
        reason = e.text("reason", None, what="a sentence saying why the finding is accepted")
        if not reason or not reason.strip():
            raise PlanError(f"considerations.accept[{i}].reason is missing; every accepted finding needs a "
                            "reason (it is shown in the report)")
        accepted.append(AcceptedFinding(rule_id, reason.strip()))
    kong_conf = s.raw("kong_conf", {})
    if not isinstance(kong_conf, Mapping):
        raise PlanError(f"considerations.kong_conf is {_show(kong_conf)}; expected a mapping of kong.conf "
                        "settings, e.g. {status_listen: \"0.0.0.0:8100\"}")
    for key, value in kong_conf.items():
        _reject_secret(f"considerations.kong_conf.{key}", str(key), value)
        if isinstance(value, list | dict):
            raise PlanError(f"considerations.kong_conf.{key} is {_show(value)}; expected a single value as "
                            "in kong.conf")
    return ConsiderationsPlan(fail_on, tuple(accepted), dict(kong_conf))


def _credentials(data: Any) -> Credentials:
    s = _Section(data, "credentials", ("admin_token_env",))
    name = s.text("admin_token_env", None, pattern=_ENV_NAME,
                  what="the NAME of an environment variable (letters, digits, _), e.g. KONG_X_ADMIN_TOKEN")
    return Credentials(name)


# ---------------------------------------------------------------------------------------------------
# entry points

_TOP_KEYS = ("plan", "name", "description", "mode", "x", "y", "config", "traffic", "probe", "gates",
             "parity", "considerations", "credentials")


def parse_plan(text: str, base_dir: str | Path, *, path: Path | None = None) -> Plan:
    """Validate plan text; relative paths (``config.source``) resolve against ``base_dir``."""
    import yaml

    where = str(path) if path else "plan"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PlanError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}",
                        hint="check indentation and quoting (quote versions and strings with ':')") from None
    if not isinstance(data, Mapping):
        raise PlanError(f"{where} must be a YAML mapping with keys {', '.join(_TOP_KEYS)}; got {_show(data)}")
    top = _Section(data, "", _TOP_KEYS)
    fmt = top.raw("plan")
    if fmt != PLAN_FORMAT or isinstance(fmt, bool):
        raise PlanError(f"plan is {_show(fmt)}; expected {PLAN_FORMAT} (the plan format version)",
                        hint="start the file with `plan: 1`")
    name = top.text("name", None, pattern=_NAME,
                    what="lower-case letters, digits and '-', e.g. default-dbless")
    if name is None:
        raise PlanError("name is missing; expected lower-case letters, digits and '-', e.g. default-dbless")
    mode = top.choice("mode", MODES, "dbless")
    x = _cluster(top.raw("x"), "x", is_y=False, mode=mode)
    y = _cluster(top.required("y", "the new cluster: provider, version, count"), "y", is_y=True, mode=mode)
    if y.provider == "existing" and x.provider == "existing" and set(x.nodes) & set(y.nodes):
        raise PlanError("y.nodes shares a node with x.nodes; X and Y must be different clusters")

    c = _Section(top.raw("config"), "config", ("source", "upstream"))
    source_text = c.text("source", None, what="a path to a declarative config, relative to the plan file")
    source: Path | None = None
    if source_text is None:
        if x.provider != "existing":
            raise PlanError("config.source is missing; expected a declarative config file such as "
                            "configs/sample.yaml (required unless x.provider is existing: then X's own "
                            "config is captured)")
    else:
        source = (Path(base_dir) / source_text).resolve()
        if not source.is_file():
            raise PlanError(f"config.source is {source_text!r}, but {source} does not exist",
                            hint="paths are relative to the plan file's folder")
    config = ConfigPlan(source, c.choice("upstream", UPSTREAMS, "echo"))

    p = _Section(top.raw("probe"), "probe", ("rate", "timeout_seconds"))
    probe = ProbePlan(p.number("rate", 200, 0, 10_000, lo_open=True),
                      p.number("timeout_seconds", 2, 0, 60, lo_open=True))
    return Plan(
        name=name,
        description=str(top.raw("description", "")),
        mode=mode,
        x=x,
        y=y,
        config=config,
        traffic=_traffic(top.raw("traffic")),
        probe=probe,
        gates=_gates(top.raw("gates")),
        parity=_parity(top.raw("parity")),
        considerations=_considerations(top.raw("considerations")),
        credentials=_credentials(top.raw("credentials")),
        path=path,
    )


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file."""
    plan_path = Path(path).resolve()
    try:
        text = plan_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"plan file {plan_path} does not exist",
                        hint="pass the path of a plan YAML (plans/default.yaml ships with the repo)",
                        ) from None
    except OSError as exc:
        raise PlanError(f"cannot read plan file {plan_path}: {exc}") from None
    return parse_plan(text, plan_path.parent, path=plan_path)
