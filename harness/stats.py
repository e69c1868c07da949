"""The statistics the gates use, on ``scipy.stats``: exact tests for counts, confidence bounds for
absolute limits, a rank test for latency.

Every test is one-sided and asks "is Y worse?"; none relies on a normal approximation for counts.

* **Y's error rate against X's: Fisher's exact test, one-sided** (``scipy.stats.fisher_exact``,
  ``alternative="greater"`` on the table [[Y failed, Y ok], [X failed, X ok]]). Conditional on the
  total number of failures, it asks how likely it is that at least as many of them landed on Y as
  did, when each failure is equally likely to be any of the answers (hypergeometric). Chosen over
  Boschloo's test (``scipy.stats.boschloo_exact``, unconditional, somewhat more powerful) because
  Boschloo maximises over the unknown common rate by enumerating every table: at a 5 % step with
  300 Y and 5,700 X answers that is 1.7 million tables per grid point and seconds of CPU per
  judgement, while Fisher's p is one hypergeometric tail. Fisher is conservative when failures are
  rare (the p-value is discrete), which is the side a gate should err on. One failure among 50 Y
  answers against none among 950 X answers gives p = 50/1000 = 0.05 (not significant at 0.01), where
  the normal approximation this module used to carry said 6.5e-06.
* **Absolute limits on a confidence bound** (Clopper-Pearson, ``scipy.stats.binomtest(...)
  .proportion_ci(method="exact")``, one-sided): an error rate is over its limit only when its lower
  bound at confidence 1 - alpha is. One failure in 50 answers (2 %, lower bound 0.02 %) is not over
  a 1 % limit; six are (12 %, lower bound 3.7 %). The bound is exactly the dual of the one-sided
  binomial test of ``rate <= limit`` (a property test pins it).
* **Latency percentiles on a distribution-free bound**: the lower confidence bound of the q-th
  percentile is an order statistic picked with the binomial distribution (no assumption on the
  latency distribution). A p99 is over its limit only when its lower bound is.
* **Latency shift: Mann-Whitney U** (``scipy.stats.mannwhitneyu``, one-sided "Y slower") of Y's
  latencies less the practical shift against X's, so the null hypothesis is "Y is at most
  ``margin_ms`` slower" and a small but highly significant shift on a big window does not fail.
  ``method="auto"``: scipy's exact distribution for small samples without ties, otherwise the normal
  approximation with the tie correction (probe latencies are rounded to the microsecond, so ties
  happen); the gates never compare fewer than ``min_samples`` answers a side.

For judging a step *while* it runs (looking every 250 ms) use :mod:`harness.sequential`: repeating
these fixed-sample tests at every look inflates the false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    ``values`` need not be sorted. None for an empty sequence.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    frac = pos - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def _check_counts(k: int, n: int) -> None:
    if n <= 0:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"failures must be within 0..n, got {k} of {n}")


@dataclass(frozen=True)
class CountComparison:
    """Fisher's exact one-sided test of "Y fails more often than X".

    ``odds_ratio`` is the sample odds ratio (inf when X has no failure and Y some; nan when neither
    side has a failure or a success to compare). ``p_value`` is the one-sided exact p.
    """

    failed_y: int
    n_y: int
    failed_x: int
    n_x: int
    rate_y: float
    rate_x: float
    difference: float      # rate_y - rate_x
    odds_ratio: float
    p_value: float


def compare_failures(failed_y: int, n_y: int, failed_x: int, n_x: int) -> CountComparison:
    """Fisher's exact test, one-sided: does Y fail more often than X? (see the module docstring)"""
    from scipy import stats  # imported when a gate judges: importing harness stays light

    _check_counts(failed_y, n_y)
    _check_counts(failed_x, n_x)
    table = [[failed_y, n_y - failed_y], [failed_x, n_x - failed_x]]
    result = stats.fisher_exact(table, alternative="greater")
    rate_y, rate_x = failed_y / n_y, failed_x / n_x
    return CountComparison(failed_y, n_y, failed_x, n_x, rate_y, rate_x, rate_y - rate_x,
                           float(result.statistic), min(1.0, float(result.pvalue)))


