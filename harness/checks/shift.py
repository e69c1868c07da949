"""Shift: one traffic step judged by the gates; a failed step rolls traffic back to X, with proof.

``Shift`` holds the run's gate settings and the steps so far; ``step(weight)`` sets the weights,
holds, and judges the window (with the completeness check: a stalled node's lost requests count);
``roll_back(reason)`` returns all traffic to X and proves it with the probe. Steps and the rollback
go into the run record for the reports.

**Sources** (``gates.sources``, harness.sources): every look reads each enabled source (the probe, the
balancer's per-request log, Kong's Prometheus metrics) and feeds its own sequential gate; any source
can fail a step. A source that cannot be read here (the command splitter's balancer; Prometheus where
X's or Y's config lacks the plugin or its 3.x flags) is reported unavailable with the reason and the
others judge; when none of the asked sources can be read, the probe judges and the report says so.
The step's latency (its sequential latency test, its p99 figures and limit) comes from the first
available of balancer, Prometheus, probe (``LATENCY_ORDER``), and every step says which. The share of
Y each source saw is reported against the weight asked, and a gap beyond chance is named (keep-alive
connections pinned to a side, a node not taking its share). User-like traffic (``probe.user_rate``,
wrk through the splitter) runs beside the probe for the whole shift; the balancer and Prometheus see
it, the probe does not.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness.checks.gate_sources import (
    SourceStep,
    latency_source,
    open_sources,
    share_check,
    source_checks,
    source_tests,
    start_user_traffic,
)
from harness.gates import GateCheck, GateConfig, GateResult, Outcome, judge
from harness.model import ProbeRecord, ProbeWindow
from harness.plan import Plan
from harness.record import RunRecord
from harness.run.traffic import TrafficRun
from harness.sequential import AlphaSplit, SequentialConfig, SequentialState, TestName, split_alpha
from harness.sources import LATENCY_ORDER, Reading, Source
from harness.sources.probe import ProbeSource
from harness.summary import Rollback, StepResult
from harness.traffic import RollbackEvidence
from harness.traffic.usertraffic import UserTraffic


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
    sources: tuple[SourceStep, ...] = ()
    latency_source: str = "probe"
    retaken: tuple[str, ...] = ()      # why each earlier window of this step was measured again

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

    def source(self, name: str) -> SourceStep | None:
        return next((s for s in self.sources if s.name == name), None)

    def gate_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "weight_y": self.weight_y, "window": self.window.summary(), "gate": self.gate.to_dict()}
        if self.sources:
            out["latency_source"] = self.latency_source
            out["sources"] = [s.figures() for s in self.sources]
        if self.retaken:
            out["retaken"] = list(self.retaken)
        return out

    @property
    def harness_could_not_measure(self) -> bool:
        """Inconclusive only because the probe fell behind its schedule (nothing failed): the window
        says nothing about Y, and measuring it again is the honest next step."""
        checks = self.gate.checks
        return (self.gate.outcome == "inconclusive" and not any(c.outcome == "fail" for c in checks)
                and any(c.name == "probe_late" and c.outcome != "pass" for c in checks))

    def line(self) -> str:
        w, x, y = self.window, self.window.x, self.window.y

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        share = "-" if w.share_y is None else f"{100 * w.share_y:.1f} %"
        line = (f"step {self.weight_y:>3} % Y: {w.count} requests (X {x.count} / Y {y.count}, share Y {share}), "
                f"errors X {x.failed} / Y {y.failed}, probe errors {w.probe_errors}, "
                f"p99 X {ms(x.p99_ms)} / Y {ms(y.p99_ms)} ms -> {self.gate.outcome.upper()}")
        others = [s for s in self.sources if s.name != "probe"]
        if others:
            line += "".join(f"\n    {s.line()}" for s in others) + f"\n    latency from: {self.latency_source}"
        return line


#: fixed-window checks of ``judge`` that can fail a step (rates and p99 of both sides, the two comparisons);
#: they take their share of the run's alpha beside the sequential tests (per source: each source's own
#: fixed checks, error rate and p99 of Y, fit within the same count)
FIXED_CHECKS_PER_STEP = 6
LOOK_SECONDS = 0.25
#: the probe's checks that judge latency; they only observe when another source gives the step's latency
PROBE_LATENCY_CHECKS = ("p99_x", "p99_y", "latency_shift")
#: windows a run may measure again when the probe could not keep its schedule (the harness's machine was
#: starved, not Y): a moment's CPU theft should not end an upgrade; a second one in a run should. The
#: step's sequential tests go on through a retake (anytime-valid) and the retake's fixed checks use alpha
#: reserved in the split, so a retake is not an extra chance of a false alarm.
RETAKES = 1


def alpha_split(plan: Plan) -> AlphaSplit:
    """The run's alpha over every step, source, sequential test and fixed check (Bonferroni, see
    harness.sequential). Every source the plan asks for takes its share, available or not."""
    return split_alpha(plan.gates.alpha, steps=plan.traffic.steps, sources=tuple(plan.gates.sources),
                       fixed_checks_per_step=FIXED_CHECKS_PER_STEP, retakes=RETAKES)


def gate_config(plan: Plan) -> GateConfig:
    g = plan.gates
    split = alpha_split(plan)
    return GateConfig(
        max_error_rate=g.max_error_rate, max_p99_ms=g.max_p99_ms, max_error_rate_delta=g.max_error_rate_delta,
        max_latency_shift_ms=g.max_latency_shift_ms, alpha=split.per_fixed, min_samples=g.min_samples,
        max_probe_error_rate=g.max_probe_error_rate, observe_only=g.observe_only,
        sequential_alpha=split.per_sequential,
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


def sequential_check(state: SequentialState, source: str = "probe") -> GateCheck:
    """The sequential gate's verdict as one gate check (figures: the step's e-values and p-values).
    A source other than the probe is named in the check's name (``sequential_error_rate[balancer]``)."""
    outcome: Outcome = "fail" if state.verdict == "reject" else "pass" if state.verdict == "pass" else "inconclusive"
    passed = True if outcome == "pass" else False if outcome == "fail" else None
    test = state.rejected_by or state.config.tests[0]
    suffix = "" if source == "probe" else f"[{source}]"
    lead = "sequential gate" if source == "probe" else f"{source}: sequential gate"
    return GateCheck(f"sequential_{test}{suffix}", round(state.elapsed, 2), state.config.hold_seconds, passed,
                     f"{lead} ({', '.join(state.config.tests)}; looks every {LOOK_SECONDS:g} s): "
                     + state.reason, outcome, p_value=state.p_value(test))


