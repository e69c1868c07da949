"""Cluster X as users meet it: nodes the harness did not start, given by URL (x.provider: existing).

The run must pass, read X only through its read-only client, take its config from X itself (the
plan names no config file), and leave X running: the report says X may now be retired.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.config_capture import render_declarative
from harness.ledger import STAGES
from harness.nodes import NodeRequest, get_provider
from harness.nodes.base import Node
from harness.ports import free_port
from harness.wait import wait_until
from tests.e2e.conftest import ROOT, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


@pytest.fixture
def existing_x(tmp_path: Path) -> Iterator[list[Node]]:
    """Two DB-less 3.4.2 nodes and their echo upstream, started here, as if someone else ran them."""
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    provider = get_provider("process", run_dir=tmp_path / "someone-elses-x")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code, ok=lambda c: c == 200,
                   what="the echo upstream", where=f"127.0.0.1:{port}", timeout=15)
        config = render_declarative((ROOT / "plans/configs/sample.yaml").read_text(), f"http://127.0.0.1:{port}")
        nodes = [provider.start(NodeRequest(name=f"ext{i}", cluster="x", role="dbless", version="3.4.2",
                                            run_id="someone-else", declarative_config=config)) for i in (1, 2)]
        yield nodes
    finally:
        provider.close()
        echo.terminate()
        echo.wait(10)


def test_existing_x_is_upgraded_without_being_written_to_or_stopped(existing_x: list[Node], tmp_path: Path) -> None:
    before = [httpx.get(f"{n.admin_url}/status").json()["configuration_hash"] for n in existing_x]
    plan = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    plan["name"] = "existing-x"
    plan["x"] = {"provider": "existing", "version": "3.4.2", "nodes": [
        {"role": "dbless", "admin_url": n.admin_url, "proxy_url": n.proxy_url, "status_url": n.status_url}
        for n in existing_x]}
    plan["y"] = {"provider": "process", "version": "3.8.1", "count": 2, "initial": 1}
    plan["config"] = {"upstream": "none"}  # no file: the config is X's own, captured in the backup stage
    plan["traffic"].update(steps=[10, 100], hold_seconds=3)
    plan["probe"]["timeout_seconds"] = 1
    path = tmp_path / "existing-x.yaml"
    path.write_text(yaml.safe_dump(plan))

    run = run_plan(tmp_path, str(path))
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    retired = run.verdict("decommission")["figures"]["x_retired"]
    assert "2 existing X node(s) may now be retired" in retired
    # X still runs, with the configuration it had: the harness neither stopped nor changed it
    after = [httpx.get(f"{n.admin_url}/status").json()["configuration_hash"] for n in existing_x]
    assert after == before
    assert run.leftovers() == []
