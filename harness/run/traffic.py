"""The traffic run: the splitter in front of X and Y, and the background open-loop probe.

This part moves weights and measures; judging a step belongs to ``harness.checks.shift``. It is
started once, explicitly, by the shift stage's first check (or by a resumed session's restore),
and ``close()`` returns all traffic to X before it stops the splitter.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from harness.corpus import Corpus
from harness.errors import TrafficError
from harness.model import Node, ProbeWindow
from harness.plan import Plan
from harness.traffic import Backend, Probe, ProbeRequest, RollbackEvidence, Splitter, get_splitter, rollback

ROLLBACK_PROOF_REQUESTS = 50     # consecutive answers from X, none failed, that prove a rollback
ROLLBACK_PROOF_TIMEOUT_S = 10.0

Log = Callable[[str], None]


def probe_mix(x: Node, corpus: Corpus) -> list[ProbeRequest]:
    """The corpus as probe requests, each expecting the status X gives it now (read-only GETs on X)."""
    mix = []
    with httpx.Client(timeout=5.0) as client:
        for req in corpus.requests:
            resp = client.request(req.method, (x.proxy_url or "") + req.path, headers=req.header_dict())
            if resp.status_code >= 500:
                raise TrafficError(
                    f"{x} answers {req.name} with {resp.status_code} before any traffic moved",
                    hint="X must be healthy before the shift; fix X or drop the route from the corpus",
                )
            mix.append(ProbeRequest(req.method, req.path, req.header_dict(), resp.status_code, req.name))
    return mix


class TrafficRun:
    """A started splitter (all weight on X at first) and a running probe through it."""

    def __init__(self, splitter: Splitter, probe: Probe, folder: Path, log: Log) -> None:
        self.splitter = splitter
        self.probe = probe
        self._folder = folder
        self._log = log

    def __repr__(self) -> str:
        return f"TrafficRun(listen={self.splitter.listen_url!r})"

    @classmethod
    def start(cls, plan: Plan, x_nodes: list[Node], y_nodes: list[Node], corpus: Corpus, log: Log) -> TrafficRun:
        if not x_nodes or not y_nodes:
            raise TrafficError("the shift needs running X and Y nodes",
                               hint="preflight starts X, deploy and scale start Y")
        backends = []
        for node in x_nodes + y_nodes:
            url = httpx.URL(node.proxy_url or "")
            backends.append(Backend(node.name, node.cluster, url.host, url.port or 80))
        kind = plan.traffic.splitter
        # a short folder: HAProxy's admin socket path must stay under the ~100 characters unix allows
        folder = Path(tempfile.mkdtemp(prefix="kuh-lb-"))
        splitter = get_splitter(kind, backends=backends, run_dir=folder, command=plan.traffic.command)
        try:
            splitter.start()
            splitter.set_weights(100, 0)
            log(f"splitter {kind} listening on {splitter.listen_url}: 100 % X, 0 % Y")
            mix = probe_mix(x_nodes[0], corpus)
            probe = Probe(splitter.listen_url, mix, rate=plan.probe.rate, timeout=plan.probe.timeout_seconds,
                          version_sides={plan.x.version or "": "x", plan.y_version: "y"})
            # bounded: at most the whole plan's holds and soak, plus a generous margin for set-up
            t = plan.traffic
            budget = (len(t.steps) + 2) * t.hold_seconds * 3 + t.soak_seconds + 300
            probe.start(count=int(plan.probe.rate * budget), duration=budget)
        except BaseException:
            splitter.stop()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log(f"probe: {plan.probe.rate:g} req/s open loop through {splitter.listen_url}, {len(mix)} kinds of request")
        return cls(splitter, probe, folder, log)

    def set_weights(self, x: int, y: int) -> None:
        """Set the split and read it back from the balancer."""
        self.splitter.set_weights(x, y)
        seen = self.splitter.weights()
        if seen != (x, y):
            raise TrafficError(f"the splitter reports weights {seen} after being set to {(x, y)}",
                               hint="check the balancer's runtime API or the command splitter's get_weights")

    def window(self, seconds: float, weights: tuple[int, int], label: str) -> tuple[ProbeWindow, float, float]:
        """The requests scheduled after now, over ``seconds``; and when the window opened and closed."""
        opened = self.probe.now()
        self.probe.take_window()
        time.sleep(seconds)
        closed = self.probe.now()
        window = self.probe.take_window(label=label, weights=weights)
        records = [r for r in window.records if r.scheduled >= opened]
        return ProbeWindow.of(records, label=label, weights=weights), opened, closed

    def roll_back(self, reason: str) -> RollbackEvidence:
        """All weight to X now; proven when the probe shows X alone answering, without errors."""
        return rollback(self.splitter, self.probe, timeout=ROLLBACK_PROOF_TIMEOUT_S,
                        consecutive=ROLLBACK_PROOF_REQUESTS, reason=reason)

    def drain(self, nodes: list[Node]) -> None:
        self.set_weights(0, 100)
        for node in nodes:
            self.splitter.drain(node.name)

    def close(self) -> list[str]:
        """Stop the probe, return all traffic to X, stop the splitter. Never raises; the problems met."""
        errors: list[str] = []
        try:
            if self.probe.running:
                self.probe.stop()
        except Exception as exc:
            errors.append(f"stopping the probe: {exc}")
        try:
            if self.splitter.weights() != (100, 0):
                self.splitter.set_weights(100, 0)
                self._log("teardown: all traffic returned to X")
        except Exception as exc:
            errors.append(f"returning traffic to X: {exc}")
        try:
            self.splitter.stop()
        except Exception as exc:
            errors.append(f"stopping the splitter: {exc}")
        shutil.rmtree(self._folder, ignore_errors=True)
        return errors
