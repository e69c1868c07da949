"""The gates' statistics against values worked out by hand (the arithmetic is in each docstring)."""

from __future__ import annotations

import math

import pytest

from harness.stats import (
    mann_whitney_u,
    median,
    normal_cdf,
    normal_sf,
    percentile,
    two_proportion_z,
)


def test_normal_tails_match_table_values() -> None:
    assert normal_cdf(0.0) == pytest.approx(0.5)
    assert normal_sf(1.959964) == pytest.approx(0.025, abs=1e-6)
    assert normal_cdf(-2.326348) == pytest.approx(0.01, abs=1e-6)
    assert normal_sf(3.0) == pytest.approx(0.0013499, abs=1e-7)


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


def test_two_proportion_z_by_hand() -> None:
    """10 of 200 (5 %) against 20 of 1000 (2 %).

    pooled p = 30 / 1200 = 0.025; se = sqrt(0.025 * 0.975 * (1/200 + 1/1000)) = sqrt(0.00014625)
    = 0.0120934; z = 0.03 / 0.0120934 = 2.4807; one-sided p = P(Z > 2.4807) = 0.006556.
    """
    test = two_proportion_z(10, 200, 20, 1000, alternative="greater")
    assert test.rate_a == pytest.approx(0.05)
    assert test.rate_b == pytest.approx(0.02)
    assert test.difference == pytest.approx(0.03)
    assert test.z == pytest.approx(2.4807, abs=1e-4)
    assert test.p_value == pytest.approx(0.006556, abs=2e-5)
    two_sided = two_proportion_z(10, 200, 20, 1000, alternative="two-sided")
    assert two_sided.p_value == pytest.approx(2 * 0.006556, abs=4e-5)
    less = two_proportion_z(10, 200, 20, 1000, alternative="less")
    assert less.p_value == pytest.approx(1 - 0.006556, abs=2e-5)


def test_two_proportion_without_any_event_cannot_differ() -> None:
    test = two_proportion_z(0, 300, 0, 2700)
    assert (test.z, test.p_value, test.difference) == (0.0, 1.0, 0.0)


def test_two_proportion_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        two_proportion_z(0, 0, 1, 10)
    with pytest.raises(ValueError, match=r"within 0\.\.n"):
        two_proportion_z(11, 10, 1, 10)


def test_mann_whitney_with_ties_by_hand() -> None:
    """a = 3 4 2 6 2 5, b = 9 7 5 10 6 8.

    Pooled, sorted: 2 2 3 4 5 5 6 6 7 8 9 10 -> mid-ranks 1.5 1.5 3 4 5.5 5.5 7.5 7.5 9 10 11 12.
    a's ranks: 3 + 4 + 1.5 + 7.5 + 1.5 + 5.5 = 23, so U_a = 23 - 6 * 7 / 2 = 2 (mean 18).
    Three tie groups of two: sum(t^3 - t) = 18; sigma^2 = 36/12 * (13 - 18 / 132) = 38.5909,
    sigma = 6.21216. "less": z = (2 - 18 + 0.5) / 6.21216 = -2.49511, p = 0.006296.
    """
    a = [3, 4, 2, 6, 2, 5]
    b = [9, 7, 5, 10, 6, 8]
    less = mann_whitney_u(a, b, alternative="less")
    assert less.u == pytest.approx(2.0)
    assert less.z == pytest.approx(-2.49511, abs=1e-4)
    assert less.p_value == pytest.approx(0.006296, abs=1e-5)
    assert less.common_language == pytest.approx(2 / 36)
    two = mann_whitney_u(a, b, alternative="two-sided")
    assert two.p_value == pytest.approx(2 * 0.006296, abs=2e-5)
    # the same data seen from b: U_b = 36 - 2 = 34, and "greater" gives the same p-value
    greater = mann_whitney_u(b, a, alternative="greater")
    assert greater.u == pytest.approx(34.0)
    assert greater.p_value == pytest.approx(less.p_value)


def test_mann_whitney_without_ties_by_hand() -> None:
    """a = 1 2 3, b = 4 5 6: U_a = 0, mean 4.5, sigma^2 = 9/12 * 7 = 5.25.

    "greater" (a larger?): z = (0 - 4.5 - 0.5) / 2.29129 = -2.18218, p = 1 - 0.014548 = 0.985452.
    """
    result = mann_whitney_u([1, 2, 3], [4, 5, 6], alternative="greater")
    assert result.u == 0
    assert result.z == pytest.approx(-2.18218, abs=1e-4)
    assert result.p_value == pytest.approx(0.985452, abs=1e-5)


def test_mann_whitney_identical_samples_show_nothing() -> None:
    result = mann_whitney_u([5.0] * 40, [5.0] * 60)
    assert result.p_value == 1.0
    assert result.u == pytest.approx(40 * 60 / 2)


def test_mann_whitney_sees_a_shift_in_large_samples() -> None:
    x = [10 + (i % 17) * 0.5 for i in range(500)]
    y = [v + 3.0 for v in x[:200]]
    result = mann_whitney_u(y, x, alternative="greater")
    assert result.p_value < 1e-6
    assert result.common_language > 0.6
    assert math.isfinite(result.z)


def test_mann_whitney_needs_values_and_a_known_alternative() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_u([1.0, 2.0], [3.0], alternative="bigger")  # type: ignore[arg-type]
