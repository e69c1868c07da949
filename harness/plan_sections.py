"""The plan's other sections, one pydantic model each: config, traffic (and the command splitter), probe,
differential, admin, notify, gates, parity, considerations, credentials. The clusters are harness.plan_clusters,
the whole :class:`~harness.plan.Plan` is harness.plan.

Each field is declared once, with its type, default, bounds and what a valid value looks like
(harness.plan_fields); a rule between two fields of a section is its model validator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator

from harness.compat import RULE_IDS
from harness.config_diff import AllowRule
from harness.errors import PlanError
from harness.plan_fields import (
    ConfigFormat,
    Expect,
    FailOn,
    GateSource,
    Issue,
    ParityAgainst,
    Percent,
    Reason,
    Section,
    SplitterName,
    Upstream,
    Url,
    UrlWithPath,
    check_source,
    context_of,
    did_you_mean,
    fail,
    fail_all,
    show,
)
from harness.registry import DEFAULT_SPLITTER

DEFAULT_STEPS = (5, 25, 50, 100)


class ConfigPlan(Section):
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
        base = Path(context_of(info).get("base_dir", "."))
        root = (base / value).resolve()
        if not root.is_dir():
            raise fail(f"is {str(value)!r}, but {root} is not a folder", hint="name an existing folder")
        return root

    @field_validator("source", mode="after")
    @classmethod
    def _source(cls, value: Path, info: ValidationInfo) -> Path:
        base = Path(context_of(info).get("base_dir", ".")).resolve()
        root = info.data.get("allowed_root") or base
        return check_source(value, base, root, explicit_root=info.data.get("allowed_root") is not None)

    @model_validator(mode="after")
    def _required(self, info: ValidationInfo) -> ConfigPlan:
        if self.format == "kong" and self.source is not None and self.source.is_dir():
            raise fail(f"is kong, but config.source {self.source} is a folder; expected deck for a folder of decK "
                       "state files", at=("format",))
        ctx = context_of(info)
        if self.source is None and ctx.get("x_provider", "existing") != "existing" and "base_dir" in ctx:
            raise fail("is missing; expected a declarative config file such as configs/sample.yaml (required "
                       "unless x.provider is existing: then X's own config is captured)", at=("source",))
        return self


class CommandSplitter(Section):
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
            raise fail(f"is {show(value)}; expected a shell command containing {{x}} and {{y}} (the weights 0..100)")
        return value


class TrafficPlan(Section):
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
            raise fail("is empty; expected whole percentages that strictly increase and end at 100, e.g. "
                       "[5, 25, 50, 100]", hint="list the steps, or remove traffic.steps for the default "
                       f"{list(DEFAULT_STEPS)}")
        if steps == (100,):
            raise fail("is [100], a single step: all traffic moves at once and no step compares Y with X "
                       "under shared traffic; expected at least one partial step first, e.g. [10, 100]")
        issues: list[Issue] = []
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                issues.append(((i,), f"is {steps[i]}, not more than the step before ({steps[i - 1]}); steps must "
                               "strictly increase, e.g. [5, 25, 50, 100]", None))
        if steps[-1] != 100:
            issues.append(((len(steps) - 1,), f"is {steps[-1]}; the last step must be 100 (all traffic on Y "
                           "before decommission)", None))
        fail_all(issues)
        return steps

    @property
    def max_hold(self) -> float:
        """The longest a step may hold: ``max_hold_seconds``, else three holds."""
        return self.max_hold_seconds if self.max_hold_seconds is not None else 3 * self.hold_seconds

    @model_validator(mode="after")
    def _max_hold(self) -> TrafficPlan:
        if self.max_hold_seconds is not None and self.max_hold_seconds < self.hold_seconds:
            raise fail(f"is {self.max_hold_seconds:g}, shorter than hold_seconds ({self.hold_seconds:g}); expected "
                       "at least the hold", at=("max_hold_seconds",))
        return self

    @model_validator(mode="after")
    def _pauses(self) -> TrafficPlan:
        for i, step in enumerate(self.pause_after):
            if step not in self.steps or step == 100:
                raise fail(f"is {step}; expected one of the partial steps {list(self.steps[:-1])}",
                           at=("pause_after", i))
        return self

    @model_validator(mode="after")
    def _command(self) -> TrafficPlan:
        if self.splitter == "command" and self.command is None:
            raise fail("is missing; expected set_weights (with {x} and {y}), get_weights, listen_url",
                       at=("command",))
        if self.splitter != "command" and self.command is not None:
            raise fail(f"is set but traffic.splitter is {self.splitter!r}", at=("command",),
                       hint="set traffic.splitter: command, or remove traffic.command")
        return self


class ProbePlan(Section):
    rate: Annotated[float, Field(gt=0, le=10_000), Expect("requests per second")] = 200.0
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    user_rate: Annotated[float, Field(ge=0, le=100_000), Expect(
        "requests per second of user-like traffic (wrk, a request mix drawn from the corpus) sent beside the "
        "probe in rehearsals; 0: none")] = 0.0


class DifferentialPlan(Section):
    """The differential requests of staging: every route once up to ``budget`` requests per node, beyond
    it a stratified sample; sent ``concurrency`` at a time."""

    budget: Annotated[int, Field(ge=1, le=1_000_000), Expect("requests per node")] = 5000
    concurrency: Annotated[int, Field(ge=1, le=64), Expect("requests in flight at once")] = 8
    smoke_budget: Annotated[int, Field(ge=1, le=1_000_000), Expect(
        "requests per node of the scale stage's smoke (each new Y node against the first); a sample that still "
        "covers every kind of route, as staging's differential already compared Y with X on the full budget")
    ] = 1000


class AdminPlan(Section):
    """Limits of the harness's Admin API calls (harness.deadline.CallBudget)."""

    max_call_seconds: Annotated[float, Field(gt=0, le=3600), Expect(
        "seconds any one Admin API call may take at most (each call gets a base plus a per-MiB allowance "
        "up to this cap; raise it for a real Kong that loads very large configs slowly)")] = 300.0


