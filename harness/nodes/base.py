"""Nodes are values; providers create and destroy them behind one Protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from harness.model import Cluster, ClusterCert, Node, NodeState, Role


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

    def state(self, node: Node, tail: int = 30) -> NodeState:
        """Whether the node still runs; if not, how it ended (exit code) and its last log lines."""
        ...

    def close(self) -> None: ...
