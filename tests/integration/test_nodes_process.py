"""The process provider against the real emulator (``python -m emulator``)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.certs import make_cluster_cert
from harness.errors import NodeError, NodeStartError
from harness.model import ClusterCert, Node
from harness.nodes import NodeRequest, get_provider, sweep
from harness.nodes.process import PID_FILE, ProcessProvider
from harness.ports import free_port

pytestmark = pytest.mark.integration

CONFIG = """\
_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo}
  routes:
  - name: echo
    paths: ["/echo"]
"""


def alive(pid: int) -> bool:
    """True while /proc/<pid> exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def run_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[ProcessProvider]:
    """A process provider writing node folders under tmp_path; closed (every node stopped) after."""
    made = ProcessProvider(tmp_path / "nodes", ready_timeout=15)
    yield made
    made.close()


def dbless(name: str, run_id: str, version: str = "3.8.1", **kw: object) -> NodeRequest:
    return NodeRequest(name=name, cluster="y", role="dbless", version=version, run_id=run_id, **kw)  # type: ignore[arg-type]


def test_dbless_node_starts_ready_proxies_and_stops(
    provider: ProcessProvider, run_id: str, tmp_path: Path
) -> None:
    echo = free_port()
    node = provider.start(dbless("y1", run_id, declarative_config=CONFIG.format(echo=echo), echo_port=echo))
    pid = int(node.handle or 0)

    assert (node.provider, node.owned, node.role, node.version) == ("process", True, "dbless", "3.8.1")
    assert node.spec == "emulator://3.8.1"
    for url in (node.admin_url, node.proxy_url, node.status_url):
        assert url is not None and url.startswith("http://127.0.0.1:")
    assert alive(pid)
    assert httpx.get(f"{node.status_url}/status/ready", timeout=2).status_code == 200
    assert httpx.get(f"{node.admin_url}/", timeout=2).json()["version"] == "3.8.1"
    proxied = httpx.get(f"{node.proxy_url}/echo/hello", timeout=2)
    assert proxied.status_code == 200
    assert proxied.json()["path"] == "/hello"  # through Kong's route to the echo upstream
    assert proxied.headers["via"].endswith("kong/3.8.1")
    pid_file = tmp_path / "nodes" / "y1" / PID_FILE
    assert json.loads(pid_file.read_text())["pid"] == pid
    assert os.getpgid(pid) == pid  # its own process group

    provider.stop(node)
    assert not alive(pid)
    assert not pid_file.exists()
    assert "started" in provider.logs(node)  # the log outlives the process


def test_empty_dbless_node_counts_as_started(provider: ProcessProvider, run_id: str) -> None:
    node = provider.start(dbless("y1", run_id, version="3.9.1"))
    ready = httpx.get(f"{node.status_url}/status/ready", timeout=2)
    assert ready.status_code == 503
    assert "no configuration available" in ready.json()["message"]


def test_old_version_is_judged_on_status(provider: ProcessProvider, run_id: str) -> None:
    node = provider.start(dbless("x1", run_id, version="2.8.5"))
    assert httpx.get(f"{node.status_url}/status", timeout=2).status_code == 200
    assert httpx.get(f"{node.status_url}/status/ready", timeout=2).status_code == 404  # none before 3.3


def test_start_failure_gives_the_log_tail_and_leaves_nothing(provider: ProcessProvider, run_id: str) -> None:
    with pytest.raises(NodeStartError) as caught:
        provider.start(dbless("y1", run_id, faults={"error_rate": "2"}))
    message = str(caught.value)
    assert "node y1[emulator://3.8.1] exited with code" in message
    assert "KONG_EMULATOR_FAULT_ERROR_RATE" in message  # the emulator's own complaint, from the log tail
    assert "node.log" in message and "next step:" in message
    assert provider._running == {}


def test_unready_node_times_out_with_what_it_saw(tmp_path: Path, run_id: str) -> None:
    slow = ProcessProvider(tmp_path / "nodes", ready_timeout=1.5)
    try:
        # a DP whose CP is never there: up, but never ready
        with pytest.raises(NodeError) as caught:
            cert = make_cluster_cert(tmp_path / "certs")
            slow.start(hybrid("dp-y1", "dp", run_id, cert, control_plane=absent_cp(free_port())))
        message = str(caught.value)
        assert "node dp-y1[emulator://3.9.1] was not ready after 1.5s" in message
        assert "/status/ready" in message and "last seen 503" in message
    finally:
        slow.close()
    assert slow._running == {}