class NotifyPlan(Section):
    """Called on each stage verdict, each rollback and the final verdict with a small JSON body."""

    command: Annotated[str, Field(min_length=1, max_length=4000), Expect(
        "a shell command; the JSON body arrives on its standard input")] | None = None
    webhook: UrlWithPath | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


class GatePlan(Section):
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
            raise fail(f"is {list(value)}, which names a source twice; expected each at most once")
        return value


class AllowEntry(Section):
    path: Annotated[str, Field(min_length=1, max_length=500),
                    Expect("a path glob such as \"plugins['key-auth@global'].config.realm\"")]
    reason: Annotated[Reason, Expect("a sentence saying why the difference is expected (it is shown in the "
                                     "report)")]

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise fail("is blank; every allowed difference needs a reason (it is shown in the report)")
        return value.strip()


class ParityPlan(Section):
    """Expected X -> Y differences that the parity check moves to its ``allowed`` group."""

    entries: Annotated[tuple[AllowEntry, ...], Strict(False), Field(max_length=1000, alias="allow")] = ()
    against: Annotated[ParityAgainst, Expect(
        "x (Y is compared with X's backup) or file (also with the reviewed config.source)")] = "x"

    @property
    def allow(self) -> tuple[AllowRule, ...]:
        """The entries as the parity diff's rules."""
        return tuple(AllowRule(e.path, e.reason) for e in self.entries)


class AcceptedFinding(Section):
    id: Annotated[str, Field(min_length=1, max_length=100), Expect("a finding id")]
    reason: Annotated[Reason, Expect("a sentence saying why the finding is accepted (it is shown in the report)")]

    @field_validator("id")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RULE_IDS:
            ids = sorted(RULE_IDS)
            raise fail(f"is {value!r}, which is no known finding" + did_you_mean(value, ids),
                       hint=f"known ids: {', '.join(ids)}")
        return value

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise fail("is blank; every accepted finding needs a reason (it is shown in the report)")
        return value.strip()


KongConfValue = Annotated[str | bool | int | float, Expect("a single value as in kong.conf")]


class ConsiderationsPlan(Section):
    fail_on: FailOn = "error"
    accept: Annotated[tuple[AcceptedFinding, ...], Strict(False), Field(max_length=1000)] = ()
    kong_conf: Annotated[dict[str, KongConfValue], Field(max_length=1000),
                         Expect('a mapping of kong.conf settings, e.g. {status_listen: "0.0.0.0:8100"}')] = Field(
        default_factory=dict)

    def accepted(self, finding_id: str) -> AcceptedFinding | None:
        return next((a for a in self.accept if a.id == finding_id), None)


class Credentials(Section):
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

