"""The upgrade's moving parts for one run: the echo upstream, cluster X, cluster Y, the splitter.

The stages (suites/) ask this object for what they need; it starts things once, remembers them,
and ``close()`` stops everything it started, in reverse order, also after a failure or Ctrl-C.
Traffic is returned to X before the splitter stops. Cluster X is only ever read.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from harness import staging
from harness.admin import AdminClient, NodeInfo, ReadOnlyAdmin, StatusClient
from harness.certs import make_cluster_cert
from harness.config import ConfigDiff
from harness.corpus import Corpus, build_corpus
from harness.errors import HarnessError, NodeStartError, PlanError
from harness.nodes import Node, NodeProvider, NodeRequest, get_provider
from harness.nodes.base import ClusterCert
from harness.plan import Plan
from harness.ports import free_port
from harness.record import RunRecord
from harness.report import allure as allure_report
from harness.report.model import ParitySummary
from harness.wait import wait_until

if TYPE_CHECKING:
    from harness.shift import TrafficRun

ROOT = Path(__file__).resolve().parent.parent
# node folders, the restorable backup, certs: private, never in the run folder (KUH_WORK_ROOT moves it)
WORK_ROOT = Path(os.environ.get("KUH_WORK_ROOT") or ROOT / ".kuh")
EMULATOR_IMAGE = "kuh/kong-emulator:dev"

Log = Callable[[str], None]


def docker_available(image: str = EMULATOR_IMAGE) -> tuple[bool, str]:
    """Whether the docker provider can run here, and why (said in the run output)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
            client.images.get(image)
        finally:
            client.close()
    except Exception as exc:  # engine down, SDK missing, image not built
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return False, f"docker unavailable ({reason})"
    return True, f"Docker engine answers and image {image} is present"


def _get_status(url: str) -> int:
    with httpx.Client(timeout=1) as client:
        return client.get(url).status_code


def existing_spec(entry: Any) -> str:
    """The node spec of an existing node from the plan (admin URL, or a DP's Status API URL)."""
    base = entry.admin_url or entry.status_url
    params = [f"role={entry.role}"]
    if entry.proxy_url:
        params.append(f"proxy={entry.proxy_url}")
    if entry.status_url and entry.admin_url:
        params.append(f"status={entry.status_url}")
    return f"{base}?{'&'.join(params)}"


