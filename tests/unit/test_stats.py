"""The gates' statistics: the issue's cases worked by hand, and agreement with scipy.stats where each
function is a formulation of its own (table orientation, sidedness, bound/test duality)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness.stats import (
    compare_failures,
    latency_shift,
    median,
    percentile,
    quantile_lower_bound,
    rate_bound,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    """[4, 1, 3, 2] sorted is 1 2 3 4: p50 sits halfway between 2 and 3; p99 at 3 + 0.97."""
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([4, 1, 3, 2], 99) == pytest.approx(3.97)
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4
    assert percentile([], 50) is None
    assert median([7.0]) == 7.0
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_one_failure_of_fifty_against_none_of_950_is_not_significant() -> None:
    """Conditional on 1 failure among 1,000 answers, it lands on one of Y's 50 with chance 50/1000."""
    test = compare_failures(1, 50, 0, 950)
    assert test.p_value == pytest.approx(0.05)
    assert not test.p_value < 0.01
    assert test.rate_y == pytest.approx(0.02) and test.rate_x == 0.0
    assert test.difference == pytest.approx(0.02)


def test_three_failures_of_25_against_none_of_475_is_significant() -> None:
    """All 3 of 3 failures on Y: C(25, 3) / C(500, 3) = 2300 / 20708500 = 1.11e-4."""
    test = compare_failures(3, 25, 0, 475)
    assert test.p_value == pytest.approx(2300 / 20708500)
    assert test.p_value < 0.01


def test_no_failure_anywhere_cannot_be_significant() -> None:
    test = compare_failures(0, 300, 0, 2700)
    assert test.p_value == 1.0 and test.difference == 0.0


def test_fewer_failures_on_y_is_not_evidence_against_y() -> None:
    assert compare_failures(0, 500, 30, 500).p_value == pytest.approx(1.0)


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        compare_failures(0, 0, 1, 10)
    with pytest.raises(ValueError, match=r"within 0\.\.n"):
        compare_failures(11, 10, 1, 10)
    with pytest.raises(ValueError, match="confidence"):
        rate_bound(1, 10, 1.0)


def test_one_failure_in_fifty_is_not_over_a_one_percent_limit_six_are() -> None:
    one = rate_bound(1, 50, 0.99)
    assert one.rate == pytest.approx(0.02)
    assert one.lower == pytest.approx(0.000201, abs=1e-6)
    assert not one.over(0.01)
    six = rate_bound(6, 50, 0.99)
    assert six.lower == pytest.approx(0.0369, abs=5e-5)   # the "99 % lower bound 3.7 %"
    assert six.over(0.01)
    assert six.lower < six.rate < six.upper


def test_no_failure_has_a_zero_lower_bound() -> None:
    """0 of n: lower 0, upper 1 - (1 - c)^(1/n) (Clopper-Pearson with k = 0, the 'rule of three' at 95 %)."""
    bound = rate_bound(0, 300, 0.95)
    assert bound.lower == 0.0
    assert bound.upper == pytest.approx(1 - 0.05 ** (1 / 300))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400), st.integers(1, 4000), st.data())
def test_fisher_agrees_with_the_hypergeometric_tail_and_scipy(n_y: int, n_x: int, data: st.DataObject) -> None:
    """p = P(J >= failed_y) for J ~ Hypergeometric(n_y + n_x answers, n_y of them Y, failed draws)."""
    failed_y = data.draw(st.integers(0, n_y))
    failed_x = data.draw(st.integers(0, n_x))
    ours = compare_failures(failed_y, n_y, failed_x, n_x)
    tail = stats.hypergeom.sf(failed_y - 1, n_y + n_x, n_y, failed_y + failed_x)
    assert ours.p_value == pytest.approx(min(1.0, tail), rel=1e-9, abs=1e-12)
    reference = stats.fisher_exact([[failed_y, n_y - failed_y], [failed_x, n_x - failed_x]], alternative="greater")
    assert ours.p_value == pytest.approx(min(1.0, reference.pvalue), rel=1e-12, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.data(), st.sampled_from([0.9, 0.95, 0.99, 0.999]),
       st.floats(0.0005, 0.5))
