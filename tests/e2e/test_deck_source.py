"""decK state files as the config source: a folder of two files seeds X, and live Y is checked
against the reviewed files (parity.against: file)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.deck import load_deck, to_declarative_text
from harness.ledger import STAGES
from harness.nodes import NodeRequest, get_provider
from harness.nodes.base import Node
from harness.ports import free_port
from harness.wait import wait_until
from tests.e2e.conftest import ROOT, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]
DECK = ROOT / "plans" / "configs" / "deck"


def test_a_deck_folder_seeds_x_and_y_matches_the_reviewed_files(tmp_path: Path) -> None:
    run = run_plan(tmp_path, "plans/deck.yaml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    staging = run.verdict("staging")["figures"]
    assert "19 entities compared: 0 added, 0 removed, 0 changed" in staging["parity_file"], staging
    assert run.leftovers() == []


@pytest.fixture
def drifted_x(tmp_path: Path) -> Iterator[list[Node]]:
    """An existing X whose running config is the reviewed decK folder (``tmp_path/reviewed``, with real
    upstream URLs) plus one change nobody reviewed."""
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    provider = get_provider("process", run_dir=tmp_path / "their-x")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code, ok=lambda c: c == 200,
                   what="the echo upstream", where=f"127.0.0.1:{port}", timeout=15)
        reviewed = tmp_path / "reviewed"
        reviewed.mkdir()
        for file in DECK.glob("*.yaml"):
            text = file.read_text().replace("${UPSTREAM_URL}", f"http://127.0.0.1:{port}")
            (reviewed / file.name).write_text(text)
        config = yaml.safe_load(to_declarative_text(load_deck(reviewed), "3.4.2"))
        orders = next(s for s in config["services"] if s["name"] == "orders")
        orders["retries"] = 9  # written on X by hand, never reviewed
        nodes = [provider.start(NodeRequest(name="ext1", cluster="x", role="dbless", version="3.4.2",
                                            run_id="someone-else", declarative_config=yaml.safe_dump(config)))]
        yield nodes
    finally:
        provider.close()
        echo.terminate()
        echo.wait(10)


def test_live_y_that_differs_from_the_reviewed_files_fails_staging_naming_the_entity(
        drifted_x: list[Node], tmp_path: Path) -> None:
    plan = yaml.safe_load((ROOT / "plans/deck.yaml").read_text())
    plan["name"] = "deck-drift"
    plan["x"] = {"provider": "existing", "version": "3.4.2", "nodes": [
        {"role": "dbless", "admin_url": n.admin_url, "proxy_url": n.proxy_url, "status_url": n.status_url}
        for n in drifted_x]}
    plan["y"] = {"provider": "process", "version": "3.8.1", "count": 1, "initial": 1}
    plan["config"] = {"source": str(tmp_path / "reviewed"), "allowed_root": str(tmp_path), "upstream": "none"}
    path = tmp_path / "deck-drift.yaml"
    path.write_text(yaml.safe_dump(plan))

    run = run_plan(tmp_path, str(path))
    assert run.returncode == 1, run.output[-3000:]
    staging = run.verdict("staging")
    assert staging["outcome"] == "failed"
    assert "differs from the reviewed file" in staging["message"]
    assert "services['orders'].retries: 3 → 9" in staging["message"]
    assert "(reviewed in services.yaml)" in staging["message"]
    assert run.leftovers() == []