@dataclass
class Shift:
    """The shift stage's steps over one traffic run.

    Each step is watched continuously: every 250 ms each source's answers since the last look feed its
    sequential gate (harness.sequential), which fails the step the moment the evidence of a regression
    crosses its boundary. Otherwise the step holds for ``hold_seconds`` (extended up to
    ``max_hold_seconds`` while a source has fewer than ``min_samples`` answers a side), and the whole
    window is then judged by the fixed-window gate as well (harness.gates.judge on the probe: absolute
    limits, the probe's own health, completeness; each other source's absolute limits). ``describe_node``
    names a node's provider state (a crashed container's exit code and last log lines) in a failing
    step's reason.
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
    sources: tuple[Source, ...] = ()          # the other sources asked for (not the probe)
    probe_judges: bool = True                 # "probe" in gates.sources (or no other source available)
    user: UserTraffic | None = None
    latency_from: str = "probe"               # the source the step's latency comes from (LATENCY_ORDER)
    retakes_left: int = RETAKES
    _probe_source: ProbeSource | None = None

    @classmethod
    def of(cls, plan: Plan, traffic: TrafficRun, record: RunRecord, log: Callable[[str], None],
           describe_node: Callable[[str], str | None] = lambda name: None, *,
           sources: Sequence[Source] = (), user: UserTraffic | None = None) -> Shift:
        shift = cls(traffic, gate_config(plan), plan.traffic.hold_seconds, record, log,
                    max_hold_seconds=plan.traffic.max_hold, describe_node=describe_node, sources=tuple(sources),
                    probe_judges="probe" in plan.gates.sources, user=user)
        shift._announce()
        return shift

    # ---- sources ----------------------------------------------------------------------------------

    def _available(self) -> list[Source]:
        return [s for s in self.sources if s.available()[0]]

    def _announce(self) -> None:
        for s in self.sources:
            ok, why = s.available()
            self.log(f"gate source {s.name}: {'reads ' + why if ok else 'UNAVAILABLE: ' + why}")
        if not self.probe_judges and not self._available():
            self.probe_judges = True
            self.log("gate source probe: judges instead, since none of the asked sources can be read here")
        judging = [("probe", "samples")] if self.probe_judges else []
        judging += [(s.name, s.read().latency) for s in self._available()]   # the first read: a baseline
        self.latency_from = latency_source(judging)
        self.log(f"gate latency from: {self.latency_from} (order: {', '.join(LATENCY_ORDER)}, first available)")
        if self.latency_from != "probe":
            self.gate = replace(self.gate, observe_only_checks=tuple(
                sorted({*self.gate.observe_only_checks, *PROBE_LATENCY_CHECKS})))

    @property
    def probe_source(self) -> ProbeSource:
        if self._probe_source is None:
            self._probe_source = ProbeSource(self.traffic.probe)
        return self._probe_source

    def close(self) -> list[str]:
        """Stop the user-like traffic and close the sources; never raises, returns the problems met."""
        problems = []
        self.stop_user_traffic()
        for s in self.sources:
            try:
                s.close()
            except Exception as exc:
                problems.append(f"closing the {s.name} source: {exc}")
        return problems

    def stop_user_traffic(self) -> None:
        if self.user is not None and self.user.running:
            with contextlib.suppress(Exception):
                result = self.user.stop()
                self.log(result.line() if result else "user-like traffic (wrk) stopped without a summary")

    @property
    def steps_passed(self) -> int:
        return sum(1 for s in self.steps if not s.failed)

    def _config(self, weight_y: int, tests: tuple[TestName, ...]) -> SequentialConfig:
        return SequentialConfig(
            alpha=self.gate.each_sequential_alpha, hold_seconds=self.hold_seconds,
            max_hold_seconds=max(self.hold_seconds, self.max_hold_seconds or self.hold_seconds),
            min_samples=self.gate.min_samples, max_error_rate_delta=self.gate.max_error_rate_delta,
            max_latency_shift_ms=self.gate.max_latency_shift_ms, max_error_rate=self.gate.max_error_rate,
            tests=tests)

    def _watch(self, weight_y: int, weights: tuple[int, int], going_on: Mapping[str, SequentialState] | None = None
               ) -> tuple[ProbeWindow, dict[str, SequentialState], dict[str, Reading], float, float]:
        """Look every 250 ms until the sources' sequential gates decide; what each source saw meanwhile."""
        probe = self.probe_source
        others = self._available()
        opened = probe.begin()
        for s in others:
            s.read()                                   # what came before the step is not evidence
        judging = (["probe"] if self.probe_judges else []) + [s.name for s in others]
        states: dict[str, SequentialState] = {
            name: going_on[name].extended(self.hold_seconds, self.max_hold_seconds or self.hold_seconds)
            if going_on and name in going_on
            else SequentialState.start(self._config(
                weight_y, source_tests(weight_y, latency=self.latency_from == name)))
            for name in judging}
        readings: dict[str, Reading] = {s.name: Reading.empty(s.name) for s in (probe, *others)}
        last = time.monotonic()
        while not any(st.verdict == "reject" for st in states.values()) and any(
                st.verdict == "continue" for st in states.values()):
            time.sleep(max(0.0, LOOK_SECONDS - (time.monotonic() - last)))
            self.traffic.check_guard()                 # the supervisor still holds the split's failsafe
            now = time.monotonic()
            for s in (probe, *others):
                reading = s.read()
                readings[s.name] = readings[s.name].plus(reading)
                if s.name in states:
                    latency = "latency" in states[s.name].config.tests
                    states[s.name] = states[s.name].update(reading.batch(now - last, latency=latency))
            last = now
        closed = self.traffic.probe.now()
        window = ProbeWindow.of(probe.records, label=f"{weight_y} % Y", weights=weights)
        return window, states, readings, opened, closed

    def step(self, weight_y: int) -> StepOutcome:
        """Set the weights, watch and judge the step; a window the harness could not measure (the
        probe fell behind) is measured once more per run (``RETAKES``), said in the log and the evidence."""
        weights = (100 - weight_y, weight_y)
        self.traffic.set_weights(*weights)
        retaken: list[str] = []
        outcome, elapsed, states = self._measure(weight_y, weights)
        while outcome.harness_could_not_measure and self.retakes_left > 0:
            self.retakes_left -= 1
            retaken.append(outcome.reason[:300])
            self.log(f"step {weight_y:>3} % Y: {outcome.reason[:200]}; that is the harness's machine, not Y: "
                     f"measuring the step again (retake {len(retaken)}: the sequential tests go on with the "
                     f"evidence so far, the fixed checks judge the new window; {self.retakes_left} left in this run)")
            outcome, elapsed, states = self._measure(weight_y, weights, states)
        outcome = replace(outcome, retaken=tuple(retaken))
        if outcome.window.x.count >= self.gate.min_samples:
            self.baseline = outcome.window
        self.steps.append(outcome)
        w, result = outcome.window, outcome.gate
        self.record.steps.append(StepResult(
            weight_y=weight_y, requests=w.count, share_y=w.share_y or 0.0, errors_x=w.x.failed,
            errors_y=w.y.failed, error_rate_x=w.x.error_rate, error_rate_y=w.y.error_rate,
            p50_x=w.x.p50_ms, p50_y=w.y.p50_ms, p99_x=w.x.p99_ms, p99_y=w.y.p99_ms,
            outcome=result.outcome, reason="" if not outcome.failed else outcome.reason[:300],
        ))
        again = f", measured {len(retaken) + 1} times" if retaken else ""
        self.log(outcome.line() + f" (decided after {elapsed:.2f} s{again})")
        if outcome.failed:
            self.stopped_reason = f"step {weight_y} % Y {result.outcome} ({outcome.reason[:200]})"
        elif weight_y == 100:
            self.stop_user_traffic()
        return outcome

    def _measure(self, weight_y: int, weights: tuple[int, int],
                 going_on: Mapping[str, SequentialState] | None = None
                 ) -> tuple[StepOutcome, float, dict[str, SequentialState]]:
        """One window of the step, judged; the seconds its sequential gates took to decide; their states.
        ``going_on``: the states of the step's earlier window, extended instead of started afresh."""
        window, states, readings, opened, closed = self._watch(weight_y, weights, going_on)
        # with (almost) nothing on X, Y is compared with the last window in which X carried traffic
        enough_x = window.x.count >= self.gate.min_samples
        probe = self.traffic.probe
        if self.probe_judges:
            fixed = judge(window, self.gate, baseline=None if enough_x else self.baseline)
            result = with_completeness(fixed, window, rate=probe.rate, opened=opened, closed=closed,
                                       timeout=probe.timeout, budget=self.gate.max_probe_error_rate)
        else:
            result = GateResult("pass", (), observe_only=self.gate.observe_only)
        first: list[GateCheck] = []
        later: list[GateCheck] = []
        warnings: list[str] = []
        outcome_of = result.outcome
        for name, state in states.items():
            check = sequential_check(state, name)
            first.append(check)
            if check.outcome == "fail" and not self.gate.observe_only:
                outcome_of = "fail"
            elif check.outcome == "inconclusive" and outcome_of == "pass":
                outcome_of = "inconclusive"
            if name != "probe":
                for c in source_checks(readings[name], self.gate, latency=self.latency_from == name):
                    if c.outcome == "fail" and not self.gate.observe_only:
                        outcome_of = "fail"
                    later.append(c)
        for name in ("balancer", "prometheus", "probe"):
            if name in readings:
                check, warning = share_check(weight_y, readings[name])
                later.append(check)
                if warning:
                    warnings.append(warning)
        result = replace(result, outcome=outcome_of, checks=(*first, *result.checks, *later),
                         warnings=(*result.warnings, *warnings))
        sources = self._source_steps(states, readings)
        outcome = StepOutcome(weight_y, window, result, self.gate.observe_only, sources, self.latency_from)
        return outcome, max((st.elapsed for st in states.values()), default=0.0), states

    def _source_steps(self, states: Mapping[str, SequentialState], readings: Mapping[str, Reading]
                      ) -> tuple[SourceStep, ...]:
        out = []
        probe = self.probe_source
        state = states.get("probe")
        out.append(SourceStep("probe", True, probe.available()[1], readings["probe"],
                              state.verdict if state else None, self.latency_from == "probe"))
        for s in self.sources:
            ok, why = s.available()
            reading = readings.get(s.name, Reading.empty(s.name, "none"))
            st = states.get(s.name)
            out.append(SourceStep(s.name, ok, why, reading, st.verdict if st else None, self.latency_from == s.name))
        return tuple(out)

    def attribution(self, outcome: StepOutcome) -> str:
        """The nodes behind a failing step: per-node answers on each side (the probe's, and each other
        source's own counters), and the provider's state of every node that answered wrongly or stopped."""
        lines = []
        for side in ("y", "x"):
            text = node_breakdown(outcome.window, side)
            if text:
                lines.append(f"{side.upper()}: {text}")
        named = {r.node for r in outcome.window.records if r.node and (r.failed or r.status is None)}
        for s in outcome.sources:
            if s.name == "probe" or not s.available:
                continue
            for side in ("y", "x"):
                text = s.reading.breakdown(side)  # type: ignore[arg-type]
                if text:
                    lines.append(f"{s.name} {side.upper()}: {text}")
            named |= {c.node for c in s.reading.nodes.values() if c.failed}
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
        self.stop_user_traffic()
        return evidence


__all__ = ["FIXED_CHECKS_PER_STEP", "LOOK_SECONDS", "RETAKES", "Shift", "SourceStep", "StepOutcome", "alpha_split",
           "gate_config", "node_breakdown", "open_sources", "sequential_check", "start_user_traffic",
           "with_completeness"]
