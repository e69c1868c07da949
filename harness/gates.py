"""Judging one traffic step: pass, fail or inconclusive, always with the figures behind it.

A step's probe window is judged by four kinds of check (the statistics are :mod:`harness.stats`):

* data: the probe could measure (its own errors and unattributed answers, and its late sends, each
  within ``max_probe_error_rate``), and Y (and X, or a baseline) has ``min_samples`` answers;
  falling short makes the step INCONCLUSIVE, never a pass;
* absolute: each side's error rate within ``max_error_rate`` and p99 within ``max_p99_ms``, each
  judged on a one-sided confidence bound at 1 - ``alpha``: a rate (Clopper-Pearson) or a p99
  (order statistic) is over its limit only when its *lower bound* is, so one stray 5xx among 50 Y
  answers (2 %, bound 0.02 %) does not fail a 1 % limit, six do (12 %, bound 3.7 %);
* error rate Y against X: Fisher's exact test, one-sided, significant at ``alpha`` AND Y's rate
  above X's by more than ``max_error_rate_delta``; both are needed, so a tiny but "significant"
  difference on a big window does not fail, nor a big but noisy one on a small window;
* latency Y against X: Mann-Whitney U of (Y - ``max_latency_shift_ms``) against X, one-sided,
  significant at ``alpha``: the null hypothesis is "Y at most the practical shift slower", so the
  test itself holds the practical limit (the figure shown is the observed median shift).

**Overload is not a verdict.** When the probe could not keep its schedule (late sends) or lost
answers (its own errors, unattributed answers) beyond ``max_probe_error_rate``, its latencies and
absolute rates describe the harness as much as the gateway: the absolute checks then say
"inconclusive: the harness could not measure" instead of failing Y. The comparisons of Y with X in
the same window stay in force, since both sides met the same probe.

Each check is one one-sided test at ``alpha``; a window runs at most six (two rates, two p99s, two
comparisons), so its chance of failing a healthy pair of clusters is at most 6 ``alpha`` (Bonferroni;
pass a split alpha, :func:`harness.sequential.split_alpha`, to hold a whole run's rate).

At 100 % Y the window has no X sample: the comparisons use the caller's ``baseline`` window (the
last one where X had traffic) and say so. ``observe_only`` (or ``observe_only_checks`` for single
checks) turns a fail into a pass with warnings; the checks keep their figures and their ``passed``
value. Missing data stays inconclusive even when observing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from harness.errors import HarnessError
from harness.model import ProbeWindow, SideFigures
from harness.stats import compare_failures, latency_shift, quantile_lower_bound, rate_bound

Outcome = Literal["pass", "fail", "inconclusive"]

CHECK_NAMES = (
    "probe_errors", "probe_late", "samples_y", "samples_x", "error_rate_x", "p99_x", "error_rate_y", "p99_y",
    "error_rate_delta", "latency_shift", "comparison",
)
#: the checks a probe that could not keep up cannot vouch for (see "Overload is not a verdict")
ABSOLUTE_CHECKS = ("error_rate_x", "p99_x", "error_rate_y", "p99_y")
COULD_NOT_MEASURE = "inconclusive: the harness could not measure"


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of one gate. Rates are fractions (0.01 = 1 %), latencies milliseconds."""

    max_error_rate: float = 0.01
    max_p99_ms: float = 1000.0
    max_error_rate_delta: float = 0.005
    max_latency_shift_ms: float = 25.0
    alpha: float = 0.01                    # each fixed-window check's
    min_samples: int = 100
    max_probe_error_rate: float = 0.01
    observe_only: bool = False
    observe_only_checks: tuple[str, ...] = ()   # names of single checks that only observe
    sequential_alpha: float | None = None       # each sequential test's (None: ``alpha``)

    @property
    def each_sequential_alpha(self) -> float:
        """A sequential test's alpha: ``sequential_alpha`` when the split gives one, else ``alpha``."""
        return self.alpha if self.sequential_alpha is None else self.sequential_alpha

    def __post_init__(self) -> None:
        object.__setattr__(self, "observe_only_checks", tuple(self.observe_only_checks))
        unknown = sorted(set(self.observe_only_checks) - set(CHECK_NAMES))
        if unknown:
            raise HarnessError(f"gate observe_only_checks names unknown checks {unknown}",
                               hint=f"use some of: {', '.join(CHECK_NAMES)}")
        for name in ("max_error_rate", "max_error_rate_delta", "max_probe_error_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise HarnessError(f"gate {name}={value} is invalid; expected a fraction 0..1",
                                   hint=f"write rates as fractions: {name}: 0.01 means 1 %")
        for value in (self.alpha, self.each_sequential_alpha):
            if not 0 < value < 1:
                raise HarnessError(f"gate alpha={value} is invalid; expected 0 < alpha < 1",
                                   hint="set gates.alpha to the false-alarm probability you accept, e.g. 0.01")
        for name in ("max_p99_ms", "max_latency_shift_ms"):
            if getattr(self, name) < 0:
                raise HarnessError(f"gate {name}={getattr(self, name)} is invalid; expected >= 0 ms",
                                   hint=f"set gates.{name} to a latency in milliseconds, e.g. 25")
        if self.min_samples < 1:
            raise HarnessError(f"gate min_samples={self.min_samples} is invalid; expected at least 1",
                               hint="set gates.min_samples to the answers each side needs, e.g. 50")


