"""The upgrade plan: one reviewed YAML file -> frozen :class:`Plan` values (pydantic v2 models).

Each field is declared once, in the models below: its type, default, bounds (``Field(ge=, le=)``),
choices (``Literal``) and, where the type alone does not say it, what a valid value looks like
(:class:`Expect`). From that one declaration come the validation, the error messages and the JSON
Schema that editors use (``python -m harness.plan --schema > plans/plan.schema.json``).

Every problem of a file is reported at once: one :class:`PlanError` whose message has one line per
problem, each naming the field path (``traffic.steps[2]``), the bad value and what would be valid, with
"did you mean" for misspelt keys and choices. Unknown keys are refused; secrets written as values are
refused (credentials are named by environment variable, never written in the plan). The YAML is read
by :func:`harness.yamlsafe.load_yaml` (size, depth, alias and duplicate-key limits), and the files a
plan names are checked before anything reads them (a regular file or a decK folder, under the plan's
folder unless ``config.allowed_root`` names another).

Rules that need two fields (a node's role and the mode, the first step and ``min_samples``) are model
validators; a rule that needs a field of another section reads it from the validation context, so it
is reported even when that other section has its own problems.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from harness.compat import RULE_IDS, RULES, Version
from harness.config import AllowRule
from harness.deck_rules import STATE_FILE_SUFFIXES
from harness.errors import HarnessError, PlanError
from harness.registry import DEFAULT_SPLITTER, EMULATOR_IMAGE, PROVIDER_CHOICES, SPLITTERS
from harness.yamlsafe import PLAN_MAX_BYTES, YamlRefused, load_yaml

PLAN_FORMAT = 1
MAX_NODES = 32
DEFAULT_STEPS = (5, 25, 50, 100)
SCHEMA_FILE = "plan.schema.json"
#: how deep a plan's YAML may nest (the deepest real key, parity.allow[i].path, is 3 levels down)
PLAN_MAX_DEPTH = 16
#: aliases a plan may use (a reviewed file needs few; a bomb needs many expansions)
PLAN_MAX_ALIASES = 100
PLAN_MAX_ALIAS_NODES = 10_000
#: how many entries a decK folder named by config.source may hold before the check gives up
DECK_FOLDER_MAX_ENTRIES = 10_000

if TYPE_CHECKING:
    ProviderName = str
    SplitterName = str
else:  # the choices come only from harness.registry
    ProviderName = Literal[PROVIDER_CHOICES]
    SplitterName = Literal[tuple(SPLITTERS)]
Mode = Literal["dbless", "hybrid"]
Role = Literal["dbless", "cp", "dp"]
Upstream = Literal["echo", "none"]
ConfigFormat = Literal["kong", "deck"]
YLoad = Literal["backup", "keep"]
GateSource = Literal["probe", "balancer", "prometheus"]
ParityAgainst = Literal["x", "file"]
FailOn = Literal["error", "warning", "never"]

#: keys that hold secrets by value; the plan must name an environment variable instead
_SECRET_KEYS = re.compile(r"(^|_)(token|password|secret|api_?key|apikey|credential_value)$", re.IGNORECASE)
_VERSION = re.compile(r"^(?P<major>\d{1,4})\.(?P<minor>\d{1,4})\.(?P<patch>\d{1,6})(?:\.(?P<build>\d{1,6}))?"
                      r"(?P<suffix>-[0-9A-Za-z][0-9A-Za-z.+_-]{0,63})?$")
_NEWEST_KNOWN = max(Version.parse(rule.introduced_in) for rule in RULES)


@dataclass(frozen=True)
class Expect:
    """What a valid value looks like, in words, where the type and bounds do not say it all (it is also the
    field's description in the JSON Schema, so editors show it)."""

    text: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        if isinstance(schema, dict) and "$ref" not in schema:
            schema["description"] = self.text
        return schema


# ---------------------------------------------------------------------------------------------------
# field types

Url = Annotated[str, Field(pattern=r"^https?://[^/\s:]+(:\d+)?/?$"), Expect("http(s)://host:port")]
VersionText = Annotated[str, Expect('a Kong version such as "3.8.1" (MAJOR.MINOR.PATCH, or "3.4.3.12" for '
                                    'Enterprise)')]
Percent = Annotated[int, Field(ge=1, le=100), Expect("a whole percentage")]
Text = Annotated[str, Field(max_length=2000)]
Reason = Annotated[str, Field(min_length=1, max_length=2000), Expect("a sentence saying why")]


class _Section(BaseModel):
    """Every plan section: frozen, unknown keys refused, no type coercion (``"3"`` is not 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False,
                              json_schema_extra={"additionalProperties": False})

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):  # private attributes, set once by parse_plan
            super().__setattr__(name, value)
            return
        raise FrozenInstanceError(f"cannot assign to {name!r}: plan values are frozen; make a changed copy with "
                                  f"model_copy(update={{{name!r}: ...}})")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete {name!r}: plan values are frozen")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """``traffic:`` with nothing under it is an empty section; ``count: ~`` takes the default."""
        if data is None:
            return {}
        if isinstance(data, dict):
            known = {f.alias or name for name, f in cls.model_fields.items()}
            return {k: v for k, v in data.items() if not (v is None and k in known)}
        return data


def _fail(text: str, *, at: tuple[str | int, ...] = (), hint: str | None = None) -> PydanticCustomError:
    """A plan problem found by a validator; ``text`` follows the field path (``at`` is below the
    validated object)."""
    return PydanticCustomError("plan", "{text}", {"issues": ((at, text, hint),)})


def _fail_all(issues: list[tuple[tuple[str | int, ...], str, str | None]]) -> None:
    if issues:
        raise PydanticCustomError("plan", "{count} problems", {"issues": tuple(issues), "count": len(issues)})


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


# ---------------------------------------------------------------------------------------------------
# sections


class Faults(_Section, Mapping[str, str]):
    """Emulator faults (``KONG_EMULATOR_FAULT_*``); read as a mapping of the set ones to their text."""

    error_rate: Annotated[float, Field(ge=0, le=1), Expect("a fraction")] | None = None
    latency_ms: Annotated[float, Field(ge=0, le=600_000), Expect("milliseconds")] | None = None
    latency_jitter_ms: Annotated[float, Field(ge=0, le=600_000), Expect("milliseconds")] | None = None
    keyauth: Literal["accept_any", "reject_valid"] | None = None
    drop_routes: Annotated[str, Field(pattern=r"\S"), Expect("a comma-separated list of route names")] | None = None
    crash_after_requests: Annotated[int, Field(ge=1, le=10**9), Expect("a count")] | None = None
    crash_after_seconds: Annotated[float, Field(gt=0, le=86_400), Expect("seconds")] | None = None
    refuse_cp: bool | None = None
    config_drift_after_seconds: Annotated[float, Field(gt=0, le=86_400), Expect("seconds")] | None = None
    after_requests: Annotated[
        int, Field(ge=0, le=10**9),
        Expect("a count (error_rate and latency start after this many proxied requests)")] | None = None

    def _set(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]

    def __getitem__(self, key: str) -> str:
        value = getattr(self, key, None) if key in type(self).model_fields else None
        if value is None:
            raise KeyError(key)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # a mapping iterates its keys
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())


class ExistingNode(_Section):
    """A node the harness did not start (reached by URL, never stopped, never written to on X)."""

    role: Role
    admin_url: Url | None = None
    proxy_url: Url | None = None
    status_url: Url | None = None

    @model_validator(mode="before")
    @classmethod
    def _role_default(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and data.get("role") is None and _context(info).get("mode") == "dbless":
            return {**data, "role": "dbless"}
        return data

    @model_validator(mode="after")
    def _urls_for_role(self, info: ValidationInfo) -> ExistingNode:
        mode = _context(info).get("mode")
        issues: list[tuple[tuple[str | int, ...], str, str | None]] = []
        if mode == "dbless" and self.role != "dbless":
            issues.append((("role",), f"is {self.role!r} but mode is 'dbless'; expected dbless",
                           "set mode: hybrid for CP/DP clusters"))
        if mode == "hybrid" and self.role == "dbless":
            issues.append((("role",), "is 'dbless' but mode is 'hybrid'; expected cp or dp", None))
        if self.role in ("dbless", "cp") and self.admin_url is None:
            issues.append((("admin_url",), f"is missing; a {self.role} node is read through its Admin API", None))
        if self.role == "dp" and self.status_url is None:
            issues.append((("status_url",), "is missing; a DP has no Admin API, only the Status API", None))
        if self.role in ("dbless", "dp") and self.proxy_url is None:
            issues.append((("proxy_url",), f"is missing; traffic goes to a {self.role} node's proxy", None))
        _fail_all(issues)
        return self


class ClusterPlan(_Section):
    """Cluster X, the running one (Y adds ``initial`` and ``dp_version``: :class:`YClusterPlan`)."""

    provider: ProviderName = "auto"
    version: VersionText | None = None
    count: Annotated[int, Field(ge=1, le=MAX_NODES)] = 3
    image: Annotated[str, Field(min_length=1, max_length=255),
                     Expect("a Docker image name such as kong:3.4 or " + EMULATOR_IMAGE)] | None = None
    nodes: Annotated[tuple[ExistingNode, ...], Strict(False), Field(max_length=MAX_NODES)] = ()
    faults: Faults = Field(default_factory=Faults)

    @field_validator("version", "dp_version", mode="before", check_fields=False)
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _fail(f"is the number {value!r}; expected a version string such as \"{_as_version(value)}\"",
                        hint='quote versions in YAML: version: "3.4.2"')
        if not isinstance(value, str):
            return value
        match = _VERSION.match(value)
        if match is None:
            raise _fail(f": not a Kong version: {_show(value)}; expected MAJOR.MINOR.PATCH such as \"3.8.1\", "
                        "an Enterprise version such as \"3.4.3.12\", or one with a suffix such as "
                        "\"3.9.3-enterprise-edition\"" + _version_fix(value))
        return value

    @field_validator("nodes", mode="before")
    @classmethod
    def _only_existing(cls, value: Any, info: ValidationInfo) -> Any:
        provider = info.data.get("provider")
        if value and provider is not None and provider != "existing":
            raise _fail(f"is only for provider: existing (here {provider!r})",
                        hint="set {here}.provider: existing, or remove {here}.nodes")
        return value

    @model_validator(mode="after")
    def _provider_rules(self, info: ValidationInfo) -> ClusterPlan:
        mode = _context(info).get("mode")
        issues: list[tuple[tuple[str | int, ...], str, str | None]] = []
        provider = self.provider
        set_keys = self.model_fields_set
        if provider == "existing":
            if not self.nodes:
                issues.append((("nodes",), "is empty; provider 'existing' needs the nodes' URLs, e.g. [{role: dbless, "
                               "admin_url: http://127.0.0.1:8001, proxy_url: http://127.0.0.1:8000}]", None))
            for key in ("image", "faults", "count"):
                if key in set_keys and (key != "faults" or self.faults):
                    issues.append(((key,), f"is set but provider is 'existing': the harness neither starts nor "
                                   f"alters existing nodes{' (it counts them)' if key == 'count' else ''}",
                                   "remove it, or use provider: process | docker"))
            if mode == "hybrid" and self.nodes:
                cps = sum(1 for n in self.nodes if n.role == "cp")
                if cps != 1:
                    issues.append((("nodes",), f"has {cps} cp nodes; a hybrid cluster needs exactly one", None))
                if not any(n.role == "dp" for n in self.nodes):
                    issues.append((("nodes",), "has no dp node; traffic goes to DPs in hybrid mode", None))
        else:
            if self.version is None:
                issues.append((("version",), "is missing; expected a Kong version such as \"3.8.1\" (required "
                               "unless provider is existing)", None))
        if self.image is not None and provider == "process":
            issues.append((("image",), f"is {self.image!r} but {{here}}.provider is 'process'; images are for docker",
                           "set {here}.provider: docker (or auto), or remove image"))
        if self.faults and self.image is not None and "emulator" not in self.image:
            issues.append((("faults",), f"are emulator faults, but image is {self.image!r} (real Kong cannot "
                           "inject them)", f"remove faults, or use the emulator image {EMULATOR_IMAGE}"))
        if provider == "existing" and self.nodes and "count" not in set_keys:
            # existing nodes are counted, not started: count is the nodes that take traffic
            object.__setattr__(self, "count", sum(1 for n in self.nodes if n.role != "cp"))
        issues.extend(self._more_rules(mode))
        _fail_all(issues)
        return self

    def _more_rules(self, mode: Any) -> list[tuple[tuple[str | int, ...], str, str | None]]:
        return []


class YClusterPlan(ClusterPlan):
    """Cluster Y, the new one: ``initial`` nodes at deploy, ``count`` after scale."""

    initial: Annotated[int, Field(ge=1, le=MAX_NODES)] = 1
    dp_version: VersionText | None = None
    load: Annotated[YLoad, Expect(
        "backup (X's backup is written into Y through Y's Admin API) or keep (Y's own config is verified "
        "against X's, nothing is written); required with provider: existing")] | None = None

    def _more_rules(self, mode: Any) -> list[tuple[tuple[str | int, ...], str, str | None]]:
        issues: list[tuple[tuple[str | int, ...], str, str | None]] = []
        if self.provider == "existing" and self.load is None:
            issues.append((("load",), "is missing; with provider: existing say whether the harness writes X's "
                           "backup into Y (load: backup) or verifies Y's own config (load: keep)", None))
        if self.provider != "existing" and self.load is not None:
            issues.append((("load",), f"is set but y.provider is {self.provider!r}; it only applies to existing "
                           "Y nodes (the harness loads the nodes it starts)", None))
        if self.initial > self.count:
            issues.append((("initial",), f"is {self.initial}; expected a whole number from 1 to {self.count} "
                           "(no more than count)", None))
        # A dp_version the CP would refuse is a valid plan: the considerations stage reports it as a
        # blocking finding, and a rehearsal may accept that finding to show the live check catch it.
        if self.dp_version is not None and mode is not None and mode != "hybrid":
            issues.append((("dp_version",), f"is set but mode is {mode!r}; it only applies to hybrid", None))
        return issues


class ConfigPlan(_Section):
    """The declarative config that seeds X: a file, or a decK folder of state files."""

    allowed_root: Annotated[Path, Strict(False), Expect(
        "a folder (relative to the plan file) under which config.source may be, when it is not under the "
        "plan's own folder")] | None = None
    source: Annotated[Path, Strict(False), Expect(
        "a path to a declarative config file (or a decK folder), relative to the plan file")] | None = None
    upstream: Upstream = "echo"
    format: Annotated[ConfigFormat | None, Expect(
        "kong (a Kong declarative file) or deck (decK state files); default: deck for a folder, kong for a file")
    ] = None

    @property
    def source_format(self) -> ConfigFormat:
        """How config.source is read: a folder is always decK state files."""
        if self.format is not None:
            return self.format
        return "deck" if self.source is not None and self.source.is_dir() else "kong"

    @field_validator("allowed_root", mode="after")
    @classmethod
    def _root(cls, value: Path, info: ValidationInfo) -> Path:
        base = Path(_context(info).get("base_dir", "."))
        root = (base / value).resolve()
        if not root.is_dir():
            raise _fail(f"is {str(value)!r}, but {root} is not a folder", hint="name an existing folder")
        return root

    @field_validator("source", mode="after")
    @classmethod
    def _source(cls, value: Path, info: ValidationInfo) -> Path:
        base = Path(_context(info).get("base_dir", ".")).resolve()
        root = info.data.get("allowed_root") or base
        return _check_source(value, base, root, explicit_root=info.data.get("allowed_root") is not None)

    @model_validator(mode="after")
    def _required(self, info: ValidationInfo) -> ConfigPlan:
        if self.format == "kong" and self.source is not None and self.source.is_dir():
            raise _fail(f"is kong, but config.source {self.source} is a folder; expected deck for a folder of decK "
                        "state files", at=("format",))
        ctx = _context(info)
        if self.source is None and ctx.get("x_provider", "existing") != "existing" and "base_dir" in ctx:
            raise _fail("is missing; expected a declarative config file such as configs/sample.yaml (required "
                        "unless x.provider is existing: then X's own config is captured)", at=("source",))
        return self


class CommandSplitter(_Section):
    """The user's own commands move the weights (``{x}`` and ``{y}`` are the percentages)."""

    set_weights: Annotated[str, Field(min_length=1, max_length=4000),
                           Expect("a shell command containing {x} and {y} (the weights 0..100)")]
    get_weights: Annotated[str, Field(min_length=1, max_length=4000),
                           Expect('a command that prints the split as two numbers, "X Y"')] | None = None
    listen_url: Annotated[Url, Expect("http(s)://host:port where your load balancer listens (the probe sends "
                                      "traffic there)")]

    @field_validator("set_weights")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        if "{x}" not in value or "{y}" not in value:
            raise _fail(f"is {_show(value)}; expected a shell command containing {{x}} and {{y}} (the weights 0..100)")
        return value


class TrafficPlan(_Section):
    splitter: SplitterName = DEFAULT_SPLITTER
    steps: Annotated[tuple[Percent, ...], Strict(False), Field(max_length=100),
                     Expect("whole percentages that strictly increase and end at 100, e.g. [5, 25, 50, 100]"),
                     ] = DEFAULT_STEPS
    # 5 s x 200 req/s x 5 % = 50 Y answers in the first default step: the default min_samples
    hold_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    soak_seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0
    max_hold_seconds: Annotated[float, Field(gt=0, le=86400), Expect(
        "seconds a step's hold may extend to when it has too few samples (default: 3 x hold_seconds)")
    ] | None = None
    command: CommandSplitter | None = None
    pause_after: Annotated[tuple[Percent, ...], Strict(False), Field(max_length=100), Expect(
        "steps (from traffic.steps, not 100) after which the run ends with the weights held, to be resumed "
        "with --from-stage shift")] = ()
    max_pause_seconds: Annotated[float, Field(gt=0, le=7 * 86400), Expect(
        "seconds a paused split is held before traffic returns to X")] = 3600.0

    @field_validator("steps", mode="after")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise _fail("is empty; expected whole percentages that strictly increase and end at 100, e.g. "
                        "[5, 25, 50, 100]", hint="list the steps, or remove traffic.steps for the default "
                        f"{list(DEFAULT_STEPS)}")
        if steps == (100,):
            raise _fail("is [100], a single step: all traffic moves at once and no step compares Y with X "
                        "under shared traffic; expected at least one partial step first, e.g. [10, 100]")
        issues: list[tuple[tuple[str | int, ...], str, str | None]] = []
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                issues.append(((i,), f"is {steps[i]}, not more than the step before ({steps[i - 1]}); steps must "
                               "strictly increase, e.g. [5, 25, 50, 100]", None))
        if steps[-1] != 100:
            issues.append(((len(steps) - 1,), f"is {steps[-1]}; the last step must be 100 (all traffic on Y "
                           "before decommission)", None))
        _fail_all(issues)
        return steps

    @property
    def max_hold(self) -> float:
        """The longest a step may hold: ``max_hold_seconds``, else three holds."""
        return self.max_hold_seconds if self.max_hold_seconds is not None else 3 * self.hold_seconds

    @model_validator(mode="after")
    def _max_hold(self) -> TrafficPlan:
        if self.max_hold_seconds is not None and self.max_hold_seconds < self.hold_seconds:
            raise _fail(f"is {self.max_hold_seconds:g}, shorter than hold_seconds ({self.hold_seconds:g}); expected "
                        "at least the hold", at=("max_hold_seconds",))
        return self

    @model_validator(mode="after")
    def _pauses(self) -> TrafficPlan:
        for i, step in enumerate(self.pause_after):
            if step not in self.steps or step == 100:
                raise _fail(f"is {step}; expected one of the partial steps {list(self.steps[:-1])}",
                            at=("pause_after", i))
        return self

    @model_validator(mode="after")
    def _command(self) -> TrafficPlan:
        if self.splitter == "command" and self.command is None:
            raise _fail("is missing; expected set_weights (with {x} and {y}), get_weights, listen_url",
                        at=("command",))
        if self.splitter != "command" and self.command is not None:
            raise _fail(f"is set but traffic.splitter is {self.splitter!r}", at=("command",),
                        hint="set traffic.splitter: command, or remove traffic.command")
        return self


class ProbePlan(_Section):
    rate: Annotated[float, Field(gt=0, le=10_000), Expect("requests per second")] = 200.0
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    user_rate: Annotated[float, Field(ge=0, le=100_000), Expect(
        "requests per second of user-like traffic (wrk, a request mix drawn from the corpus) sent beside the "
        "probe in rehearsals; 0: none")] = 0.0


class DifferentialPlan(_Section):
    """The differential requests of staging: every route once up to ``budget`` requests per node, beyond
    it a stratified sample; sent ``concurrency`` at a time."""

    budget: Annotated[int, Field(ge=1, le=1_000_000), Expect("requests per node")] = 5000
    concurrency: Annotated[int, Field(ge=1, le=64), Expect("requests in flight at once")] = 8


class AdminPlan(_Section):
    """Limits of the harness's Admin API calls (harness.deadline.CallBudget)."""

    max_call_seconds: Annotated[float, Field(gt=0, le=3600), Expect(
        "seconds any one Admin API call may take at most (each call gets a base plus a per-MiB allowance "
        "up to this cap; raise it for a real Kong that loads very large configs slowly)")] = 300.0


class NotifyPlan(_Section):
    """Called on each stage verdict, each rollback and the final verdict with a small JSON body."""

    command: Annotated[str, Field(min_length=1, max_length=4000), Expect(
        "a shell command; the JSON body arrives on its standard input")] | None = None
    webhook: Url | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


class GatePlan(_Section):
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p99_ms: Annotated[float, Field(gt=0, le=600_000)] = 500
    max_error_rate_delta: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_latency_shift_ms: Annotated[float, Field(ge=0, le=600_000)] = 25
    alpha: Annotated[float, Field(gt=0, le=0.5)] = 0.01
    min_samples: Annotated[int, Field(ge=1, le=10_000_000)] = 50
    max_probe_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    observe_only: bool = False
    sources: Annotated[tuple[GateSource, ...], Strict(False), Field(min_length=1, max_length=3), Expect(
        "where the gates read traffic: probe (the harness's own requests), balancer (the splitter's per-server "
        "counters: every request, the users' too), prometheus (Kong's Prometheus plugin on each node)")
    ] = ("probe",)

    @field_validator("sources", mode="after")
    @classmethod
    def _distinct_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise _fail(f"is {list(value)}, which names a source twice; expected each at most once")
        return value


class AllowEntry(_Section):
    path: Annotated[str, Field(min_length=1, max_length=500),
                    Expect("a path glob such as \"plugins['key-auth@global'].config.realm\"")]
    reason: Annotated[Reason, Expect("a sentence saying why the difference is expected (it is shown in the "
                                     "report)")]

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise _fail("is blank; every allowed difference needs a reason (it is shown in the report)")
        return value.strip()


class ParityPlan(_Section):
    """Expected X -> Y differences that the parity check moves to its ``allowed`` group."""

    entries: Annotated[tuple[AllowEntry, ...], Strict(False), Field(max_length=1000, alias="allow")] = ()
    against: Annotated[ParityAgainst, Expect(
        "x (Y is compared with X's backup) or file (also with the reviewed config.source)")] = "x"

    @property
    def allow(self) -> tuple[AllowRule, ...]:
        """The entries as the parity diff's rules."""
        return tuple(AllowRule(e.path, e.reason) for e in self.entries)


class AcceptedFinding(_Section):
    id: Annotated[str, Field(min_length=1, max_length=100), Expect("a finding id")]
    reason: Annotated[Reason, Expect("a sentence saying why the finding is accepted (it is shown in the report)")]

    @field_validator("id")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RULE_IDS:
            ids = sorted(RULE_IDS)
            raise _fail(f"is {value!r}, which is no known finding" + _did_you_mean(value, ids),
                        hint=f"known ids: {', '.join(ids)}")
        return value

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise _fail("is blank; every accepted finding needs a reason (it is shown in the report)")
        return value.strip()


KongConfValue = Annotated[str | bool | int | float, Expect("a single value as in kong.conf")]


class ConsiderationsPlan(_Section):
    fail_on: FailOn = "error"
    accept: Annotated[tuple[AcceptedFinding, ...], Strict(False), Field(max_length=1000)] = ()
    kong_conf: Annotated[dict[str, KongConfValue], Field(max_length=1000),
                         Expect('a mapping of kong.conf settings, e.g. {status_listen: "0.0.0.0:8100"}')] = Field(
        default_factory=dict)

    def accepted(self, finding_id: str) -> AcceptedFinding | None:
        return next((a for a in self.accept if a.id == finding_id), None)


class Credentials(_Section):
    admin_token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"), Expect(
        "the NAME of an environment variable (letters, digits, _), e.g. KONG_X_ADMIN_TOKEN")] | None = None

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


