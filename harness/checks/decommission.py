"""Decommission: X drained, nothing reaches X over the soak window, harness-owned X nodes stopped."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from harness.model import ProbeWindow
from harness.run.clusters import Clusters
from harness.run.traffic import TrafficRun


@dataclass(frozen=True)
class Soak:
    requests: int
    x_hits: int
    errors: int
    window: ProbeWindow

    @property
    def window_csv(self) -> str:
        return self.window.csv_text()

    def summary_line(self) -> str:
        return f"{self.requests} requests over the soak window, {self.x_hits} reached X, {self.errors} failed"


def soak(traffic: TrafficRun, seconds: float) -> Soak:
    """Probe with all weight on Y for ``seconds``: what still reached X, what failed."""
    window, _, _ = traffic.window(seconds, (0, 100), "soak")
    errors = window.x.failed + window.y.failed + window.probe_errors
    return Soak(window.count, window.x.count, errors, window)


@dataclass(frozen=True)
class Retired:
    stopped: tuple[str, ...]
    left_running: tuple[str, ...]      # existing X nodes: the harness never stops them
    still_running: tuple[str, ...]     # harness-owned X nodes that still answer (a failure)

    def summary_line(self) -> str:
        parts = [f"stopped {len(self.stopped)}"]
        if self.left_running:
            parts.append(f"{len(self.left_running)} existing X node(s) may now be retired: "
                         + ", ".join(self.left_running))
        return "; ".join(parts)


def retire_x(clusters: Clusters) -> Retired:
    """Stop the X nodes the harness started (and check they are gone); list the existing ones."""
    stopped, left, still = [], [], []
    for node in clusters.all_x():
        if not node.owned:
            left.append(str(node))
            continue
        clusters.stop(node)
        stopped.append(node.name)
        url = (node.status_url or node.admin_url or node.proxy_url or "") + "/status"
        try:
            with httpx.Client(timeout=1) as client:
                client.get(url)
            still.append(str(node))
        except httpx.TransportError:
            pass
    return Retired(tuple(stopped), tuple(left), tuple(still))
