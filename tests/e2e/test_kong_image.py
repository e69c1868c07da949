"""The Kong-image path end to end: plans whose nodes run from a Kong image (the look-alike images that
``scripts/build-images.sh`` builds, which the harness cannot tell from Kong) pass all eight stages.

- DB-less, X and Y from Kong images, ``upstream: echo`` (the echo on the host's 127.0.0.1);
- DB-less with ``upstream: none`` and an upstream this test starts itself on 127.0.0.1;
- hybrid: a PostgreSQL for Y's CP, ``kong migrations bootstrap``, the CP, then its DPs.

While each plan runs, a watcher inspects the run's containers (by the ``kuh.run`` label): they run
with host networking, publish nothing, and carry no ``KONG_EMULATOR_*`` setting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from harness.ledger import STAGES
from harness.ports import free_port
from tests.e2e.conftest import ROOT, PlanRun, new_run_dir, run_plan

# whole plans measure traffic: one worker runs them in turn with the other timing-sensitive tests
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.xdist_group("timing")]


@dataclass
class Seen:
    """What the watcher saw of one container while the plan ran."""

    env: list[str]
    network_mode: str
    ports: dict[str, object] = field(default_factory=dict)


class ContainerWatch:
    """Inspects every container labelled ``kuh.run=<run id>`` as it appears, until stopped."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen: dict[str, Seen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        client = docker.from_env()
        try:
            while not self._stop.wait(0.2):
                for container in client.containers.list(all=True, filters={"label": f"kuh.run={self.run_id}"}):
                    node = container.labels.get("kuh.node", container.name)
                    if node in self.seen:
                        continue
                    try:
                        attrs = container.attrs
                    except docker.errors.NotFound:
                        continue
                    self.seen[node] = Seen(attrs["Config"]["Env"] or [], attrs["HostConfig"]["NetworkMode"],
                                           attrs["NetworkSettings"].get("Ports") or {})
        finally:
            client.close()


def run_watched(tmp_path: Path, plan: str) -> tuple[PlanRun, dict[str, Seen]]:
    run_dir = new_run_dir(tmp_path, plan)
    with ContainerWatch(run_dir.name) as watch:
        run = run_plan(tmp_path, plan, run_dir=run_dir)
    return run, watch.seen


def assert_passed(run: PlanRun) -> None:
    __tracebackhide__ = True
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    assert "[kuh] verdict: PASSED" in run.output
    assert run.leftovers() == []


def assert_like_kong(seen: dict[str, Seen], nodes: set[str]) -> None:
    __tracebackhide__ = True
    assert nodes <= set(seen), f"containers seen: {sorted(seen)}"
    for name, container in seen.items():
        emulator = [e for e in container.env if e.startswith("KONG_EMULATOR_")]
        assert not emulator, f"{name} carries {emulator}"
        assert container.network_mode == "host" and not container.ports, (name, container)


@pytest.fixture
def own_upstream() -> Iterator[str]:
    """An upstream the test runs itself: the emulator's echo on a free 127.0.0.1 port, stopped by pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the echo upstream exited with code {proc.returncode}") from None
                threading.Event().wait(0.05)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_kong_image_dbless_with_the_echo_upstream_passes_every_stage(tmp_path: Path) -> None:
    run, seen = run_watched(tmp_path, "plans/kong-image.yaml")
    assert_passed(run)
    assert_like_kong(seen, {"x1", "x2", "y1", "y2"})
    specs = {n["name"]: n["spec"] for n in run.summary["nodes"]}
    assert specs["x1"].startswith("docker://kuh/kong-lookalike:3.4.2")
    assert specs["y2"].startswith("docker://kuh/kong-lookalike:3.8.0")
    assert sum(s["errors_x"] + s["errors_y"] for s in run.summary["steps"]) == 0


def test_kong_image_with_upstream_none_uses_the_configs_own_upstream(tmp_path: Path, own_upstream: str) -> None:
    folder = tmp_path / "plan"
    folder.mkdir()
    config = (ROOT / "plans" / "configs" / "sample.yaml").read_text().replace("${UPSTREAM_URL}", own_upstream)
    (folder / "own-upstream.yaml").write_text(config)
    plan = (ROOT / "plans" / "kong-image-none.yaml").read_text()
    assert "source: configs/sample-own-upstream.yaml" in plan
    (folder / "kong-image-none.yaml").write_text(plan.replace("configs/sample-own-upstream.yaml", "own-upstream.yaml"))

    run, seen = run_watched(tmp_path, str(folder / "kong-image-none.yaml"))
    assert_passed(run)
    assert_like_kong(seen, {"y1", "y2"})
    assert "echo upstream:" not in run.output  # the harness started no upstream of its own
    assert sum(s["errors_x"] + s["errors_y"] for s in run.summary["steps"]) == 0


def test_kong_image_hybrid_database_migrations_cp_then_dps(tmp_path: Path) -> None:
    run, seen = run_watched(tmp_path, "plans/kong-image-hybrid.yaml")
    assert_passed(run)
    assert_like_kong(seen, {"cp-y-db", "cp-y", "dp-y1", "dp-y2"})
    cp_env = seen["cp-y"].env
    assert "KONG_ROLE=control_plane" in cp_env and "KONG_DATABASE=postgres" in cp_env
    assert "KONG_PG_HOST=127.0.0.1" in cp_env
    assert any(e.startswith("KONG_CLUSTER_CONTROL_PLANE=127.0.0.1:") for e in seen["dp-y1"].env)
    roles = {n["name"]: n["role"] for n in run.summary["nodes"]}
    assert roles["cp-y"] == "cp" and roles["dp-y1"] == "dp" and roles["dp-y2"] == "dp"
    staging = run.verdict("staging")
    assert staging is not None and "fresh data-plane rows" in staging["figures"]["data_planes"]
