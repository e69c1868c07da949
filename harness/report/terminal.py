"""What the terminal shows beside pytest's own lines: each step's thresholds as k6 prints them, the
findings summary, and the end-of-run summary (totals, verdict, report paths, the next command).

k6 prints each threshold with a check mark or a cross, the metric, and the expression it was held
to (grafana/k6: docs "Thresholds"; ``✓ http_req_duration..: p(95)<200``). Here each gate check of a
step becomes one such line with its observed value: ``✓ error_rate_y ....... 0.00 % <= 1.00 %``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.gates import GateCheck, GateResult
from harness.summary import RunSummary, StepResult, Threshold

# check name -> (unit, comparison): how the observed figure and the limit are shown
_KINDS: dict[str, tuple[str, str]] = {
    "error_rate_x": ("%", "<="), "error_rate_y": ("%", "<="), "error_rate_delta": ("%", "<="),
    "probe_errors": ("%", "<="), "probe_late": ("%", "<="), "completeness": ("%", "<="),
    "p99_x": ("ms", "<="), "p99_y": ("ms", "<="), "latency_shift": ("ms", "<="),
    "samples_x": ("", ">="), "samples_y": ("", ">="),
}


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{100 * value:.2f} %"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:g}"


def base_name(name: str) -> str:
    """``error_rate_y[balancer]`` -> ``error_rate_y``: the check, whatever source measured it."""
    return name.split("[", 1)[0]


def threshold(check: GateCheck) -> Threshold:
    name = base_name(check.name)
    if name.startswith("sequential_"):
        # the sequential gate decides when the evidence is enough: its figure is when, its limit the hold
        observed = "n/a" if check.figure is None else f"decided at {check.figure:g} s"
        limit = "" if check.limit is None else f"(hold {check.limit:g} s)"
        if check.p_value is not None:
            observed += f", anytime p {check.p_value:.3g}"
        return Threshold(check.name, observed, limit, check.outcome, check.explanation)
    if name == "share_y":
        return Threshold(check.name, _value(check.figure, "%"), f"~ {_value(check.limit, '%')} asked", check.outcome,
                         check.explanation)
    unit, op = _KINDS.get(name, ("", "<="))
    limit = "" if check.limit is None else f"{op} {_value(check.limit, unit)}"
    observed = _value(check.figure, unit)
    # the gates hold a figure to its limit beyond reasonable doubt: say what was compared
    if check.bound is not None and check.figure is not None and unit:
        observed += f" (lower bound {_value(check.bound, unit)})"
    elif check.p_value is not None and check.figure is not None:
        observed += f" (p {check.p_value:.3g})"
    return Threshold(check.name, observed, limit, check.outcome, check.explanation)


def thresholds_of(gate: GateResult) -> tuple[Threshold, ...]:
    """Every check of a step's gate, as thresholds (the ones that judged nothing are left out)."""
    return tuple(threshold(c) for c in gate.checks if c.figure is not None or c.limit is not None)


def threshold_lines(thresholds: Iterable[Threshold]) -> list[str]:
    items = list(thresholds)
    width = max((len(t.name) for t in items), default=10) + 4
    return ["    " + t.line(width) for t in items]


def end_of_run(summary: RunSummary, *, exit_code: int, paths: Sequence[tuple[str, Path | None]],
               soak: dict[str, int] | None = None) -> list[str]:
    """The last lines of a run: totals across steps and soak, the verdict, the reports, what next."""
    s = summary
    passed = sum(1 for st in s.stages if st.outcome == "passed")
    lines = ["=" * 24 + " kong upgrade summary " + "=" * 24,
             f"plan {s.plan_name}: Kong {s.x_version} -> {s.y_version} ({s.mode}), splitter {s.splitter}",
             f"stages: {passed} of {len(s.stages)} passed"
             + "".join(f", {st.name} {st.outcome}" for st in s.stages if st.outcome not in ("passed", "not-run"))]
    if s.steps:
        lines.append(_steps_total(s.steps))
    if soak:
        lines.append(f"soak: {soak.get('requests', 0)} requests, {soak.get('x_hits', 0)} reached X, "
                     f"{soak.get('errors', 0)} failed")
    if s.rollback is not None:
        lines.append(f"rollback: all traffic on X {s.rollback.seconds_to_proof:.2f} s after the decision, "
                     f"{s.rollback.requests_after} requests after it, {s.rollback.y_hits_after} on Y")
    if s.findings:
        lines.append(f"findings: {len(s.findings)} rule(s): " + ", ".join(f.id for f in s.findings[:8])
                     + (" ..." if len(s.findings) > 8 else ""))
    word = {"not-judged": "COULD NOT JUDGE"}.get(s.verdict, s.verdict.upper())
    lines.append(f"verdict: {word}" + (f" (failed stage: {s.failing_stage})" if s.failing_stage else "")
                 + f", exit code {exit_code}")
    if s.headline:
        lines.append(f"why: {s.headline}")
    if s.next_step:
        lines.append(f"next: {s.next_step}")
    if s.resume_command:
        lines.append(f"resume: {s.resume_command}")
    lines += [f"{name}: {path}" for name, path in paths if path is not None]
    return lines


def _steps_total(steps: Sequence[StepResult]) -> str:
    requests = sum(st.requests for st in steps)
    errors_x = sum(st.errors_x for st in steps)
    errors_y = sum(st.errors_y for st in steps)
    outcome = ", ".join(f"{st.weight_y:g} % {st.outcome}" for st in steps)
    return f"traffic: {len(steps)} step(s) ({outcome}), {requests} requests, errors X {errors_x} / Y {errors_y}"
