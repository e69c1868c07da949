"""Differential requests: the same corpus to X and to Y, comparing what clients and upstreams saw.

A response Kong proxied is compared on status, what the upstream received (method, path, query,
body, headers less the volatile ones) and the body. A response Kong generated itself (401, 404)
is compared against what each side's version is known to send (harness.behaviour), so a message
that changed between versions by design is a known difference, not a defect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx

from harness.behaviour import VOLATILE_UPSTREAM_HEADERS, ExpectedError, key_auth_401
from harness.corpus import CorpusRequest, fingerprint
from harness.errors import NodeUnreachable


@dataclass(frozen=True)
class Observation:
    """What one node answered to one corpus request."""

    status: int
    message: str | None                    # Kong's JSON "message" on generated responses
    www_authenticate: str | None
    upstream: Mapping[str, Any] | None     # what the echo upstream says it received; None if Kong answered
    body_text: str


@dataclass(frozen=True)
class Difference:
    request: str
    field: str
    x: str
    y: str
    note: str = ""

    def render(self) -> str:
        line = f"{self.request}: {self.field}: X={self.x} | Y={self.y}"
        return f"{line} ({self.note})" if self.note else line


def observe(client: httpx.Client, base_url: str, req: CorpusRequest, *, where: str) -> Observation:
    """Send one corpus request to ``base_url`` and read the answer."""
    try:
        resp = client.request(req.method, base_url.rstrip("/") + req.path, headers=req.header_dict())
    except httpx.TransportError as exc:
        raise NodeUnreachable(
            f"{where}: {req.method} {req.path} ({req.name}) got no answer: {type(exc).__name__}: {exc}",
            hint="check the node's proxy listener and its log",
        ) from exc
    text = resp.text
    data: Any = None
    with suppress(ValueError):
        data = resp.json()
    upstream = data if isinstance(data, dict) and {"method", "path", "headers"} <= data.keys() else None
    message = data.get("message") if isinstance(data, dict) and upstream is None else None
    return Observation(resp.status_code, message, resp.headers.get("www-authenticate"), upstream, text)


def expected_for(req: CorpusRequest, version: str) -> ExpectedError | None:
    """The Kong-generated answer a version gives to this request, when it is one."""
    if req.auth == "missing" and req.key_auth and not req.key_auth.anonymous:
        return key_auth_401(version, "missing", req.key_auth.realm)
    if req.auth == "invalid" and req.key_auth and not req.key_auth.anonymous:
        return key_auth_401(version, "invalid", req.key_auth.realm)
    return None


def _upstream_view(upstream: Mapping[str, Any]) -> dict[str, Any]:
    headers = {
        str(k).lower(): v
        for k, v in (upstream.get("headers") or {}).items()
        if str(k).lower() not in VOLATILE_UPSTREAM_HEADERS
    }
    return {
        "method": upstream.get("method"),
        "path": upstream.get("path"),
        "query": upstream.get("query"),
        "body": upstream.get("body"),
        "headers": headers,
    }


class _Redact:
    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first: a secret that contains another must not leave its tail behind
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def hide(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, f"<{fingerprint(s)}>")
        return text

    def __call__(self, value: object) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return self.hide(text)[:300]


def compare(
    req: CorpusRequest,
    x: Observation,
    y: Observation,
    *,
    x_version: str,
    y_version: str,
    secrets: Iterable[str] = (),
) -> list[Difference]:
    """The differences between X's and Y's answers that their versions do not explain."""
    r = _Redact(secrets)
    out: list[Difference] = []
    if x.status != y.status:
        out.append(Difference(req.name, "status", str(x.status), str(y.status)))
        return out
    exp_x, exp_y = expected_for(req, x_version), expected_for(req, y_version)
    if exp_x and exp_y:
        for side, obs, exp, ver in (("X", x, exp_x, x_version), ("Y", y, exp_y, y_version)):
            if obs.message != exp.message or (obs.www_authenticate or None) != exp.www_authenticate:
                out.append(
                    Difference(
                        req.name, f"{side} key-auth answer",
                        r(x.message if side == "X" else exp_x.message),
                        r(y.message if side == "Y" else exp_y.message),
                        r.hide(f"{side} ({ver}) should send message {exp.message!r} and WWW-Authenticate "
                               f"{exp.www_authenticate!r}; sent {obs.message!r} / {obs.www_authenticate!r}"),
                    )
                )
        return out
    if x.upstream is not None or y.upstream is not None:
        if x.upstream is None or y.upstream is None:
            out.append(Difference(req.name, "proxied", str(x.upstream is not None), str(y.upstream is not None)))
            return out
        ux, uy = _upstream_view(x.upstream), _upstream_view(y.upstream)
        for key in ("method", "path", "query", "body"):
            if ux[key] != uy[key]:
                out.append(Difference(req.name, f"upstream {key}", r(ux[key]), r(uy[key])))
        hx, hy = ux["headers"], uy["headers"]
        for name in sorted(set(hx) | set(hy)):
            if hx.get(name) != hy.get(name):
                out.append(Difference(req.name, f"upstream header {name}", r(hx.get(name)), r(hy.get(name))))
        return out
    if x.message != y.message:
        out.append(Difference(req.name, "message", r(x.message), r(y.message)))
    return out
