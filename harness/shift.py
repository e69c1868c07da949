"""The traffic shift: weights step by step, a continuous open-loop probe, a gate at every step,
rollback with proof, the drain and soak of decommission.

``TrafficRun`` owns the background probe; the splitter belongs to the environment (which returns
traffic to X and stops it at teardown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from harness.corpus import Corpus
from harness.errors import TrafficError
from harness.gates import GateCheck, GateConfig, GateResult, judge
from harness.report.model import Rollback, StepResult
from harness.traffic.probe import Probe, ProbeRequest, ProbeWindow
from harness.traffic.rollback import RollbackEvidence, rollback

if TYPE_CHECKING:
    from harness.environment import UpgradeEnvironment

ROLLBACK_PROOF_REQUESTS = 50     # consecutive answers from X, none failed, that prove a rollback
ROLLBACK_PROOF_TIMEOUT_S = 10.0


def with_completeness(result: GateResult, window: ProbeWindow, *, rate: float, opened: float, closed: float,
                      timeout: float, budget: float) -> GateResult:
    """Add the check that the requests the probe scheduled came back.

    A stalled or crashed node holds requests until the probe's timeout, so they would otherwise go
    unseen. Every request scheduled at least ``timeout`` before the window ``closed`` has ended by
    then, with an answer or a timeout, so those are counted against ``rate``.
    """
    cutoff = closed - timeout
    if cutoff <= opened:
        check = GateCheck("completeness", None, budget, True,
                          f"not checked: the hold ({closed - opened:.1f} s) is not longer than the probe timeout "
                          f"({timeout:.1f} s)", "pass")
        return replace(result, checks=(*result.checks, check))
    expected = int(rate * (cutoff - opened))
    ended = sum(1 for r in window.records if r.scheduled < cutoff)
    missing = max(0, expected - ended)
    fraction = missing / expected if expected else 0.0
    ok = fraction <= budget
    check = GateCheck(
        "completeness", round(fraction, 4), budget, True if ok else None,
        f"{ended} of {expected} requests scheduled in the first {cutoff - opened:.1f} s came back"
        + ("" if ok else f": {missing} missing ({100 * fraction:.1f} % > {100 * budget:.1f} %), "
           "requests stalled, a node stopped answering, or the probe fell behind"),
        "pass" if ok else "inconclusive",
    )
    outcome = "inconclusive" if not ok and result.outcome == "pass" else result.outcome
    return replace(result, outcome=outcome, checks=(*result.checks, check))


def window_csv(window: ProbeWindow) -> str:
    return window.csv_text()


@dataclass(frozen=True)
class StepOutcome:
    weight_y: int
    window: ProbeWindow
    gate: GateResult
    observe_only: bool

    @property
    def failed(self) -> bool:
        return self.gate.outcome != "pass"

    @property
    def reason(self) -> str:
        bad = [c for c in self.gate.checks if not c.passed]
        if not bad:
            return self.gate.outcome
        return f"{self.gate.outcome}: " + "; ".join(c.explanation for c in bad)

    @property
    def window_csv(self) -> str:
        return window_csv(self.window)

    def gate_dict(self) -> dict[str, Any]:
        return {"weight_y": self.weight_y, "window": self.window.summary(), "gate": self.gate.to_dict()}

    def line(self) -> str:
        w, x, y = self.window, self.window.x, self.window.y

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        share = "-" if w.share_y is None else f"{100 * w.share_y:.1f} %"
        return (f"step {self.weight_y:>3} % Y: {w.count} requests (X {x.count} / Y {y.count}, share Y {share}), "
                f"errors X {x.failed} / Y {y.failed}, probe errors {w.probe_errors}, "
                f"p99 X {ms(x.p99_ms)} / Y {ms(y.p99_ms)} ms -> {self.gate.outcome.upper()}")


@dataclass(frozen=True)
class Soak:
    requests: int
    x_hits: int
    errors: int
    window: ProbeWindow

    @property
    def window_csv(self) -> str:
        return window_csv(self.window)

    def summary_line(self) -> str:
        return f"{self.requests} requests over the soak window, {self.x_hits} reached X, {self.errors} failed"


@dataclass
class TrafficRun:
    env: UpgradeEnvironment
    probe: Probe
    gate: GateConfig
    hold_seconds: float
    steps: list[StepOutcome] = field(default_factory=list)
    stopped_reason: str | None = None
    baseline: ProbeWindow | None = None

    @classmethod
    def start(cls, env: UpgradeEnvironment, corpus: Corpus) -> TrafficRun:
        splitter = env.start_splitter()
        plan = env.plan
        mix = probe_mix(env, corpus)
        probe = Probe(
            splitter.listen_url, mix, rate=plan.probe.rate, timeout=plan.probe.timeout_seconds,
            version_sides={plan.x.version or "": "x", plan.y_version: "y"},
        )
        g = plan.gates
        gate = GateConfig(
            max_error_rate=g.max_error_rate, max_p99_ms=g.max_p99_ms, max_error_rate_delta=g.max_error_rate_delta,
            max_latency_shift_ms=g.max_latency_shift_ms, alpha=g.alpha, min_samples=g.min_samples,
            max_probe_error_rate=g.max_probe_error_rate, observe_only=g.observe_only,
        )
        # bounded: at most the whole plan's holds and soak, plus a generous margin for set-up
        budget = (len(plan.traffic.steps) + 2) * plan.traffic.hold_seconds * 3 + plan.traffic.soak_seconds + 300
        probe.start(count=int(plan.probe.rate * budget), duration=budget)
        env.log(f"probe: {plan.probe.rate:g} req/s open loop through {splitter.listen_url}, "
                f"{len(mix)} kinds of request")
        return cls(env, probe, gate, plan.traffic.hold_seconds)

    @property
    def splitter(self) -> Any:
        return self.env.splitter

    @property
    def steps_passed(self) -> int:
        return sum(1 for s in self.steps if not s.failed)

    def _window(self, seconds: float, weights: tuple[int, int], label: str) -> tuple[ProbeWindow, float, float]:
        """The requests scheduled after the weights changed, over ``seconds``; and when it opened, closed."""
        opened = self.probe.now()
        self.probe.take_window()
        time.sleep(seconds)
        closed = self.probe.now()
        window = self.probe.take_window(label=label, weights=weights)
        records = [r for r in window.records if r.scheduled >= opened]
        return ProbeWindow.of(records, label=label, weights=weights), opened, closed

    def step(self, weight_y: int) -> StepOutcome:
        weights = (100 - weight_y, weight_y)
        self.splitter.set_weights(*weights)
        seen = self.splitter.weights()
        if seen != weights:
            raise TrafficError(f"the splitter reports weights {seen} after being set to {weights}",
                               hint="check the balancer's runtime API or the command splitter's get_weights")
        window, opened, closed = self._window(self.hold_seconds, weights, f"{weight_y} % Y")
        # with (almost) nothing on X, Y is compared with the last window in which X carried traffic
        enough_x = window.x.count >= self.gate.min_samples
        result = with_completeness(
            judge(window, self.gate, baseline=None if enough_x else self.baseline),
            window, rate=self.probe.rate, opened=opened, closed=closed, timeout=self.probe.timeout,
            budget=self.gate.max_probe_error_rate,
        )
        outcome = StepOutcome(weight_y, window, result, self.gate.observe_only)
        if enough_x:
            self.baseline = window
        self.steps.append(outcome)
        w = window
        self.env.record.steps.append(StepResult(
            weight_y=weight_y, requests=w.count, share_y=w.share_y or 0.0, errors_x=w.x.failed,
            errors_y=w.y.failed, error_rate_x=w.x.error_rate, error_rate_y=w.y.error_rate,
            p50_x=w.x.p50_ms, p50_y=w.y.p50_ms, p99_x=w.x.p99_ms, p99_y=w.y.p99_ms,
            outcome=result.outcome, reason="" if not outcome.failed else outcome.reason[:300],
        ))
        self.env.log(outcome.line())
        if outcome.failed:
            self.stopped_reason = f"step {weight_y} % Y failed ({outcome.reason[:200]})"
        return outcome

    def roll_back(self, reason: str) -> RollbackEvidence:
        """All weight to X now; proven when the probe shows X alone answering, without errors."""
        evidence = rollback(self.splitter, self.probe, timeout=ROLLBACK_PROOF_TIMEOUT_S,
                            consecutive=ROLLBACK_PROOF_REQUESTS, reason=reason)
        seconds = round(evidence.seconds_to_proof or 0.0, 3)
        self.env.record.rollback = Rollback(reason[:300], seconds, evidence.requests_after, evidence.y_hits_after)
        self.env.log(f"ROLLBACK: all traffic on X, proven {seconds:.2f} s after the decision "
                     f"({evidence.requests_after} requests, {evidence.y_hits_after} on Y)")
        return evidence

    def drain_x(self) -> None:
        self.splitter.set_weights(0, 100)
        for node in self.env.x_nodes:
            self.splitter.drain(node.name)
        self.env.log("decommission: X drained (0 % weight, drain state)")

    def soak(self, seconds: float) -> Soak:
        window, _, _ = self._window(seconds, (0, 100), "soak")
        errors = window.x.failed + window.y.failed + window.probe_errors
        return Soak(window.count, window.x.count, errors, window)

    def close(self) -> None:
        if self.probe.running:
            self.probe.stop()


def probe_mix(env: UpgradeEnvironment, corpus: Corpus) -> list[ProbeRequest]:
    """The corpus as probe requests, each expecting the status X gives it now (read-only GETs on X)."""
    x = env.x_nodes[0]
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
