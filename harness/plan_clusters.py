"""The plan's clusters: X, the running one (:class:`ClusterPlan`), and Y, the new one (:class:`YClusterPlan`),
with their existing nodes (:class:`ExistingNode`) and emulator faults (:class:`Faults`).

The rules between a cluster's fields (a provider's required and forbidden keys, a node's role and URLs
against the plan's ``mode`` read from the validation context, Y's ``initial`` and ``load``) are model
validators here; versions are checked as text (``"3.4.2"``, not the YAML number 3.4).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator

from harness.plan_fields import (
    Expect,
    Issue,
    ProviderName,
    Role,
    Section,
    Url,
    VersionText,
    YLoad,
    context_of,
    fail,
    fail_all,
    show,
)
from harness.registry import EMULATOR_IMAGE

MAX_NODES = 32
_VERSION = re.compile(r"^(?P<major>\d{1,4})\.(?P<minor>\d{1,4})\.(?P<patch>\d{1,6})(?:\.(?P<build>\d{1,6}))?"
                      r"(?P<suffix>-[0-9A-Za-z][0-9A-Za-z.+_-]{0,63})?$")


class Faults(Section, Mapping[str, str]):
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


class ExistingNode(Section):
    """A node the harness did not start (reached by URL, never stopped, never written to on X)."""

    role: Role
    admin_url: Url | None = None
    proxy_url: Url | None = None
    status_url: Url | None = None

    @model_validator(mode="before")
    @classmethod
    def _role_default(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and data.get("role") is None and context_of(info).get("mode") == "dbless":
            return {**data, "role": "dbless"}
        return data

    @model_validator(mode="after")
    def _urls_for_role(self, info: ValidationInfo) -> ExistingNode:
        mode = context_of(info).get("mode")
        issues: list[Issue] = []
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
        fail_all(issues)
        return self


class ClusterPlan(Section):
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
            raise fail(f"is the number {value!r}; expected a version string such as \"{_as_version(value)}\"",
                       hint='quote versions in YAML: version: "3.4.2"')
        if not isinstance(value, str):
            return value
        match = _VERSION.match(value)
        if match is None:
            raise fail(f": not a Kong version: {show(value)}; expected MAJOR.MINOR.PATCH such as \"3.8.1\", "
                       "an Enterprise version such as \"3.4.3.12\", or one with a suffix such as "
                       "\"3.9.3-enterprise-edition\"" + _version_fix(value))
        return value

    @field_validator("nodes", mode="before")
    @classmethod
    def _only_existing(cls, value: Any, info: ValidationInfo) -> Any:
        provider = info.data.get("provider")
        if value and provider is not None and provider != "existing":
            raise fail(f"is only for provider: existing (here {provider!r})",
                       hint="set {here}.provider: existing, or remove {here}.nodes")
        return value

    @model_validator(mode="after")
    def _provider_rules(self, info: ValidationInfo) -> ClusterPlan:
        mode = context_of(info).get("mode")
        issues: list[Issue] = []
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
        fail_all(issues)
        return self

    def _more_rules(self, mode: Any) -> list[Issue]:
        return []


class YClusterPlan(ClusterPlan):
    """Cluster Y, the new one: ``initial`` nodes at deploy, ``count`` after scale."""

    initial: Annotated[int, Field(ge=1, le=MAX_NODES)] = 1
    dp_version: VersionText | None = None
    load: Annotated[YLoad, Expect(
        "backup (X's backup is written into Y through Y's Admin API) or keep (Y's own config is verified "
        "against X's, nothing is written); required with provider: existing")] | None = None

    def _more_rules(self, mode: Any) -> list[Issue]:
        issues: list[Issue] = []
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