def run_id_for(run_dir: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", run_dir.name)[:100] or "run"


class _AuditTransport(httpx.HTTPTransport):
    """Records the method of every request that reaches the network (behind the read-only guard)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self._log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._log.append(request.method.upper())
        return super().handle_request(request)


@dataclass(frozen=True)
class XAudit:
    clients: int
    requests: int
    writable: list[str]
    write_attempts: list[str]


@dataclass(repr=False)
class UpgradeEnvironment:
    """Everything one upgrade run starts and talks to. Its repr is short: no config, no secret."""

    plan: Plan
    run_dir: Path
    log: Log = print
    x_provider_override: str | None = None
    y_provider_override: str | None = None
    admin_token: str | None = None
    upstream_port: int | None = None

    run_id: str = ""
    work_dir: Path = field(init=False)
    upstream_url: str | None = None
    x_nodes: list[Node] = field(default_factory=list)
    y_nodes: list[Node] = field(default_factory=list)
    y_cp: Node | None = None
    x_cp: Node | None = None
    splitter: Any = None
    provider_notes: dict[str, str] = field(default_factory=dict)
    record: RunRecord = field(default_factory=RunRecord)
    _x_clients: list[ReadOnlyAdmin] = field(default_factory=list)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _x_methods: list[str] = field(default_factory=list)
    _traffic: Any = None
    _traffic_error: str | None = None
    _splitter_dir: Path | None = None
    _providers: dict[str, NodeProvider] = field(default_factory=dict)
    _echo: subprocess.Popen[bytes] | None = None
    _echo_port: int | None = None
    _cert: ClusterCert | None = None
    _x_config_text: str | None = None
    _y_config: dict[str, Any] | None = None
    _y_config_text: str = ""

    def __post_init__(self) -> None:
        self.run_id = self.run_id or run_id_for(self.run_dir)
        self.work_dir = WORK_ROOT / self.run_id
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.y_provider = self._choose(self.y_provider_override or self.plan.y.provider, "y")
        self.x_provider = self._choose(self.x_provider_override or self.plan.x.provider, "x")
        rec = self.record
        rec.plan_name, rec.mode = self.plan.name, self.plan.mode
        rec.x_version, rec.y_version = self.plan.x.version or "", self.plan.y_version
        rec.splitter = self.plan.traffic.splitter
        if self.admin_token:
            self.learn_secrets([self.admin_token])

    def __repr__(self) -> str:
        return f"UpgradeEnvironment(plan={self.plan.name!r}, run_id={self.run_id!r})"

    def sweep_leftovers(self) -> None:
        """Remove what an earlier, crashed session of this run left: its containers, network and
        processes (each process checked through /proc to be the one the harness started)."""
        from harness.nodes import sweep

        result = sweep(self.run_id, run_dir=self.work_dir / "nodes", docker=self.uses_docker())
        if result.removed:
            self.log(f"removed leftovers of an earlier session of this run: {result.containers or ''} "
                     f"{result.networks or ''} {result.processes or ''}".strip())

    def uses_docker(self) -> bool:
        return "docker" in (self.x_provider, self.y_provider)

    def learn_secrets(self, values: Any) -> None:
        """Secret values met during the run: kept out of every report and attachment from now on."""
        values = [v for v in values if v]
        self.record.add_secrets(values)
        allure_report.add_secrets(values)

    # ---- providers ------------------------------------------------------------------------------
    def _choose(self, wanted: str, side: str) -> str:
        if wanted != "auto":
            self.provider_notes[side] = f"{wanted} (as the plan says)"
            return wanted
        ok, why = docker_available()
        chosen = "docker" if ok else "process"
        self.provider_notes[side] = f"{chosen} (auto: {why})"
        return chosen

    def provider(self, name: str) -> NodeProvider:
        if name not in self._providers:
            kwargs: dict[str, Any] = {}
            if name == "process":
                kwargs["run_dir"] = self.work_dir / "nodes"
            self._providers[name] = get_provider(name, **kwargs)
        return self._providers[name]

    @property
    def hybrid(self) -> bool:
        return self.plan.mode == "hybrid"

    def cluster_cert(self) -> ClusterCert:
        if self._cert is None:
            self._cert = make_cluster_cert(self.work_dir / "cluster-cert")
        return self._cert

    # ---- the echo upstream ------------------------------------------------------------------------
    def start_upstream(self) -> str | None:
        """Start the emulator's echo upstream when the plan asks for it; its URL fills ${UPSTREAM_URL}.

        A resumed session reuses the port of the first one (``upstream_port``), so X's rendered
        configuration, and with it X's configuration hash, stays the same.
        """
        if self.plan.config.upstream != "echo" or self.upstream_url:
            return self.upstream_url
        port = self.upstream_port or free_port()
        with (self.work_dir / "echo.log").open("wb") as log:  # the child keeps its own handle
            self._echo = subprocess.Popen(
                [sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _get_status(url + "/"),
            ok=lambda code: code == 200 or self._echo is None or self._echo.poll() is not None,
            what="the echo upstream to answer", where=url, timeout=15,
            logs=lambda: (self.work_dir / "echo.log").read_text(errors="replace"),
        )
        if self._echo.poll() is not None:
            raise NodeStartError(
                f"the echo upstream exited with code {self._echo.returncode}",
                hint=f"see {self.work_dir / 'echo.log'}",
            )
        self._echo_port = self.upstream_port = port
        self.upstream_url = url
        self.log(f"echo upstream: {url} (pid {self._echo.pid})")
        return url

    def config_template(self) -> str:
        if self.plan.config.source is None:
            raise PlanError("config.source is not set", hint="name a declarative config file in the plan")
        try:
            return Path(self.plan.config.source).read_text()
        except OSError as exc:
            raise PlanError(f"config.source {self.plan.config.source}: {exc}") from exc

    def rendered_config(self) -> str:
        """X's declarative configuration (the plan's template with the upstream URL filled in)."""
        if self._x_config_text is None:
            text = self.config_template()
            url = self.start_upstream()
            if "${UPSTREAM_URL}" in text:
                if url is None:
                    raise PlanError(
                        "config.source uses ${UPSTREAM_URL} but config.upstream is none",
                        hint="set config.upstream: echo, or write the upstream URLs into the config",
                    )
                text = text.replace("${UPSTREAM_URL}", url)
            self._x_config_text = text
        return self._x_config_text

    # ---- cluster X (read only) ------------------------------------------------------------------
    def start_x(self) -> list[Node]:
        if self.x_nodes:
            return self.x_nodes
        plan = self.plan
        if self.x_provider == "existing":
            prov = self.provider("existing")
            for i, entry in enumerate(plan.x.nodes, start=1):
                node = prov.start(NodeRequest(
                    name="cp-x" if entry.role == "cp" else f"x{i}", cluster="x", role=entry.role,  # type: ignore[arg-type]
                    version=plan.x.version or "0.0.0", run_id=self.run_id, spec=existing_spec(entry),
                ))
                if node.role == "cp":
                    self.x_cp = node
                else:
                    self.x_nodes.append(node)
            self.log(f"cluster X: {len(self.x_nodes)} existing node(s), never written to")
            return self.x_nodes
        prov = self.provider(self.x_provider)
        config = self.rendered_config()
        assert plan.x.version is not None
        if self.hybrid:
            self.x_cp = prov.start(self._request("cp-x", "x", "cp", plan.x.version, config=config,
                                                 faults=plan.x.faults))
            for i in range(1, plan.x.count + 1):
                self.x_nodes.append(prov.start(self._request(
                    f"dp-x{i}", "x", "dp", plan.x.version, cp=self.x_cp, faults=plan.x.faults)))
        else:
            for i in range(1, plan.x.count + 1):
                self.x_nodes.append(prov.start(self._request(
                    f"x{i}", "x", "dbless", plan.x.version, config=config, faults=plan.x.faults)))
        self.log(f"cluster X: {', '.join(map(str, self.all_x()))} via {self.x_provider}")
        return self.x_nodes

    def all_x(self) -> list[Node]:
        return ([self.x_cp] if self.x_cp else []) + self.x_nodes

    def x_admin(self, node: Node | None = None) -> ReadOnlyAdmin:
        """The read-only Admin API view of an X node (the CP in hybrid mode)."""
        node = node or self.x_cp or self.x_nodes[0]
        if node.admin_url is None:
            raise HarnessError(f"{node} has no Admin API (a data plane)", hint="read the CP instead")
        key = ("x-admin", node.admin_url)
        if key not in self._clients:
            client = ReadOnlyAdmin(node.admin_url, token=self.admin_token,
                                   transport=_AuditTransport(self._x_methods))
            self._x_clients.append(client)
            self._clients[key] = client
        return self._clients[key]

    def x_audit(self) -> XAudit:
        """What the harness sent to X: every request's method, and the kind of each client it used."""
        writable = [repr(c) for c in self._x_clients if not isinstance(c, ReadOnlyAdmin)]
        writes = [m for m in self._x_methods if m not in ("GET", "HEAD")]
        return XAudit(len(self._x_clients), len(self._x_methods), writable, writes)

    # ---- cluster Y --------------------------------------------------------------------------------
    def _request(self, name: str, cluster: str, role: str, version: str, *, config: str | None = None,
                 cp: Node | None = None, faults: Any = None, provider: str | None = None) -> NodeRequest:
        provider = provider or (self.y_provider if cluster == "y" else self.x_provider)
        side = self.plan.y if cluster == "y" else self.plan.x
        image = side.image if provider == "docker" else None
        return NodeRequest(
            name=name, cluster=cluster, role=role, version=version,  # type: ignore[arg-type]
            run_id=self.run_id, image=image, declarative_config=config, control_plane=cp,
            cluster_cert=self.cluster_cert() if role in ("cp", "dp") else None,
            faults=dict(faults or {}),
            echo_port=self._echo_port if provider == "docker" else None,
        )

    def y_config(self) -> dict[str, Any]:
        if self._y_config is None:
            raise HarnessError("no backup to load into Y yet", hint="the backup stage captures it first")
        return self._y_config

    def set_y_config(self, config: dict[str, Any], text: str) -> None:
        """The configuration Y is loaded with: X's backup (dict for a CP, text for DB-less POST /config)."""
        self._y_config = config
        self._y_config_text = text

    def y_admin(self, node: Node | None = None) -> AdminClient:
        node = node or self.y_cp or self.y_nodes[0]
        assert node.admin_url is not None
        if node.cluster == "x":
            raise HarnessError(f"refused a writable client on {node}: cluster X is read-only")
        key = ("y-admin", node.admin_url)
        if key not in self._clients:
            self._clients[key] = AdminClient(node.admin_url, token=self.admin_token)
        return self._clients[key]

    def status_client(self, node: Node) -> StatusClient:
        """The Status API of a node (a DP has only that); on a node without one, its Admin API."""
        url = node.status_url or node.admin_url
        if url is None:
            raise HarnessError(f"{node} has neither a Status API nor an Admin API URL")
        key = ("status", url)
        if key not in self._clients:
            self._clients[key] = StatusClient(url)
        return self._clients[key]

    def deploy_y(self, count: int) -> list[Node]:
        """Start Y nodes until there are ``count`` proxy nodes, each loaded and ready."""
        prov = self.provider(self.y_provider)
        plan = self.plan
        if self.hybrid and self.y_cp is None:
            self.y_cp = prov.start(self._request("cp-y", "y", "cp", plan.y_version, faults=plan.y.faults))
            self.log(f"Y control plane {self.y_cp} started; loading the backup through its Admin API")
            self.y_admin(self.y_cp).load_config_via_entities(self.y_config())
        while len(self.y_nodes) < count:
            i = len(self.y_nodes) + 1
            if self.hybrid:
                request = replace(self._request(f"dp-y{i}", "y", "dp", plan.y.dp_version or plan.y_version,
                                                cp=self.y_cp, faults=plan.y.faults), wait_for_config=False)
                node = prov.start(request)
                self.y_nodes.append(node)
                self._wait_joined(node)
                self.log(f"Y data plane {node} joined {self.y_cp} and is ready")
                continue
            else:
                node = prov.start(self._request(f"y{i}", "y", "dbless", plan.y_version, faults=plan.y.faults))
                self.y_nodes.append(node)  # owned from here on, stopped by close() even if loading fails
                self.y_admin(node).post_config(self._y_config_text)
                self.wait_ready(node)
                self.log(f"Y node {node} loaded with the backup and ready")
                continue
        return self.y_nodes

    def _wait_joined(self, dp: Node, timeout: float = 30) -> None:
        """Wait for a DP to get its config from the CP; stop at once when the CP refuses it."""
        assert self.y_cp is not None

        def look() -> tuple[str, str]:
            code, message = self.status_client(dp).ready()
            if code == 200:
                return "ready", ""
            for row in self.y_admin(self.y_cp).data_planes():
                if (row.sync_status or "").endswith("_incompatible") and row.version == dp.version:
                    return "refused", f"version {row.version} sync_status {row.sync_status}"
            return "waiting", f"/status/ready {code} {message!r}"

        state, detail = wait_until(
            look, ok=lambda r: r[0] != "waiting", what=f"{dp} to receive its configuration from {self.y_cp}",
            where=str(dp), timeout=timeout, logs=lambda: self.provider(dp.provider).logs(dp),
            hint="check /clustering/data-planes on the CP and the DP's log",
        )
        if state == "refused":
            raise NodeStartError(
                f"{self.y_cp} refused data plane {dp}: the control plane lists it as {detail}, and sends it no "
                f"configuration (all rows: {self._data_plane_rows()})",
                hint="run data planes at the control plane's major version and at its minor version or older "
                "(KONG-FACTS §3.3)",
            )

    def _data_plane_rows(self) -> str:
        if self.y_cp is None:
            return "(no control plane)"
        try:
            rows = self.y_admin(self.y_cp).data_planes()
        except HarnessError as exc:
            return f"(cannot read /clustering/data-planes: {exc.message})"
        return "; ".join(f"{r.hostname} version {r.version} sync_status {r.sync_status}" for r in rows) or "none"

    def wait_ready(self, node: Node, timeout: float = 30) -> None:
        status = self.status_client(node)
        wait_until(
            status.ready, ok=lambda r: r[0] == 200, what="/status/ready to answer 200", where=str(node),
            timeout=timeout, logs=lambda: self.provider(node.provider).logs(node),
            hint="a DB-less node needs a valid config; a DP needs its CP (check /clustering/data-planes)",
        )

    # ---- a scratch node (backup restore proof) ---------------------------------------------------
    @contextmanager
    def scratch_node(self, version: str) -> Iterator[Node]:
        prov = self.provider("process")
        node = prov.start(NodeRequest(name="scratch", cluster="y", role="dbless", version=version,
                                      run_id=self.run_id))
        try:
            yield node
        finally:
            prov.stop(node)

    # ---- traffic ----------------------------------------------------------------------------------
    def start_splitter(self) -> Any:
        if self.splitter is not None:
            return self.splitter
        from harness.traffic import Backend, get_splitter

        backends = []
        for node in self.x_nodes + self.y_nodes:
            url = httpx.URL(node.proxy_url or "")
            backends.append(Backend(node.name, node.cluster, url.host, url.port or 80))
        kind = self.plan.traffic.splitter
        # a short folder: HAProxy's admin socket path must stay under the ~100 characters unix allows
        self._splitter_dir = Path(tempfile.mkdtemp(prefix="kuh-lb-"))
        kwargs: dict[str, Any] = {"backends": backends, "run_dir": self._splitter_dir}
        if kind == "command":
            kwargs["command"] = self.plan.traffic.command
        splitter = get_splitter(kind, **kwargs)
        splitter.start()
        self.splitter = splitter
        splitter.set_weights(100, 0)
        self.log(f"splitter {kind} listening on {splitter.listen_url}: 100 % X, 0 % Y")
        return splitter

    # ---- reading nodes ----------------------------------------------------------------------------
    def _read_nodes(self, nodes: list[Node], cp: Node | None, admin: Callable[[Node], Any]
                    ) -> list[tuple[Node, NodeInfo]]:
        """``GET /`` of every node with an Admin API; a DP (none) answers its Status API, and its
        version is read from its CP's /clustering/data-planes."""
        out: list[tuple[Node, NodeInfo]] = []
        rows: tuple[Any, ...] | None = None
        for node in ([cp] if cp else []) + nodes:
            self.record.add_node(node)
            if node.admin_url:
                out.append((node, admin(node).root()))
                continue
            self.status_client(node).status()  # answers, or raises naming the node
            if rows is None:
                rows = admin(cp).data_planes() if cp is not None else ()
            versions = sorted({r.version for r in rows if r.version})
            version = node.version or (versions[0] if versions else "")
            out.append((node, NodeInfo(version, None, None, None, "data_plane", "off", (), ())))
        return out

    def read_x_nodes(self) -> list[tuple[Node, NodeInfo]]:
        return self._read_nodes(self.x_nodes, self.x_cp, self.x_admin)

    def read_y_nodes(self) -> list[tuple[Node, NodeInfo]]:
        return self._read_nodes(self.y_nodes, self.y_cp, self.y_admin)

    def all_y(self) -> list[Node]:
        return ([self.y_cp] if self.y_cp else []) + self.y_nodes

    def y_not_ready(self) -> list[str]:
        out = []
        for node in self.all_y():
            try:
                code, message = self.status_client(node).ready()
            except HarnessError as exc:
                out.append(f"{node}: {exc.message}")
                continue
            if code != 200:
                out.append(f"{node}: /status/ready {code} {message!r}")
        return out

    # ---- the backup -----------------------------------------------------------------------------
    def capture_backup(self) -> staging.Backup:
        backup = staging.capture_backup(self)
        self.set_y_config(backup.config, backup.text)
        return backup

    def load_backup(self) -> staging.Backup:
        backup = staging.load_backup(self)
        self.set_y_config(backup.config, backup.text)
        return backup

    def backup(self) -> staging.Backup:
        """The backup Y is loaded with; read from the private work folder when a session resumes."""
        if self._y_config is None:
            return self.load_backup()
        return staging.Backup(self._y_config, self._y_config_text, path=self.work_dir / "backup.yaml")

    def restore_into_scratch(self, backup: staging.Backup) -> dict[str, Any]:
        return staging.restore_into_scratch(self, backup)

    # ---- staging and scale checks ---------------------------------------------------------------
    def corpus(self) -> Corpus:
        corpus = build_corpus(self.backup().config)
        self.learn_secrets(corpus.secrets)
        return corpus

    def parity(self) -> ConfigDiff:
        result = staging.parity(self, self.backup().config)
        self.record.parity = ParitySummary(
            len(result.added), len(result.removed), len(result.changed), len(result.allowed),
            tuple(result.render_text(limit=12).splitlines()[:12]),
        )
        return result

    def differential(self) -> staging.DifferentialReport:
        return staging.differential(self, self.corpus(), self.x_nodes[0], self.y_nodes[0])

    def key_auth_case(self, case: str) -> staging.CaseOutcome:
        return staging.key_auth_case(self, self.corpus(), self.y_nodes[0], case)

    def data_plane_report(self) -> staging.DataPlaneReport:
        assert self.y_cp is not None, "no Y control plane: deploy first"
        return staging.data_plane_report(self, self.y_nodes, self.y_cp)

    def smoke_y_nodes(self) -> list[str]:
        return staging.smoke(self, self.corpus(), self.y_nodes[0], self.y_nodes[1:])

    # ---- shift and decommission -----------------------------------------------------------------
    def traffic(self) -> TrafficRun:
        """The splitter and the background probe; on a resumed session, X and every Y node first."""
        from harness.shift import TrafficRun

        if self._traffic_error is not None:  # one failed start is reported once, not retried per step
            raise HarnessError(f"traffic could not start earlier in this run: {self._traffic_error}")
        if self._traffic is None:
            try:
                self.backup()
                self.start_x()
                self.deploy_y(self.plan.y.count)
                self.start_splitter()
                self._traffic = TrafficRun.start(self, self.corpus())
            except HarnessError as exc:
                self._traffic_error = str(exc).splitlines()[0]
                raise
        return self._traffic

    def retire_x(self) -> staging.Retired:
        return staging.retire_x(self)

    # ---- teardown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Traffic back to X, then stop the splitter, Y, harness-owned X, the upstream. Never raises."""
        errors: list[str] = []
        if self._traffic is not None:
            try:
                self._traffic.close()
            except Exception as exc:
                errors.append(f"stopping the probe: {exc}")
        if self.splitter is not None:
            try:
                if self.splitter.weights() != (100, 0):
                    self.splitter.set_weights(100, 0)
                    self.log("teardown: all traffic returned to X")
            except Exception as exc:
                errors.append(f"returning traffic to X: {exc}")
            with suppress(Exception):
                self.splitter.stop()
        if self._splitter_dir is not None:
            shutil.rmtree(self._splitter_dir, ignore_errors=True)
        for client in self._clients.values():
            with suppress(Exception):
                client.close()
        self._clients.clear()
        for prov in reversed(list(self._providers.values())):
            try:
                prov.close()
            except Exception as exc:
                errors.append(f"stopping {prov.name} nodes: {exc}")
        if self._echo is not None and self._echo.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self._echo.pid, signal.SIGTERM)
            try:
                self._echo.wait(5)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self._echo.pid, signal.SIGKILL)
                self._echo.wait(5)
        for line in errors:
            self.log(f"teardown problem: {line}")
