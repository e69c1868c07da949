"""The run's Admin and Status API clients, one per URL; cluster X's are read-only and audited.

``x_admin`` hands out ``ReadOnlyAdmin`` clients whose transport refuses anything but GET/HEAD
before sending; an audit transport under that guard records the method of every request that did
reach X, which the ``x never written`` invariant reads in every stage.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

import httpx

from harness.admin import AdminClient, ReadOnlyAdmin, StatusClient
from harness.deadline import CallBudget
from harness.errors import HarnessError
from harness.model import Node


class _AuditTransport(httpx.HTTPTransport):
    """Records the method of every request that reaches the network (behind the read-only guard)."""

    def __init__(self, log: list[str]) -> None:
        # no keep-alive, as the admin client's own transport: its deadline watchdog needs each call's socket
        super().__init__(limits=httpx.Limits(max_keepalive_connections=0))
        self._log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._log.append(request.method.upper())
        return super().handle_request(request)


@dataclass(frozen=True)
class XAudit:
    """What the harness sent to X: how many read-only clients, how many requests, any write tried."""

    clients: int
    requests: int
    write_attempts: tuple[str, ...]


class Clients:
    """Admin/Status clients by URL; ``close()`` closes them all. No I/O until a client is used."""

    def __init__(self, admin_token: str | None = None, *, max_call_seconds: float | None = None) -> None:
        self._token = admin_token
        # every call's total deadline: a base plus a per-MiB allowance, capped by the plan's admin.max_call_seconds
        self._budget = CallBudget(cap=max(max_call_seconds, CallBudget().base)) if max_call_seconds else None
        self._x_methods: list[str] = []
        self._x_admin: dict[str, ReadOnlyAdmin] = {}
        self._y_admin: dict[str, AdminClient] = {}
        self._status: dict[str, StatusClient] = {}

    def __repr__(self) -> str:
        return f"Clients(x={len(self._x_admin)}, y={len(self._y_admin)}, status={len(self._status)})"

    def x_admin(self, node: Node) -> ReadOnlyAdmin:
        """The read-only Admin API view of an X node (a CP or a DB-less node)."""
        if node.admin_url is None:
            raise HarnessError(f"{node} has no Admin API (a data plane)", hint="read its control plane instead")
        if node.admin_url not in self._x_admin:
            self._x_admin[node.admin_url] = ReadOnlyAdmin(
                node.admin_url, token=self._token, transport=_AuditTransport(self._x_methods), budget=self._budget)
        return self._x_admin[node.admin_url]

    def y_admin(self, node: Node) -> AdminClient:
        """A writable Admin API client of a Y node; refused for any node of cluster X."""
        if node.cluster == "x":
            raise HarnessError(f"refused a writable client on {node}: cluster X is read-only",
                               hint="read X through x_admin()")
        if node.admin_url is None:
            raise HarnessError(f"{node} has no Admin API (a data plane)", hint="write to its control plane")
        if node.admin_url not in self._y_admin:
            self._y_admin[node.admin_url] = AdminClient(node.admin_url, token=self._token, budget=self._budget)
        return self._y_admin[node.admin_url]

    def admin(self, node: Node) -> ReadOnlyAdmin | AdminClient:
        """Read access to any node's Admin API: read-only on X, the Y client on Y."""
        return self.x_admin(node) if node.cluster == "x" else self.y_admin(node)

    def status(self, node: Node) -> StatusClient:
        """The Status API of a node (a DP has only that); on a node without one, its Admin API."""
        url = node.status_url or node.admin_url
        if url is None:
            raise HarnessError(f"{node} has neither a Status API nor an Admin API URL")
        if url not in self._status:
            self._status[url] = StatusClient(url, budget=self._budget)
        return self._status[url]

    def x_audit(self) -> XAudit:
        writes = tuple(m for m in self._x_methods if m not in ("GET", "HEAD"))
        return XAudit(len(self._x_admin), len(self._x_methods), writes)

    def close(self) -> None:
        for client in (*self._x_admin.values(), *self._y_admin.values(), *self._status.values()):
            with suppress(Exception):
                client.close()
        self._x_admin.clear()
        self._y_admin.clear()
        self._status.clear()
