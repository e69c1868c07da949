"""Shift: one traffic step judged by the gates; a failed step rolls traffic back to X, with proof.

``Shift`` holds the run's gate settings and the steps so far; ``step(weight)`` sets the weights,
holds, and judges the window (with the completeness check: a stalled node's lost requests count);
``roll_back(reason)`` returns all traffic to X and proves it with the probe. Steps and the rollback
go into the run record for the reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.gates import GateCheck, GateConfig, GateResult, Outcome, judge
from harness.model import ProbeRecord, ProbeWindow
from harness.plan import Plan
from harness.record import RunRecord
from harness.run.traffic import TrafficRun
from harness.sequential import AlphaSplit, Batch, SequentialConfig, SequentialState, split_alpha, step_tests
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


#: fixed-window checks of ``judge`` that can fail a step (rates and p99 of both sides, the two comparisons);
#: they take their share of the run's alpha beside the sequential tests
FIXED_CHECKS_PER_STEP = 6
LOOK_SECONDS = 0.25


def alpha_split(plan: Plan) -> AlphaSplit:
    """The run's alpha over every step's sequential tests and fixed checks (Bonferroni, see harness.sequential)."""
    return split_alpha(plan.gates.alpha, steps=plan.traffic.steps, sources=("probe",),
                       fixed_checks_per_step=FIXED_CHECKS_PER_STEP)


def gate_config(plan: Plan) -> GateConfig:
    g = plan.gates
    return GateConfig(
        max_error_rate=g.max_error_rate, max_p99_ms=g.max_p99_ms, max_error_rate_delta=g.max_error_rate_delta,
        max_latency_shift_ms=g.max_latency_shift_ms, alpha=alpha_split(plan).per_test, min_samples=g.min_samples,
        max_probe_error_rate=g.max_probe_error_rate, observe_only=g.observe_only,
    )


def node_breakdown(window: ProbeWindow, side: str) -> str:
    """Which node of ``side`` answered what: ``y2 answered 668 of 668 with 503; y1 0 of 325``."""
    per: dict[str, list[ProbeRecord]] = {}
    for r in window.records:
        if r.side == side and r.status is not None:
            per.setdefault(r.node or "(unnamed)", []).append(r)
    parts = []
    for node, records in sorted(per.items(), key=lambda kv: -sum(1 for r in kv[1] if r.failed)):
        failed = [r for r in records if r.failed]
        statuses = Counter(r.status for r in failed)
        shown = ", ".join(f"{s}: {n}" for s, n in statuses.most_common(3))
        parts.append(f"{node} answered {len(failed)} of {len(records)} wrongly" + (f" ({shown})" if failed else ""))
    return "; ".join(parts)


def sequential_check(state: SequentialState) -> GateCheck:
    """The sequential gate's verdict as one gate check (figures: the step's e-values and p-values)."""
    outcome: Outcome = "fail" if state.verdict == "reject" else "pass" if state.verdict == "pass" else "inconclusive"
    passed = True if outcome == "pass" else False if outcome == "fail" else None
    test = state.rejected_by or state.config.tests[0]
    return GateCheck(f"sequential_{test}", round(state.elapsed, 2), state.config.hold_seconds, passed,
                     f"sequential gate ({', '.join(state.config.tests)}; looks every {LOOK_SECONDS:g} s): "
                     + state.reason, outcome, p_value=state.p_value(test))


@dataclass
class Shift:
    """The shift stage's steps over one traffic run.

    Each step is watched continuously: every 250 ms the answers since the last look feed the
    sequential gate (harness.sequential), which fails the step the moment the evidence of a
    regression crosses its boundary. Otherwise the step holds for ``hold_seconds`` (extended up to
    ``max_hold_seconds`` while either side has fewer than ``min_samples`` answers), and the whole
    window is then judged by the fixed-window gate as well (harness.gates.judge: absolute limits,
    the probe's own health, completeness). ``describe_node`` names a node's provider state (a crashed
    container's exit code and last log lines) in a failing step's reason.
    """

    traffic: TrafficRun
    gate: GateConfig
    hold_seconds: float
    record: RunRecord
    log: Callable[[str], None]
    max_hold_seconds: float = 0.0
    describe_node: Callable[[str], str | None] = field(default=lambda name: None)
    steps: list[StepOutcome] = field(default_factory=list)
    stopped_reason: str | None = None
    baseline: ProbeWindow | None = None

    @classmethod
    def of(cls, plan: Plan, traffic: TrafficRun, record: RunRecord, log: Callable[[str], None],
           describe_node: Callable[[str], str | None] = lambda name: None) -> Shift:
        return cls(traffic, gate_config(plan), plan.traffic.hold_seconds, record, log,
                   max_hold_seconds=plan.traffic.max_hold, describe_node=describe_node)

    @property
    def steps_passed(self) -> int:
        return sum(1 for s in self.steps if not s.failed)

    def _watch(self, weight_y: int, weights: tuple[int, int]) -> tuple[ProbeWindow, SequentialState, float, float]:
        """Look every 250 ms until the sequential gate decides; the window of what was sent meanwhile."""
        probe = self.traffic.probe
        config = SequentialConfig(
            alpha=self.gate.alpha, hold_seconds=self.hold_seconds,
            max_hold_seconds=max(self.hold_seconds, self.max_hold_seconds or self.hold_seconds),
            min_samples=self.gate.min_samples, max_error_rate_delta=self.gate.max_error_rate_delta,
            max_latency_shift_ms=self.gate.max_latency_shift_ms, max_error_rate=self.gate.max_error_rate,
            tests=step_tests(weight_y))
        state = SequentialState.start(config)
        opened = probe.now()
        probe.take_window()
        records: list[ProbeRecord] = []
        last = time.monotonic()
        while state.verdict == "continue":
            time.sleep(max(0.0, LOOK_SECONDS - (time.monotonic() - last)))
            now = time.monotonic()
            batch = [r for r in probe.take_window().records if r.scheduled >= opened]
            records += batch
            state = state.update(Batch.of(batch, seconds=now - last))
            last = now
        closed = probe.now()
        return ProbeWindow.of(records, label=f"{weight_y} % Y", weights=weights), state, opened, closed

    def step(self, weight_y: int) -> StepOutcome:
        weights = (100 - weight_y, weight_y)
        self.traffic.set_weights(*weights)
        window, state, opened, closed = self._watch(weight_y, weights)
        # with (almost) nothing on X, Y is compared with the last window in which X carried traffic
        enough_x = window.x.count >= self.gate.min_samples
        probe = self.traffic.probe
        fixed = judge(window, self.gate, baseline=None if enough_x else self.baseline)
        result = with_completeness(fixed, window, rate=probe.rate, opened=opened, closed=closed,
                                   timeout=probe.timeout, budget=self.gate.max_probe_error_rate)
        check = sequential_check(state)
        if check.outcome == "fail" and not self.gate.observe_only:
            result = replace(result, outcome="fail", checks=(check, *result.checks))
        elif check.outcome == "inconclusive" and result.outcome == "pass":
            result = replace(result, outcome="inconclusive", checks=(check, *result.checks))
        else:
            result = replace(result, checks=(check, *result.checks))
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
        self.log(outcome.line() + f" (decided after {state.elapsed:.2f} s)")
        if outcome.failed:
            self.stopped_reason = f"step {weight_y} % Y {result.outcome} ({outcome.reason[:200]})"
        return outcome

    def attribution(self, outcome: StepOutcome) -> str:
        """The nodes behind a failing step: per-node answers on each side, and the provider's state of
        every node that answered wrongly or stopped answering."""
        lines = []
        for side in ("y", "x"):
            text = node_breakdown(outcome.window, side)
            if text:
                lines.append(f"{side.upper()}: {text}")
        named = {r.node for r in outcome.window.records if r.node and (r.failed or r.status is None)}
        for name in sorted(named):
            state = self.describe_node(name)
            if state:
                lines.append(f"{name}: {state}")
        return "\n".join(lines)

    def roll_back(self, reason: str) -> RollbackEvidence:
        evidence = self.traffic.roll_back(reason)
        seconds = round(evidence.seconds_to_proof or 0.0, 3)
        self.record.rollback = Rollback(reason[:300], seconds, evidence.requests_after, evidence.y_hits_after)
        self.log(f"ROLLBACK: all traffic on X, proven {seconds:.2f} s after the decision "
                 f"({evidence.requests_after} requests, {evidence.y_hits_after} on Y)")
        return evidence
