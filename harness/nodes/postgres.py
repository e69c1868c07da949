"""PostgreSQL for a Kong control plane that the docker provider starts from a Kong image, and its
``kong migrations bootstrap``.

A real Kong CP needs a database (``KONG_DATABASE=postgres``). The docker provider starts one
PostgreSQL container per such CP: Debian's PostgreSQL 15 (``kuh/postgres:15``, built by
``scripts/build-images.sh``; the official ``postgres`` image takes the same settings), with host
networking on a free 127.0.0.1 port, like the Kong containers, so the CP reaches it at
``127.0.0.1:<port>`` and nothing is published. A fresh random password per database.

Containers are labelled ``kuh.run=<run id>`` and ``kuh.node=<cp name>-db``, so ``sweep_docker``
removes what a crashed run left. Readiness is PostgreSQL's own answer: a startup message on its port
gets an authentication request (``R``), not an error such as "the database system is starting up".
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import docker
import docker.errors
from docker.models.containers import Container

from harness.errors import NodeStartError
from harness.nodes.engine import NODE_LABEL, RUN_LABEL
from harness.ports import LOOPBACK, free_port
from harness.registry import POSTGRES_IMAGE

ADDRESS_IN_USE = ("address already in use", "could not create any tcp/ip sockets")
PROTOCOL_3 = 196608  # PostgreSQL frontend/backend protocol 3.0


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database the provider started for one CP (``repr`` hides the password)."""

    name: str                       # the container's node label, e.g. "cp-y-db"
    host: str
    port: int
    user: str
    database: str
    container_id: str
    password: str = field(repr=False)

    def kong_settings(self) -> dict[str, str]:
        """Kong's own settings for this database (kong/templates/kong_defaults.lua: pg_*)."""
        return {
            "KONG_DATABASE": "postgres",
            "KONG_PG_HOST": self.host,
            "KONG_PG_PORT": str(self.port),
            "KONG_PG_USER": self.user,
            "KONG_PG_PASSWORD": self.password,
            "KONG_PG_DATABASE": self.database,
        }


def start_database(
    client: docker.DockerClient,
    *,
    run_id: str,
    name: str,
    image: str = POSTGRES_IMAGE,
    timeout: float = 30.0,
    attempts: int = 3,
) -> Database:
    """Start a PostgreSQL container for ``name`` and wait until it accepts connections."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise NodeStartError(
            f"image {image} (PostgreSQL for {name}) is not on the Docker engine",
            hint="build it: bash scripts/build-images.sh",
        ) from None
    last: NodeStartError | None = None
    for _ in range(max(1, attempts)):
        try:
            return _start_once(client, run_id=run_id, name=name, image=image, timeout=timeout)
        except NodeStartError as exc:
            last = exc
            if not any(marker in str(exc).lower() for marker in ADDRESS_IN_USE):
                raise
    assert last is not None
    raise last


def database_for_cp(
    client: docker.DockerClient,
    *,
    run_id: str,
    cp: str,
    image: str,
    env: Mapping[str, str],
    postgres_image: str = POSTGRES_IMAGE,
    timeout: float = 30.0,
) -> Database | None:
    """Prepare the database of CP ``cp`` (Kong image ``image``): start one unless ``env`` names one
    (``KONG_PG_HOST``), then run ``kong migrations bootstrap``. The database started, if any."""
    database = None
    settings = dict(env)
    if not settings.get("KONG_PG_HOST"):
        database = start_database(client, run_id=run_id, name=f"{cp}-db", image=postgres_image, timeout=timeout)
        settings = {**database.kong_settings(), **settings}
    try:
        bootstrap(client, run_id=run_id, cp=cp, image=image, env=settings, timeout=timeout * 2)
    except BaseException:
        if database is not None:
            stop_database(client, database)
        raise
    return database


def bootstrap(client: docker.DockerClient, *, run_id: str, cp: str, image: str, env: Mapping[str, str],
              timeout: float) -> None:
    """``kong migrations bootstrap`` in a one-shot container of the CP's image, host networking (Kong's
    order for a new installation); a database bootstrapped already answers "Database already bootstrapped"."""
    container = client.containers.run(
        image, ["kong", "migrations", "bootstrap"], name=f"kuh-{run_id}-{cp}-migrations", detach=True,
        network_mode="host", environment={"KONG_DATABASE": "postgres", **env},
        labels={RUN_LABEL: run_id, NODE_LABEL: f"{cp}-migrations"},
    )
    try:
        try:
            code: int | None = int(container.wait(timeout=timeout).get("StatusCode", -1))
        except Exception:  # the engine's wait timed out (requests' ReadTimeout / ConnectionError)
            code = None
        output = _logs(container, 40)
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True, v=True)
    if code != 0:
        lines = "\n".join("    " + line for line in output.splitlines()) or "    (no output)"
        what = "did not finish" if code is None else f"exited with code {code}"
        raise NodeStartError(
            f"`kong migrations bootstrap` for CP {cp} ({image}) {what}; its output:\n{lines}",
            hint="check the KONG_PG_* settings and that the database answers on them",
        )


def stop_database(client: docker.DockerClient, database: Database) -> str:
    """Remove the database's container; its last log lines (for error messages). Never raises."""
    try:
        container = client.containers.get(database.container_id)
    except docker.errors.NotFound:
        return ""
    except Exception as exc:
        return f"(could not reach the container: {exc})"
    logs = _logs(container, 50)
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True, v=True)
    return logs