def test_rate_bound_is_the_dual_of_the_one_sided_binomial_test(n: int, data: st.DataObject, confidence: float,
                                                                limit: float) -> None:
    """Lower bound over the limit <=> binomtest(k, n, limit, 'greater') rejects at 1 - confidence."""
    k = data.draw(st.integers(0, n))
    bound = rate_bound(k, n, confidence)
    p = stats.binomtest(k, n, limit, alternative="greater").pvalue
    if not math.isclose(p, 1 - confidence, rel_tol=1e-6):     # exactly at the edge either answer is right
        assert bound.over(limit) == (p < 1 - confidence)
    assert 0.0 <= bound.lower <= k / n <= bound.upper <= 1.0
    if k > 0:   # at the bound, P(X >= k) is exactly 1 - confidence
        assert stats.binom.sf(k - 1, n, bound.lower) == pytest.approx(1 - confidence, rel=1e-6)


def test_quantile_bound_is_the_order_statistic_the_binomial_picks() -> None:
    """n = 100, q = 99 %, confidence 99 %: P(Bin(100, .99) >= 96) = 0.9966 >= .99 and >= 97 is 0.9816 < .99,
    so the bound is the 96th smallest value: a p99 is over a limit only when 5 or more values are."""
    values = list(range(1, 101))
    bound = quantile_lower_bound(values, 99, 0.99)
    assert bound.lower == 96
    assert bound.observed == pytest.approx(99.01)
    assert bound.over(95.5) and not bound.over(96)
    few = quantile_lower_bound([1.0], 99, 0.999)
    assert few.lower is None and not few.over(0)
    assert quantile_lower_bound([], 99, 0.99).observed is None


def test_quantile_bound_covers_the_true_quantile_as_often_as_promised() -> None:
    """Simulated coverage of the true p99 of Exp(1) (ln 100) by the 95 % bound: at least 95 % of 2,000 draws."""
    rng = np.random.default_rng(7)
    true_p99 = math.log(100)
    covered = sum(
        (quantile_lower_bound(rng.exponential(size=300).tolist(), 99, 0.95).lower or -1) <= true_p99
        for _ in range(2000)
    )
    assert covered / 2000 >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / 2000)


def test_latency_shift_holds_the_practical_margin() -> None:
    """Y is X + 3 ms on 5,000 answers a side: highly significant at margin 0, not beyond a margin of 20 ms."""
    rng = np.random.default_rng(1)
    x = rng.uniform(8, 14, 5000).tolist()
    y = (rng.uniform(8, 14, 5000) + 3).tolist()
    assert latency_shift(y, x, 0.0).p_value < 1e-6
    beyond = latency_shift(y, x, 20.0)
    assert beyond.p_value > 0.5
    assert beyond.median_shift_ms == pytest.approx(3, abs=0.3)
    slow = latency_shift((np.asarray(x[:300]) + 50).tolist(), x, 20.0)
    assert slow.p_value < 1e-10 and slow.common_language > 0.99


def test_latency_shift_with_ties_by_hand() -> None:
    """a = 3 4 2 6 2 5 (Y), b = 9 7 5 10 6 8 (X), margin 0: U_a = 2 of 36 pairs (ties one half).

    The 'greater' p-value is then close to 1, and the same data the other way round is significant."""
    a, b = [3, 4, 2, 6, 2, 5], [9, 7, 5, 10, 6, 8]
    result = latency_shift(a, b)
    assert result.u == pytest.approx(2.0)
    assert result.common_language == pytest.approx(2 / 36)
    assert result.p_value > 0.98
    other = latency_shift(b, a)
    assert other.u == pytest.approx(34.0)
    assert other.p_value == pytest.approx(stats.mannwhitneyu(b, a, alternative="greater").pvalue)
    assert other.p_value < 0.01


def test_latency_shift_of_identical_samples_shows_nothing() -> None:
    result = latency_shift([5.0] * 40, [5.0] * 60)
    assert result.p_value == 1.0
    assert result.u == pytest.approx(40 * 60 / 2)
    with pytest.raises(ValueError, match="at least one value"):
        latency_shift([], [1.0])
