"""Shift: one traffic step judged by the gates; a failed step rolls traffic back to X, with proof.

``Shift`` holds the run's gate settings and the steps so far; ``step(weight)`` sets the weights,
holds, and judges the window (with the completeness check: a stalled node's lost requests count);
``roll_back(reason)`` returns all traffic to X and proves it with the probe. Steps and the rollback
go into the run record for the reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.gates import GateCheck, GateConfig, GateResult, judge
from harness.model import ProbeWindow
from harness.plan import Plan
from harness.record import RunRecord
from harness.run.traffic import TrafficRun
from harness.summary import Rollback, StepResult
from harness.traffic import RollbackEvidence


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
        return self.window.csv_text()

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


def gate_config(plan: Plan) -> GateConfig:
    g = plan.gates
    return GateConfig(
        max_error_rate=g.max_error_rate, max_p99_ms=g.max_p99_ms, max_error_rate_delta=g.max_error_rate_delta,
        max_latency_shift_ms=g.max_latency_shift_ms, alpha=g.alpha, min_samples=g.min_samples,
        max_probe_error_rate=g.max_probe_error_rate, observe_only=g.observe_only,
    )


@dataclass
class Shift:
    """The shift stage's steps over one traffic run."""

    traffic: TrafficRun
    gate: GateConfig
    hold_seconds: float
    record: RunRecord
    log: Callable[[str], None]
    steps: list[StepOutcome] = field(default_factory=list)
    stopped_reason: str | None = None
    baseline: ProbeWindow | None = None

    @property
    def steps_passed(self) -> int:
        return sum(1 for s in self.steps if not s.failed)

    def step(self, weight_y: int) -> StepOutcome:
        weights = (100 - weight_y, weight_y)
        self.traffic.set_weights(*weights)
        window, opened, closed = self.traffic.window(self.hold_seconds, weights, f"{weight_y} % Y")
        # with (almost) nothing on X, Y is compared with the last window in which X carried traffic
        enough_x = window.x.count >= self.gate.min_samples
        probe = self.traffic.probe
        result = with_completeness(
            judge(window, self.gate, baseline=None if enough_x else self.baseline),
            window, rate=probe.rate, opened=opened, closed=closed, timeout=probe.timeout,
            budget=self.gate.max_probe_error_rate,
        )
        outcome = StepOutcome(weight_y, window, result, self.gate.observe_only)
        if enough_x:
            self.baseline = window
        self.steps.append(outcome)
        w = window
        self.record.steps.append(StepResult(
            weight_y=weight_y, requests=w.count, share_y=w.share_y or 0.0, errors_x=w.x.failed,
            errors_y=w.y.failed, error_rate_x=w.x.error_rate, error_rate_y=w.y.error_rate,
            p50_x=w.x.p50_ms, p50_y=w.y.p50_ms, p99_x=w.x.p99_ms, p99_y=w.y.p99_ms,
            outcome=result.outcome, reason="" if not outcome.failed else outcome.reason[:300],
        ))
        self.log(outcome.line())
        if outcome.failed:
            self.stopped_reason = f"step {weight_y} % Y failed ({outcome.reason[:200]})"
        return outcome

    def roll_back(self, reason: str) -> RollbackEvidence:
        evidence = self.traffic.roll_back(reason)
        seconds = round(evidence.seconds_to_proof or 0.0, 3)
        self.record.rollback = Rollback(reason[:300], seconds, evidence.requests_after, evidence.y_hits_after)
        self.log(f"ROLLBACK: all traffic on X, proven {seconds:.2f} s after the decision "
                 f"({evidence.requests_after} requests, {evidence.y_hits_after} on Y)")
        return evidence
