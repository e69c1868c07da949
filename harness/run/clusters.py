"""Cluster X and cluster Y: their providers, starting X, deploying Y, readiness, reading nodes.

X is read only: existing X nodes are adopted by URL and never stopped; X nodes the harness starts
are stopped at ``close()``. Y nodes are loaded with X's backup (DB-less: ``POST /config``; hybrid:
the CP through its Admin API, then its DPs join). Every node is added to the run record as it
starts, so the reports list the nodes the scale stage adds too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from harness.admin import NodeInfo
from harness.certs import make_cluster_cert
from harness.errors import HarnessError, IncompatibleNodes
from harness.model import ClusterCert, Node, Role
from harness.nodes import NodeProvider, NodeRequest, get_provider
from harness.plan import Plan
from harness.plan_clusters import ClusterPlan, ExistingNode
from harness.record import RunRecord
from harness.registry import AUTO, EMULATOR_IMAGE
from harness.run.clients import Clients
from harness.run.upstream import Upstream
from harness.wait import wait_until

Log = Callable[[str], None]


def docker_available(image: str = EMULATOR_IMAGE) -> tuple[bool, str]:
    """Whether the docker provider can run here, and why (said in the run output)."""
    try:
        from harness.nodes.engine import engine_client

        client = engine_client({"timeout": 5})
        try:
            client.ping()
            client.images.get(image)
        finally:
            client.close()
    except Exception as exc:  # engine down, SDK missing, image not built
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return False, f"docker unavailable ({reason})"
    return True, f"Docker engine answers and image {image} is present"


def resolve_provider(wanted: str, image: str | None = None) -> tuple[str, str]:
    """A registry name for a plan's provider (``auto`` asks Docker for the side's image), and why."""
    if wanted != AUTO:
        return wanted, f"{wanted} (as the plan says)"
    ok, why = docker_available(image or EMULATOR_IMAGE)
    chosen = "docker" if ok else "process"
    return chosen, f"{chosen} (auto: {why})"


def existing_spec(entry: ExistingNode) -> str:
    """The node spec of an existing node from the plan (admin URL, or a DP's Status API URL)."""
    base = entry.admin_url or entry.status_url
    params = [f"role={entry.role}"]
    if entry.proxy_url:
        params.append(f"proxy={entry.proxy_url}")
    if entry.status_url and entry.admin_url:
        params.append(f"status={entry.status_url}")
    return f"{base}?{'&'.join(params)}"


ADMIN_BODY_DEFAULT = 10 * 2**20        # nginx_admin_client_max_body_size = 10m (Kong 2.3+)
CLUSTER_PAYLOAD_DEFAULT = 4 * 2**20     # cluster_max_payload before 3.4.0 (16 MiB from 3.4.0, Kong/kong#11090)


def nginx_size(text: str) -> int:
    """nginx's size syntax (``10m``, ``512k``, bytes) in bytes; 0 means no limit."""
    text = text.strip().lower()
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    try:
        return int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text or 0)
    except ValueError:
        return ADMIN_BODY_DEFAULT


