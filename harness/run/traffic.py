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

from harness.corpus import SEED, Corpus
from harness.deadline import Deadline
from harness.differential import batch_seconds, observe, request_timeout, run_bounded, shared_client
from harness.errors import TrafficError
from harness.model import Node, ProbeWindow
from harness.plan import Plan
from harness.sampling import sample_corpus
from harness.traffic import Backend, Probe, ProbeRequest, RollbackEvidence, Splitter, get_splitter, rollback

ROLLBACK_PROOF_REQUESTS = 50     # consecutive answers from X, none failed, that prove a rollback
ROLLBACK_PROOF_TIMEOUT_S = 10.0

Log = Callable[[str], None]


#: the most kinds of request in the probe's mix: the probe cycles through them, so more kinds only cost the
#: up-front read of X's answers; every route class is kept even beyond it (harness.sampling.sample_corpus)
PROBE_KINDS = 500


def probe_mix(x: Node, corpus: Corpus, *, kinds: int = PROBE_KINDS, concurrency: int = 8, seed: int = SEED,
              deadline_seconds: float | None = None, client: httpx.Client | None = None) -> list[ProbeRequest]:
    """The corpus, sampled as staging samples it (at most ``kinds`` requests, every route class kept), as
    probe requests, each expecting the status X gives it now (read-only, ``concurrency`` reads in flight)."""
    chosen = sample_corpus(corpus, kinds, seed=seed).requests
    seconds = deadline_seconds if deadline_seconds is not None else batch_seconds(len(chosen),
                                                                                  concurrency=concurrency)
    deadline = Deadline.start(seconds, what="reading X's answers for the probe's mix", where=str(x),
                              hint="look at X's proxy log: X must answer promptly before the shift")
    http = client or shared_client(concurrency, 1)
    try:
        batch = run_bounded(
            chosen,
            lambda req: observe(http, x.proxy_url or "", req, where=str(x), timeout=request_timeout(deadline)).status,
            concurrency=concurrency, deadline=deadline)
    finally:
        if client is None:
            http.close()
    if batch.not_sent:
        raise deadline.error(f"{len(batch.not_sent)} of {len(chosen)} requests unread, first "
                             f"{chosen[batch.not_sent[0]].name}")
    mix = []
    for req, status in zip(chosen, batch.results, strict=True):
        if status is None:  # not reached: not_sent is empty, so every request was read
            continue
        if status >= 500:
            raise TrafficError(
                f"{x} answers {req.name} with {status} before any traffic moved",
                hint="X must be healthy before the shift; fix X or drop the route from the corpus",
            )
        mix.append(ProbeRequest(req.method, req.path, req.header_dict(), status, req.name))
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
