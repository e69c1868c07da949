"""The docker provider: the emulator image on one run network, and Kong images (the look-alike) with
host networking, a CP's own PostgreSQL and ``kong migrations bootstrap``.

Needs a Docker engine and the images built by ``bash scripts/build-images.sh`` (``KUH_EMULATOR_IMAGE``
and ``KUH_LOOKALIKE_REPO`` override the names, as in that script).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.certs import make_cluster_cert
from harness.errors import NodeError, NodeStartError
from harness.model import Node
from harness.nodes import NodeRequest, get_provider, sweep
from harness.nodes.docker import DockerProvider
from harness.nodes.postgres import start_database, stop_database
from harness.ports import free_port

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("KUH_EMULATOR_IMAGE", "kuh/kong-emulator:dev")
LOOKALIKE = os.environ.get("KUH_LOOKALIKE_REPO", "kuh/kong-lookalike")
REPO = Path(__file__).resolve().parents[2]
ECHO_PORT = 9999  # inside each container: the same upstream URL for every node
CONFIG = f"""\
_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{ECHO_PORT}
  routes:
  - name: echo
    paths: ["/echo"]
"""


def docker_lines(*args: str) -> list[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def leftovers(run_id: str) -> tuple[list[str], list[str]]:
    """Containers (any state) and networks still labelled with the run id."""
    label = f"label=kuh.run={run_id}"
    containers = docker_lines("ps", "-a", "--filter", label, "--format", "{{.Names}}")
    networks = docker_lines("network", "ls", "--filter", label, "--format", "{{.Name}}")
    return containers, networks


@pytest.fixture
def run_id() -> Iterator[str]:
    made = f"t{uuid.uuid4().hex[:10]}"
    yield made
    sweep(made, docker=True)  # a failed test must not leave containers behind


@pytest.fixture
def provider() -> Iterator[DockerProvider]:
    made = DockerProvider(emulator_image=IMAGE, ready_timeout=30)
    yield made
    made.close()


def spec(version: str) -> str:
    return f"docker://{IMAGE}?version={version}"


def request(name: str, role: str, run_id: str, version: str = "3.9.1", **kw: object) -> NodeRequest:
    return NodeRequest(
        name=name, cluster="y", role=role, version=version, run_id=run_id, spec=spec(version), **kw  # type: ignore[arg-type]
    )


def test_three_emulator_nodes_ready_proxying_and_removed(provider: DockerProvider, run_id: str) -> None:
    nodes = [
        provider.start(request(f"y{i}", "dbless", run_id, declarative_config=CONFIG, echo_port=ECHO_PORT))
        for i in (1, 2, 3)
    ]
    containers, networks = leftovers(run_id)
    assert sorted(containers) == [f"kuh-{run_id}-y1", f"kuh-{run_id}-y2", f"kuh-{run_id}-y3"]
    assert networks == [f"kuh-{run_id}"]
    for node in nodes:
        assert (node.provider, node.owned, node.spec) == ("docker", True, spec("3.9.1"))
        for url in (node.admin_url, node.proxy_url, node.status_url):
            assert url is not None and url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{node.status_url}/status/ready", timeout=2).status_code == 200
        proxied = httpx.get(f"{node.proxy_url}/echo/hi", timeout=2)
        assert proxied.status_code == 200 and proxied.json()["path"] == "/hi"
        assert proxied.headers["via"].endswith("kong/3.9.1")
    ports = docker_lines("ps", "--filter", f"label=kuh.run={run_id}", "--format", "{{.Ports}}")
    # "127.0.0.1:32768->8000/tcp" is published; a bare "8005/tcp" is only EXPOSEd by the image
    published = [part.strip() for line in ports for part in line.split(",") if "->" in part]
    assert len(published) == 9 and all(part.startswith("127.0.0.1:") for part in published), ports

    provider.close()
    assert leftovers(run_id) == ([], [])
    assert "started" in provider.logs(nodes[0])  # kept after removal, for error messages


def test_cp_and_two_dps_on_one_network(provider: DockerProvider, run_id: str, tmp_path: Path) -> None:
    cert = make_cluster_cert(tmp_path / "certs")
    cp = provider.start(request("cp-y", "cp", run_id, cluster_cert=cert))
    assert cp.cluster_address == "cp-y:8005"  # the CP's alias on the run network
    dps = [
        provider.start(request(f"dp-y{i}", "dp", run_id, cluster_cert=cert, control_plane=cp)) for i in (1, 2)
    ]
    for dp in dps:
        assert dp.admin_url is None
        assert httpx.get(f"{dp.status_url}/status/ready", timeout=2).status_code == 200
    listed = httpx.get(f"{cp.admin_url}/clustering/data-planes", timeout=2).json()["data"]
    assert len(listed) == 2
    assert {row["version"] for row in listed} == {"3.9.1"}
    assert len(leftovers(run_id)[0]) == 3

    provider.close()
    assert leftovers(run_id) == ([], [])


def test_failed_start_shows_the_log_and_removes_the_container(provider: DockerProvider, run_id: str) -> None:
    with pytest.raises(NodeStartError) as caught:
        provider.start(request("y1", "dbless", run_id, faults={"error_rate": "2"}))
    message = str(caught.value)
    assert "container node y1" in message and "the container was removed" in message
    assert "KONG_EMULATOR_FAULT_ERROR_RATE" in message  # the emulator's complaint, from the container log
    assert leftovers(run_id)[0] == []


def test_missing_image_says_how_to_build_it(provider: DockerProvider, run_id: str) -> None:
    with pytest.raises(NodeStartError, match="kuh/no-such-image:none is not on the Docker engine"):
        provider.start(
            NodeRequest(
                name="y1", cluster="y", role="dbless", version="3.9.1", run_id=run_id,
                spec="docker://kuh/no-such-image:none?version=3.9.1",
            )
        )


def test_dp_cannot_join_a_process_cp(provider: DockerProvider, run_id: str, tmp_path: Path) -> None:
    cp = Node("cp-y", "emulator://3.9.1", "y", "cp", "3.9.1", "http://127.0.0.1:1", None, None,
              provider="process", cluster_address="127.0.0.1:2")
    cert = make_cluster_cert(tmp_path / "certs")
    with pytest.raises(NodeError, match="cannot reach CP cp-y"):
        provider.start(request("dp-y1", "dp", run_id, cluster_cert=cert, control_plane=cp))


def test_sweep_removes_a_crashed_runs_containers_and_network(run_id: str) -> None:
    crashed = get_provider("docker", emulator_image=IMAGE)
    crashed.start(request("y1", "dbless", run_id, declarative_config=CONFIG, echo_port=ECHO_PORT))
    crashed.start(request("y2", "dbless", run_id))
    assert len(leftovers(run_id)[0]) == 2
    # the harness died here: nobody calls crashed.close(); the next run sweeps by run id
    result = sweep(run_id)
    assert sorted(result.containers) == [f"kuh-{run_id}-y1", f"kuh-{run_id}-y2"]
    assert result.networks == (f"kuh-{run_id}",)
    assert result.docker_error is None
    assert leftovers(run_id) == ([], [])
    crashed.close()  # what is already gone is not an error


# ---- Kong images: the look-alike, host networking, PostgreSQL for a CP ---------------------------------


def kong_request(name: str, role: str, run_id: str, version: str = "3.8.0", **kw: object) -> NodeRequest:
    return NodeRequest(name=name, cluster="y", role=role, version=version, run_id=run_id,  # type: ignore[arg-type]
                       image=f"{LOOKALIKE}:{version}", **kw)  # type: ignore[arg-type]


def inspect(container: str) -> Any:
    done = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)[0]


def listeners_of(pid: int) -> list[str]:
    """The local addresses the process ``pid`` listens on (TCP), as ``ss`` shows them."""
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30, check=True).stdout
    return sorted(line.split()[3] for line in lines.splitlines() if f"pid={pid}," in line)


@pytest.fixture
def echo() -> Iterator[str]:
    """The emulator's echo upstream on the host's 127.0.0.1, stopped by pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_kong_image_runs_on_the_host_network_with_loopback_listeners_only(
    provider: DockerProvider, run_id: str, echo: str
) -> None:
    config = CONFIG.replace(f"http://127.0.0.1:{ECHO_PORT}", echo)
    loaded = provider.start(kong_request("y1", "dbless", run_id, declarative_config=config, echo_port=ECHO_PORT))
    empty = provider.start(kong_request("y2", "dbless", run_id, env={"KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "1k"}))
    # the echo runs on the host's 127.0.0.1 and a host-network node reaches it at that same URL
    proxied = httpx.get(f"{loaded.proxy_url}/echo/hi", timeout=2)
    assert proxied.status_code == 200 and proxied.json()["path"] == "/hi"
    assert proxied.headers["via"].endswith("kong/3.8.0")
    # an empty node counts as started (the harness posts its config next) and says it has none
    ready = httpx.get(f"{empty.status_url}/status/ready", timeout=2)
    assert ready.status_code == 503 and "no configuration available" in ready.text
    # the Admin body limit is the node's own setting: over it, nginx's HTML 413
    too_big = httpx.post(f"{empty.admin_url}/config", content=b"x" * 2048,
                         headers={"content-type": "application/json"}, timeout=5)
    assert too_big.status_code == 413 and "<h1>413 Request Entity Too Large</h1>" in too_big.text
    for node in (loaded, empty):
        assert node.cluster_address is None
        urls = [node.proxy_url, node.admin_url, node.status_url]
        assert all(url is not None and url.startswith("http://127.0.0.1:") for url in urls)
        details = inspect(f"kuh-{run_id}-{node.name}")
        env = details["Config"]["Env"]
        assert not [e for e in env if e.startswith("KONG_EMULATOR_")], env
        assert details["HostConfig"]["NetworkMode"] == "host"
        assert not details["NetworkSettings"]["Ports"]
        assert details["Config"]["User"] == "kong"
        assert details["Config"]["Labels"]["kuh.run"] == run_id
        # every listener exactly where the KONG_*_LISTEN settings put it, nothing on 0.0.0.0
        expected = sorted(url.removeprefix("http://") for url in urls if url)
        assert listeners_of(details["State"]["Pid"]) == expected
    assert provider.state(loaded).running
    provider.close()
    assert leftovers(run_id) == ([], [])


def test_kong_image_cp_gets_a_database_migrations_and_dps_on_loopback(
    provider: DockerProvider, run_id: str, tmp_path: Path
) -> None:
    cert = make_cluster_cert(tmp_path / "certs")
    cp = provider.start(kong_request("cp-y", "cp", run_id, cluster_cert=cert))
    assert cp.cluster_address is not None and cp.cluster_address.startswith("127.0.0.1:")
    names = docker_lines("ps", "-a", "--filter", f"label=kuh.run={run_id}", "--format", "{{.Names}}")
    assert sorted(names) == [f"kuh-{run_id}-cp-y", f"kuh-{run_id}-cp-y-db"]  # the migrations container is gone
    env = inspect(f"kuh-{run_id}-cp-y")["Config"]["Env"]
    assert "KONG_DATABASE=postgres" in env and "KONG_PG_HOST=127.0.0.1" in env
    dp = provider.start(kong_request("dp-y1", "dp", run_id, cluster_cert=cert, control_plane=cp,
                                     wait_for_config=False))
    service = {"name": "s", "url": "http://127.0.0.1:9"}
    httpx.post(f"{cp.admin_url}/services", json=service, timeout=5).raise_for_status()
    for _ in range(100):
        if httpx.get(f"{dp.status_url}/status/ready", timeout=2).status_code == 200:
            break
        time.sleep(0.1)
    rows = httpx.get(f"{cp.admin_url}/clustering/data-planes", timeout=2).json()["data"]
    assert [row["version"] for row in rows] == ["3.8.0"]
    assert httpx.get(f"{dp.status_url}/status/ready", timeout=2).status_code == 200
    provider.close()
    assert leftovers(run_id) == ([], [])  # the CP's database went with it


def test_kong_image_dp_joins_a_process_cp_over_loopback(
    provider: DockerProvider, run_id: str, tmp_path: Path
) -> None:
    cert = make_cluster_cert(tmp_path / "certs")
    processes = get_provider("process", run_dir=tmp_path / "nodes")
    try:
        cp = processes.start(NodeRequest("cp-y", "y", "cp", "3.8.0", run_id, cluster_cert=cert))
        dp = provider.start(kong_request("dp-y1", "dp", run_id, cluster_cert=cert, control_plane=cp))
        assert httpx.get(f"{dp.status_url}/status/ready", timeout=2).status_code == 200
    finally:
        provider.close()
        processes.close()


def test_the_look_alike_refuses_to_start_before_migrations_as_kong_does(run_id: str) -> None:
    import docker

    client = docker.from_env()
    database = start_database(client, run_id=run_id, name="db")
    settings = [f"--env={k}={v}" for k, v in database.kong_settings().items()]
    base = ["run", "--rm", "--network=host", f"--label=kuh.run={run_id}", *settings]

    def kong(version: str, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *base, f"{LOOKALIKE}:{version}", *command], capture_output=True,
                              text=True, timeout=60)

    try:
        started = kong("3.4.2", "kong", "start")
        assert started.returncode == 1
        # Kong/kong kong/cmd/utils/migrations.lua @ 3.4.2 (NEEDS_BOOTSTRAP_MSG), through kong/cmd/init.lua
        assert started.stderr.startswith("Error: Database needs bootstrapping or is older than Kong 1.0.\n\n"
                                         "To start a new installation from scratch, run 'kong migrations "
                                         "bootstrap'."), started.stderr
        docker_start = kong("3.4.2", "kong", "docker-start")  # the image's CMD: nginx reports init_by_lua
        assert docker_start.returncode == 1
        assert "init_by_lua error: /usr/local/share/lua/5.1/kong/cmd/utils/migrations.lua:16: Database needs " \
            "bootstrapping" in docker_start.stderr
        listed = kong("3.4.2", "kong", "migrations", "list")
        assert listed.returncode == 3 and "Database needs bootstrapping" in listed.stdout
        first = kong("3.4.2", "kong", "migrations", "bootstrap")
        assert first.returncode == 0 and first.stdout.splitlines()[0] == "Bootstrapping database..."
        assert "core migrated up to: 020_330_to_340 (executed)" in first.stdout
        assert first.stdout.rstrip().endswith("Database is up-to-date")
        again = kong("3.4.2", "kong", "migrations", "bootstrap")
        assert (again.returncode, again.stdout.strip()) == (0, "Database already bootstrapped")
        newer = kong("3.8.0", "kong", "start")  # a 3.8 node on a 3.4 database
        assert newer.returncode == 1
        assert "New migrations available; run 'kong migrations up' to proceed" in newer.stderr
        up = kong("3.8.0", "kong", "migrations", "up")
        assert up.returncode == 0 and "core migrated up to: 023_360_to_370 (executed)" in up.stdout
        assert kong("3.8.0", "kong", "migrations", "list").returncode == 0
    finally:
        stop_database(client, database)
        client.close()


def test_a_crashed_container_is_reported_exited_with_its_code_and_last_lines(
    provider: DockerProvider, run_id: str
) -> None:
    crashing = provider.start(request("y1", "dbless", run_id, faults={"crash_after_seconds": "0.5"}))
    killed = provider.start(kong_request("y2", "dbless", run_id))
    subprocess.run(["docker", "kill", f"kuh-{run_id}-y2"], check=True, capture_output=True, timeout=30)
    state = provider.state(crashing)
    for _ in range(50):
        if state.exited:
            break
        time.sleep(0.1)
        state = provider.state(crashing)
    assert (state.status, state.exit_code, state.exited) == ("exited", 70, True)
    assert "crash" in state.log_tail.lower() and "exited with code 70" in str(state)
    state = provider.state(killed)
    assert (state.status, state.exit_code) == ("exited", 137)  # SIGKILL
    assert "started" in state.log_tail
    subprocess.run(["docker", "rm", "-f", f"kuh-{run_id}-y2"], check=True, capture_output=True, timeout=30)
    assert provider.state(killed).status == "missing"
    provider.stop(crashing)
    assert provider.state(crashing).status == "stopped"


def test_sweep_removes_a_crashed_runs_kong_cp_and_its_database(run_id: str, tmp_path: Path) -> None:
    crashed = DockerProvider(emulator_image=IMAGE)
    crashed.start(kong_request("cp-y", "cp", run_id, cluster_cert=make_cluster_cert(tmp_path / "certs")))
    assert len(leftovers(run_id)[0]) == 2
    result = sweep(run_id)
    assert sorted(result.containers) == [f"kuh-{run_id}-cp-y", f"kuh-{run_id}-cp-y-db"]
    assert leftovers(run_id) == ([], [])
    crashed.close()
