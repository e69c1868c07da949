"""Nodes the harness did not start, named by URL (real staging and production clusters).

They are never stopped and never written to: ``start()`` only checks that the node answers and reads
its version and role through ``harness.admin.ReadOnlyAdmin`` (``GET /``; a view whose transport
refuses every write), or for a DP, which has no Admin API, ``GET /status`` through ``StatusClient``.
``stop()`` and ``close()`` leave the node alone.
"""

from __future__ import annotations

import httpx

from harness.admin import NodeInfo, ReadOnlyAdmin, StatusClient
from harness.errors import NodeError, NodeUnreachable
from harness.model import Node, NodeState, Role
from harness.nodes.base import NodeRequest
from harness.nodes.spec import parse_spec

MODES: dict[str, Role] = {"dbless": "dbless", "cp": "cp", "dp": "dp"}


class ExistingProvider:
    """Adopts nodes by URL (``NodeRequest.spec``: ``http://host:8001?proxy=...&status=...&role=...``).

    ``token``: the Admin API token (``Kong-Admin-Token``), read by the caller from the environment.
    """

    name = "existing"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        retries: int = 1,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._token = token
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
        version, role = spec.version, spec.role
        if spec.admin_url:
            info = self._root(request.name, spec.admin_url)
            version = version or info.version
            seen = _role(info)
            if role is not None and seen != role:
                raise NodeError(
                    f"existing node {request.name} at {spec.admin_url}: "
                    f"spec says role={role}, the node says {seen}",
                    hint="fix role= in the node spec (or point it at the right node)",
                )
            role = seen
        else:
            assert spec.status_url is not None
            self._status(request.name, spec.status_url)
        assert role is not None  # the spec parser gives a DP spec its role
        if request.role != role:
            raise NodeError(
                f"existing node {request.name} at {spec.admin_url or spec.status_url} is a {role} node, "
                f"the plan expects {request.role}",
                hint="fix the role in the plan or the node URL",
            )
        return Node(
            name=request.name,
            spec=spec.raw,
            cluster=request.cluster,
            role=role,
            version=version or request.version or None,  # a DP has no Admin API to say: the plan's version
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

    def state(self, node: Node, tail: int = 30) -> NodeState:
        """An existing node's process is not the harness's to see: running while it answers."""
        url = node.status_url or node.admin_url
        if url is None:
            return NodeState(node.name, "unknown", None, "(no Admin or Status API URL to ask)")
        try:
            self._status(node.name, url) if node.status_url else self._root(node.name, url)
        except NodeError as exc:
            return NodeState(node.name, "missing", None, f"(not started by the harness; it does not answer: "
                                                          f"{exc.message})")
        return NodeState(node.name, "running")

    def close(self) -> None:
        """Nothing to release: existing nodes outlive the run."""

    def _root(self, name: str, url: str) -> NodeInfo:
        try:
            with ReadOnlyAdmin(
                url, token=self._token, timeout=self.timeout, retries=self.retries, transport=self._transport
            ) as admin:
                info: NodeInfo = admin.root()
                return info
        except NodeUnreachable as exc:
            raise NodeUnreachable(f"existing node {name}: {exc.message}", hint=exc.hint) from None

    def _status(self, name: str, url: str) -> None:
        try:
            client = StatusClient(url, timeout=self.timeout, retries=self.retries, transport=self._transport)
            with client:
                client.status()
        except NodeUnreachable as exc:
            raise NodeUnreachable(f"existing node {name}: {exc.message}", hint=exc.hint) from None


def _role(info: NodeInfo) -> Role:
    """dbless / cp / dp; a traditional node with a database is refused (neither mode is upgraded here)."""
    role = MODES.get(info.mode)
    if role is None:
        raise NodeError(
            f"node reports role=traditional with database={info.database}: a traditional node with a "
            "database is neither DB-less nor hybrid, the two modes this harness upgrades",
            hint="point the plan at DB-less nodes or at the hybrid CP and DPs",
        )
    return role