class Plan(_Section):
    """A validated upgrade plan."""

    model_config = ConfigDict(title="Kong upgrade plan", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "A plan for kong-upgrade-harness: the clusters X (running) and Y (new), the config, the "
                       "traffic steps and the gates. Validate with `python -m harness.plan PLAN.yaml`.",
    })

    format: Annotated[Literal[1], Expect(f"{PLAN_FORMAT} (the plan format version)")] = Field(alias="plan")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"), Expect(
        "letters, digits, '-' and '_', starting with a letter or digit, at most 64 characters (it names the "
        "run's folder), e.g. default-dbless")]
    description: Text = ""
    mode: Mode = "dbless"
    x: ClusterPlan
    y: YClusterPlan
    config: ConfigPlan = Field(default_factory=ConfigPlan)
    traffic: TrafficPlan = Field(default_factory=TrafficPlan)
    probe: ProbePlan = Field(default_factory=ProbePlan)
    gates: GatePlan = Field(default_factory=GatePlan)
    parity: ParityPlan = Field(default_factory=ParityPlan)
    considerations: ConsiderationsPlan = Field(default_factory=ConsiderationsPlan)
    credentials: Credentials = Field(default_factory=Credentials)
    differential: DifferentialPlan = Field(default_factory=DifferentialPlan)
    admin: AdminPlan = Field(default_factory=AdminPlan)
    notify: NotifyPlan = Field(default_factory=NotifyPlan)

    _path: Path | None = PrivateAttr(None)
    _warnings: tuple[str, ...] = PrivateAttr(())

    @property
    def path(self) -> Path | None:
        """The plan file (None for a plan parsed from text)."""
        return self._path

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the plan allows but the harness cannot vouch for (e.g. a version newer than its rules)."""
        return self._warnings

    @property
    def y_version(self) -> str:
        """The version Y runs (its CP's in hybrid mode): the plan must say it, Y does not exist yet."""
        if self.y.version is None:
            raise PlanError("y.version is missing; expected the Kong version cluster Y will run, such as \"3.8.1\"")
        return self.y.version

    @model_validator(mode="after")
    def _across_sections(self) -> Plan:
        issues: list[tuple[tuple[str | int, ...], str, str | None]] = []
        if self.config.source is None and self.x.provider != "existing" and "config" not in self.model_fields_set:
            issues.append((("config", "source"), "is missing; expected a declarative config file such as "
                           "configs/sample.yaml (required unless x.provider is existing: then X's own config is "
                           "captured)", None))
        first = self.traffic.steps[0] / 100
        per_second = self.probe.rate * first
        expected = self.traffic.hold_seconds * per_second
        if expected < self.gates.min_samples:
            need = math.ceil(self.gates.min_samples / per_second * 10) / 10
            issues.append((("traffic", "hold_seconds"), f"is {self.traffic.hold_seconds:g}: at probe.rate "
                           f"{self.probe.rate:g}/s and {self.traffic.steps[0]} % to Y in the first step, a step "
                           f"gives Y about {expected:g} answers, fewer than gates.min_samples "
                           f"({self.gates.min_samples}), so every such step is inconclusive; expected "
                           f"hold_seconds of at least {need:g}",
                           f"set traffic.hold_seconds: {need:g} (or raise probe.rate or the first step, or lower "
                           "gates.min_samples)"))
        seen: dict[str, str] = {}
        for side in ("x", "y"):
            cluster: ClusterPlan = getattr(self, side)
            for i, node in enumerate(cluster.nodes):
                for key in ("admin_url", "proxy_url", "status_url"):
                    url = getattr(node, key)
                    if url is None:
                        continue
                    norm = url.rstrip("/").lower()
                    where = f"{side}.nodes[{i}].{key}"
                    if norm in seen:
                        issues.append(((side, "nodes", i, key), f"is {url!r}, the same URL as {seen[norm]}; "
                                       "each node needs its own URLs (X and Y must be different nodes)", None))
                    else:
                        seen[norm] = where
        _fail_all(issues)
        return self



# ---------------------------------------------------------------------------------------------------
# config.source


def _check_source(value: Path, base: Path, root: Path, *, explicit_root: bool) -> Path:
    """The absolute path of config.source once it is a regular file or a decK folder under ``root``."""
    shown = str(value)
    given = value if value.is_absolute() else base / value
    resolved = given.resolve()
    if not resolved.is_relative_to(root):
        link = " (through a symbolic link)" if given.resolve() != Path(os.path.normpath(given)) else ""
        where = "config.allowed_root" if explicit_root else "the plan's folder"
        suggestion = os.path.relpath(resolved.parent, base)
        raise _fail(f"is {shown!r}, which leads outside {where} ({root}){link}; expected a file under that folder",
                    hint=f"move the file under {root}, or allow its folder explicitly: config.allowed_root: "
                         f"{suggestion}")
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        raise _fail(f"is {shown!r}, but {resolved} does not exist",
                    hint="paths are relative to the plan file's folder") from None
    except OSError as exc:
        raise _fail(f"is {shown!r}, but {resolved} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        _check_deck_folder(resolved, shown, root)
        return resolved
    if not stat.S_ISREG(st.st_mode):
        raise _fail(f"is {shown!r}, which is {_file_kind(st.st_mode)}; expected a regular file (or a decK folder)")
    if not os.access(resolved, os.R_OK):
        raise _fail(f"is {shown!r}, but {resolved} is not readable (permission denied)",
                    hint="make the file readable by the user running the harness")
    return resolved


def _check_deck_folder(folder: Path, shown: str, root: Path) -> None:
    found = 0
    entries = 0
    for current, dirs, names in os.walk(folder):
        dirs.sort()
        entries += len(dirs) + len(names)
        if entries > DECK_FOLDER_MAX_ENTRIES:
            raise _fail(f"is {shown!r}, a folder of more than {DECK_FOLDER_MAX_ENTRIES:,} entries; expected a decK "
                        "folder of state files")
        for name in sorted(names):
            if not name.lower().endswith(tuple(STATE_FILE_SUFFIXES)):
                continue
            path = Path(current) / name
            resolved = path.resolve()
            inner = f"{shown.rstrip('/')}/{path.relative_to(folder)}"
            if not resolved.is_relative_to(root):
                raise _fail(f"is {shown!r}; its file {inner!r} leads outside {root} (a symbolic link); expected "
                            "state files under that folder")
            try:
                st = os.stat(resolved)
            except OSError as exc:
                raise _fail(f"is {shown!r}; its file {inner!r} cannot be read "
                            f"({exc.strerror or type(exc).__name__})") from None
            if not stat.S_ISREG(st.st_mode):
                raise _fail(f"is {shown!r}; its file {inner!r} is {_file_kind(st.st_mode)}; expected regular files")
            found += 1
    if not found:
        raise _fail(f"is {shown!r}, a folder with no .yaml, .yml or .json file; expected a declarative config "
                    "file, or a decK folder of state files")


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


# ---------------------------------------------------------------------------------------------------
# messages


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:80]}..." if len(text) > 80 else text


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_version(value: float) -> str:
    text = repr(value)
    return f"{text}.0" if text.count(".") == 1 else f"{text}.0.0"


