"""The gate sources against real processes: HAProxy and nginx in front of emulator nodes that run Kong's
prometheus plugin, wrk as user-like traffic. The balancer's per-node counts, Prometheus's deltas and what
was sent must agree request for request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.checks.shift import Shift, open_sources, start_user_traffic
from harness.model import Node as HarnessNode
from harness.plan import load_plan
from harness.record import RunRecord
from harness.run.traffic import TrafficRun
from harness.sources import Reading
from harness.sources.balancer import HAProxyLog, NginxLog, balancer_source
from harness.sources.prometheus import PrometheusSource, Target
from harness.traffic import Backend, Probe, ProbeRequest, get_splitter
from harness.traffic.base import free_port
from harness.traffic.usertraffic import UserTraffic

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("timing")]

REPO = Path(__file__).resolve().parents[2]
X_VERSION, Y_VERSION = "3.4.2", "3.8.1"
CONFIG = """\
_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo}
  routes:
  - name: echo
    paths: ["/"]
plugins:
- name: prometheus
  config:
    status_code_metrics: true
    latency_metrics: true
"""
PLUGINS = [{"name": "prometheus", "config": {"status_code_metrics": True, "latency_metrics": True}}]


@dataclass
class Node:
    name: str
    side: str
    version: str
    proxy: int
    admin: int
    proc: subprocess.Popen[bytes]

    @property
    def backend(self) -> Backend:
        return Backend(self.name, self.side, "127.0.0.1", self.proxy)  # type: ignore[arg-type]

    @property
    def target(self) -> Target:
        return Target(self.name, self.side, self.version, f"http://127.0.0.1:{self.admin}")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    """x1 (3.4.2, healthy), y1 (3.8.1, every 5th proxied request a 500) and y2 (3.8.1, healthy), each with
    the prometheus plugin and its 3.x flags on; stopped by pid at the end."""
    folder = tmp_path_factory.mktemp("source-nodes")
    started: dict[str, Node] = {}
    for name, side, version, faults in (("x1", "x", X_VERSION, {}), ("y1", "y", Y_VERSION, {"ERROR_RATE": "0.2"}),
                                        ("y2", "y", Y_VERSION, {})):
        proxy, admin, echo = free_port(), free_port(), free_port()
        config = folder / f"{name}.yaml"
        config.write_text(CONFIG.format(echo=echo))
        env = dict(os.environ, KONG_EMULATOR_VERSION=version, KONG_PROXY_LISTEN=f"127.0.0.1:{proxy}",
                   KONG_ADMIN_LISTEN=f"127.0.0.1:{admin}", KONG_STATUS_LISTEN="off",
                   KONG_DECLARATIVE_CONFIG=str(config), KONG_EMULATOR_ECHO_LISTEN=f"127.0.0.1:{echo}",
                   **{f"KONG_EMULATOR_FAULT_{k}": v for k, v in faults.items()})
        with (folder / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        started[name] = Node(name, side, version, proxy, admin, proc)
    try:
        for node in started.values():
            deadline = time.monotonic() + 15
            while True:
                assert node.proc.poll() is None, (folder / f"{node.name}.log").read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{node.admin}/status", timeout=0.5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{node.name} not ready"
                time.sleep(0.1)
        yield started
    finally:
        for node in started.values():
            if node.proc.poll() is None:
                node.proc.terminate()
                node.proc.wait(timeout=10)


@pytest.fixture
def splitter(tmp_path: Path, nodes: dict[str, Node]) -> Iterator[Callable[[str], Any]]:
    made: list[Any] = []

    def make(kind: str, y: str = "y1") -> Any:
        s = get_splitter(kind, backends=[nodes["x1"].backend, nodes[y].backend], run_dir=tmp_path / kind)
        made.append(s)
        s.start()
        s.set_weights(50, 50)
        return s

    yield make
    for s in made:
        s.stop()


def send(url: str, n: int) -> dict[str, list[int]]:
    """``n`` requests one after another; the statuses per node header."""
    seen: dict[str, list[int]] = {}
    with httpx.Client(trust_env=False, timeout=5) as client:
        for i in range(n):
            r = client.get(f"{url}/orders/{i}")
            seen.setdefault(r.headers["X-KUH-Upstream"], []).append(r.status_code)
    return seen


def read_until(source: Any, answers: int, timeout: float = 10.0) -> Reading:
    """Read (bounded) until ``answers`` have arrived: log lines are written after the answer is sent."""
    total = source.read()
    deadline = time.monotonic() + timeout
    while total.answers < answers and time.monotonic() < deadline:
        time.sleep(0.05)
        total = total.plus(source.read())
    return total


def assert_matches(reading: Reading, sent: dict[str, list[int]]) -> None:
    for name, statuses in sent.items():
        counts = reading.nodes[name]
        assert counts.answers == len(statuses), (name, counts)
        assert counts.failed == sum(1 for s in statuses if s >= 500), (name, counts)
    assert set(reading.nodes) == set(sent)


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_balancer_counts_every_request_per_node_with_timers(kind: str, splitter: Callable[[str], Any]) -> None:
    s = splitter(kind)
    source = balancer_source(s)
    assert isinstance(source, HAProxyLog if kind == "haproxy" else NginxLog)
    try:
        assert source.available()[0]
        sent = send(s.listen_url, 200)
        reading = read_until(source, 200)
        assert_matches(reading, sent)
        y = reading.nodes["y1"]
        assert y.failed == 20 and y.classes["5xx"] == 20, "y1 fails every 5th of its 100"
        assert len(y.figure_ms) == y.answers and all(lo <= f <= hi for lo, f, hi in zip(y.low_ms, y.figure_ms,
                                                                                         y.high_ms, strict=True))
        assert "y1 answered 20 of 100 with 5xx" in reading.breakdown("y")
        assert reading.source == "balancer" and reading.latency == "samples"
        assert source.read().answers == 0, "a read returns only what is new"
    finally:
        source.close()


def test_haproxy_source_names_requests_no_server_took(splitter: Callable[[str], Any]) -> None:
    s = splitter("haproxy")
    source = balancer_source(s)
    try:
        s.drain("x1")
        s.drain("y1")
        with httpx.Client(trust_env=False, timeout=5) as client:
            statuses = [client.get(f"{s.listen_url}/a").status_code for _ in range(3)]
        assert statuses == [503, 503, 503]
        deadline = time.monotonic() + 5
        notes: tuple[str, ...] = ()
        while not notes and time.monotonic() < deadline:
            time.sleep(0.05)
            notes = source.read().notes
        assert any("gave to no node (<NOSRV>)" in n for n in notes), notes
    finally:
        source.close()


def test_command_splitter_balancer_is_unavailable_and_says_why() -> None:
    s = get_splitter("command", set_command="true {x} {y}", listen_url="http://127.0.0.1:9")
    source = balancer_source(s)
    ok, why = source.available()
    assert not ok and "command splitter" in why and "other sources" in why
    assert source.read().answers == 0


def test_prometheus_deltas_agree_with_the_balancer(splitter: Callable[[str], Any], nodes: dict[str, Node]) -> None:
    s = splitter("haproxy")
    balancer = balancer_source(s)
    prom = PrometheusSource([nodes["x1"].target, nodes["y1"].target], {"x": PLUGINS, "y": PLUGINS})
    try:
        assert prom.available()[0], prom.available()[1]
        assert prom.read().answers == 0, "the first read is the baseline"
        sent = send(s.listen_url, 300)
        from_balancer = read_until(balancer, 300)
        from_prometheus = prom.read()
        assert_matches(from_balancer, sent)
        assert_matches(from_prometheus, sent)
        assert from_prometheus.latency == "histogram"
        y = from_prometheus.nodes["y1"]
        assert len(y.high_ms) == y.answers and all(lo < hi for lo, hi in zip(y.low_ms, y.high_ms, strict=True))
        assert prom.read().answers == 0
    finally:
        balancer.close()
        prom.close()


def test_prometheus_unavailable_when_x_lacks_the_flags(nodes: dict[str, Node]) -> None:
    off = [{"name": "prometheus", "config": {}}]
    prom = PrometheusSource([nodes["x1"].target, nodes["y1"].target], {"x": off, "y": PLUGINS})
    ok, why = prom.available()
    assert not ok
    assert "X: its prometheus plugin has status_code_metrics off" in why and "X is never written" in why
    prom.close()


def test_user_traffic_is_seen_by_the_balancer_at_about_its_rate(splitter: Callable[[str], Any]) -> None:
    s = splitter("haproxy")
    source = balancer_source(s)
    mix = [ProbeRequest(path="/users", name="users"), ProbeRequest(path="/orders/1", headers={"apikey": "k 1\""})]
    user = UserTraffic(s.listen_url, mix, rate=100)
    try:
        user.start()
        assert user.running and user.pid
        time.sleep(1.5)
        result = user.stop()
        assert result is not None and result.requests > 0, "wrk printed its summary on SIGINT"
        assert result.socket_errors == 0
        reading = read_until(source, result.requests)
        # every answer wrk counted went through the balancer; at most one per connection was cut at the stop
        assert result.requests <= reading.answers <= result.requests + user.connections
        assert result.rate <= 100 * 1.1, "the delay() hook keeps wrk at or under the asked rate"
        assert not user.running
    finally:
        user.stop()
        source.close()


# ---- the shift judged by the sources (in process: the same Shift the suites use) ------------------------


def harness_node(node: Node) -> HarnessNode:
    return HarnessNode(name=node.name, spec=f"http://127.0.0.1:{node.admin}", cluster=node.side,  # type: ignore[arg-type]
                       role="dbless", version=node.version, admin_url=f"http://127.0.0.1:{node.admin}",
                       proxy_url=f"http://127.0.0.1:{node.proxy}", status_url=None, provider="existing", owned=False)


@pytest.fixture
def shift_on(splitter: Callable[..., Any], nodes: dict[str, Node], tmp_path: Path) -> Iterator[Callable[..., Shift]]:
    """A Shift over HAProxy in front of x1 and the named Y node, with the plan's sources and wrk."""
    made: list[tuple[Shift, TrafficRun]] = []

    def make(plan_path: str, y: str) -> Shift:
        plan = load_plan(plan_path)
        s = splitter("haproxy", y)
        s.set_weights(100, 0)
        probe = Probe(s.listen_url, [ProbeRequest(path="/orders"), ProbeRequest(path="/health/live")],
                      rate=plan.probe.rate, timeout=plan.probe.timeout_seconds,
                      version_sides={X_VERSION: "x", Y_VERSION: "y"})
        probe.start(count=100_000, duration=120)
        lines: list[str] = []
        traffic = TrafficRun(s, probe, tmp_path / "traffic", lines.append)
        sources = open_sources(plan, traffic, [harness_node(nodes["x1"]), harness_node(nodes[y])],
                               {"x": PLUGINS, "y": PLUGINS})
        shift = Shift.of(plan, traffic, RunRecord(), lines.append, sources=sources,
                         user=start_user_traffic(plan, traffic, lines.append))
        shift.lines = lines  # type: ignore[attr-defined]
        made.append((shift, traffic))
        return shift

    yield make
    for shift, traffic in made:
        shift.close()
        if traffic.probe.running:
            traffic.probe.stop()


