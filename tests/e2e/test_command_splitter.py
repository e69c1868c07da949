"""The command splitter end to end: the user's own load balancer, moved by the user's own script.

The balancer is a plain ``haproxy`` this test runs (the harness never sees it: no HAProxySplitter),
in front of two existing X nodes the test also runs. Y's nodes are started by the harness on ports
nobody knows before the run, so the script the plan names finds them when it is called: from the
run's work folder (``$KUH_WORK_ROOT/<run id>/nodes/<name>/node.pid``) it reads each Y node's pid,
from ``/proc/<pid>/environ`` its ``KONG_PROXY_LISTEN``, and points the balancer's Y server there
over the admin socket before it sets the weights. A user would put their real addresses in the
balancer's config instead; the plan has no way to fix Y's ports in advance.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from harness.ledger import STAGES
from harness.nodes.base import Node
from harness.ports import free_port
from harness.wait import wait_until
from tests.e2e import test_existing_x
from tests.e2e.conftest import ROOT, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]

existing_x = test_existing_x.existing_x  # two DB-less 3.4.2 nodes and their echo upstream, run by the test

Y_SERVERS = ("y1", "y2")  # the harness names its DB-less Y nodes y1, y2, ...

# The user's weight script. Per server: X gets x * (number of Y servers), Y gets y * (number of X
# servers), so each side's total share is its percentage whatever the node counts.
SCRIPT = '''\
import json, os, pathlib, socket, sys

SOCKET = {socket!r}
SERVERS = {servers!r}


def api(line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(SOCKET)
        sock.sendall(line.encode() + b"\\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode().strip()


def proxy_address(name):
    """host, port of the run's node ``name``, or None when the run has no such node (yet)."""
    root = pathlib.Path(os.environ["KUH_WORK_ROOT"])
    for pid_file in root.glob(f"*/nodes/{{name}}/node.pid"):
        pid = json.loads(pid_file.read_text())["pid"]
        environ = pathlib.Path(f"/proc/{{pid}}/environ").read_bytes().decode().split("\\0")
        listen = dict(item.split("=", 1) for item in environ if "=" in item)["KONG_PROXY_LISTEN"]
        host, port = listen.rsplit(":", 1)
        return host, port
    return None


def weights():
    totals = {{"x": 0, "y": 0}}
    for side, names in SERVERS.items():
        for name in names:
            totals[side] += int(api(f"get weight be/{{name}}").split()[0])
    x = round(100 * totals["x"] / (totals["x"] + totals["y"]))
    return x, 100 - x


if sys.argv[1] == "get":
    print(*weights())
elif sys.argv[1] == "api":  # any runtime API line, for the test to look inside
    print(api(sys.argv[2]))
elif sys.argv[1] == "set":
    x, y = int(sys.argv[2]), int(sys.argv[3])
    for name in SERVERS["y"]:
        found = proxy_address(name)
        if found is None:
            if y:
                sys.exit(f"no node {{name}} in the run's work folder: cannot send Y {{y}} %")
            continue
        answer = api(f"set server be/{{name}} addr {{found[0]}} port {{found[1]}}")
        if "changed" not in answer and "no need" not in answer:
            sys.exit(f"haproxy refused the address of {{name}}: {{answer}}")
    n_x, n_y = len(SERVERS["x"]), len(SERVERS["y"])
    lines = [f"set server be/{{n}} weight {{y * n_x}}" for n in SERVERS["y"]]
    lines += [f"set server be/{{n}} weight {{x * n_y}}" for n in SERVERS["x"]]
    answer = api("; ".join(lines if y else lines[::-1]))  # the gaining side first
    if answer:
        sys.exit(f"haproxy refused the weights: {{answer}}")
else:
    sys.exit(f"usage: {{sys.argv[0]}} get | set X Y | api LINE")