def _start_once(client: docker.DockerClient, *, run_id: str, name: str, image: str, timeout: float) -> Database:
    port = free_port()
    password = secrets.token_urlsafe(18)
    database = Database(name=name, host=LOOPBACK, port=port, user="kong", database="kong", container_id="",
                        password=password)
    container = client.containers.run(
        image,
        ["postgres", "-c", f"listen_addresses={LOOPBACK}", "-p", str(port)],
        name=f"kuh-{run_id}-{name}",
        detach=True,
        network_mode="host",
        labels={RUN_LABEL: run_id, NODE_LABEL: name},
        environment={"POSTGRES_USER": database.user, "POSTGRES_PASSWORD": password,
                     "POSTGRES_DB": database.database},
    )
    started = time.monotonic()
    last = "no answer yet"
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            _fail(container, f"its container exited with code {code} before it accepted connections", name, started)
        try:
            answer = startup_answer(LOOPBACK, port, database.user, database.database)
            if answer == "R":
                break
            last = f"answer {answer!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - started > timeout:
            _fail(container, f"it did not accept connections on {LOOPBACK}:{port}; last seen {last}", name, started)
        time.sleep(0.1)
    return Database(name=name, host=LOOPBACK, port=port, user=database.user, database=database.database,
                    container_id=container.id or "", password=password)


def startup_answer(host: str, port: int, user: str, database: str, timeout: float = 1.0) -> str:
    """The first message type PostgreSQL sends after a startup message: ``R`` (authenticate) when it
    accepts connections, ``E`` (an error, e.g. still starting up) otherwise."""
    params = b"".join(part.encode() + b"\0" for part in ("user", user, "database", database)) + b"\0"
    packet = struct.pack("!ii", 8 + len(params), PROTOCOL_3) + params
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packet)
        kind = sock.recv(1)
    if not kind:
        raise ConnectionError("PostgreSQL closed the connection without an answer")
    return kind.decode(errors="replace")


def _fail(container: Container, why: str, name: str, started: float) -> NoReturn:
    logs = _logs(container, 30) or "(no output)"
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True, v=True)
    lines = "\n".join("    " + line for line in logs.splitlines())
    raise NodeStartError(
        f"PostgreSQL for {name} did not start in {time.monotonic() - started:.1f}s: {why}; the container was "
        f"removed; its last log lines:\n{lines}",
        hint="read the log lines above; rebuild the image with bash scripts/build-images.sh if it is stale",
    )


def _logs(container: Container, tail: int) -> str:
    try:
        raw = container.logs(tail=tail)
    except Exception as exc:
        return f"(could not read logs: {exc})"
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
