"""The statistics the gates use, written out (no scipy): percentiles, a two-proportion z test and
the Mann-Whitney U test, both with the normal approximation.

Windows hold hundreds to thousands of samples, where the normal approximation is good. Below
about 20 samples per group the p-values are rough; the gates never judge that few (min_samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alternative = Literal["greater", "less", "two-sided"]


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_cdf(z: float) -> float:
    """P(Z <= z) for a standard normal Z."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _p_value(z: float, alternative: Alternative) -> float:
    if alternative == "greater":
        return normal_sf(z)
    if alternative == "less":
        return normal_cdf(z)
    if alternative == "two-sided":
        return min(1.0, 2.0 * normal_sf(abs(z)))
    raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")


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


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion z test of group A's rate against group B's (pooled standard error)."""

    rate_a: float
    rate_b: float
    difference: float       # rate_a - rate_b
    z: float
    p_value: float
    alternative: Alternative


def two_proportion_z(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alternative: Alternative = "greater"
) -> ProportionTest:
    """Test whether group A's proportion differs from group B's ("greater": A's is higher).

    z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p = (k_a + k_b) / (n_a + n_b).
    When neither group has any event (or every trial is one), the groups cannot differ: z = 0 and
    the p-value is 1.
    """
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"both groups need at least one trial, got n_a={n_a}, n_b={n_b}")
    for k, n in ((successes_a, n_a), (successes_b, n_b)):
        if not 0 <= k <= n:
            raise ValueError(f"successes must be within 0..n, got {k} of {n}")
    rate_a, rate_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return ProportionTest(rate_a, rate_b, rate_a - rate_b, 0.0, 1.0, alternative)
    z = (rate_a - rate_b) / se
    return ProportionTest(rate_a, rate_b, rate_a - rate_b, z, _p_value(z, alternative), alternative)


@dataclass(frozen=True)
class MannWhitneyResult:
    """Mann-Whitney U of sample A against sample B.

    ``u`` is A's statistic: the number of (a, b) pairs with a > b, ties counting one half. Under
    "no difference" its mean is n_a n_b / 2. ``common_language`` = u / (n_a n_b) is the chance a
    random A value exceeds a random B value.
    """

    u: float
    n_a: int
    n_b: int
    z: float
    p_value: float
    alternative: Alternative

    @property
    def common_language(self) -> float:
        return self.u / (self.n_a * self.n_b)


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based, ties averaged) of ``values`` in their order, and the tie group sizes."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mid = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney_u(
    a: Sequence[float], b: Sequence[float], alternative: Alternative = "greater"
) -> MannWhitneyResult:
    """Mann-Whitney U test, normal approximation with tie correction and continuity correction.

    "greater": A tends to be larger than B (for latencies: A slower).

    U_a = R_a - n_a (n_a + 1) / 2, where R_a is the sum of A's mid-ranks in the pooled sample.
    sigma^2 = n_a n_b / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))) over tie groups of size t.
    z = (U_a - n_a n_b / 2 -/+ 0.5) / sigma, the 0.5 taken towards the mean.
    """
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        raise ValueError(f"both samples need at least one value, got {n_a} and {n_b}")
    pooled = [*a, *b]
    ranks, ties = _ranks(pooled)
    r_a = sum(ranks[:n_a])
    u_a = r_a - n_a * (n_a + 1) / 2.0
    n = n_a + n_b
    mean = n_a * n_b / 2.0
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n_a * n_b / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return MannWhitneyResult(u_a, n_a, n_b, 0.0, 1.0, alternative)
    sd = math.sqrt(variance)
    diff = u_a - mean
    if alternative == "greater":
        z = (diff - 0.5) / sd
    elif alternative == "less":
        z = (diff + 0.5) / sd
    else:
        z = (diff - math.copysign(0.5, diff)) / sd if abs(diff) >= 0.5 else 0.0
    return MannWhitneyResult(u_a, n_a, n_b, z, _p_value(z, alternative), alternative)
