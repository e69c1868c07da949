"""Nodes as Docker containers, built with testcontainers.

Two ways to run a container, chosen by image:

- **The project's emulator image** (any tag of ``kuh/kong-emulator``): one Docker network per run
  (``kuh-<run id>``, labelled ``kuh.run=<run id>``, removed by ``close()``); each container joins it with
  its node name as alias, so a DP dials its CP as ``cp-y:8005``. Ports are published on 127.0.0.1 only
  (``bind_host``), container ports fixed: proxy 8000, admin 8001, status 8100, cluster 8005. It gets
  ``KONG_EMULATOR_VERSION`` and, with ``echo_port``, runs the echo upstream inside itself on
  ``127.0.0.1:<echo_port>``, so the upstream URL is the same as for process nodes.
- **Any other image** (a Kong image, ``kong:3.x``, ``kong/kong-gateway:3.x``, or the look-alike
  ``kuh/kong-lookalike:<version>``): host networking, every ``KONG_*_LISTEN`` on a free 127.0.0.1
  port (proxy, admin, status, cluster; the Admin GUI and Enterprise portal listeners off), only
  Kong's own settings. The echo upstream (or the config's own upstreams) on the host's 127.0.0.1 is
  then reached at the same URL by process nodes and container nodes, nothing is published, the
  host never talks to a bridge address, and a DP dials its CP at ``127.0.0.1:<port>`` (a process CP
  too). A CP gets its own PostgreSQL (``harness.nodes.postgres``, same rule) unless
  ``NodeRequest.env`` names one (``KONG_PG_HOST``), and ``kong migrations bootstrap`` runs in a
  one-shot container of the same image before the CP starts.

Readiness by HTTP (``harness.nodes.spec.ready_check``) through a ``HttpWaitStrategy`` that also stops
waiting as soon as the container exits. A node that does not become ready raises
:class:`NodeStartError` with the container's last log lines, and the container is removed.
``state(node)`` says whether a started node's container still runs, or its exit code and last lines.

The declarative config and the cluster certificate are copied into the container (``/tmp/kuh-*``).
Containers are labelled ``kuh.run=<run id>`` and ``kuh.node=<name>``; ``engine.sweep_docker`` removes what
a crashed run left (databases and migration containers included). A remote engine (``DOCKER_HOST``,
``bind_host``, ``TC_HOST``) works for the emulator image; host networking needs the harness on the
engine's machine.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, cast


def _testcontainers_defaults() -> None:
    """The settings testcontainers needs on these machines; users will not know them (TOOLING.md)."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    docker_host = os.environ.get("DOCKER_HOST", "")
    if not docker_host or docker_host.startswith(("unix://", "npipe://")):
        os.environ.setdefault("TC_HOST", "127.0.0.1")  # else it talks to a private bridge address


_testcontainers_defaults()

import docker  # noqa: E402
import docker.errors  # noqa: E402
from testcontainers.core.config import ConnectionMode  # noqa: E402
from testcontainers.core.config import testcontainers_config as _tc_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402

from harness.errors import NodeError, NodeStartError  # noqa: E402
from harness.model import Node, NodeState  # noqa: E402
from harness.nodes.base import NodeRequest  # noqa: E402
from harness.nodes.container_state import KongReadyWait  # noqa: E402
from harness.nodes.engine import NODE_LABEL, RUN_LABEL, engine_client  # noqa: E402
from harness.nodes.postgres import Database, database_for_cp, stop_database  # noqa: E402
from harness.nodes.process import ADDRESS_IN_USE, check_request, fault_settings, hybrid_settings  # noqa: E402
from harness.nodes.spec import NodeSpec, parse_spec, ready_check  # noqa: E402
from harness.ports import LOOPBACK, free_ports  # noqa: E402
from harness.registry import EMULATOR_IMAGE, POSTGRES_IMAGE  # noqa: E402

# testcontainers reads its settings when first imported: if someone imported it before us, apply ours
if _tc_config.connection_mode_override is None:
    _tc_config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
if _tc_config.tc_host_override is None and os.environ.get("TC_HOST"):
    _tc_config.tc_host_override = os.environ["TC_HOST"]

