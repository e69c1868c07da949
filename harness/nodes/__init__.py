"""Node providers behind one Protocol, chosen by name or by node spec; and the crashed-run sweep.

    get_provider("process" | "docker" | "existing", **kw) -> NodeProvider   (imports lazily:
        testcontainers and the docker SDK are imported only when the docker provider is asked for)
    provider_for_spec("docker://kong:3.9") -> "docker"
    sweep(run_id) removes what a crashed run left behind: containers and networks labelled
        kuh.run=<run_id>, and processes named by the pid files in the run's node folders (each checked
        through /proc to still be the process the harness started; never by name)
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import NodeError, PlanError
from harness.model import Cluster, ClusterCert, Node, Role
from harness.nodes.base import NodeProvider, NodeRequest
from harness.nodes.spec import NodeSpec, parse_spec
from harness.registry import PROVIDERS

__all__ = [
    "PROVIDERS",
    "Cluster",
    "ClusterCert",
    "Node",
    "NodeProvider",
    "NodeRequest",
    "NodeSpec",
    "Role",
    "SweepResult",
    "get_provider",
    "parse_spec",
    "provider_for_spec",
    "sweep",
]

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def get_provider(name: str, **kwargs: Any) -> NodeProvider:
    """A new provider by registry name; keyword arguments go to its constructor."""
    target = PROVIDERS.get(name)
    if target is None:
        raise PlanError(
            f"node provider {name!r} is unknown; valid providers are: {', '.join(sorted(PROVIDERS))}",
            hint="fix the provider name in the plan",
        )
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    provider: NodeProvider = getattr(module, class_name)(**kwargs)
    return provider


def provider_for_spec(spec: str | NodeSpec) -> str:
    """The registry name of the provider that runs a node spec."""
    parsed = spec if isinstance(spec, NodeSpec) else parse_spec(spec)
    return parsed.provider


@dataclass(frozen=True)
class SweepResult:
    """What a sweep removed; ``docker_error`` says why the Docker part could not run, if it could not."""

    run_id: str
    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    docker_error: str | None = None

    @property
    def removed(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.processes)


def sweep(
    run_id: str,
    *,
    run_dir: str | Path | None = None,
    docker: bool = True,
    docker_client_kw: dict[str, Any] | None = None,
) -> SweepResult:
    """Remove the leftovers of run ``run_id``: its labelled containers and networks, its processes.

    ``run_dir`` is the process provider's node folder for that run (default: its default place).
    A Docker engine that does not answer is reported in ``docker_error``, not raised: the process
    part still runs.
    """
    if not RUN_ID.match(run_id or ""):
        raise NodeError(
            f"sweep: run id {run_id!r} is not a run id (letters, digits, '_', '.', '-'; at most 128)",
            hint="pass the run id the nodes were started with (NodeRequest.run_id)",
        )
    from harness.nodes.process import default_run_dir, sweep_pid_files

    folder = Path(run_dir) if run_dir is not None else default_run_dir(run_id)
    processes = tuple(sweep_pid_files(folder, run_id))
    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    docker_error: str | None = None
    if docker:
        try:
            from harness.nodes.docker import sweep_docker

            containers, networks = sweep_docker(run_id, docker_client_kw=docker_client_kw)
        except Exception as exc:  # no engine, no SDK: say so, keep the process result
            docker_error = f"{type(exc).__name__}: {exc}"
    return SweepResult(run_id, containers, networks, processes, docker_error)
