"""Node specs: the one parser for the URL-like strings that name a node (STYLE.md #3).

    emulator://3.8.1                                  the emulator as a local process
    process:///usr/local/bin/kong?prefix=/tmp/k&version=3.9.1   a locally installed kong (best effort)
    docker://kuh/kong-emulator:dev?version=3.8.1      the emulator image
    docker://kong:3.9   docker://kong/kong-gateway:3.9.1.0     a real Kong image (version from the tag)
    http://127.0.0.1:8001?proxy=http://127.0.0.1:8000&status=http://127.0.0.1:8100&role=dbless
                                                      an existing node (never started, stopped or written)

For an existing DP (which has no Admin API) the URL is its Status API: ``http://127.0.0.1:8100?role=dp``.

The spec is also the node's test id, so ``parse_spec(s).raw == s``. This module also holds the small
readiness rule the providers share: which endpoint says a node of a role and version is ready.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NoReturn
from urllib.parse import parse_qsl, urlsplit

from harness.errors import PlanError
from harness.model import Role

ProviderName = Literal["process", "docker", "existing"]

VALID_FORMS = (
    "emulator://<version> (e.g. emulator://3.8.1)",
    "process:///path/to/kong?prefix=<dir>[&version=<x.y.z>]",
    "docker://<emulator image>?version=<x.y.z> (e.g. docker://kuh/kong-emulator:dev?version=3.8.1)",
    "docker://kong:<version> or docker://kong/kong-gateway:<version>",
    "http(s)://host:port[?proxy=<url>&status=<url>&role=dbless|cp|dp&version=<x.y.z>] (existing node)",
)
ROLES: tuple[Role, ...] = ("dbless", "cp", "dp")
ROLE_ALIASES: Mapping[str, Role] = {
    "dbless": "dbless",
    "traditional": "dbless",
    "cp": "cp",
    "control_plane": "cp",
    "dp": "dp",
    "data_plane": "dp",
}

# image repositories (last path part) that are real Kong; anything else is taken as the emulator image
KONG_REPOSITORIES = ("kong", "kong-gateway")

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_TAG_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+){0,2})(?:[-_.].*)?$")


@dataclass(frozen=True)
class NodeSpec:
    """A parsed node spec. ``raw`` is the text it came from (and the node's test id)."""

    raw: str
    provider: ProviderName
    kind: Literal["emulator", "kong"]   # what runs: the emulator, or real Kong
    version: str | None = None           # None: read from the node (existing) or unknown (local kong)
    image: str | None = None             # docker
    executable: str | None = None        # process with a local kong
    prefix: str | None = None            # process with a local kong
    admin_url: str | None = None         # existing (None for a DP)
    proxy_url: str | None = None         # existing
    status_url: str | None = None        # existing
    role: Role | None = None             # existing: as declared in the spec, else read from the node
    params: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.raw


def parse_spec(text: str) -> NodeSpec:
    """Parse one node spec; a bad one raises :class:`PlanError` naming it and the valid forms."""
    raw = text.strip() if isinstance(text, str) else text
    if not isinstance(raw, str) or not raw:
        _fail(text, "it is empty")
    if "://" not in raw:
        _fail(raw, "it has no scheme (the part before ://)")
    scheme, rest = raw.split("://", 1)
    scheme = scheme.lower()
    body, _, query = rest.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        _fail(raw, f"its query {query!r} is not key=value pairs joined by &")
    if scheme == "emulator":
        return _emulator(raw, body, params)
    if scheme == "process":
        return _process(raw, body, params)
    if scheme == "docker":
        return _docker(raw, body, params)
    if scheme in ("http", "https"):
        return _existing(raw, params)
    _fail(raw, f"scheme {scheme!r} is unknown")


def parse_version(text: str) -> tuple[int, ...]:
    """``"3.8.1"`` -> ``(3, 8, 1)``; ``"3.9"`` -> ``(3, 9)``. Raises ValueError for anything else."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kong version like 3.8.1")
    return tuple(int(part) for part in match.groups() if part is not None)


def version_at_least(version: str | None, minimum: tuple[int, ...]) -> bool | None:
    """Whether ``version`` >= ``minimum``; None when the version is unknown or unparsable."""
    if version is None:
        return None
    try:
        parts = parse_version(version)
    except ValueError:
        return None
    return parts[: len(minimum)] + (0,) * max(0, len(minimum) - len(parts)) >= minimum


# ---- readiness (shared by the providers that start nodes) ------------------------------------------

READY_SINCE = (3, 3)  # /status/ready exists from 3.3.0 (KONG-FACTS 2)
EMPTY_CONFIG = "no configuration available"


@dataclass(frozen=True)
class ReadyCheck:
    """Where to ask a started node whether it is ready, and which answers count as ready."""

    listener: Literal["status", "admin"]
    path: str
    accept_empty: bool  # a 503 "no configuration available ..." also counts (node up, config not loaded yet)

    def judge(self, status: int, body: str) -> bool:
        if status == 200:
            return True
        return self.accept_empty and status == 503 and EMPTY_CONFIG in body

    def describe(self) -> str:
        extra = ' or 503 "no configuration available"' if self.accept_empty else ""
        return f"GET {self.path} on the {self.listener} listener answering 200{extra}"


def ready_check(role: Role, version: str | None, *, expect_config: bool) -> ReadyCheck:
    """The readiness rule for a node the harness started.

    A CP is ready when its Admin API answers ``/``. A DB-less node or DP is asked on its Status API:
    ``/status/ready`` from 3.3 (``/status`` before, or when the version is unknown). When no config is
    expected (a DB-less node started empty, or a DP told never to join), the 503 "no configuration
    available" answer is accepted: the node is up and answers as Kong does, it just has nothing to serve.
    """
    if role == "cp":
        return ReadyCheck("admin", "/", accept_empty=False)
    if version_at_least(version, READY_SINCE):
        return ReadyCheck("status", "/status/ready", accept_empty=not expect_config)
    return ReadyCheck("status", "/status", accept_empty=False)


# ---- the forms -------------------------------------------------------------------------------------


def _fail(raw: object, why: str) -> NoReturn:
    forms = "\n    ".join(VALID_FORMS)
    raise PlanError(
        f"node spec {raw!r} is invalid: {why}; valid forms are:\n    {forms}",
        hint="fix the node spec in the plan (or on the command line)",
    )


def _check_version(raw: str, version: str, where: str) -> str:
    try:
        parse_version(version)
    except ValueError:
        _fail(raw, f"{where} {version!r} is not a Kong version like 3.8.1")
    return version


def _only(raw: str, params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        _fail(raw, f"query parameter(s) {', '.join(unknown)} are unknown here (valid: {valid})")


def _emulator(raw: str, body: str, params: Mapping[str, str]) -> NodeSpec:
    _only(raw, params, ())
    version = body.strip("/")
    if not version:
        _fail(raw, "it names no version")
    version = _check_version(raw, version, "version")
    return NodeSpec(raw, "process", "emulator", version=version, params=params)


def _process(raw: str, body: str, params: Mapping[str, str]) -> NodeSpec:
    _only(raw, params, ("prefix", "version"))
    if not body.startswith("/") or body == "/":
        _fail(raw, "it needs an absolute path to the kong executable (process:///usr/local/bin/kong)")
    if not params.get("prefix"):
        _fail(raw, "it needs ?prefix=<directory> (Kong's working directory for this node)")
    version = params.get("version")
    if version is not None:
        _check_version(raw, version, "version")
    return NodeSpec(
        raw, "process", "kong", version=version, executable=body, prefix=params["prefix"], params=params
    )


def _docker(raw: str, body: str, params: Mapping[str, str]) -> NodeSpec:
    _only(raw, params, ("version",))
    image = body.strip("/")
    if not image or any(ch.isspace() for ch in image):
        _fail(raw, "it names no image")
    repository, tag = _split_image(image)
    if repository.rsplit("/", 1)[-1] in KONG_REPOSITORIES:
        version = params.get("version")
        if version is None:
            match = _TAG_VERSION.match(tag or "")
            if not match:
                _fail(raw, f"Kong image tag {tag or '(none)'!r} has no version; pin one, e.g. kong:3.9")
            version = match.group(1)
        return NodeSpec(raw, "docker", "kong", version=_check_version(raw, version, "version"), image=image)
    version = params.get("version")
    if not version:
        _fail(raw, f"emulator image {image!r} needs ?version=<x.y.z> (the Kong version to behave as)")
    return NodeSpec(
        raw, "docker", "emulator", version=_check_version(raw, version, "version"), image=image, params=params
    )


def _split_image(image: str) -> tuple[str, str | None]:
    """``registry:5000/kong/kong-gateway:3.9`` -> (``registry:5000/kong/kong-gateway``, ``3.9``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return name[: len(name) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    return name, None


def _existing(raw: str, params: Mapping[str, str]) -> NodeSpec:
    _only(raw, params, ("proxy", "status", "role", "version"))
    base = raw.split("?", 1)[0].rstrip("/")
    parts = urlsplit(base)
    try:
        port = parts.port
    except ValueError:
        _fail(raw, "its port is not a number")
    if not parts.hostname or port is None:
        _fail(raw, "an existing node's URL needs a host and a port (http://127.0.0.1:8001)")
    for key in ("proxy", "status"):
        value = params.get(key)
        if value is not None and not re.match(r"^https?://[^/?#]+:\d+", value):
            _fail(raw, f"{key}={value!r} is not an http(s)://host:port URL")
    role: Role | None = None
    if "role" in params:
        role = ROLE_ALIASES.get(params["role"])
        if role is None:
            _fail(raw, f"role={params['role']!r} is not one of {', '.join(ROLES)}")
    version = params.get("version")
    if version is not None:
        _check_version(raw, version, "version")
    status = params.get("status")
    admin: str | None = base
    if role == "dp":  # a DP has no Admin API: its URL is the Status API
        admin, status = None, status or base
    return NodeSpec(
        raw,
        "existing",
        "kong",
        version=version,
        admin_url=admin,
        proxy_url=(params.get("proxy") or "").rstrip("/") or None,
        status_url=(status or "").rstrip("/") or None,
        role=role,
        params=params,
    )