def _version_fix(value: str) -> str:
    stripped = value.strip()
    if stripped[:1] in ("v", "V") and _VERSION.match(stripped[1:]):
        return f"; write {stripped[1:]!r} (without the 'v')"
    if re.fullmatch(r"\d+\.\d+", stripped):
        return f"; write {stripped + '.0'!r} (three parts)"
    return ""


def _path_text(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(the bare type, its Annotated metadata), with ``X | None`` taken as X."""
    metadata: list[Any] = []
    while True:
        if get_origin(annotation) is Annotated:
            base, *extra = get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            annotation = base
            continue
        args = get_args(annotation)
        if args and type(None) in args and get_origin(annotation) is not Literal:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                annotation = rest[0]
                continue
        return annotation, metadata


def _describe(loc: tuple[str | int, ...]) -> tuple[Any, list[Any], type[BaseModel] | None]:
    """The declared type and metadata of the field at ``loc``, and the model that holds it."""
    current: Any = Plan
    metadata: list[Any] = []
    holder: type[BaseModel] | None = None
    for part in loc:
        current, _ = _unwrap(current)
        if isinstance(part, int):
            args = get_args(current)
            if not args:
                return None, [], holder
            current, metadata = _unwrap(args[0])
            metadata = [*metadata]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part), None)
            if field is None:
                return None, [], holder
            current, metadata = field.annotation, [*field.metadata]
            _, extra = _unwrap(current)
            metadata.extend(extra)
            continue
        if get_origin(current) is dict:
            current, metadata = _unwrap(get_args(current)[1])
            continue
        return None, [], holder
    bare, extra = _unwrap(current)
    return bare, [*metadata, *extra], holder


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _expected(bare: Any, metadata: list[Any]) -> str:
    words = next((m.text for m in reversed(metadata) if isinstance(m, Expect)), None)
    lo = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    lo_open = next((m.gt for m in metadata if isinstance(m, Gt)), None)
    hi: Any = next((m.le for m in metadata if isinstance(m, Le)), None)
    hi = hi if hi is not None else next((m.lt for m in metadata if isinstance(m, Lt)), None)
    if get_origin(bare) is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(bare))
    if bare is bool:
        return "true or false"
    if bare in (int, float):
        noun = words or ("a whole number" if bare is int else "a number")
        if lo_open is not None:
            return f"{noun} more than {lo_open:g} to {hi:g}" if hi is not None else f"{noun} more than {lo_open:g}"
        if lo is not None and hi is not None:
            return f"{noun} from {lo:g} to {hi:g}"
        return noun
    if words:
        return words
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a mapping with keys: " + ", ".join(_keys(bare))
    if get_origin(bare) is tuple:
        return "a list"
    if get_origin(bare) is dict:
        return "a mapping"
    return "a string" if bare is str else "a valid value"


_TYPE_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "string_type", "greater_than", "greater_than_equal", "less_than",
                "less_than_equal", "string_pattern_mismatch", "string_too_long", "string_too_short",
                "finite_number", "path_type", "union_tag_invalid", "too_long", "too_short", "is_instance_of",
                "literal_error", "dict_type", "tuple_type", "list_type", "model_type", "model_attributes_type",
                "enum"}


def _issue_lines(exc: ValidationError, secret_paths: set[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "plan":
            for at, text, hint in ctx.get("issues", ()):
                full = _path_text((*loc, *at))
                here = _path_text(loc[:-1] if at == () and loc else loc) or "the plan"
                text, hint = text.replace("{here}", here), hint.replace("{here}", here) if hint else hint
                sep = "" if text[:1] in (":", ",", ";") else " "
                out.append((f"{full}{sep}{text}" if full else text, hint))
            continue
        path = _path_text(loc)
        # str | bool | int | float unions report per member; keep one line per field
        if loc and isinstance(loc[-1], str) and loc[-1] in ("str", "bool", "int", "float"):
            loc = loc[:-1]
            path = _path_text(loc)
        if path in secret_paths or path in seen:
            continue
        value = error.get("input")
        if kind == "extra_forbidden":
            holder = _describe(loc[:-1])[0] if len(loc) > 1 else Plan
            valid = _keys(holder) if isinstance(holder, type) and issubclass(holder, BaseModel) else []
            key = str(loc[-1])
            out.append((f"{path}: unknown key {key!r}" + _did_you_mean(key, valid),
                        f"valid keys under {_path_text(loc[:-1]) or 'the top level'}: {', '.join(valid)}"))
            seen.add(path)
            continue
        bare, metadata, holder = _describe(loc)
        if kind == "missing":
            out.append((f"{path} is missing; expected {_expected(bare, metadata)}", None))
        elif kind in ("model_type", "model_attributes_type", "dict_type") and isinstance(bare, type) and \
                issubclass(bare, BaseModel):
            out.append((f"{path or 'the plan'} must be a mapping of keys, got {_show(value)}",
                        f"valid keys: {', '.join(_keys(bare))}"))
        elif kind == "literal_error" and get_origin(bare) is Literal:
            choices = [str(a) for a in get_args(bare)]
            out.append((f"{path} is {_show(value)}; expected one of: {', '.join(choices)}"
                        + (_did_you_mean(value, choices) if isinstance(value, str) else ""), None))
        elif kind in _TYPE_ERRORS or bare is not None:
            out.append((f"{path} is {_show(value)}; expected {_expected(bare, metadata)}", None))
        else:
            out.append((f"{path}: {error['msg']}", None))
        seen.add(path)
    return out


# ---------------------------------------------------------------------------------------------------
# secrets and warnings


def _secret_paths(data: Any) -> list[str]:
    """Paths of keys that hold a secret by value, found without recursion (the depth is bounded)."""
    found: list[str] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    seen: set[int] = set()
    while stack:
        loc, node = stack.pop()
        if id(node) in seen:
            continue
        if isinstance(node, dict):
            seen.add(id(node))
            for key, value in node.items():
                where = (*loc, str(key))
                if isinstance(key, str) and not key.endswith("_env") and _SECRET_KEYS.search(key) \
                        and value not in (None, ""):
                    found.append(_path_text(where))
                stack.append((where, value))
        elif isinstance(node, list):
            seen.add(id(node))
            stack.extend(((*loc, i), item) for i, item in enumerate(node))
    return sorted(found)


def _known_version(value: str) -> bool:
    """Open-source 2.x up to the newest minor the breaking-change rules name (3.9 today)."""
    v = Version.parse(value)
    newest = (_NEWEST_KNOWN.major, _NEWEST_KNOWN.minor)
    return not v.enterprise and not v.suffix and (2, 0) <= (v.major, v.minor) <= newest


def _version_warning(where: str, value: str) -> str:
    newest = f"{_NEWEST_KNOWN.major}.{_NEWEST_KNOWN.minor}"
    return (f"{where} is {value!r}: well formed, but not a version the breaking-change rules know (open source "
            f"2.0 to {newest}.x); the considerations stage cannot report changes it does not know, and the "
            "emulator (provider process, or its image) runs 2.8.x and 3.0.x to 3.9.x only")


# ---------------------------------------------------------------------------------------------------
# entry points


def parse_plan(text: str | bytes, base_dir: str | Path, *, path: Path | None = None) -> Plan:
    """Validate plan text; relative paths (``config.source``) resolve against ``base_dir``.

    Raises one :class:`PlanError` listing every problem, one per line.
    """
    where = str(path) if path else "plan"
    try:
        data = load_yaml(text, source=where, max_bytes=PLAN_MAX_BYTES, max_aliases=PLAN_MAX_ALIASES,
                         max_depth=PLAN_MAX_DEPTH, max_alias_nodes=PLAN_MAX_ALIAS_NODES)
    except YamlRefused as exc:
        raise PlanError(f"{exc}", hint=_yaml_hint(exc)) from None
    if not isinstance(data, dict):
        keys = ", ".join(_keys(Plan))
        raise PlanError(f"{where} must be a YAML mapping with keys {keys}; got {_show(data)}",
                        hint="start the file with `plan: 1`")
    if data.get("plan") not in (None, PLAN_FORMAT) or isinstance(data.get("plan"), bool):
        # another format: the rest of the file is not this format's business
        raise PlanError(f"plan is {_show(data.get('plan'))}; expected {PLAN_FORMAT} (the plan format version)",
                        hint=f"start the file with `plan: {PLAN_FORMAT}`")
    secrets = _secret_paths(data)
    lines: list[tuple[str, str | None]] = [
        (f"{p}: the plan holds a secret by value ({p.rsplit('.', 1)[-1]!r}); plans are reviewed and committed, "
         "secrets must not be", "put the token in an environment variable and name it in credentials.admin_token_env")
        for p in secrets
    ]
    context: dict[str, Any] = {"base_dir": Path(base_dir)}
    if data.get("mode") in ("dbless", "hybrid"):
        context["mode"] = data["mode"]
    x = data.get("x")
    x_provider = x.get("provider") if isinstance(x, dict) else None
    context["x_provider"] = x_provider if isinstance(x_provider, str) else "auto"
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(data, context=context)
    except ValidationError as exc:
        lines.extend(_issue_lines(exc, set(secrets)))
    except RecursionError:  # pragma: no cover - the YAML depth limit keeps this away
        lines.append(("the plan nests too deeply to validate", None))
    if lines or plan is None:
        raise _plan_error(lines)
    plan._path = path
    plan._warnings = tuple(
        _version_warning(where, value)
        for where, value in (("x.version", plan.x.version), ("y.version", plan.y.version),
                             ("y.dp_version", plan.y.dp_version))
        if value is not None and not _known_version(value)
    )
    return plan


def _plan_error(lines: list[tuple[str, str | None]]) -> PlanError:
    unique = list(dict.fromkeys(lines))
    if len(unique) == 1:
        message, hint = unique[0]
        return PlanError(message, hint=hint)
    text = "\n".join(message + (f"\n    next step: {hint}" if hint else "") for message, hint in unique)
    return PlanError(f"{len(unique)} problems:\n{text}")


def _yaml_hint(exc: YamlRefused) -> str:
    if exc.limit:
        return "plans are small, hand-written files: remove what the limit names"
    if "duplicate key" in exc.what:
        return "keep one of the two keys (YAML would silently use the last)"
    if "UTF-8" in exc.what:
        return "save the plan as UTF-8 text"
    return "check indentation and quoting (quote versions and strings with ':')"


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (a regular file of at most 1 MB of UTF-8 YAML)."""
    plan_path = Path(path).resolve()
    try:
        st = os.stat(plan_path)
    except FileNotFoundError:
        raise PlanError(f"plan file {plan_path} does not exist",
                        hint="pass the path of a plan YAML (plans/default.yaml ships with the repo)") from None
    except OSError as exc:
        raise PlanError(f"cannot read plan file {plan_path}: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PlanError(f"plan file {plan_path} is {_file_kind(st.st_mode)}; expected a regular YAML file",
                        hint="pass the path of a plan YAML (plans/default.yaml ships with the repo)")
    if st.st_size > PLAN_MAX_BYTES:
        raise PlanError(f"plan file {plan_path} is {st.st_size:,} bytes; a plan may be at most "
                        f"{PLAN_MAX_BYTES:,} bytes", hint="a plan names its config file; it does not hold it")
    try:
        with open(plan_path, "rb") as handle:
            raw = handle.read(PLAN_MAX_BYTES + 1)
    except OSError as exc:
        raise PlanError(f"cannot read plan file {plan_path}: {exc.strerror or type(exc).__name__}") from None
    return parse_plan(raw, plan_path.parent, path=plan_path)


def json_schema() -> dict[str, Any]:
    """The plan's JSON Schema (what ``plans/plan.schema.json`` holds)."""
    return Plan.model_json_schema(by_alias=True, mode="validation")


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _main(argv: list[str]) -> int:
    if argv == ["--schema"]:
        sys.stdout.write(schema_text())
        return 0
    if len(argv) >= 1 and not argv[0].startswith("-"):
        status = 0
        for name in argv:
            try:
                plan = load_plan(name)
            except HarnessError as exc:
                print(f"{name}: invalid\n{exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{name}: valid ({plan.name})")
            for warning in plan.warnings:
                print(f"  warning: {warning}")
        return status
    print("usage: python -m harness.plan --schema | PLAN.yaml [...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