PORTS = {"proxy": 8000, "admin": 8001, "status": 8100, "cluster": 8005}
CONFIG_PATH = "/tmp/kuh-kong.yaml"
CERT_PATH = "/tmp/kuh-cluster.crt"
KEY_PATH = "/tmp/kuh-cluster.key"
HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
# listeners a Kong image opens by default beyond the four the harness sets (kong_defaults.lua @ 3.4.2:
# admin_gui_listen = 0.0.0.0:8002, 0.0.0.0:8445 ssl); the portal ones are Kong Gateway Enterprise's
LISTENERS_OFF = ("KONG_ADMIN_GUI_LISTEN", "KONG_PORTAL_GUI_LISTEN", "KONG_PORTAL_API_LISTEN")
START_ATTEMPTS = 3  # host networking: a free port may be taken before the container binds it


@dataclass
class _Running:
    node: Node
    container: DockerContainer
    database: Database | None = None  # a CP's own PostgreSQL, stopped with it


def _repository(image: str) -> str:
    """``registry:5000/kuh/kong-emulator:dev`` -> ``registry:5000/kuh/kong-emulator``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


class DockerProvider:
    """Starts nodes as containers; ``close()`` removes them, their databases and the run networks.

    ``emulator_image``: the image for requests without a spec or image; every tag of its repository is
    run as the emulator (run network, ``KONG_EMULATOR_*``), any other image as Kong (host networking,
    Kong's settings only). ``bind_host``: where the emulator image's ports are published (127.0.0.1).
    ``ready_timeout``: seconds. ``postgres_image``: a CP's database. ``docker_client_kw``: to the SDK.
    """

    name = "docker"

    def __init__(
        self,
        *,
        emulator_image: str = EMULATOR_IMAGE,
        bind_host: str = LOOPBACK,
        ready_timeout: float = 30.0,
        postgres_image: str | None = None,
        docker_client_kw: Mapping[str, object] | None = None,
    ) -> None:
        self.emulator_image = emulator_image
        self.bind_host = bind_host
        self.ready_timeout = ready_timeout
        self.postgres_image = postgres_image or os.environ.get("KUH_POSTGRES_IMAGE") or POSTGRES_IMAGE
        self._client_kw = dict(docker_client_kw or {})
        self._running: dict[str, _Running] = {}
        self._networks: dict[str, Network] = {}
        self._last_logs: dict[str, str] = {}
        self._client: docker.DockerClient | None = None
        atexit.register(self.close)  # a script that forgets close(); Ctrl-C in pytest runs teardown anyway

    # ---- NodeProvider ----------------------------------------------------------------------------

    def start(self, request: NodeRequest) -> Node:
        spec = self._spec(request)
        check_request(request, running=self._running)
        assert spec.image is not None
        host_network = not self.is_emulator_image(spec.image)
        self._check_control_plane(request, host_network)
        self._require_image(spec.image)
        if not host_network:
            return self._start_once(request, spec, None)
        database = self._database(request, spec) if request.role == "cp" else None
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    return self._start_once(request, spec, database)
                except NodeStartError as exc:
                    if attempt == START_ATTEMPTS or not any(m in str(exc).lower() for m in ADDRESS_IN_USE):
                        raise
            raise AssertionError("unreachable")
        except BaseException:
            if database is not None:
                stop_database(self._docker(), database)
            raise

    def stop(self, node: Node) -> None:
        running = self._running.pop(node.name, None)
        if running is None:
            return
        with contextlib.suppress(Exception):
            self._last_logs[node.name] = self._logs_of(running.container, 200)
        try:
            with contextlib.suppress(docker.errors.NotFound):
                running.container.stop(force=True, delete_volume=True)
        finally:
            if running.database is not None:
                stop_database(self._docker(), running.database)

    def logs(self, node: Node, tail: int = 50) -> str:
        running = self._running.get(node.name)
        if running is not None:
            with contextlib.suppress(docker.errors.NotFound):  # removed behind our back: what we kept
                return self._logs_of(running.container, tail)
        return "\n".join(self._last_logs.get(node.name, "").splitlines()[-tail:])

    def state(self, node: Node, tail: int = 30) -> NodeState:
        """Whether ``node``'s container still runs; if not, its exit code and last log lines."""
        running = self._running.get(node.name)
        if running is None:
            return NodeState(node.name, "stopped", None, self.logs(node, tail))
        wrapped = running.container.get_wrapped_container()
        try:
            wrapped.reload()
        except docker.errors.NotFound:
            return NodeState(node.name, "missing", None, "(the container was removed outside the harness)")
        status = wrapped.attrs.get("State", {})
        code = status.get("ExitCode") if status.get("Status") != "running" else None
        return NodeState(node.name, str(status.get("Status", wrapped.status)), code, self._logs_of(running.container,
                                                                                                   tail))

    def close(self) -> None:
        errors: list[str] = []
        for running in sorted(self._running.values(), key=lambda r: r.node.role != "dp"):
            try:
                self.stop(running.node)
            except Exception as exc:
                errors.append(f"{running.node}: {exc}")
        for run_id, network in list(self._networks.items()):
            try:
                network.remove()
                del self._networks[run_id]
            except docker.errors.NotFound:
                del self._networks[run_id]
            except Exception as exc:
                errors.append(f"network {network.name}: {exc}")
        if self._client is not None:
            self._client.close()
            self._client = None
        atexit.unregister(self.close)
        if errors:
            raise NodeError(
                "could not remove every container/network of this provider: " + "; ".join(errors),
                hint="run harness.nodes.sweep(<run id>) to remove what is left",
            )

    def is_emulator_image(self, image: str) -> bool:
        """Whether ``image`` is the project's emulator (any tag of ``emulator_image``'s repository)."""
        return _repository(image) == _repository(self.emulator_image)

    # ---- internals -------------------------------------------------------------------------------

    def _spec(self, request: NodeRequest) -> NodeSpec:
        if request.spec:
            spec = parse_spec(request.spec)
            if spec.provider != self.name:
                raise NodeError(
                    f"node {request.name}: spec {spec.raw!r} is not for the docker provider",
                    hint="use docker://<image>[?version=x.y.z], or the provider the spec names",
                )
            return spec
        # no spec: the request's image (or the emulator image), behaving as / running request.version
        return parse_spec(f"docker://{request.image or self.emulator_image}?version={request.version}")

    def _check_control_plane(self, request: NodeRequest, host_network: bool) -> None:
        """A DP must be able to dial its CP: a run-network CP by alias, else a CP on 127.0.0.1."""
        cp = request.control_plane
        if request.role != "dp" or cp is None or not cp.cluster_address:
            return
        cp_on_loopback = cp.cluster_address.startswith(f"{LOOPBACK}:")
        if host_network and not cp_on_loopback:
            raise NodeError(
                f"DP {request.name} cannot reach CP {cp} at {cp.cluster_address}: a Kong image runs with host "
                "networking and dials its CP on 127.0.0.1",
                hint="run the CP from a Kong image too (or as a process node), not from the emulator image",
            )
        if not host_network and (cp.provider != self.name or cp_on_loopback):
            raise NodeError(
                f"DP {request.name} cannot reach CP {cp} from a container on the run network: that CP is a "
                f"{cp.provider} node at {cp.cluster_address}",
                hint="start the CP with the docker provider and the emulator image too (DPs reach it by name "
                "on the run's network)",
            )

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = engine_client(self._client_kw)
                self._client.ping()
            except Exception as exc:
                self._client = None
                raise NodeStartError(
                    f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {exc}",
                    hint="start it (scripts/start-dockerd.sh) or set DOCKER_HOST to a reachable engine",
                ) from exc
        return self._client

    def _require_image(self, image: str) -> None:
        try:
            self._docker().images.get(image)
        except docker.errors.ImageNotFound:
            raise NodeStartError(
                f"image {image} is not on the Docker engine (no registry is pulled from here)",
                hint="build it: bash scripts/build-images.sh (emulator and look-alike images), or `docker load` "
                "a Kong image",
            ) from None

    def _network(self, run_id: str) -> Network:
        network = self._networks.get(run_id)
        if network is None:
            network = Network(
                docker_client_kw=self._client_kw,
                docker_network_kw={
                    "labels": {RUN_LABEL: run_id},
                    "options": {HOST_BINDING: self.bind_host},
                    "check_duplicate": True,
                },
            )
            network.name = f"kuh-{run_id}"
            network.create()
            self._networks[run_id] = network
        return network

    def _start_once(self, request: NodeRequest, spec: NodeSpec, database: Database | None) -> Node:
        host_network = not self.is_emulator_image(spec.image or "")
        ports = self._host_ports(request) if host_network else None
        container = self._container(request, spec, ports, database)
        version = request.version or spec.version
        expect_config = bool(request.declarative_config) or (
            request.role == "dp" and request.wait_for_config
            and not any("refuse_cp" in k.lower() for k in request.faults)
        )
        check = ready_check(request.role, version, expect_config=expect_config)
        port = PORTS["admin"] if check.listener == "admin" else PORTS["status"]
        url = f"http://{LOOPBACK}:{ports[check.listener]}{check.path}" if ports else None
        wait = KongReadyWait(port, check, url).with_startup_timeout(int(self.ready_timeout))
        wait.with_poll_interval(0.1)
        container.waiting_for(wait)
        started = time.monotonic()
        try:
            container.start()
        except BaseException as exc:
            self._fail(request, container, wait, exc, time.monotonic() - started)
        node = self._node(request, spec, container, version, ports)
        self._running[request.name] = _Running(node, container, database)
        return node

    @staticmethod
    def _host_ports(request: NodeRequest) -> dict[str, int]:
        names = ["proxy", "status"] + (["admin"] if request.role != "dp" else [])
        names += ["cluster"] if request.role == "cp" else []
        return dict(zip(names, free_ports(len(names)), strict=True))

    def _database(self, request: NodeRequest, spec: NodeSpec) -> Database | None:
        """A CP's PostgreSQL (unless ``request.env`` names one), bootstrapped with ``kong migrations``."""
        assert spec.image is not None
        return database_for_cp(self._docker(), run_id=request.run_id, cp=request.name, image=spec.image,
                               env=request.env, postgres_image=self.postgres_image, timeout=self.ready_timeout)

    def _container(
        self, request: NodeRequest, spec: NodeSpec, ports: dict[str, int] | None, database: Database | None
    ) -> DockerContainer:
        assert spec.image is not None
        labels = {RUN_LABEL: request.run_id, NODE_LABEL: request.name}
        container = DockerContainer(spec.image, docker_client_kw=self._client_kw).with_name(
            f"kuh-{request.run_id}-{request.name}"
        )
        if ports is not None:  # a Kong image: host networking, listeners on 127.0.0.1 free ports
            container.with_kwargs(labels=labels, network_mode="host")
            env = self._kong_environment(request, ports, database)
        else:
            network = self._network(request.run_id)
            container.with_network(network).with_network_aliases(request.name).with_kwargs(labels=labels)
            published = ["proxy", "status"] + (["admin"] if request.role != "dp" else [])
            # the docker SDK also takes (host, port) where testcontainers declares int | None
            mapping = cast(dict[str, object], container.ports)
            for listener in published:
                mapping[f"{PORTS[listener]}/tcp"] = (self.bind_host, None)  # 127.0.0.1 only, a free host port
            env = self._emulator_environment(request, spec)
        for key, value in env.items():
            container.with_env(key, value)
        if request.declarative_config:
            container.with_copy_into_container(request.declarative_config.encode(), CONFIG_PATH, 0o644)
        if request.cluster_cert is not None:
            cert_pem = Path(request.cluster_cert.cert_path).read_bytes()
            key_pem = Path(request.cluster_cert.key_path).read_bytes()
            container.with_copy_into_container(cert_pem, CERT_PATH, 0o644)
            # readable inside the container (Kong images run as user kong); the container is the run's own
            container.with_copy_into_container(key_pem, KEY_PATH, 0o644)
        return container

    def _emulator_environment(self, request: NodeRequest, spec: NodeSpec) -> dict[str, str]:
        env: dict[str, str] = {"KONG_EMULATOR_VERSION": request.version or spec.version or "", "PYTHONUNBUFFERED": "1"}
        if request.echo_port is not None:
            env["KONG_EMULATOR_ECHO_LISTEN"] = f"127.0.0.1:{request.echo_port}"
        env.update(fault_settings(request.faults))
        env.update(hybrid_settings(request, listen_host="0.0.0.0", ports=PORTS))
        env["KONG_PROXY_LISTEN"] = f"0.0.0.0:{PORTS['proxy']}"
        env["KONG_STATUS_LISTEN"] = f"0.0.0.0:{PORTS['status']}"
        env["KONG_ADMIN_LISTEN"] = f"0.0.0.0:{PORTS['admin']}" if request.role != "dp" else "off"
        env.update(self._files_environment(request))
        env.update(request.env)
        return env

    def _kong_environment(
        self, request: NodeRequest, ports: dict[str, int], database: Database | None
    ) -> dict[str, str]:
        """Only Kong's own settings: faults and ``echo_port`` are the emulator's and do not apply (the echo
        upstream runs on the host's 127.0.0.1, which host networking reaches at the same URL)."""
        env = hybrid_settings(request, listen_host=LOOPBACK, ports=ports)
        env["KONG_PROXY_LISTEN"] = f"{LOOPBACK}:{ports['proxy']}"
        env["KONG_STATUS_LISTEN"] = f"{LOOPBACK}:{ports['status']}"
        env["KONG_ADMIN_LISTEN"] = f"{LOOPBACK}:{ports['admin']}" if "admin" in ports else "off"
        env.update(dict.fromkeys(LISTENERS_OFF, "off"))
        if database is not None:
            env.update(database.kong_settings())
        env.update(self._files_environment(request))
        env.update(request.env)
        return env

    @staticmethod
    def _files_environment(request: NodeRequest) -> dict[str, str]:
        env: dict[str, str] = {}
        if request.declarative_config:
            env["KONG_DECLARATIVE_CONFIG"] = CONFIG_PATH
        if request.cluster_cert is not None:
            env["KONG_CLUSTER_CERT"] = CERT_PATH
            env["KONG_CLUSTER_CERT_KEY"] = KEY_PATH
        return env

    def _node(
        self,
        request: NodeRequest,
        spec: NodeSpec,
        container: DockerContainer,
        version: str | None,
        ports: dict[str, int] | None,
    ) -> Node:
        wrapped = container.get_wrapped_container()
        if ports is not None:

            def url(listener: str) -> str:
                return f"http://{LOOPBACK}:{ports[listener]}"

            cluster = f"{LOOPBACK}:{ports['cluster']}" if "cluster" in ports else None
        else:
            host = container.get_container_host_ip()

            def url(listener: str) -> str:
                mapping = wrapped.client.api.port(wrapped.id, PORTS[listener])
                return f"http://{host}:{mapping[0]['HostPort']}"

            cluster = f"{request.name}:{PORTS['cluster']}" if request.role == "cp" else None

        return Node(
            name=request.name,
            spec=spec.raw,
            cluster=request.cluster,
            role=request.role,
            version=version,
            admin_url=url("admin") if request.role != "dp" else None,
            proxy_url=url("proxy"),
            status_url=url("status"),
            provider=self.name,
            owned=True,
            handle=wrapped.id,
            cluster_address=cluster,
        )

    def _fail(
        self,
        request: NodeRequest,
        container: DockerContainer,
        wait: KongReadyWait,
        exc: BaseException,
        took: float,
    ) -> NoReturn:
        logs = "(container was not created)"
        if container._container is not None:
            try:
                logs = self._logs_of(container, 30) or "(no output)"
            except Exception as log_exc:
                logs = f"(could not read logs: {log_exc})"
            with contextlib.suppress(Exception):
                container.stop(force=True, delete_volume=True)
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        what = f"expected {wait.check.describe()}"
        seen = str(exc) if not isinstance(exc, TimeoutError) else f"last seen {wait.last_seen}"
        lines = "\n".join("    " + line for line in logs.splitlines())
        raise NodeStartError(
            f"container node {request.name} ({container.image}) did not become ready in {took:.1f}s: "
            f"{what} at {wait.url or 'its ' + wait.check.listener + ' port'}; {seen}; "
            f"the container was removed; its last log lines:\n{lines}",
            hint="read the log lines above; for a Kong image also check the KONG_* settings",
        ) from exc

    @staticmethod
    def _logs_of(container: DockerContainer, tail: int) -> str:
        raw = container.get_wrapped_container().logs(tail=tail)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

