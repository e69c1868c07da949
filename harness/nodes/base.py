"""Nodes are values; providers create and destroy them behind one Protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["dbless", "cp", "dp"]
Cluster = Literal["x", "y"]


@dataclass(frozen=True)
class ClusterCert:
    """Paths of the shared hybrid-mode certificate and key (cluster_mtls = shared)."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class Node:
    """One Kong node as the harness sees it. DPs have no admin URL (Kong gives them no Admin API)."""

    name: str                      # "x1", "y2", "cp-y", "dp-y1": unique within a run
    spec: str                      # the node spec it came from, also its test id (STYLE.md #3)
    cluster: Cluster
    role: Role
    version: str | None
    admin_url: str | None
    proxy_url: str | None
    status_url: str | None
    provider: str = "existing"     # "process" | "docker" | "existing"
    owned: bool = False            # True when the harness started it and will stop it
    handle: str | None = None      # provider id: pid or container id
    cluster_address: str | None = None  # CP only: "host:port" a DP of the same provider dials

    def __str__(self) -> str:
        return f"{self.name}[{self.spec}]"


@dataclass(frozen=True)
class NodeRequest:
    """What a provider needs to start one node."""

    name: str
    cluster: Cluster
    role: Role
    version: str                                 # the Kong version to run (or emulate)
    run_id: str                                  # labels containers / names processes of this run
    image: str | None = None                     # docker only; default: the emulator image
    declarative_config: str | None = None        # YAML/JSON text loaded at start (DB-less nodes)
    control_plane: Node | None = None            # DPs: the CP to join
    cluster_cert: ClusterCert | None = None      # hybrid nodes
    faults: Mapping[str, str] = field(default_factory=dict)  # emulator faults, KONG_EMULATOR_FAULT_*
    env: Mapping[str, str] = field(default_factory=dict)     # extra KONG_* settings
    echo_port: int | None = None                 # emulator: start the echo upstream beside it
    spec: str | None = None                      # the node spec (harness.nodes.spec); existing nodes,
                                                 # a local kong, or a docker image; else derived
    wait_for_config: bool = True                 # False: ready once it answers, even without config yet
                                                 # (the caller watches a DP join its CP itself)


@runtime_checkable
class NodeProvider(Protocol):
    """Starts and stops nodes. Every node a provider started is stopped by ``close()``."""

    name: str

    def start(self, request: NodeRequest) -> Node: ...

    def stop(self, node: Node) -> None: ...

    def logs(self, node: Node, tail: int = 50) -> str: ...

    def close(self) -> None: ...
