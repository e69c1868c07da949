"""The sequential gate: its likelihood ratios against scipy, its verdicts, the alpha split, and (by a small
simulation) that looking every batch does not inflate its false alarms the way a fixed test does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness.errors import HarnessError
from harness.model import ProbeRecord
from harness.sequential import (
    Batch,
    SequentialConfig,
    SequentialState,
    log_lr_2x2,
    log_lr_binomial,
    log_mixture,
    split_alpha,
    step_tests,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 200), st.data(), st.sampled_from([0.5, 2.0, 8.0, 100.0]))
def test_log_lr_is_the_noncentral_hypergeometric_over_the_central(n_y: int, n_x: int, data: st.DataObject,
                                                                    odds: float) -> None:
    events = data.draw(st.integers(0, n_y + n_x))
    k = data.draw(st.integers(max(0, events - n_x), min(events, n_y)))
    ours = float(log_lr_2x2(k, n_y, n_x, events, [odds])[0])
    if events == 0 or n_y == 0 or n_x == 0:
        assert ours == 0.0
        return
    total = n_y + n_x
    expected = (stats.nchypergeom_fisher.logpmf(k, total, n_y, events, odds)
                - stats.hypergeom.logpmf(k, total, n_y, events))
    assert ours == pytest.approx(expected, rel=1e-7, abs=1e-7)


def test_the_ratio_has_mean_one_under_no_regression() -> None:
    """E_0[LR] = sum_k hypergeom(k) psi^k / E_0[psi^J] = 1: the product over batches is a martingale."""
    k = np.arange(0, 6)
    weights = stats.hypergeom.pmf(k, 60, 3, 5)
    lr = np.exp(log_lr_2x2(k, 3, 57, 5, [4.0, 128.0]))
    assert (weights[:, None] * lr).sum(axis=0) == pytest.approx([1.0, 1.0])


def test_binomial_ratio_by_hand() -> None:
    """2 failures of 10 at rate 0.04 against a 0.01 limit: 2 ln 4 + 8 ln(0.96 / 0.99)."""
    assert float(log_lr_binomial(2, 10, 0.01, [0.04])[0]) == pytest.approx(2 * math.log(4) + 8 * math.log(0.96 / 0.99))


def test_mixture_is_the_log_of_the_mean() -> None:
    assert float(log_mixture([0.0, math.log(3.0)])) == pytest.approx(math.log(2.0))


CONFIG = SequentialConfig(alpha=0.01 / 7, hold_seconds=10, max_hold_seconds=20, min_samples=50,
                          max_error_rate_delta=0.005, max_latency_shift_ms=10)


def batch(rng: np.random.Generator, *, share: float = 0.05, rate: float = 250, p_x: float = 0.001,
          p_y: float = 0.001, y_extra_ms: float = 0.0, seconds: float = 0.25) -> Batch:
    n = round(rate * seconds)
    n_y = int(rng.binomial(n, share))
    n_x = n - n_y
    x_lat = rng.lognormal(math.log(40), 0.5, n_x)
    y_lat = rng.lognormal(math.log(40), 0.5, n_y) + y_extra_ms
    return Batch(seconds, n_x, int(rng.binomial(n_x, p_x)), n_y, int(rng.binomial(n_y, p_y)),
                 tuple(x_lat.tolist()), tuple(y_lat.tolist()))


def run(config: SequentialConfig, rng: np.random.Generator, **kwargs: float) -> SequentialState:
    state = SequentialState.start(config)
    while state.verdict == "continue":
        state = state.update(batch(rng, **kwargs))
    return state


def test_a_clean_step_passes_at_the_end_of_its_hold() -> None:
    state = run(CONFIG, np.random.default_rng(1))
    assert state.verdict == "pass", state.reason
    assert state.elapsed == pytest.approx(10.0)
    assert state.looks == 40
    assert "no regression found" in state.reason and "anytime p" in state.reason
    assert state.update(Batch(0.25, 100, 100, 100, 100)) is state       # decided stays decided


def test_y_failing_ten_points_more_is_rejected_within_seconds() -> None:
    state = run(CONFIG, np.random.default_rng(2), p_y=0.101)
    assert state.verdict == "reject" and state.rejected_by == "error_rate"
    assert state.elapsed < 10
    assert state.p_value("error_rate") <= CONFIG.alpha
    assert "beyond the practical" in state.reason and "e-value" in state.reason


def test_y_eighty_ms_slower_is_rejected_on_latency() -> None:
    state = run(CONFIG, np.random.default_rng(3), y_extra_ms=80)
    assert state.verdict == "reject" and state.rejected_by == "latency"
    assert "slower than X's by more than 10 ms" in state.reason


def test_a_shift_within_the_practical_limit_is_not_rejected() -> None:
    state = run(SequentialConfig(**{**CONFIG.__dict__, "max_latency_shift_ms": 30}), np.random.default_rng(4),
                y_extra_ms=5, share=0.5)
    assert state.verdict == "pass", state.reason


def test_too_few_samples_extend_the_hold_then_end_inconclusive() -> None:
    rng = np.random.default_rng(5)
    state = SequentialState.start(CONFIG)
    for _ in range(40):                      # 10 s at 0.5 % Y: about 12 Y answers
        state = state.update(batch(rng, share=0.005))
    assert state.verdict == "continue" and "extending the hold" in state.reason
    state = run_on(state, rng, share=0.005)
    assert state.verdict == "inconclusive"
    assert state.elapsed == pytest.approx(20.0)
    assert state.reason.startswith("could not judge")


def run_on(state: SequentialState, rng: np.random.Generator, **kwargs: float) -> SequentialState:
    while state.verdict == "continue":
        state = state.update(batch(rng, **kwargs))
    return state


def test_at_one_hundred_percent_y_the_limit_test_needs_no_x() -> None:
    config = SequentialConfig(**{**CONFIG.__dict__, "tests": step_tests(100)})
    assert not config.needs_x
    assert run(config, np.random.default_rng(6), share=1.0).verdict == "pass"
    failing = run(config, np.random.default_rng(6), share=1.0, p_y=0.05)
    assert failing.verdict == "reject" and failing.rejected_by == "error_rate_limit"
    assert "over the 1.00 % limit" in failing.reason


def test_continuous_looks_keep_false_alarms_under_alpha_where_peeking_does_not() -> None:
    """300 null streams of 40 looks, 5 % Y with X and Y at 2 % errors (so there is something to peek at),
    alpha 0.05: the sequential test's false alarms stay under alpha; a Fisher test at every look does not
    stay under the same alpha as reliably (reported, not asserted: it depends on the discreteness)."""
    rng = np.random.default_rng(8)
    config = SequentialConfig(alpha=0.05, hold_seconds=10, max_hold_seconds=10, min_samples=1,
                              max_error_rate_delta=0.0, tests=("error_rate",))
    alarms = 0
    for _ in range(300):
        alarms += run(config, rng, share=0.3, p_x=0.02, p_y=0.02).verdict == "reject"
    upper = stats.binomtest(alarms, 300).proportion_ci(0.95).high
    assert alarms / 300 <= 0.05 and upper < 0.1


def test_batch_of_records_counts_each_side() -> None:
    def rec(seq: int, side: str | None, status: int | None, ok: bool) -> ProbeRecord:
        return ProbeRecord(seq, "GET /", "GET", "/", 0.0, 0.0, 0.01, side, None, status,  # type: ignore[arg-type]
                           10.0 + seq, None if status else "connect", False, ok)
    records = [rec(0, "x", 200, True), rec(1, "y", 500, False), rec(2, "y", 200, True), rec(3, None, None, False),
               rec(4, None, 200, True)]
    b = Batch.of(records, seconds=0.25)
    assert (b.x_answers, b.x_failed, b.y_answers, b.y_failed) == (1, 0, 2, 1)
    assert b.y_latencies_ms == (11.0, 12.0)


def test_split_alpha_counts_steps_sources_and_tests() -> None:
    split = split_alpha(0.01, steps=[5, 25, 50, 100])
    assert len(split.units) == 7
    assert split.per_sequential == pytest.approx(0.01 / 7) and split.per_fixed == 0
    assert "7 sequential tests" in split.describe()
    two = split_alpha(0.01, steps=[5, 25, 50, 100], sources=["probe", "balancer"], fixed_checks_per_step=6)
    assert len(two.units) == 2 * (7 + 4 * 6)
    # the sequential gate, which decides within seconds, keeps 90 %; the fixed-window backstop shares 10 %
    assert two.per_sequential == pytest.approx(0.009 / 14) and two.per_fixed == pytest.approx(0.001 / 48)
    assert two.spent == pytest.approx(0.01)
    assert "48 fixed-window checks share 10 % of it" in two.describe()
    only_fixed = split_alpha(0.01, steps=[100], fixed_checks_per_step=6)
    assert only_fixed.spent == pytest.approx(0.01)
    with pytest.raises(HarnessError, match="alpha"):
        split_alpha(0.0, steps=[5])


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"alpha": 1.5}, "alpha"), ({"hold_seconds": 30}, "max hold"), ({"tests": ("speed",)}, "tests")],
)
def test_bad_config_says_what_to_fix(changes: dict[str, object], message: str) -> None:
    with pytest.raises(HarnessError, match=message) as info:
        SequentialConfig(**{**CONFIG.__dict__, **changes})
    assert info.value.hint


def test_an_extended_test_keeps_its_evidence_and_a_rejected_one_cannot_be_reopened() -> None:
    config = SequentialConfig(alpha=0.001, hold_seconds=2, max_hold_seconds=2, min_samples=5,
                              max_error_rate_delta=0.005, max_latency_shift_ms=10, max_error_rate=0.01,
                              tests=("error_rate",))
    state = SequentialState.start(config)
    for _ in range(8):   # two seconds of a clean pair: the hold ends and the test passes
        state = state.update(Batch(0.25, x_answers=20, y_answers=20))
    assert state.verdict == "pass"
    again = state.extended(2.0, 2.0)
    assert again.verdict == "continue" and again.log_lr == state.log_lr and again.y_answers == state.y_answers
    assert again.config.hold_seconds == pytest.approx(state.elapsed + 2.0)
    for _ in range(4):   # Y now fails every answer: the evidence adds to what the first window saw
        again = again.update(Batch(0.25, x_answers=20, y_answers=20, y_failed=20))
    assert again.verdict == "reject"
    with pytest.raises(HarnessError, match="cannot be extended"):
        again.extended(2.0, 2.0)