@dataclass(frozen=True)
class RateBound:
    """An observed rate with its one-sided Clopper-Pearson bounds at ``confidence``."""

    failed: int
    n: int
    rate: float
    lower: float           # P(true rate >= lower) >= confidence
    upper: float           # P(true rate <= upper) >= confidence
    confidence: float

    def over(self, limit: float) -> bool:
        """The rate is over ``limit`` beyond reasonable doubt: its lower bound is."""
        return self.lower > limit


def rate_bound(failed: int, n: int, confidence: float) -> RateBound:
    """Clopper-Pearson (exact) one-sided bounds of a binomial rate."""
    from scipy import stats  # imported when a gate judges: importing harness stays light

    _check_counts(failed, n)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    test = stats.binomtest(failed, n)
    lower = float(stats.binomtest(failed, n, alternative="greater").proportion_ci(confidence, method="exact").low)
    upper = float(stats.binomtest(failed, n, alternative="less").proportion_ci(confidence, method="exact").high)
    return RateBound(failed, n, float(test.statistic), lower, upper, confidence)


@dataclass(frozen=True)
class QuantileBound:
    """An observed percentile (``q`` in 0..100) with a distribution-free lower confidence bound.

    ``lower`` is None when there are too few values to bound it (e.g. p99 of 50 values at 99 %).
    """

    q: float
    n: int
    observed: float | None
    lower: float | None
    confidence: float

    def over(self, limit: float) -> bool:
        return self.lower is not None and self.lower > limit


def quantile_lower_bound(values: Sequence[float], q: float, confidence: float) -> QuantileBound:
    """The lower ``confidence`` bound of the ``q``-th percentile: the k-th smallest value, k the largest
    with P(Binomial(n, q/100) >= k) >= confidence.

    The k-th smallest of n values is at most the true quantile exactly when at least k values fall at
    or below it, which happens with probability P(Binomial(n, q/100) >= k) for any continuous
    distribution, so the bound holds whatever the latency distribution.
    """
    from scipy import stats  # imported when a gate judges: importing harness stays light

    if not 0 < q < 100:
        raise ValueError(f"percentile q must be within (0, 100), got {q}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    n = len(values)
    observed = percentile(values, q)
    if n == 0:
        return QuantileBound(q, 0, None, None, confidence)
    ks = np.arange(1, n + 1)
    ok = stats.binom.sf(ks - 1, n, q / 100.0) >= confidence    # P(Bin >= k), decreasing in k
    if not ok.any():
        return QuantileBound(q, n, observed, None, confidence)
    k = int(ks[ok].max())
    ordered = np.sort(np.asarray(values, dtype=float))
    return QuantileBound(q, n, observed, float(ordered[k - 1]), confidence)


@dataclass(frozen=True)
class ShiftTest:
    """Mann-Whitney U of (Y - margin) against X, one-sided "Y slower by more than ``margin_ms``".

    ``u`` counts the pairs with y - margin > x (ties one half); ``p_value`` is one-sided.
    ``median_shift_ms`` is the observed median of Y less the median of X (the figure shown).
    ``common_language`` = u / (n_y n_x): the chance a random Y answer, less the margin, is slower than
    a random X answer (0.5: no difference beyond the margin).
    """

    n_y: int
    n_x: int
    margin_ms: float
    median_shift_ms: float
    u: float
    p_value: float
    method: str

    @property
    def common_language(self) -> float:
        return self.u / (self.n_y * self.n_x)


def latency_shift(y_ms: Sequence[float], x_ms: Sequence[float], margin_ms: float = 0.0) -> ShiftTest:
    """Is Y slower than X by more than ``margin_ms``? (scipy's Mann-Whitney U, see the module docstring)"""
    from scipy import stats  # imported when a gate judges: importing harness stays light

    if not y_ms or not x_ms:
        raise ValueError(f"both samples need at least one value, got {len(y_ms)} and {len(x_ms)}")
    y = np.asarray(y_ms, dtype=float)
    x = np.asarray(x_ms, dtype=float)
    shifted = y - margin_ms
    if np.ptp(np.concatenate([shifted, x])) == 0:         # every value equal: nothing to rank
        u, p, method = len(y) * len(x) / 2.0, 1.0, "none (all values equal)"
    else:
        method = "auto"
        result = stats.mannwhitneyu(shifted, x, alternative="greater", method=method)
        u, p = float(result.statistic), float(result.pvalue)
    return ShiftTest(len(y), len(x), margin_ms, float(np.median(y) - np.median(x)), u, min(1.0, p), method)