def sizing_env(config_bytes: int, role: Role) -> dict[str, str]:
    """The ``KONG_*`` limits a Y node the harness starts needs for a config of ``config_bytes`` (JSON),
    with room to spare; nothing when Kong's defaults hold it."""
    env: dict[str, str] = {}
    if role in ("dbless", "cp") and config_bytes > ADMIN_BODY_DEFAULT * 0.8:
        env["KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE"] = f"{-(-config_bytes * 3 // 2) // 2**20 + 1}m"
    if role in ("cp", "dp") and config_bytes > CLUSTER_PAYLOAD_DEFAULT * 0.8:
        env["KONG_CLUSTER_MAX_PAYLOAD"] = str(max(CLUSTER_PAYLOAD_DEFAULT, config_bytes * 3 // 2))
    return env


class Clusters:
    """The nodes of X and Y and the providers that run them. No I/O until a method is called."""

    def __init__(self, plan: Plan, *, run_id: str, work_dir: Path, clients: Clients, upstream: Upstream,
                 record: RunRecord, log: Log, x_provider: str, y_provider: str) -> None:
        self.plan = plan
        self.run_id = run_id
        self.work_dir = work_dir
        self.clients = clients
        self.upstream = upstream
        self.record = record
        self.log = log
        self.x_provider = x_provider
        self.y_provider = y_provider
        self.x_nodes: list[Node] = []
        self.y_nodes: list[Node] = []
        self.x_cp: Node | None = None
        self.y_cp: Node | None = None
        self._providers: dict[str, NodeProvider] = {}
        self._cert: ClusterCert | None = None
        self.y_writes: list[str] = []   # every write to a Y node the harness did not start

    def __repr__(self) -> str:
        return f"Clusters(x={[n.name for n in self.all_x()]}, y={[n.name for n in self.all_y()]})"

    @property
    def hybrid(self) -> bool:
        return self.plan.mode == "hybrid"

    def provider(self, name: str) -> NodeProvider:
        if name not in self._providers:
            if name == "process":
                self._providers[name] = get_provider(name, run_dir=self.work_dir / "nodes")
            else:
                self._providers[name] = get_provider(name)
        return self._providers[name]

    def logs(self, node: Node) -> str:
        return self.provider(node.provider).logs(node)

    def cluster_cert(self) -> ClusterCert:
        if self._cert is None:
            self._cert = make_cluster_cert(self.work_dir / "cluster-cert")
        return self._cert

    def all_x(self) -> list[Node]:
        return ([self.x_cp] if self.x_cp else []) + self.x_nodes

    def all_y(self) -> list[Node]:
        return ([self.y_cp] if self.y_cp else []) + self.y_nodes

    def x_reader(self) -> Node:
        """The X node whose Admin API holds X's configuration (the CP in hybrid mode)."""
        node = self.x_cp or (self.x_nodes[0] if self.x_nodes else None)
        if node is None:
            raise HarnessError("cluster X has not been started in this session",
                               hint="preflight starts (or adopts) X; resume with --from-stage preflight")
        return node

    def first_y(self) -> Node:
        if not self.y_nodes:
            raise HarnessError("no Y node is deployed in this session", hint="the deploy stage starts Y first")
        return self.y_nodes[0]

    def _added(self, node: Node) -> Node:
        self.record.add_node(node)
        return node

    def _request(self, name: str, cluster: str, role: Role, version: str, side: ClusterPlan, provider: str, *,
                 config: str | None = None, cp: Node | None = None, env: dict[str, str] | None = None
                 ) -> NodeRequest:
        return NodeRequest(
            name=name, cluster="y" if cluster == "y" else "x", role=role, version=version, run_id=self.run_id,
            image=side.image if provider == "docker" else None, declarative_config=config, control_plane=cp,
            cluster_cert=self.cluster_cert() if role in ("cp", "dp") else None, faults=dict(side.faults),
            echo_port=self.upstream.echo_port if provider == "docker" else None, env=dict(env or {}),
        )

    # ---- cluster X (read only) ------------------------------------------------------------------
    def start_x(self) -> list[Node]:
        """Start X's nodes (or adopt the existing ones by URL). Called once, by preflight or a resume."""
        if self.x_nodes:
            raise HarnessError("cluster X is already started in this session")
        plan = self.plan
        if self.x_provider == "existing":
            prov = self.provider("existing")
            for i, entry in enumerate(plan.x.nodes, start=1):
                role: Role = "cp" if entry.role == "cp" else "dp" if entry.role == "dp" else "dbless"
                node = self._added(prov.start(NodeRequest(
                    name="cp-x" if role == "cp" else f"x{i}", cluster="x", role=role,
                    version=plan.x.version or "0.0.0", run_id=self.run_id, spec=existing_spec(entry))))
                if node.role == "cp":
                    self.x_cp = node
                else:
                    self.x_nodes.append(node)
            self.log(f"cluster X: {len(self.x_nodes)} existing node(s), never written to")
            return self.x_nodes
        prov = self.provider(self.x_provider)
        config = self.upstream.rendered_config()
        version = plan.x.version
        if version is None:
            raise HarnessError("x.version is needed to start X nodes", hint="set x.version in the plan")
        if self.hybrid:
            self.x_cp = self._added(prov.start(self._request("cp-x", "x", "cp", version, plan.x, self.x_provider,
                                                             config=config)))
            requests = [self._request(f"dp-x{i}", "x", "dp", version, plan.x, self.x_provider, cp=self.x_cp)
                        for i in range(1, plan.x.count + 1)]
        else:
            requests = [self._request(f"x{i}", "x", "dbless", version, plan.x, self.x_provider, config=config)
                        for i in range(1, plan.x.count + 1)]
        self.x_nodes += self._start_x_nodes(prov, requests)
        self.log(f"cluster X: {', '.join(map(str, self.all_x()))} via {self.x_provider}")
        return self.x_nodes

    def _start_x_nodes(self, prov: NodeProvider, requests: list[NodeRequest]) -> list[Node]:
        """Start X's proxy nodes, at once for processes (each loads a large config on its own), one after
        another for containers (their provider makes the run's network on the first start). The first failure
        is raised after every start has ended; the nodes that did start stay owned (close stops them)."""
        workers = len(requests) if prov.name == "process" else 1
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="kuh-start") as pool:
            futures = [pool.submit(prov.start, request) for request in requests]
        started: list[Node] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                started.append(self._added(future.result()))
            except BaseException as exc:   # keep the others: they are stopped with the provider
                failure = failure or exc
        if failure is not None:
            self.x_nodes += started
            raise failure
        return started

    # ---- cluster Y ---------------------------------------------------------------------------------
    def deploy_y(self, count: int, config: dict[str, object]) -> list[Node]:
        """Start Y nodes until there are ``count`` proxy nodes, each loaded with X's backup and ready.

        DB-less nodes get the backup as a JSON ``POST /config`` (Kong parses JSON far faster than YAML
        text); nodes are started with the body and payload limits the backup's size needs. Existing Y
        nodes are adopted instead (``adopt_y``)."""
        if self.y_provider == "existing":
            return self.adopt_y(count, config)
        prov = self.provider(self.y_provider)
        plan = self.plan
        size = len(json.dumps(config, separators=(",", ":")))
        if self.hybrid and self.y_cp is None:
            self.y_cp = self._added(prov.start(self._request("cp-y", "y", "cp", plan.y_version, plan.y,
                                                             self.y_provider, env=sizing_env(size, "cp"))))
            self.log(f"Y control plane {self.y_cp} started; loading the backup through its Admin API")
            self.clients.y_admin(self.y_cp).load_config_via_entities(config)
        while len(self.y_nodes) < count:
            i = len(self.y_nodes) + 1
            if self.hybrid:
                request = replace(self._request(f"dp-y{i}", "y", "dp", plan.y.dp_version or plan.y_version,
                                                plan.y, self.y_provider, cp=self.y_cp, env=sizing_env(size, "dp")),
                                  wait_for_config=False)
                node = self._added(prov.start(request))
                self.y_nodes.append(node)
                self._wait_joined(node)
                self.log(f"Y data plane {node} joined {self.y_cp} and is ready")
            else:
                node = self._added(prov.start(self._request(f"y{i}", "y", "dbless", plan.y_version, plan.y,
                                                            self.y_provider, env=sizing_env(size, "dbless"))))
                self.y_nodes.append(node)  # owned from here on, stopped by close() even if loading fails
                self.clients.y_admin(node).post_config(config)
                self.wait_ready(node)
                self.log(f"Y node {node} loaded with the backup and ready")
        return self.y_nodes

    def adopt_y(self, count: int, config: dict[str, object]) -> list[Node]:
        """Adopt existing Y nodes (the plan's ``y.nodes``) until ``count`` proxy nodes take part; none is ever
        stopped. With ``y.load: backup`` X's backup is written into Y through Y's Admin API (the only writes
        the harness makes to nodes it did not start, each listed in ``y_writes``); with ``keep`` Y's own
        config stays and staging compares it with X's."""
        plan = self.plan
        prov = self.provider("existing")
        write = plan.y.load == "backup"
        body = json.dumps(config, separators=(",", ":"))

        def adopt(name: str, entry: ExistingNode) -> Node:
            role: Role = "cp" if entry.role == "cp" else "dp" if entry.role == "dp" else "dbless"
            return self._added(prov.start(NodeRequest(name=name, cluster="y", role=role, version=plan.y_version,
                                                      run_id=self.run_id, spec=existing_spec(entry))))

        if self.hybrid and self.y_cp is None:
            self.y_cp = adopt("cp-y", next(e for e in plan.y.nodes if e.role == "cp"))
            if write:
                self._check_body_limit(self.y_cp, len(body))
                created = self.clients.y_admin(self.y_cp).load_config_via_entities(config)
                base = self.y_cp.admin_url
                self.y_writes += [f"POST {base}/{kind} x {n}" for kind, n in created.items() if n]
            self.log(f"Y control plane {self.y_cp} adopted" + (", loaded with the backup" if write else ""))
        proxies = [e for e in plan.y.nodes if e.role != "cp"]
        while len(self.y_nodes) < count:
            if len(self.y_nodes) >= len(proxies):
                raise HarnessError(f"y.nodes lists {len(proxies)} proxy node(s); {count} are needed",
                                   hint="list every existing Y node in the plan's y.nodes")
            entry = proxies[len(self.y_nodes)]
            i = len(self.y_nodes) + 1
            node = adopt(f"dp-y{i}" if self.hybrid else f"y{i}", entry)
            self.y_nodes.append(node)
            if write and not self.hybrid:
                self._check_body_limit(node, len(body))
                self.clients.y_admin(node).post_config(config)
                self.y_writes.append(f"POST {node.admin_url}/config ({len(body):,} bytes of JSON)")
            self.wait_ready(node)
            self.log(f"Y node {node} adopted" + (", loaded with the backup" if write and not self.hybrid else "")
                     + " and ready")
        return self.y_nodes

    def _check_body_limit(self, node: Node, size: int) -> None:
        """Refuse, before anything is sent, a backup larger than the node's Admin API body limit."""
        conf = self.clients.y_admin(node).root().raw.get("configuration") or {}
        text = str(conf.get("nginx_admin_client_max_body_size") or "10m") if isinstance(conf, dict) else "10m"
        limit = nginx_size(text)
        if limit and size > limit:
            need = f"{-(-size * 3 // 2) // 2**20 + 1}m"
            raise HarnessError(
                f"{node} accepts Admin API bodies up to {text} (nginx_admin_client_max_body_size); X's backup is "
                f"{size / 2**20:.1f} MiB, so nothing was sent",
                hint=f"raise KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE on Y to {need} or more and restart it, or use "
                "y.load: keep with Y loaded by your own tooling",
            )

    def _wait_joined(self, dp: Node, timeout: float = 30) -> None:
        """Wait for a DP to get its config from the CP; stop at once when the CP refuses it."""
        cp = self.y_cp
        if cp is None:
            raise HarnessError(f"{dp} has no control plane to join")

        def look() -> tuple[str, str]:
            code, message = self.clients.status(dp).ready()
            if code == 200:
                return "ready", ""
            for row in self.clients.y_admin(cp).data_planes():
                if (row.sync_status or "").endswith("_incompatible") and row.version == dp.version:
                    return "refused", f"version {row.version} sync_status {row.sync_status}"
            return "waiting", f"/status/ready {code} {message!r}"

        state, detail = wait_until(
            look, ok=lambda r: r[0] != "waiting", what=f"{dp} to receive its configuration from {cp}",
            where=str(dp), timeout=timeout, logs=lambda: self.logs(dp),
            hint="check /clustering/data-planes on the CP and the DP's log",
        )
        if state == "refused":
            raise IncompatibleNodes(
                f"{cp} refused data plane {dp}: the control plane lists it as {detail}, and sends it no "
                f"configuration (all rows: {self._data_plane_rows(cp)})",
                hint="run data planes at the control plane's major version and at its minor version or older "
                "(KONG-FACTS §3.3)",
            )

    def _data_plane_rows(self, cp: Node) -> str:
        try:
            rows = self.clients.y_admin(cp).data_planes()
        except HarnessError as exc:
            return f"(cannot read /clustering/data-planes: {exc.message})"
        return "; ".join(f"{r.hostname} version {r.version} sync_status {r.sync_status}" for r in rows) or "none"

    def ready(self, node: Node) -> tuple[int, str]:
        """``/status/ready`` on the node's Status API. An existing node listed without a Status API URL
        is asked ``GET /status`` on its Admin API instead (Kong serves /status/ready on the Status API
        only): a CP is ready when it answers, a DB-less node when it carries a configuration."""
        if node.status_url is not None or node.owned:
            return self.clients.status(node).ready()
        status = self.clients.status(node).status()
        if node.role == "dbless" and status.get("configuration_hash") in (None, "0" * 32):
            return 503, "no configuration (GET /status on the Admin API; list status_url for /status/ready)"
        return 200, "answers GET /status on its Admin API (no status_url listed)"

    def wait_ready(self, node: Node, timeout: float = 30) -> None:
        wait_until(
            lambda: self.ready(node), ok=lambda r: r[0] == 200, what="/status/ready to answer 200",
            where=str(node), timeout=timeout, logs=lambda: self.logs(node),
            hint="a DB-less node needs a valid config; a DP needs its CP (check /clustering/data-planes)",
        )

    def y_not_ready(self) -> list[str]:
        out = []
        for node in self.all_y():
            try:
                code, message = self.ready(node)
            except HarnessError as exc:
                out.append(f"{node}: {exc.message}")
                continue
            if code != 200:
                out.append(f"{node}: /status/ready {code} {message!r}")
        return out

    # ---- reading nodes ------------------------------------------------------------------------------
    def read_nodes(self, cluster: str) -> list[tuple[Node, NodeInfo]]:
        """``GET /`` of every node of a cluster with an Admin API; a DP (none) answers its Status API,
        and its version is read from its CP's /clustering/data-planes."""
        nodes, cp = (self.x_nodes, self.x_cp) if cluster == "x" else (self.y_nodes, self.y_cp)
        out: list[tuple[Node, NodeInfo]] = []
        versions: list[str] | None = None
        for node in ([cp] if cp else []) + nodes:
            if node.admin_url:
                out.append((node, self.clients.admin(node).root()))
                continue
            self.clients.status(node).status()  # answers, or raises naming the node
            if versions is None:
                rows = self.clients.admin(cp).data_planes() if cp is not None else ()
                versions = sorted({r.version for r in rows if r.version})
            version = node.version or (versions[0] if versions else "")
            out.append((node, NodeInfo(version, None, None, None, "data_plane", "off", (), ())))
        return out

    @contextmanager
    def scratch_node(self, version: str, *, env: dict[str, str] | None = None) -> Iterator[Node]:
        """A throw-away DB-less node of ``version`` (the backup's restore proof), stopped on exit."""
        prov = self.provider("process")
        node = prov.start(NodeRequest(name="scratch", cluster="y", role="dbless", version=version,
                                      run_id=self.run_id, env=dict(env or {})))
        try:
            yield node
        finally:
            prov.stop(node)

    def stop(self, node: Node) -> None:
        self.provider(node.provider).stop(node)

    def describe(self, name: str) -> str | None:
        """The provider's state of node ``name`` when it is not running (a crashed container's exit code and
        last log lines); None for a running node or an unknown name."""
        node = next((n for n in self.all_x() + self.all_y() if n.name == name), None)
        if node is None:
            return None
        try:
            state = self.provider(node.provider).state(node)
        except Exception as exc:  # a provider that cannot tell must not hide the gate's own verdict
            return f"{name}: its state could not be read ({type(exc).__name__}: {exc})"
        return None if state.running else str(state)

    def close(self) -> list[str]:
        """Stop every node the run started (never an existing one); the problems met, if any."""
        errors = []
        for prov in reversed(list(self._providers.values())):
            try:
                prov.close()
            except Exception as exc:
                errors.append(f"stopping {prov.name} nodes: {exc}")
        return errors
