"""Cluster Y as platform teams deploy it: nodes the harness did not start (y.provider: existing).

The Y nodes are started here, outside the harness, each with Kong's admin access log on. After a
whole run they still run with the same pids and node ids, and the only writes in their logs are the
ones the evidence lists: X's backup with ``y.load: backup``, nothing with ``keep``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from harness.certs import make_cluster_cert
from harness.config_capture import render_declarative
from harness.ledger import STAGES
from harness.model import Node
from harness.nodes import NodeRequest, get_provider
from harness.ports import free_port
from harness.wait import wait_until
from tests.e2e.conftest import ROOT, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]
WRITE = re.compile(r'"(POST|PUT|PATCH|DELETE) (\S+) HTTP')


@dataclass
class TheirY:
    nodes: list[Node]            # proxy nodes (DB-less or DPs)
    cp: Node | None
    logs: dict[str, Path]        # node name -> its admin access log
    config: Path                 # the config X is seeded with (and Y keeps, for load: keep)

    def node_ids(self) -> dict[str, str]:
        out = {}
        for node in ([self.cp] if self.cp else []) + self.nodes:
            if node.admin_url:
                out[node.name] = httpx.get(node.admin_url + "/", timeout=5).json()["node_id"]
        return out

    def alive(self) -> bool:
        return all(Path(f"/proc/{n.handle}").exists() for n in ([self.cp] if self.cp else []) + self.nodes)

    def writes(self) -> dict[str, list[str]]:
        return {name: [" ".join(m.groups()) for m in WRITE.finditer(path.read_text())] if path.exists() else []
                for name, path in self.logs.items()}


def _echo(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code, ok=lambda c: c == 200,
               what="the echo upstream", where=f"127.0.0.1:{port}", timeout=15)
    return proc


@pytest.fixture
def their_y(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TheirY]:
    """Two Y proxy nodes at 3.8.1 (DB-less, or a CP with two DPs), started as someone else would."""
    mode, load = request.param
    port = free_port()
    echo = _echo(port)
    config = tmp_path / "configs" / "sample.yaml"
    config.parent.mkdir()
    config.write_text(render_declarative((ROOT / "plans/configs/sample.yaml").read_text(), f"http://127.0.0.1:{port}"))
    own = config.read_text() if load == "keep" else None
    provider = get_provider("process", run_dir=tmp_path / "their-y")
    logs: dict[str, Path] = {}

    def env(name: str) -> dict[str, str]:
        logs[name] = tmp_path / f"{name}-admin-access.log"
        return {"KONG_ADMIN_ACCESS_LOG": str(logs[name])}

    try:
        if mode == "dbless":
            nodes = [provider.start(NodeRequest(name=f"their{i}", cluster="y", role="dbless", version="3.8.1",
                                                run_id="platform-team", declarative_config=own,
                                                env=env(f"their{i}"), wait_for_config=own is not None))
                     for i in (1, 2)]
            yield TheirY(nodes, None, logs, config)
        else:
            cert = make_cluster_cert(tmp_path / "their-cert")
            cp = provider.start(NodeRequest(name="their-cp", cluster="y", role="cp", version="3.8.1",
                                            run_id="platform-team", declarative_config=own, cluster_cert=cert,
                                            env=env("their-cp")))
            dps = [provider.start(NodeRequest(name=f"their-dp{i}", cluster="y", role="dp", version="3.8.1",
                                              run_id="platform-team", control_plane=cp, cluster_cert=cert,
                                              wait_for_config=own is not None)) for i in (1, 2)]
            yield TheirY(dps, cp, logs, config)
    finally:
        provider.close()
        os.killpg(echo.pid, 15)
        echo.wait(10)


def plan_for(their: TheirY, mode: str, load: str, tmp_path: Path) -> Path:
    plan = yaml.safe_load((ROOT / ("plans/hybrid.yaml" if mode == "hybrid" else "plans/default.yaml")).read_text())
    plan["name"] = f"existing-y-{mode}-{load}"
    entries = [{"role": "cp", "admin_url": their.cp.admin_url}] if their.cp else []
    entries += [{"role": n.role, "admin_url": n.admin_url, "proxy_url": n.proxy_url, "status_url": n.status_url}
                if n.role == "dbless" else {"role": "dp", "proxy_url": n.proxy_url, "status_url": n.status_url}
                for n in their.nodes]
    plan["x"] = {"provider": "process", "version": "3.4.2", "count": 2}
    plan["y"] = {"provider": "existing", "version": "3.8.1", "initial": 1, "load": load, "nodes": entries}
    plan["config"] = {"source": str(their.config), "upstream": "none"}
    plan["traffic"].update(steps=[10, 100], hold_seconds=3)
    path = tmp_path / "configs" / "existing-y.yaml"  # beside its config: no allowed_root needed
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.parametrize("their_y", [("dbless", "backup"), ("dbless", "keep"), ("hybrid", "backup"),
                                     ("hybrid", "keep")],
                         indirect=True, ids=["dbless-backup", "dbless-keep", "hybrid-backup", "hybrid-keep"])
def test_existing_y_is_adopted_never_stopped_and_written_only_as_listed(their_y: TheirY, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    mode, load = request.node.callspec.params["their_y"]
    ids = their_y.node_ids()
    run = run_plan(tmp_path, str(plan_for(their_y, mode, load, tmp_path)))
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    assert their_y.alive() and their_y.node_ids() == ids, "Y nodes keep running with the same ids"
    listed_path = run.run_dir / "evidence" / "y-writes.json"
    listed = json.loads(listed_path.read_text()) if listed_path.exists() else []
    seen = their_y.writes()
    if load == "keep":
        assert listed == [] and all(w == [] for w in seen.values()), seen
    elif mode == "dbless":
        for node in their_y.nodes:
            assert seen[node.name] == ["POST /config"], seen
            assert any(line.startswith(f"POST {node.admin_url}/config") for line in listed), listed
        assert len(listed) == len(their_y.nodes)
    else:
        total = sum(int(line.rsplit(" x ", 1)[1]) for line in listed)
        assert total == len(seen["their-cp"]) > 0, (listed, seen)
        assert all(w.startswith("POST /") for w in seen["their-cp"])
    assert run.leftovers() == []
