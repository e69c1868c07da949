"""The upgrade plan: one reviewed YAML file -> frozen :class:`Plan` values (pydantic v2 models).

This module owns the whole :class:`Plan` (its cross-section rules), the loader (:func:`load_plan`,
:func:`parse_plan`) and the schema. Each field is declared once, in the section models
(harness.plan_clusters, harness.plan_sections): its type, default, bounds (``Field(ge=, le=)``), choices
(``Literal``) and, where the type alone does not say it, what a valid value looks like
(harness.plan_fields.Expect). From that one declaration come the validation, the error messages and the
JSON Schema that editors use (``python -m harness.plan --schema > plans/plan.schema.json``).

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

import json
import math
import os
import re
import stat
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from harness.compat import RULES, Version
from harness.errors import HarnessError, PlanError
from harness.plan_clusters import ClusterPlan, YClusterPlan
from harness.plan_fields import (
    Expect,
    Issue,
    Mode,
    Section,
    Text,
    fail_all,
    file_kind,
    issue_lines,
    keys_of,
    path_text,
    show,
)
from harness.plan_sections import (
    AdminPlan,
    ConfigPlan,
    ConsiderationsPlan,
    Credentials,
    DifferentialPlan,
    GatePlan,
    NotifyPlan,
    ParityPlan,
    ProbePlan,
    TrafficPlan,
)
from harness.yamlsafe import PLAN_MAX_BYTES, YamlRefused, load_yaml

PLAN_FORMAT = 1
SCHEMA_FILE = "plan.schema.json"
#: how deep a plan's YAML may nest (the deepest real key, parity.allow[i].path, is 3 levels down)
PLAN_MAX_DEPTH = 16
#: aliases a plan may use (a reviewed file needs few; a bomb needs many expansions)
PLAN_MAX_ALIASES = 100
PLAN_MAX_ALIAS_NODES = 10_000

#: keys that hold secrets by value; the plan must name an environment variable instead
_SECRET_KEYS = re.compile(r"(^|_)(token|password|secret|api_?key|apikey|credential_value)$", re.IGNORECASE)
_NEWEST_KNOWN = max(Version.parse(rule.introduced_in) for rule in RULES)


class Plan(Section):
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
        issues: list[Issue] = []
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
        fail_all(issues)
        return self


# ---------------------------------------------------------------------------------------------------
# secrets and warnings


def _secret_paths(data: object) -> list[str]:
    """Paths of keys that hold a secret by value, found without recursion (the depth is bounded)."""
    found: list[str] = []
    stack: list[tuple[tuple[str | int, ...], object]] = [((), data)]
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
                    found.append(path_text(where))
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
        keys = ", ".join(keys_of(Plan))
        raise PlanError(f"{where} must be a YAML mapping with keys {keys}; got {show(data)}",
                        hint="start the file with `plan: 1`")
    if data.get("plan") not in (None, PLAN_FORMAT) or isinstance(data.get("plan"), bool):
        # another format: the rest of the file is not this format's business
        raise PlanError(f"plan is {show(data.get('plan'))}; expected {PLAN_FORMAT} (the plan format version)",
                        hint=f"start the file with `plan: {PLAN_FORMAT}`")
    secrets = _secret_paths(data)
    lines: list[tuple[str, str | None]] = [
        (f"{p}: the plan holds a secret by value ({p.rsplit('.', 1)[-1]!r}); plans are reviewed and committed, "
         "secrets must not be", "put the token in an environment variable and name it in credentials.admin_token_env")
        for p in secrets
    ]
    context: dict[str, object] = {"base_dir": Path(base_dir)}
    if data.get("mode") in ("dbless", "hybrid"):
        context["mode"] = data["mode"]
    x = data.get("x")
    x_provider = x.get("provider") if isinstance(x, dict) else None
    context["x_provider"] = x_provider if isinstance(x_provider, str) else "auto"
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(data, context=context)
    except ValidationError as exc:
        lines.extend(issue_lines(exc, set(secrets), Plan))
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
        raise PlanError(f"plan file {plan_path} is {file_kind(st.st_mode)}; expected a regular YAML file",
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


def json_schema() -> dict[str, object]:
    """The plan's JSON Schema (what ``plans/plan.schema.json`` holds)."""
    schema: dict[str, object] = Plan.model_json_schema(by_alias=True, mode="validation")
    return schema


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