def test_shift_on_every_source_passes_a_healthy_y_with_user_traffic(shift_on: Callable[..., Shift]) -> None:
    shift = shift_on("plans/scenarios/sources-healthy.yaml", "y2")
    assert shift.latency_from == "balancer"
    step = shift.step(10)
    assert not step.failed, step.reason
    assert [(s.name, s.available, s.verdict) for s in step.sources] == [
        ("probe", True, "pass"), ("balancer", True, "pass"), ("prometheus", True, "pass")]
    balancer, probe = step.source("balancer"), step.source("probe")
    assert balancer is not None and probe is not None
    # wrk's requests reach the balancer and not the probe
    assert balancer.reading.answers > probe.reading.answers + 50
    names = [c.name for c in step.gate.checks]
    assert {"sequential_error_rate", "sequential_error_rate[balancer]", "sequential_error_rate[prometheus]",
            "share_y[balancer]"} <= set(names)
    assert "latency" in next(c for c in step.gate.checks if c.name == "sequential_error_rate[balancer]").explanation
    assert "latency from: balancer" in step.line()
    assert step.gate_dict()["latency_source"] == "balancer"
    assert any("user-like traffic: wrk" in line for line in shift.lines)  # type: ignore[attr-defined]
    shift.close()
    assert any(line.startswith("user-like traffic (wrk):") for line in shift.lines)  # type: ignore[attr-defined]


@pytest.mark.parametrize("source", ["balancer", "prometheus"])
def test_a_y_5xx_step_is_failed_by_one_source_alone(source: str, shift_on: Callable[..., Shift]) -> None:
    shift = shift_on(f"plans/scenarios/y-5xx-{source}.yaml", "y1")
    assert not shift.probe_judges
    step = shift.step(50)
    assert step.failed and step.gate.outcome == "fail", step.reason
    failing = [c.name for c in step.gate.checks if c.outcome == "fail"]
    assert failing and all(name.endswith(f"[{source}]") for name in failing), failing
    assert not any(c.name == "probe_errors" for c in step.gate.checks), "the probe does not judge"
    assert f"{source} Y: y1 answered" in shift.attribution(step)
