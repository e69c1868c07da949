"""The Docker engine itself: a client that does not leak a socket when no engine answers, the run
labels, and the sweep that removes what a run left by those labels.

Why the client knocks first:

The SDK's unix-socket transport opens a socket and, when ``connect`` fails (no such file, or an
engine that is down: connection refused), leaves it for the garbage collector. That is a
ResourceWarning at some later moment, which pytest turns into a failure of whichever test happens to
be running then, far from the cause. So for a ``unix://`` engine the harness first knocks on the
socket itself, with a socket it closes, and only builds the SDK client when something listens.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
RUN_LABEL = "kuh.run"     # on every container and network a run makes: what a sweep finds
NODE_LABEL = "kuh.node"


def engine_address(kw: Mapping[str, object] | None = None) -> str:
    """The engine ``docker.from_env(**kw)`` would use: ``DOCKER_HOST`` of its ``environment`` (the
    process's by default), else the default socket."""
    environment = (kw or {}).get("environment")
    env = environment if isinstance(environment, Mapping) else os.environ
    return str(env.get("DOCKER_HOST") or DEFAULT_HOST)


def knock(address: str, timeout: float = 2.0) -> None:
    """Raise ``OSError`` when ``address`` is a unix socket nothing listens on (other schemes pass)."""
    if not address.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address.removeprefix("unix://"))


def engine_client(kw: Mapping[str, object] | None = None) -> docker.DockerClient:
    """``docker.from_env(**kw)``; raises ``docker.errors.DockerException`` naming the engine when none
    answers, leaking nothing."""
    import docker
    import docker.errors

    address = engine_address(kw)
    try:
        knock(address)
    except OSError as exc:
        raise docker.errors.DockerException(f"no Docker engine answers at {address}: {exc}") from exc
    return docker.from_env(**dict(kw or {}))


def sweep_docker(
    run_id: str, *, docker_client_kw: Mapping[str, object] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Remove the containers and networks labelled ``kuh.run=<run_id>``; return their names.

    That includes the PostgreSQL and ``kong migrations`` containers of Kong-image control planes."""
    import docker.errors

    client = engine_client(docker_client_kw)
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