@dataclass(frozen=True)
class GateCheck:
    """One check: its observed figure, the bound it was judged on, the limit, the p-value, the verdict.

    ``outcome`` is what the check means for the step: "pass", "fail" or "inconclusive" (then
    ``passed`` is None: there was not enough to judge). ``bound`` is the confidence bound the
    figure was judged on (None where the check is judged on a test, or the figure itself);
    ``p_value`` is the one-sided p of the check's test (None where there is no test).
    """

    name: str
    figure: float | None
    limit: float | None
    passed: bool | None
    explanation: str
    outcome: Outcome = "pass"
    details: dict[str, object] = field(default_factory=dict)
    bound: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class GateResult:
    outcome: Outcome
    checks: tuple[GateCheck, ...]
    warnings: tuple[str, ...] = ()
    observe_only: bool = False
    compared_with: str = "same window"   # or "baseline window '<label>'" at 100 % Y

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

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome, "observe_only": self.observe_only, "compared_with": self.compared_with,
            "warnings": list(self.warnings), "checks": [asdict(c) for c in self.checks],
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _p(value: float) -> str:
    return f"{value:.3g}"


def _data_checks(window: ProbeWindow, reference: SideFigures, ref_name: str,
                 config: GateConfig) -> tuple[list[GateCheck], str | None]:
    """The data checks, and why the probe could not measure (None when it could)."""
    checks = []
    budget = config.max_probe_error_rate
    overload: str | None = None
    if window.count == 0:
        checks.append(GateCheck("probe_errors", None, budget, None,
                                "the probe recorded no requests in this window: nothing to judge",
                                "inconclusive"))
    else:
        rate = window.probe_error_rate or 0.0
        ok = rate <= budget
        if not ok:
            overload = f"{_pct(rate)} of its requests got no attributable answer"
        checks.append(GateCheck(
            "probe_errors", rate, budget, True if ok else None,
            f"{window.probe_errors} probe errors and {window.unattributed} unattributed answers in "
            f"{window.count} requests ({_pct(rate)}; budget {_pct(budget)})"
            + ("" if ok else f": {COULD_NOT_MEASURE}"),
            "pass" if ok else "inconclusive",
            {"probe_errors": window.probe_errors, "unattributed": window.unattributed, "count": window.count},
        ))
        late = window.late / window.count
        ok = late <= budget
        if not ok:
            overload = (overload + "; " if overload else "") + (
                f"{_pct(late)} of its requests went out more than {window.LATE_MS:g} ms late")
        checks.append(GateCheck(
            "probe_late", late, budget, True if ok else None,
            f"{window.late} of {window.count} requests sent more than {window.LATE_MS:g} ms after their "
            f"scheduled time ({_pct(late)}; budget {_pct(budget)}; lag p99 {_ms(window.lag_p99_ms)})"
            + ("" if ok else f": {COULD_NOT_MEASURE} (the probe could not keep its schedule; lower probe.rate)"),
            "pass" if ok else "inconclusive",
            {"late": window.late, "count": window.count, "lag_p99_ms": window.lag_p99_ms},
        ))
    for label, figures in (("y", window.y), (ref_name, reference)):
        ok = figures.count >= config.min_samples
        checks.append(GateCheck(
            f"samples_{'y' if label == 'y' else 'x'}", figures.count, config.min_samples, ok if ok else None,
            f"{figures.count} answers from {label.upper() if len(label) == 1 else label} "
            f"(need {config.min_samples})" + ("" if ok else ": too few to judge"),
            "pass" if ok else "inconclusive",
        ))
    return checks, overload


