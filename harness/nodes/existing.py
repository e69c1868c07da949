"""Nodes the harness did not start, named by URL (real staging and production clusters).

They are never stopped and never written to: ``start()`` only checks that the node answers and reads
its version and role with one ``GET /`` on the Admin API (for a DP, which has no Admin API, one
``GET /status`` on its Status API). ``stop()`` and ``close()`` leave the node alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from harness.errors import BadResponse, NodeError, NodeUnreachable
from harness.nodes.base import Node, NodeRequest, Role
from harness.nodes.spec import parse_spec

ROLE_FROM_KONG: dict[str, Role] = {"control_plane": "cp", "data_plane": "dp"}


class ExistingProvider:
    """Adopts nodes by URL (``NodeRequest.spec``: ``http://host:8001?proxy=...&status=...&role=...``)."""

    name = "existing"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self._headers = dict(headers or {})  # e.g. {"Kong-Admin-Token": ...} read from the environment
        self._transport = transport  # tests inject httpx.MockTransport here

    def start(self, request: NodeRequest) -> Node:
        if not request.spec:
            raise NodeError(
                f"existing node {request.name} has no URL",
                hint="set NodeRequest.spec to the node's Admin API URL, e.g. http://127.0.0.1:8001",
            )
        spec = parse_spec(request.spec)
        if spec.provider != "existing":
            raise NodeError(
                f"node {request.name}: spec {spec.raw!r} is not an existing node's URL",
                hint="existing nodes are named by http(s)://host:port; other specs need their provider",
            )
        url = spec.admin_url or spec.status_url
        assert url is not None
        path = "/" if spec.admin_url else "/status"
        body = self._read(request.name, url, path)
        version, role = spec.version, spec.role
        if spec.admin_url:
            version = version or _text(body.get("version"))
            seen = _role(body)
            if role is not None and seen is not None and seen != role:
                raise NodeError(
                    f"existing node {request.name} at {url}: spec says role={role}, the node says {seen}",
                    hint="fix role= in the node spec (or point it at the right node)",
                )
            role = role or seen
        if role is None:
            raise BadResponse(
                f"existing node {request.name} at {url}: GET {path} did not say its role "
                f"(configuration.role/database missing)",
                hint="add role=dbless|cp|dp to the node spec",
            )
        if request.role != role:
            raise NodeError(
                f"existing node {request.name} at {url} is a {role} node, the plan expects {request.role}",
                hint="fix the role in the plan or the node URL",
            )
        return Node(
            name=request.name,
            spec=spec.raw,
            cluster=request.cluster,
            role=role,
            version=version,
            admin_url=spec.admin_url,
            proxy_url=spec.proxy_url,
            status_url=spec.status_url,
            provider=self.name,
            owned=False,
            handle=None,
        )

    def stop(self, node: Node) -> None:
        """Existing nodes are never stopped."""

    def logs(self, node: Node, tail: int = 50) -> str:
        return f"(no logs: {node} was not started by the harness; read them where it runs)"

    def close(self) -> None:
        """Nothing to release: existing nodes outlive the run."""

    def _read(self, name: str, base: str, path: str) -> dict[str, Any]:
        url = base + path
        try:
            with httpx.Client(
                timeout=self.timeout, headers=self._headers, transport=self._transport, trust_env=False
            ) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise NodeUnreachable(
                f"existing node {name} at {base} did not answer GET {path} within {self.timeout:.0f}s "
                f"(expected an HTTP answer from Kong; saw {type(exc).__name__}: {exc})",
                hint=f"check that the node runs and that {base} is the right URL (reachable from here)",
            ) from exc
        if response.status_code != 200:
            raise BadResponse(
                f"existing node {name} at {base}: GET {path} answered {response.status_code} "
                f"(expected 200); body: {response.text[:300]!r}",
                hint="check that the URL is Kong's Admin API (or Status API for a DP) and any credentials",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BadResponse(
                f"existing node {name} at {base}: GET {path} answered 200 but not a JSON object "
                f"(expected Kong's node information); body: {response.text[:300]!r}",
                hint="check that the URL points at Kong and not at a proxy or another service",
            )
        return body


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _role(body: dict[str, Any]) -> Role | None:
    """dbless / cp / dp from ``configuration.role`` and ``.database``; None when they are missing."""
    conf = body.get("configuration")
    if not isinstance(conf, dict):
        return None
    role, database = conf.get("role"), conf.get("database")
    if role == "traditional" and database not in (None, "off"):
        raise NodeError(
            f"node reports role=traditional with database={database}: a traditional node with a database "
            "is neither DB-less nor hybrid, the two modes this harness upgrades",
            hint="point the plan at DB-less nodes or at the hybrid CP and DPs",
        )
    if role == "traditional":
        return "dbless" if database == "off" else None
    return ROLE_FROM_KONG.get(str(role))