def test_same_name_twice_is_refused(provider: ProcessProvider, run_id: str) -> None:
    provider.start(dbless("y1", run_id))
    with pytest.raises(NodeError, match="already running"):
        provider.start(dbless("y1", run_id))


def test_close_stops_every_node(provider: ProcessProvider, run_id: str) -> None:
    pids = [int(provider.start(dbless(f"y{i}", run_id)).handle or 0) for i in (1, 2)]
    assert all(alive(pid) for pid in pids)
    provider.close()
    assert not any(alive(pid) for pid in pids)


def test_sweep_stops_the_processes_of_a_crashed_run(tmp_path: Path, run_id: str) -> None:
    crashed = ProcessProvider(tmp_path / "nodes")
    try:
        pid = int(crashed.start(dbless("y1", run_id)).handle or 0)
        other = int(crashed.start(dbless("y2", f"{run_id}-other")).handle or 0)
        # the harness died here: nobody calls crashed.close(); a later run sweeps by run id
        result = sweep(run_id, run_dir=tmp_path / "nodes", docker=False)
        assert result.processes == (f"y1 (pid {pid})",)
        assert not alive(pid)
        assert alive(other)  # same folder, another run: not touched
    finally:
        crashed.close()


def test_sweep_leaves_a_reused_pid_alone(tmp_path: Path, run_id: str) -> None:
    folder = tmp_path / "nodes" / "y1"
    folder.mkdir(parents=True)
    # a pid file naming a live process that is not ours (this test process): argv differs
    record = {"pid": os.getpid(), "argv": ["python", "-m", "emulator"], "run_id": run_id}
    (folder / PID_FILE).write_text(json.dumps(record))
    result = sweep(run_id, run_dir=tmp_path / "nodes", docker=False)
    assert result.processes == ()
    assert alive(os.getpid())


def test_hybrid_cp_and_dp_processes(provider: ProcessProvider, run_id: str, tmp_path: Path) -> None:
    cert = make_cluster_cert(tmp_path / "certs")
    cp = provider.start(hybrid("cp-y", "cp", run_id, cert))
    assert cp.cluster_address is not None and cp.cluster_address.startswith("127.0.0.1:")
    dp = provider.start(hybrid("dp-y1", "dp", run_id, cert, control_plane=cp))
    assert dp.admin_url is None
    assert httpx.get(f"{dp.status_url}/status/ready", timeout=2).status_code == 200  # joined the CP
    listed = httpx.get(f"{cp.admin_url}/clustering/data-planes", timeout=2).json()["data"]
    assert len(listed) == 1 and listed[0]["version"] == "3.9.1"


def test_dp_without_cp_or_cert_is_refused_before_starting(provider: ProcessProvider, run_id: str) -> None:
    with pytest.raises(NodeError, match="no control plane to join"):
        provider.start(NodeRequest(name="dp-y1", cluster="y", role="dp", version="3.9.1", run_id=run_id))
    with pytest.raises(NodeError, match="no cluster certificate"):
        provider.start(NodeRequest(name="cp-y", cluster="y", role="cp", version="3.9.1", run_id=run_id))


def test_registry_builds_the_process_provider(tmp_path: Path, run_id: str) -> None:
    made = get_provider("process", run_dir=tmp_path)
    try:
        assert made.start(dbless("y1", run_id)).provider == "process"
    finally:
        made.close()


def hybrid(name: str, role: str, run_id: str, cert: ClusterCert, **kw: object) -> NodeRequest:
    return NodeRequest(
        name=name, cluster="y", role=role, version="3.9.1", run_id=run_id, cluster_cert=cert, **kw  # type: ignore[arg-type]
    )


def absent_cp(port: int) -> Node:
    """A CP node value whose cluster port nobody listens on."""
    return Node(
        name="cp-gone",
        spec="emulator://3.9.1",
        cluster="y",
        role="cp",
        version="3.9.1",
        admin_url=None,
        proxy_url=None,
        status_url=None,
        provider="process",
        cluster_address=f"127.0.0.1:{port}",
    )
