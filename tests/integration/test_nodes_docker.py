"""The docker provider with the emulator image: Y nodes and a hybrid cluster on one run network.

Needs a Docker engine and the image built by ``bash scripts/build-images.sh`` (``KUH_EMULATOR_IMAGE``
overrides the image name, as in that script).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.certs import make_cluster_cert
from harness.errors import NodeError, NodeStartError
from harness.model import Node
from harness.nodes import NodeRequest, get_provider, sweep
from harness.nodes.docker import DockerProvider

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("KUH_EMULATOR_IMAGE", "kuh/kong-emulator:dev")
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
