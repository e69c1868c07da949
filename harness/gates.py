"""Judging one traffic step: pass, fail or inconclusive, always with the figures behind it.

A step's probe window is judged by four kinds of check:

* data: enough probe traffic got an attributable answer (probe errors and unattributed answers
  within ``max_probe_error_rate``), and Y (and X, or a baseline) has ``min_samples`` answers;
  falling short makes the step INCONCLUSIVE, never a pass;
* absolute: each side's error rate within ``max_error_rate`` and p99 within ``max_p99_ms``;
* error rate Y against X: Y's rate higher than X's by more than ``max_error_rate_delta`` AND a
  one-sided two-proportion z test significant at ``alpha``; both are needed, so a tiny but
  "significant" difference on a big window or a big but noisy one on a small window does not fail;
* latency Y against X: Mann-Whitney U (one-sided: Y slower) significant at ``alpha`` AND Y's
  median above X's by more than ``max_latency_shift_ms`` (the practical shift).

At 100 % Y the window has no X sample: the comparisons use the caller's ``baseline`` window (the
last one where X had traffic) and say so. ``observe_only`` (or ``observe_only_checks`` for single
checks) turns a fail into a pass with warnings; the checks keep their figures and their ``passed``
value. Missing data stays inconclusive even when observing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.errors import HarnessError
from harness.stats import mann_whitney_u, median, two_proportion_z
from harness.traffic.probe import ProbeWindow, SideFigures

Outcome = Literal["pass", "fail", "inconclusive"]

CHECK_NAMES = (
    "probe_errors", "samples_y", "samples_x", "error_rate_x", "p99_x", "error_rate_y", "p99_y",
    "error_rate_delta", "latency_shift", "comparison",
)


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of one gate. Rates are fractions (0.01 = 1 %), latencies milliseconds."""

    max_error_rate: float = 0.01
    max_p99_ms: float = 1000.0
    max_error_rate_delta: float = 0.005
    max_latency_shift_ms: float = 25.0
    alpha: float = 0.01
    min_samples: int = 100
    max_probe_error_rate: float = 0.01
    observe_only: bool = False
    observe_only_checks: tuple[str, ...] = ()   # names of single checks that only observe

    def __post_init__(self) -> None:
        object.__setattr__(self, "observe_only_checks", tuple(self.observe_only_checks))
        unknown = sorted(set(self.observe_only_checks) - set(CHECK_NAMES))
        if unknown:
            raise HarnessError(
                f"gate observe_only_checks names unknown checks {unknown}; valid: {', '.join(CHECK_NAMES)}"
            )
        for name in ("max_error_rate", "max_error_rate_delta", "max_probe_error_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise HarnessError(f"gate {name}={value} is invalid; expected a fraction 0..1 (0.01 = 1 %)")
        if not 0 < self.alpha < 1:
            raise HarnessError(f"gate alpha={self.alpha} is invalid; expected 0 < alpha < 1, e.g. 0.01")
        for name in ("max_p99_ms", "max_latency_shift_ms"):
            if getattr(self, name) < 0:
                raise HarnessError(f"gate {name}={getattr(self, name)} is invalid; expected >= 0 ms")
        if self.min_samples < 1:
            raise HarnessError(f"gate min_samples={self.min_samples} is invalid; expected at least 1")


@dataclass(frozen=True)
class GateCheck:
    """One check: its figure, the limit it was held to, and whether it held.

    ``outcome`` is what the check means for the step: "pass", "fail" or "inconclusive" (then
    ``passed`` is None: there was not enough to judge).
    """

    name: str
    figure: float | None
    limit: float | None
    passed: bool | None
    explanation: str
    outcome: Outcome = "pass"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    outcome: Outcome
    checks: tuple[GateCheck, ...]
    warnings: tuple[str, ...] = ()
    observe_only: bool = False
    compared_with: str = "same window"   # or "baseline window '<label>'" at 100 % Y

    @property
    def failed_checks(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if c.outcome == "fail")

    def check(self, name: str) -> GateCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no gate check named {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def summary(self) -> str:
        lines = [f"gate {self.outcome.upper()} (compared with {self.compared_with})"]
        for c in self.checks:
            mark = {"pass": "ok  ", "fail": "FAIL", "inconclusive": "??  "}[c.outcome]
            lines.append(f"  {mark} {c.name}: {c.explanation}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "observe_only": self.observe_only, "compared_with": self.compared_with,
            "warnings": list(self.warnings), "checks": [asdict(c) for c in self.checks],
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _data_checks(window: ProbeWindow, reference: SideFigures, ref_name: str,
                 config: GateConfig) -> list[GateCheck]:
    checks = []
    if window.count == 0:
        checks.append(GateCheck("probe_errors", None, config.max_probe_error_rate, None,
                                "the probe recorded no requests in this window: nothing to judge",
                                "inconclusive"))
    else:
        rate = window.probe_error_rate or 0.0
        ok = rate <= config.max_probe_error_rate
        checks.append(GateCheck(
            "probe_errors", rate, config.max_probe_error_rate, ok,
            f"{window.probe_errors} probe errors and {window.unattributed} unattributed answers in "
            f"{window.count} requests ({_pct(rate)}; budget {_pct(config.max_probe_error_rate)})"
            + ("" if ok else ": the probe cannot vouch for this window"),
            "pass" if ok else "inconclusive",
            {"probe_errors": window.probe_errors, "unattributed": window.unattributed, "count": window.count},
        ))
    for label, figures in (("y", window.y), (ref_name, reference)):
        ok = figures.count >= config.min_samples
        checks.append(GateCheck(
            f"samples_{'y' if label == 'y' else 'x'}", figures.count, config.min_samples, ok if ok else None,
            f"{figures.count} answers from {label.upper() if len(label) == 1 else label} "
            f"(need {config.min_samples})" + ("" if ok else ": too few to judge"),
            "pass" if ok else "inconclusive",
        ))
    return checks


def _absolute_checks(window: ProbeWindow, config: GateConfig) -> list[GateCheck]:
    checks = []
    for side in (window.x, window.y):
        if side.count == 0:
            continue
        rate = side.error_rate or 0.0
        ok = rate <= config.max_error_rate
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(side.statuses.items()))
        checks.append(GateCheck(
            f"error_rate_{side.side}", rate, config.max_error_rate, ok,
            f"{side.side.upper()}: {side.failed} of {side.count} answers failed ({_pct(rate)}, limit "
            f"{_pct(config.max_error_rate)}; statuses {statuses})",
            "pass" if ok else "fail", {"failed": side.failed, "count": side.count},
        ))
        p99 = side.p99_ms or 0.0
        ok = p99 <= config.max_p99_ms
        checks.append(GateCheck(
            f"p99_{side.side}", p99, config.max_p99_ms, ok,
            f"{side.side.upper()}: p99 {_ms(p99)} (limit {_ms(config.max_p99_ms)}; p50 {_ms(side.p50_ms)})",
            "pass" if ok else "fail",
        ))
    return checks


def _comparison_checks(y: SideFigures, x: SideFigures, ref_name: str, config: GateConfig) -> list[GateCheck]:
    test = two_proportion_z(y.failed, y.count, x.failed, x.count, alternative="greater")
    significant = test.p_value < config.alpha
    large = test.difference > config.max_error_rate_delta
    ok = not (significant and large)
    error_check = GateCheck(
        "error_rate_delta", test.difference, config.max_error_rate_delta, ok,
        f"Y {_pct(test.rate_a)} vs {ref_name} {_pct(test.rate_b)}: difference {_pct(test.difference)} "
        f"(practical limit {_pct(config.max_error_rate_delta)}), z = {test.z:.2f}, one-sided p = "
        f"{test.p_value:.3g} (alpha {config.alpha})"
        + ("" if ok else ": Y fails more often than X, beyond chance and beyond the limit"),
        "pass" if ok else "fail",
        {"z": test.z, "p_value": test.p_value, "rate_y": test.rate_a, "rate_x": test.rate_b},
    )
    mwu = mann_whitney_u(y.latencies_ms, x.latencies_ms, alternative="greater")
    shift = (median(y.latencies_ms) or 0.0) - (median(x.latencies_ms) or 0.0)
    significant = mwu.p_value < config.alpha
    large = shift > config.max_latency_shift_ms
    ok = not (significant and large)
    latency_check = GateCheck(
        "latency_shift", shift, config.max_latency_shift_ms, ok,
        f"median Y - {ref_name} = {shift:+.1f} ms (practical limit {config.max_latency_shift_ms:g} ms); "
        f"Mann-Whitney U = {mwu.u:.0f}, z = {mwu.z:.2f}, one-sided p = {mwu.p_value:.3g} (alpha "
        f"{config.alpha}), P(Y slower) = {mwu.common_language:.2f}"
        + ("" if ok else ": Y is slower than X, beyond chance and beyond the limit"),
        "pass" if ok else "fail",
        {"u": mwu.u, "z": mwu.z, "p_value": mwu.p_value, "common_language": mwu.common_language},
    )
    return [error_check, latency_check]


def judge(window: ProbeWindow, config: GateConfig, *, baseline: ProbeWindow | None = None) -> GateResult:
    """Judge one step's window. ``baseline`` stands in for X when the window has too few X answers."""
    reference, ref_name, compared_with = window.x, "X", "same window"
    if window.x.count < config.min_samples and baseline is not None and baseline.x.count:
        reference, ref_name = baseline.x, "X (baseline)"
        compared_with = f"baseline window '{baseline.label or 'unlabelled'}'"

    checks = _data_checks(window, reference, ref_name, config)
    checks += _absolute_checks(window, config)
    enough = window.y.count >= config.min_samples and reference.count >= config.min_samples
    if enough:
        checks += _comparison_checks(window.y, reference, ref_name, config)
    else:
        checks.append(GateCheck(
            "comparison", None, None, None,
            f"Y against {ref_name} not compared: {window.y.count} Y and {reference.count} {ref_name} "
            f"answers, need {config.min_samples} each"
            + ("" if baseline or window.x.count else
               "; at 100 % Y pass the last window with X traffic as baseline"),
            "inconclusive",
        ))

    observing = [c for c in checks if c.outcome == "fail"
                 and (config.observe_only or c.name in config.observe_only_checks)]
    warnings = tuple(f"observe-only: {c.name} failed: {c.explanation}" for c in observing)
    if any(c.outcome == "fail" and c not in observing for c in checks):
        outcome: Outcome = "fail"
    elif any(c.outcome == "inconclusive" for c in checks):
        outcome = "inconclusive"
    else:
        outcome = "pass"   # with warnings when an observe-only check failed
    return GateResult(outcome, tuple(checks), warnings, config.observe_only, compared_with)
