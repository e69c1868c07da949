"""Node providers behind one Protocol, chosen by name or by node spec; and the crashed-run sweep.

    get_provider("process" | "docker" | "existing", **kw) -> NodeProvider   (imports lazily:
        testcontainers and the docker SDK are imported only when the docker provider is asked for)
    provider_for_spec("docker://kong:3.9") -> "docker"
    sweep(run_id) removes what a crashed run left behind: containers and networks labelled
        kuh.run=<run_id>, and processes named by the pid files in the run's node folders (each checked
        through /proc to still be the process the harness started; never by name); with work_dir also
        its balancer (work_dir/balancer.json), the balancer's temp folder, and the processes of the
        kinds a run starts that carry KUH_RUN_ID=<run_id> in their environment (the echo upstream)
    sweep_dead_runs(work_root) does that for every run folder under the work root whose run lock is
        free (harness.locks): runs that are alive, or paused under their supervisor, are never touched
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from harness.errors import NodeError, PlanError
from harness.locks import RUN_ENV, lock_held
from harness.model import Cluster, ClusterCert, Node, Role
from harness.nodes.base import NodeProvider, NodeRequest
from harness.nodes.spec import NodeSpec, parse_spec
from harness.registry import PROVIDERS

if TYPE_CHECKING:
    import httpx

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
    "sweep_dead_runs",
]

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ProviderOptions(TypedDict, total=False):
    """The keyword arguments of ``get_provider``: each provider's constructor takes its own of these."""

    ready_timeout: float                        # process, docker
    # process (harness.nodes.process.ProcessProvider)
    run_dir: str | PathLike[str] | None
    stop_timeout: float
    python: str
    start_attempts: int
    # docker (harness.nodes.docker.DockerProvider)
    emulator_image: str
    bind_host: str
    postgres_image: str | None
    docker_client_kw: Mapping[str, object] | None
    # existing (harness.nodes.existing.ExistingProvider)
    timeout: float
    retries: int
    token: str | None
    transport: httpx.BaseTransport | None


def get_provider(name: str, **kwargs: Unpack[ProviderOptions]) -> NodeProvider:
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
    folders: tuple[str, ...] = ()

    @property
    def removed(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.processes) + len(self.folders)

    def line(self) -> str:
        """What was removed, for the run output: ``run R: containers a, b; processes ...``."""
        parts = [f"{label} {', '.join(items)}" for label, items in (
            ("containers", self.containers), ("networks", self.networks), ("processes", self.processes),
            ("folders", self.folders)) if items]
        return f"run {self.run_id}: " + "; ".join(parts) if parts else f"run {self.run_id}: nothing left"


def sweep(
    run_id: str,
    *,
    run_dir: str | Path | None = None,
    docker: bool = True,
    docker_client_kw: Mapping[str, object] | None = None,
    work_dir: str | Path | None = None,
) -> SweepResult:
    """Remove the leftovers of run ``run_id``: its labelled containers and networks, its processes.

    ``run_dir`` is the process provider's node folder for that run (default: its default place).
    ``work_dir`` (the run's private folder) adds its balancer, the balancer's temp folder and its
    labelled processes. A Docker engine that does not answer is reported in ``docker_error``, not
    raised: the process part still runs. Never call it for a run whose lock another process holds.
    """
    if not RUN_ID.match(run_id or ""):
        raise NodeError(
            f"sweep: run id {run_id!r} is not a run id (letters, digits, '_', '.', '-'; at most 128)",
            hint="pass the run id the nodes were started with (NodeRequest.run_id)",
        )
    from harness.nodes.leftovers import sweep_labelled, sweep_record
    from harness.nodes.process import default_run_dir, sweep_pid_files

    folder = Path(run_dir) if run_dir is not None else default_run_dir(run_id)
    processes = list(sweep_pid_files(folder, run_id))
    folders: list[str] = []
    if work_dir is not None:
        balancer = Path(work_dir) / BALANCER_FILE
        if (stopped := sweep_record(balancer)) is not None:
            processes.append(stopped)
        folders += _remove_balancer_folder(balancer)
        processes += sweep_labelled(run_id, RUN_ENV)
    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    docker_error: str | None = None
    if docker:
        try:
            from harness.nodes.engine import sweep_docker

            containers, networks = sweep_docker(run_id, docker_client_kw=docker_client_kw)
        except Exception as exc:  # no engine, no SDK: say so, keep the process result
            docker_error = f"{type(exc).__name__}: {exc}"
    return SweepResult(run_id, containers, networks, tuple(processes), docker_error, tuple(folders))


BALANCER_FILE = "balancer.json"   # in a run's work folder: its balancer's pid record and temp folder
OWNER_FILE = "owner.json"         # in a balancer's temp folder: the same record and the run's work folder
RUN_FILE = "run.json"             # in a run's work folder: its providers (is there Docker to sweep?)
SWEPT_FILE = "swept.json"         # in a dead run's work folder: what the sweep removed (swept once)
BALANCER_PREFIX = "kuh-lb-"


def _remove_balancer_folder(record_path: Path) -> list[str]:
    """The balancer's temp folder a record names, if it is one of ours (``kuh-lb-*`` in the temp dir)."""
    try:
        folder = Path(json.loads(record_path.read_text()).get("folder", ""))
    except (OSError, ValueError, AttributeError):
        return []
    ours = folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith(BALANCER_PREFIX)
    if not ours or not folder.is_dir():
        return []
    shutil.rmtree(folder, ignore_errors=True)
    return [str(folder)]


def sweep_dead_runs(work_root: Path, *, skip: str | None = None, docker: bool = True) -> list[SweepResult]:
    """Sweep every run under ``work_root`` whose lock is free (not ``skip``), once each; then the
    balancer temp folders (``kuh-lb-*``) whose run's lock is free. Only what removed something is
    returned. A run's folder (its backup, for a resume) is kept."""
    from harness.nodes.leftovers import sweep_record

    results: list[SweepResult] = []
    folders = sorted(p for p in work_root.iterdir() if p.is_dir()) if work_root.is_dir() else []
    for folder in folders:
        if folder.name == skip or not RUN_ID.match(folder.name) or (folder / SWEPT_FILE).exists():
            continue
        if lock_held(folder):
            continue
        try:
            providers = json.loads((folder / RUN_FILE).read_text()).get("providers", ["docker"])
        except (OSError, ValueError, AttributeError):
            providers = ["docker"]   # a run from before run.json: look for its containers once
        result = sweep(folder.name, run_dir=folder / "nodes", work_dir=folder,
                       docker=docker and "docker" in providers)
        with contextlib.suppress(OSError):
            (folder / SWEPT_FILE).write_text(json.dumps({"removed": result.line()}))
        if result.removed:
            results.append(result)
    for lb in sorted(Path(tempfile.gettempdir()).glob(f"{BALANCER_PREFIX}*/{OWNER_FILE}")):
        try:
            owner = json.loads(lb.read_text())
            work_dir = Path(owner["work_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            continue   # no owner record yet (a run starting this instant) or not ours: left alone
        if lock_held(work_dir):
            continue
        stopped = sweep_record(lb)
        shutil.rmtree(lb.parent, ignore_errors=True)
        results.append(SweepResult(str(owner.get("run_id", "?")), processes=(stopped,) if stopped else (),
                                   folders=(str(lb.parent),)))
    return results