def _absolute_checks(window: ProbeWindow, config: GateConfig, overload: str | None) -> list[GateCheck]:
    checks = []
    confidence = 1 - config.alpha
    for side in (window.x, window.y):
        if side.count == 0:
            continue
        name = side.side.upper()
        bound = rate_bound(side.failed, side.count, confidence)
        over = bound.over(config.max_error_rate)
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(side.statuses.items()))
        checks.append(GateCheck(
            f"error_rate_{side.side}", bound.rate, config.max_error_rate, not over,
            f"{name}: {side.failed} of {side.count} answers failed ({_pct(bound.rate)}, "
            f"{100 * confidence:g} % lower bound {_pct(bound.lower)}, limit {_pct(config.max_error_rate)}; "
            f"statuses {statuses})"
            + (f": {name}'s error rate is over the limit beyond reasonable doubt" if over else ""),
            "fail" if over else "pass",
            {"failed": side.failed, "count": side.count, "upper": bound.upper, "confidence": confidence},
            bound=bound.lower,
        ))
        p99 = quantile_lower_bound(side.latencies_ms, 99, confidence)
        over = p99.over(config.max_p99_ms)
        checks.append(GateCheck(
            f"p99_{side.side}", p99.observed, config.max_p99_ms, not over,
            f"{name}: p99 {_ms(p99.observed)} ({100 * confidence:g} % lower bound {_ms(p99.lower)}, limit "
            f"{_ms(config.max_p99_ms)}; p50 {_ms(side.p50_ms)})"
            + (f": {name}'s p99 is over the limit beyond reasonable doubt" if over else ""),
            "fail" if over else "pass", {"confidence": confidence}, bound=p99.lower,
        ))
    if overload is not None:       # the figures stay; the verdict is withheld
        checks = [c if c.outcome != "fail" else GateCheck(
            c.name, c.figure, c.limit, None,
            f"{c.explanation}; {COULD_NOT_MEASURE} ({overload}), so this is not held against "
            f"{c.name[-1].upper()}", "inconclusive", c.details, c.bound, c.p_value,
        ) for c in checks]
    return checks


def _comparison_checks(y: SideFigures, x: SideFigures, ref_name: str, config: GateConfig) -> list[GateCheck]:
    test = compare_failures(y.failed, y.count, x.failed, x.count)
    significant = test.p_value < config.alpha
    large = test.difference > config.max_error_rate_delta
    ok = not (significant and large)
    error_check = GateCheck(
        "error_rate_delta", test.difference, config.max_error_rate_delta, ok,
        f"Y {y.failed}/{y.count} ({_pct(test.rate_y)}) vs {ref_name} {x.failed}/{x.count} ({_pct(test.rate_x)}): "
        f"difference {_pct(test.difference)} (practical limit {_pct(config.max_error_rate_delta)}), "
        f"Fisher's exact one-sided p = {_p(test.p_value)} (alpha {config.alpha:g})"
        + ("" if ok else ": Y fails more often than X, beyond chance and beyond the limit"),
        "pass" if ok else "fail",
        {"rate_y": test.rate_y, "rate_x": test.rate_x, "odds_ratio": test.odds_ratio, "test": "fisher_exact"},
        p_value=test.p_value,
    )
    shift = latency_shift(y.latencies_ms, x.latencies_ms, config.max_latency_shift_ms)
    ok = not shift.p_value < config.alpha
    latency_check = GateCheck(
        "latency_shift", shift.median_shift_ms, config.max_latency_shift_ms, ok,
        f"median Y - {ref_name} = {shift.median_shift_ms:+.1f} ms (practical limit "
        f"{config.max_latency_shift_ms:g} ms); Mann-Whitney U of Y - {config.max_latency_shift_ms:g} ms against "
        f"{ref_name}: one-sided p = {_p(shift.p_value)} (alpha {config.alpha:g}), "
        f"P(Y - limit slower) = {shift.common_language:.2f}"
        + ("" if ok else f": Y is slower than X by more than {config.max_latency_shift_ms:g} ms, beyond chance"),
        "pass" if ok else "fail",
        {"u": shift.u, "common_language": shift.common_language, "method": shift.method,
         "test": "mannwhitneyu"},
        p_value=shift.p_value,
    )
    return [error_check, latency_check]


def judge(window: ProbeWindow, config: GateConfig, *, baseline: ProbeWindow | None = None) -> GateResult:
    """Judge one step's window. ``baseline`` stands in for X when the window has too few X answers."""
    reference, ref_name, compared_with = window.x, "X", "same window"
    if window.x.count < config.min_samples and baseline is not None and baseline.x.count:
        reference, ref_name = baseline.x, "X (baseline)"
        compared_with = f"baseline window '{baseline.label or 'unlabelled'}'"

    checks, overload = _data_checks(window, reference, ref_name, config)
    checks += _absolute_checks(window, config, overload)
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
