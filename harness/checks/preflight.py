"""Preflight: X's nodes answer as the plan says, and X's configuration hash arms the freeze."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.compat import Version
from harness.errors import HarnessError
from harness.model import ProbeWindow
from harness.nodes import NodeRequest, get_provider
from harness.plan import Plan
from harness.run.clusters import Clusters
from harness.run.upstream import start_echo, stop_echo
from harness.traffic import Backend, Probe, ProbeRequest, Splitter, get_splitter

ROOT = Path(__file__).resolve().parents[2]

EMPTY_HASH = "0" * 32


def plan_problems(plan: Plan) -> list[str]:
    """What makes the plan unusable as an upgrade (a downgrade)."""
    if plan.x.version and Version.parse(plan.y.version) < Version.parse(plan.x.version):
        return [f"the plan goes from {plan.x.version} down to {plan.y.version}: that is a downgrade, not an upgrade"]
    return []


def x_mismatches(clusters: Clusters, plan: Plan) -> list[str]:
    """Every X node whose version or role is not what the plan says."""
    problems = []
    for node, info in clusters.read_nodes("x"):
        if plan.x.version and info.version and Version.parse(info.version) != Version.parse(plan.x.version):
            problems.append(f"{node}: runs {info.version}, the plan says {plan.x.version}")
        if info.mode != node.role:
            problems.append(f"{node}: runs as {info.mode}, the plan expects {node.role}")
    return problems


def x_config_hashes(clusters: Clusters) -> dict[str, str]:
    """The configuration hash each X proxy node reports on /status (DB-less nodes and DPs)."""
    out: dict[str, str] = {}
    for node in clusters.x_nodes:
        status = (clusters.clients.x_admin(node) if node.admin_url else clusters.clients.status(node)).status()
        value = status.get("configuration_hash")
        if not isinstance(value, str):
            raise HarnessError(
                f"{node} reports no configuration_hash on /status (got keys {sorted(status)})",
                hint="configuration_hash exists on DB-less nodes and data planes; is X in the mode the plan says?",
            )
        out[node.name] = value
    return out


def freeze_hash(hashes: dict[str, str]) -> tuple[str | None, str]:
    """The one hash X's nodes share (the freeze's reference), or None and why it cannot be armed."""
    values = set(hashes.values())
    if len(values) != 1:
        return None, f"X nodes carry different configurations (hashes {hashes}); settle X before upgrading"
    (value,) = values
    if value == EMPTY_HASH:
        return None, "X has an empty configuration (hash of 32 zeros): nothing to upgrade"
    return value, ""


# ---- what rate the probe can hold on this machine ----------------------------------------------------

# the plan's rate is capped at this share of what the probe held. Not the 80 % first tried: the burst
# drives one gateway node for a second, the shift several nodes and the splitter for minutes on the same
# cores; at 80 % a CI run (2 cores) saw 78 % probe errors at 100 % Y ("could not judge"), at 50 % none
CAPACITY_SHARE = 0.5


@dataclass(frozen=True)
class ProbeCapacity:
    """What the probe held for a short burst against a local echo: requests/s sent on time."""

    asked: float        # the plan's probe.rate
    tried: float        # the burst's rate
    held: float         # requests per second sent within ProbeWindow.LATE_MS of their schedule and answered
    seconds: float

    @property
    def cap(self) -> float:
        return CAPACITY_SHARE * self.held

    @property
    def rate(self) -> float:
        """The rate the run uses: the plan's, or the cap when the plan asks for more."""
        return round(min(self.asked, self.cap), 1)

    @property
    def capped(self) -> bool:
        return self.rate < self.asked

    def line(self) -> str:
        head = (f"the probe held {self.held:,.0f} req/s on time ({self.tried:,.0f} tried for {self.seconds:g} s); "
                f"the plan asks {self.asked:,.0f} req/s")
        if self.capped:
            return (head + f": capped at {self.rate:,.0f} req/s ({100 * CAPACITY_SHARE:.0f} % of what it held), so a "
                    "probe that cannot keep up is never taken for a slow Y")
        return head + ", within its capacity"


def probe_capacity(asked: float, work_dir: Path, *, seconds: float = 1.0) -> ProbeCapacity:
    """What rate the probe holds on this machine through the chain a rehearsal runs: the probe, HAProxy,
    a throw-away emulator node (3.8.1) and an echo upstream, each its own process on 127.0.0.1, so the
    measurement pays what the shift pays (the probe and the gateway sharing the cores), not the probe's
    cost alone.

    A burst at twice the plan's rate (at least 500 req/s) counts what went out on time and was
    answered; when much of it went out late or failed, a second burst at the rate that did tells what
    holds (an overloaded probe's first burst understates it: it spends its time on the backlog). Every
    process is stopped by its pid whatever happens."""
    tried = min(20_000.0, max(2 * asked, 500.0))
    echo = None
    provider = get_provider("process", run_dir=work_dir / "capacity")
    folder = Path(tempfile.mkdtemp(prefix="kuh-lb-"))
    splitter: Splitter | None = None
    try:
        echo, url = start_echo(work_dir / "capacity")
        config = (f'_format_version: "3.0"\nservices:\n- name: capacity\n  url: {url}\n'
                  '  routes:\n  - name: capacity\n    paths: ["/"]\n')
        node = provider.start(NodeRequest(name="capacity", cluster="x", role="dbless", version="3.8.1",
                                          run_id=work_dir.name, declarative_config=config))
        proxy = httpx.URL(node.proxy_url or "")
        # a splitter needs a backend on each side: the echo stands on Y's, at weight 0 (all traffic on the node)
        echo_url = httpx.URL(url)
        backends = [Backend(node.name, "x", proxy.host, proxy.port or 80),
                    Backend("echo", "y", echo_url.host, echo_url.port or 80)]
        splitter = get_splitter("haproxy", backends=backends, run_dir=folder)
        splitter.start()
        held = _burst(splitter.listen_url, tried, seconds)
        if held < 0.95 * tried:
            tried = max(50.0, 1.1 * held)
            held = _burst(splitter.listen_url, tried, seconds)
    finally:
        if splitter is not None:
            splitter.stop()
        provider.close()
        stop_echo(echo)
        shutil.rmtree(folder, ignore_errors=True)
    return ProbeCapacity(asked, tried, held, seconds)


def _burst(url: str, rate: float, seconds: float) -> float:
    """Requests per second the probe sent on time (and got answered) in a burst at ``rate``."""
    probe = Probe(url, [ProbeRequest("GET", "/capacity", {}, 200, "capacity")], rate=rate, timeout=2.0)
    window = probe.run(count=int(rate * seconds), duration=seconds + 3)
    on_time = sum(1 for r in window.records if r.status is not None and r.lag_ms <= ProbeWindow.LATE_MS)
    return on_time / seconds

