"""Nodes as Docker containers, built with testcontainers.

- One Docker network per run (``kuh-<run id>``, labelled ``kuh.run=<run id>``, removed by ``close()``).
  Each container joins it with its node name as alias, so a DP dials its CP as ``cp-y:8005``.
- Ports are published on 127.0.0.1 only (``bind_host``), container ports fixed: proxy 8000, admin
  8001, status 8100, cluster 8005.
- Readiness by HTTP (``harness.nodes.spec.ready_check``) through a ``HttpWaitStrategy`` that also stops
  waiting as soon as the container exits. A node that does not become ready raises
  :class:`NodeStartError` with the container's last log lines, and the container is removed.
- The declarative config and the cluster certificate are copied into the container (``/tmp/kuh-*``)
  before it starts, which also works with a remote engine (``DOCKER_HOST``).
- Containers are labelled ``kuh.run=<run id>`` and ``kuh.node=<name>``; :func:`sweep_docker` removes
  what a crashed run left.

The emulator image (default ``kuh/kong-emulator:dev``) gets ``KONG_EMULATOR_VERSION`` and, with
``echo_port``, runs the echo upstream inside itself on ``127.0.0.1:<echo_port>`` so the same upstream
URL works for process and container nodes. A real Kong image (``kong:3.x``, ``kong/kong-gateway:3.x``)
gets only Kong's own settings (``KONG_DATABASE=off``, ``KONG_DECLARATIVE_CONFIG``, listeners on
0.0.0.0). **The real-Kong path is untested here** (no registry is reachable, so no Kong image); a CP
on real Kong also needs its database settings in ``NodeRequest.env`` (``KONG_PG_HOST`` ...).

With a remote engine, set ``DOCKER_HOST`` and pass ``bind_host`` (ports published on the engine's
127.0.0.1 are not reachable from another machine) and ``TC_HOST`` for the address to reach it by.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast


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
import httpx  # noqa: E402
from testcontainers.core.config import ConnectionMode  # noqa: E402
from testcontainers.core.config import testcontainers_config as _tc_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402
from testcontainers.core.wait_strategies import HttpWaitStrategy  # noqa: E402
from testcontainers.core.waiting_utils import WaitStrategyTarget  # noqa: E402

from harness.errors import NodeError, NodeStartError  # noqa: E402
from harness.model import Node  # noqa: E402
from harness.nodes.base import NodeRequest  # noqa: E402
from harness.nodes.process import check_request, fault_settings, hybrid_settings  # noqa: E402
from harness.nodes.spec import NodeSpec, ReadyCheck, parse_spec, ready_check  # noqa: E402
from harness.ports import LOOPBACK  # noqa: E402
from harness.registry import EMULATOR_IMAGE  # noqa: E402

# testcontainers reads its settings when first imported: if someone imported it before us, apply ours
if _tc_config.connection_mode_override is None:
    _tc_config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
if _tc_config.tc_host_override is None and os.environ.get("TC_HOST"):
    _tc_config.tc_host_override = os.environ["TC_HOST"]

RUN_LABEL = "kuh.run"
NODE_LABEL = "kuh.node"
PORTS = {"proxy": 8000, "admin": 8001, "status": 8100, "cluster": 8005}
CONFIG_PATH = "/tmp/kuh-kong.yaml"
CERT_PATH = "/tmp/kuh-cluster.crt"
KEY_PATH = "/tmp/kuh-cluster.key"
HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"


class ContainerExited(RuntimeError):
    """The container stopped while we waited for it to become ready."""


class KongReadyWait(HttpWaitStrategy):
    """HTTP readiness as Kong answers it (200, or 503 "no configuration" when no config is expected).

    Unlike the plain ``HttpWaitStrategy`` it gives up at once when the container exits, and remembers
    the last answer it saw for the error message.
    """

    def __init__(self, port: int, check: ReadyCheck) -> None:
        super().__init__(port, check.path)
        self.check = check
        self.last_seen = "no answer yet"
        self.url: str | None = None

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                container.reload()
                if container.status in ("exited", "dead", "removing"):
                    raise ContainerExited(f"container {container.status} before it was ready")
                if container.status == "running":
                    try:
                        if self.url is None:
                            self.url = self._url(container)
                        response = client.get(self.url)
                        if self.check.judge(response.status_code, response.text):
                            return
                        self.last_seen = f"{response.status_code} {response.text[:200]!r}"
                    except (httpx.HTTPError, ConnectionError) as exc:
                        self.last_seen = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    waited = f"{self._startup_timeout:.0f}s"
                    raise TimeoutError(f"not ready after {waited}; last seen {self.last_seen}")
                time.sleep(self._poll_interval)

    def _url(self, container: WaitStrategyTarget) -> str:
        wrapped = container.get_wrapped_container()
        mappings = wrapped.client.api.port(wrapped.id, self._port)
        if not mappings:
            raise ConnectionError(f"port {self._port} is not published yet")
        return f"http://{container.get_container_host_ip()}:{mappings[0]['HostPort']}{self._path}"


@dataclass
class _Running:
    node: Node
    container: DockerContainer


class DockerProvider:
    """Starts nodes as containers on one network per run; ``close()`` removes them and the networks.

    ``emulator_image``: the image for requests without a spec or image. ``bind_host``: where ports are
    published (127.0.0.1). ``ready_timeout``: seconds. ``docker_client_kw``: passed to the Docker SDK.
    """

    name = "docker"

    def __init__(
        self,
        *,
        emulator_image: str = EMULATOR_IMAGE,
        bind_host: str = LOOPBACK,
        ready_timeout: float = 30.0,
        docker_client_kw: dict[str, Any] | None = None,
    ) -> None:
        self.emulator_image = emulator_image
        self.bind_host = bind_host
        self.ready_timeout = ready_timeout
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
        cp = request.control_plane
        if request.role == "dp" and cp is not None and cp.provider != self.name:
            raise NodeError(
                f"DP {request.name} cannot reach CP {cp} from a container: that CP is a {cp.provider} node",
                hint="start the CP with the docker provider too (DPs reach it by name on the run's network)",
            )
        if spec.kind == "kong" and request.echo_port is not None:
            raise NodeError(
                f"node {request.name}: echo_port needs the emulator image, {spec.image} is real Kong",
                hint="run the echo upstream yourself and point the config's upstream at it",
            )
        assert spec.image is not None
        self._require_image(spec.image)
        network = self._network(request.run_id)
        container = self._container(request, spec, network)
        version = request.version or spec.version
        expect_config = bool(request.declarative_config) or (
            request.role == "dp" and request.wait_for_config
            and not any("refuse_cp" in k.lower() for k in request.faults)
        )
        check = ready_check(request.role, version, expect_config=expect_config)
        port = PORTS["admin"] if check.listener == "admin" else PORTS["status"]
        wait = KongReadyWait(port, check).with_startup_timeout(int(self.ready_timeout))
        wait.with_poll_interval(0.1)
        container.waiting_for(wait)
        started = time.monotonic()
        try:
            container.start()
        except BaseException as exc:
            self._fail(request, container, wait, exc, time.monotonic() - started)
        node = self._node(request, spec, container, version)
        self._running[request.name] = _Running(node, container)
        return node

    def stop(self, node: Node) -> None:
        running = self._running.pop(node.name, None)
        if running is None:
            return
        with contextlib.suppress(Exception):
            self._last_logs[node.name] = self._logs_of(running.container, 200)
        with contextlib.suppress(docker.errors.NotFound):
            running.container.stop(force=True, delete_volume=True)

    def logs(self, node: Node, tail: int = 50) -> str:
        running = self._running.get(node.name)
        if running is not None:
            return self._logs_of(running.container, tail)
        return "\n".join(self._last_logs.get(node.name, "").splitlines()[-tail:])

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

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(**self._client_kw)
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
                hint="build it: bash scripts/build-images.sh (emulator image), or `docker load` a Kong image",
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

    def _container(self, request: NodeRequest, spec: NodeSpec, network: Network) -> DockerContainer:
        assert spec.image is not None
        container = (
            DockerContainer(spec.image, docker_client_kw=self._client_kw)
            .with_name(f"kuh-{request.run_id}-{request.name}")
            .with_network(network)
            .with_network_aliases(request.name)
            .with_kwargs(labels={RUN_LABEL: request.run_id, NODE_LABEL: request.name})
        )
        for key, value in self._environment(request, spec).items():
            container.with_env(key, value)
        published = ["proxy", "status"] + (["admin"] if request.role != "dp" else [])
        ports = cast(dict[str, Any], container.ports)
        for listener in published:
            ports[f"{PORTS[listener]}/tcp"] = (self.bind_host, None)  # 127.0.0.1 only, a free host port
        if request.declarative_config:
            container.with_copy_into_container(request.declarative_config.encode(), CONFIG_PATH, 0o644)
        if request.cluster_cert is not None:
            cert_pem = Path(request.cluster_cert.cert_path).read_bytes()
            key_pem = Path(request.cluster_cert.key_path).read_bytes()
            container.with_copy_into_container(cert_pem, CERT_PATH, 0o644)
            # readable inside the container (Kong images run as user kong); the container is the run's own
            container.with_copy_into_container(key_pem, KEY_PATH, 0o644)
        return container

    def _environment(self, request: NodeRequest, spec: NodeSpec) -> dict[str, str]:
        env: dict[str, str] = {}
        if spec.kind == "emulator":
            env["KONG_EMULATOR_VERSION"] = request.version or spec.version or ""
            env["PYTHONUNBUFFERED"] = "1"
            if request.echo_port is not None:
                env["KONG_EMULATOR_ECHO_LISTEN"] = f"127.0.0.1:{request.echo_port}"
            env.update(fault_settings(request.faults))
        env.update(hybrid_settings(request, listen_host="0.0.0.0", ports=PORTS))
        env["KONG_PROXY_LISTEN"] = f"0.0.0.0:{PORTS['proxy']}"
        env["KONG_STATUS_LISTEN"] = f"0.0.0.0:{PORTS['status']}"
        env["KONG_ADMIN_LISTEN"] = f"0.0.0.0:{PORTS['admin']}" if request.role != "dp" else "off"
        if request.declarative_config:
            env["KONG_DECLARATIVE_CONFIG"] = CONFIG_PATH
        if request.cluster_cert is not None:
            env["KONG_CLUSTER_CERT"] = CERT_PATH
            env["KONG_CLUSTER_CERT_KEY"] = KEY_PATH
        env.update(request.env)
        return env

    def _node(
        self, request: NodeRequest, spec: NodeSpec, container: DockerContainer, version: str | None
    ) -> Node:
        wrapped = container.get_wrapped_container()
        host = container.get_container_host_ip()

        def url(listener: str) -> str:
            mapping = wrapped.client.api.port(wrapped.id, PORTS[listener])
            return f"http://{host}:{mapping[0]['HostPort']}"

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
            cluster_address=f"{request.name}:{PORTS['cluster']}" if request.role == "cp" else None,
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
            hint="read the log lines above; for a real Kong image also check the KONG_* settings",
        ) from exc

    @staticmethod
    def _logs_of(container: DockerContainer, tail: int) -> str:
        raw = container.get_wrapped_container().logs(tail=tail)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def sweep_docker(
    run_id: str, *, docker_client_kw: dict[str, Any] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Remove the containers and networks labelled ``kuh.run=<run_id>``; return their names."""
    client = docker.from_env(**(docker_client_kw or {}))
    try:
        label = {"label": f"{RUN_LABEL}={run_id}"}
        containers: list[str] = []
        for container in client.containers.list(all=True, filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
                containers.append(container.name)
        networks: list[str] = []
        for network in client.networks.list(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
                networks.append(network.name)
        return tuple(containers), tuple(networks)
    finally:
        client.close()