'''


def balancer_config(x_nodes: list[Node], *, port: int, admin_socket: Path, y_ports: dict[str, int]) -> str:
    """Y servers start at a closed port with weight 0: the script gives them their address."""
    lines = [
        "global",
        f"    stats socket {admin_socket} mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    retries 0",
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        "    default_backend be",
        "backend be",
        "    balance roundrobin",
    ]
    lines += [f"    server {n.name} {httpx.URL(n.proxy_url or '').netloc.decode()} weight 1" for n in x_nodes]
    lines += [f"    server {name} 127.0.0.1:{y_port} weight 0" for name, y_port in y_ports.items()]
    return "\n".join(lines) + "\n"


def run_script(script: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{script.name} {' '.join(args)}: {done.stderr}"
    return done.stdout


def server_ports(script: Path) -> dict[str, int]:
    """Each server's port in the running balancer, from ``show servers state`` (columns by header)."""
    rows = [line.split() for line in run_script(script, "api", "show servers state be").splitlines() if line.strip()]
    header = next(row[1:] for row in rows if row[0] == "#")
    name, port = header.index("srv_name"), header.index("srv_port")
    return {row[name]: int(row[port]) for row in rows if row[0].isdigit() and len(row) > port}


@dataclass(frozen=True)
class Balancer:
    listen_url: str
    admin_socket: Path
    initial_y_ports: dict[str, int]


@pytest.fixture
def users_balancer(existing_x: list[Node], tmp_path: Path) -> Iterator[Balancer]:
    """A plain haproxy in front of the X nodes; stopped by pid."""
    port = free_port()
    admin_socket = Path(f"/tmp/kuh-cs-{uuid.uuid4().hex[:8]}.sock")  # unix socket paths stay short
    y_ports = {name: free_port() for name in Y_SERVERS}
    config = tmp_path / "users-haproxy.cfg"
    config.write_text(balancer_config(existing_x, port=port, admin_socket=admin_socket, y_ports=y_ports))
    with (tmp_path / "users-haproxy.log").open("wb") as log:
        proc = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: admin_socket.exists() and httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code,
                   ok=bool, what="the user's haproxy", where=f"127.0.0.1:{port}", timeout=15)
        yield Balancer(f"http://127.0.0.1:{port}", admin_socket, y_ports)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        admin_socket.unlink(missing_ok=True)


def test_command_splitter_moves_traffic_on_the_users_own_balancer(
        existing_x: list[Node], users_balancer: Balancer, tmp_path: Path) -> None:
    listen_url, admin_socket = users_balancer.listen_url, users_balancer.admin_socket
    script = tmp_path / "lb_weights.py"
    servers = {"x": [n.name for n in existing_x], "y": list(Y_SERVERS)}
    script.write_text(SCRIPT.format(socket=str(admin_socket), servers=servers))
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"

    plan = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    plan["name"] = "command-splitter"
    plan["x"] = {"provider": "existing", "version": "3.4.2", "nodes": [
        {"role": "dbless", "admin_url": n.admin_url, "proxy_url": n.proxy_url, "status_url": n.status_url}
        for n in existing_x]}
    plan["y"] = {"provider": "process", "version": "3.8.1", "count": len(Y_SERVERS), "initial": 1}
    plan["config"] = {"upstream": "none"}
    plan["traffic"] = {"splitter": "command", "steps": [10, 50, 100], "hold_seconds": 3, "soak_seconds": 2,
                       "command": {"set_weights": f"{command} set {{x}} {{y}}",
                                   "get_weights": f"{command} get", "listen_url": listen_url}}
    plan["probe"]["timeout_seconds"] = 1
    path = tmp_path / "command-splitter.yaml"
    path.write_text(yaml.safe_dump(plan))

    run = run_plan(tmp_path, str(path))
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    steps = run.summary["steps"]
    assert [s["weight_y"] for s in steps] == [10, 50, 100]
    for step in steps:  # Y's measured share follows the weight the script set on the user's balancer
        assert abs(100 * step["share_y"] - step["weight_y"]) <= 3, steps
    assert sum(s["errors_x"] + s["errors_y"] for s in steps) == 0
    shift = run.verdict("shift")
    assert shift is not None and shift["figures"]["splitter"] == f"command at {listen_url}"
    # the script pointed the balancer's Y servers at the harness's Y nodes, and the harness's
    # teardown gave all traffic back to X through the same script
    moved = server_ports(script)
    assert all(moved[name] != users_balancer.initial_y_ports[name] for name in Y_SERVERS), moved
    assert run_script(script, "get").split() == ["100", "0"]
    assert run.leftovers() == []
