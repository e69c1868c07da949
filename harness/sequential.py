"""An anytime-valid sequential gate for one traffic step: look every 250 ms, fail the moment the
evidence of a regression is strong enough, with the false-alarm probability held at every look.

Pure: no I/O, no threads, no clock. The caller feeds a :class:`Batch` of what each side answered
since the last look (counts, failures, latencies, and how many seconds it covers) and reads the
verdict of the new :class:`SequentialState`:

    state = SequentialState.start(SequentialConfig(alpha=split.per_sequential, hold_seconds=30, max_hold_seconds=120))
    while state.verdict == "continue":
        state = state.update(Batch.of(records_since_last_look, seconds=0.25))
    # "reject": Y regressed, roll back now; "pass": hold over, nothing rejected, enough samples;
    # "inconclusive": still too few samples at max_hold_seconds: traffic back to X, "could not judge"

The method (Lindon, Sanden & Shirikian, "Rapid Regression Detection in Software Deployments through
Sequential Testing", KDD 2022; Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data",
NeurIPS 2022): a test martingale, the product over looks of likelihood ratios "regression of size
psi" against "no regression", mixed over a grid of sizes psi. Under no regression its expected value
stays 1 at every look, so by Ville's inequality the chance it *ever* reaches 1/alpha is at most
alpha, however often and however long one looks (the hold may be extended for free). The papers
condition each event (an error, say) on the total and allocate it to a side with the known traffic
shares, a multinomial likelihood. Here each batch is conditioned on *both* margins as observed (the
answers each side gave, and the events among them), which makes each batch's likelihood Fisher's
noncentral hypergeometric with odds ratio psi, and the null distribution exact (hypergeometric)
whatever the common rate and whatever share the balancer actually achieved (keep-alive lets it lag
the weight). The one assumption: within one batch, X's and Y's answers are exchangeable under "no
regression" (same chance of failing, same latency distribution); batches are short (250 ms) so a
load change over the step affects both sides alike. ``scipy.stats.nchypergeom_fisher`` is the
reference the unit tests hold :func:`log_lr_2x2` to. (The ``savvi`` package on PyPI implements the
papers' multinomial form; it is not a dependency here.)

Tests, each with its own martingale:

* ``error_rate`` (Y against X): events are failed answers; rejects when the mixture reaches
  1/alpha AND Y's observed rate over the step exceeds X's by more than ``max_error_rate_delta``
  (the practical limit; the second condition only removes rejections, so alpha still holds);
* ``latency`` (Y against X): in each batch, Y's latencies less ``max_latency_shift_ms`` are pooled
  with X's, and the events are the answers slower than the pooled median (a sequential Mood median
  test); under "Y at most the practical shift slower" Y's share of them is hypergeometric or less;
* ``error_rate_limit`` (Y alone, for a step with no X traffic, e.g. 100 % Y): each Y answer is a
  Bernoulli trial, the null "Y's error rate <= max_error_rate", a mixture of binomial likelihood
  ratios over rates above the limit (a supermartingale under every rate at or below it).

**Alpha spending over a whole run** (:func:`split_alpha`): the run's false-alarm probability is
bounded by the sum of the alphas of every (step, source, test) unit that can fail it (Bonferroni,
which holds for any weights that sum to alpha). Looks cost nothing (each martingale is
anytime-valid). So a plan with alpha 0.01, steps 5/25/50/100, one source (the probe), tests
``error_rate`` + ``latency`` on the steps with X and ``error_rate_limit`` at 100 % has 3 x 2 + 1 = 7
sequential units. Further sources multiply the units. Fixed-window checks that can also fail a step
(``harness.gates.judge``, counted with ``fixed_checks_per_step``) are the backstop, not the gate that
decides early, so together they take :data:`FIXED_SHARE` of alpha and the sequential tests the rest:
a gate that must decide in seconds keeps most of its power. A reserved retake adds one more step's
fixed checks (its sequential tests go on, see :meth:`SequentialState.extended`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, logsumexp

from harness.errors import HarnessError
from harness.model import ProbeRecord

Verdict = Literal["continue", "reject", "pass", "inconclusive"]
TestName = Literal["error_rate", "latency", "error_rate_limit"]
TEST_NAMES: tuple[TestName, ...] = ("error_rate", "latency", "error_rate_limit")

#: odds ratios the error test mixes over (uniform weights). The practical limit (0.5-1 point over a
#: base rate near 0.1 %) is an odds ratio of 5-10, so smaller ones would only dilute the mixture;
#: spacing x4 loses little between grid points (tuned in benchmarks/gate_simulation.py).
ERROR_ODDS_GRID: tuple[float, ...] = (8.0, 32.0, 128.0, 512.0)
#: odds ratios of "slower than the pooled median" the latency test mixes over
LATENCY_ODDS_GRID: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 64.0, 256.0)
#: multiples of the limit the error-limit test mixes over (capped below 1)
LIMIT_RATE_MULTIPLES: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


# ---- the likelihood ratios (vectorised: the benchmark runs thousands of streams through them) ----------


def _log_choose(n: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1), dtype=np.float64)


def log_lr_2x2(k_y: ArrayLike, n_y: ArrayLike, n_x: ArrayLike, events: ArrayLike,
               odds: Sequence[float]) -> NDArray[np.float64]:
    """log [P(k_y | margins; psi) / P(k_y | margins; 1)] for each psi in ``odds``: shape (..., len(odds)).

    ``events`` of the ``n_y + n_x`` answers in a batch are "bad" (failed, or slower than the median);
    ``k_y`` of them are Y's. Under psi = 1 k_y is hypergeometric; under psi it is Fisher's noncentral
    hypergeometric, P(k; psi) = C(n_y, k) C(n_x, e - k) psi^k / sum_j C(n_y, j) C(n_x, e - j) psi^j,
    so the ratio is psi^k_y / E_0[psi^J], J hypergeometric. A batch with no event, or no answer on one
    side, carries no information: ratio 1 (log 0).
    """
    k, ny, nx, e = (np.asarray(a, dtype=np.float64) for a in (k_y, n_y, n_x, events))
    k, ny, nx, e = np.broadcast_arrays(k, ny, nx, e)
    log_psi = np.log(np.asarray(odds, dtype=np.float64))
    top = int(np.max(np.minimum(e, ny), initial=0))
    j = np.arange(top + 1, dtype=np.float64)                          # (J,)
    ny_, nx_, e_ = ny[..., None], nx[..., None], e[..., None]
    possible = (j <= np.minimum(e_, ny_)) & (j >= e_ - nx_)
    with np.errstate(invalid="ignore"):
        log_pmf = np.where(possible, _log_choose(ny_, np.where(possible, j, 0))
                           + _log_choose(nx_, np.where(possible, e_ - j, 0))
                           - _log_choose(ny_ + nx_, e_), -np.inf)     # (..., J)
    log_mgf = logsumexp(log_pmf[..., None, :] + j * log_psi[:, None], axis=-1)   # (..., G)
    out = k[..., None] * log_psi - log_mgf
    informative = (e > 0) & (ny > 0) & (nx > 0)
    return np.asarray(np.where(informative[..., None], out, 0.0), dtype=np.float64)


def log_lr_binomial(failed: ArrayLike, n: ArrayLike, limit: float,
                    rates: Sequence[float]) -> NDArray[np.float64]:
    """log of prod Bernoulli(rate) / Bernoulli(limit) over ``n`` trials with ``failed`` failures: (..., G)."""
    k = np.asarray(failed, dtype=np.float64)[..., None]
    m = np.asarray(n, dtype=np.float64)[..., None]
    r = np.asarray(rates, dtype=np.float64)
    return np.asarray(k * np.log(r / limit) + (m - k) * (np.log1p(-r) - math.log1p(-limit)), dtype=np.float64)


def above_pooled_median(y_ms: NDArray[np.float64], x_ms: NDArray[np.float64],
                        margin_ms: float) -> tuple[int, int]:
    """(answers slower than the pooled median of Y - margin and X, how many of them are Y's)."""
    y = y_ms - margin_ms
    pooled = np.concatenate([y, x_ms])
    m = float(np.median(pooled))
    return int(np.count_nonzero(pooled > m)), int(np.count_nonzero(y > m))


def log_mixture(log_lr_sums: ArrayLike) -> NDArray[np.float64]:
    """log of the uniform mixture over the grid (last axis) of the summed log likelihood ratios."""
    s = np.asarray(log_lr_sums, dtype=np.float64)
    return np.asarray(logsumexp(s, axis=-1) - math.log(s.shape[-1]), dtype=np.float64)


# ---- alpha over a run ---------------------------------------------------------------------------------


def step_tests(weight_y: int) -> tuple[TestName, ...]:
    """The sequential tests a step runs: comparisons with X while X has traffic, Y's limit alone at 100 %."""
    return ("error_rate", "latency") if weight_y < 100 else ("error_rate_limit",)


#: the part of a run's alpha the fixed-window checks share when there are any (the rest goes to the
#: sequential tests)
FIXED_SHARE = 0.1


def is_fixed(test: str) -> bool:
    """A split unit that is a fixed-window check (``fixed_3``, ``retake_1_fixed_3``), not a sequential test."""
    return test.rsplit("_", 1)[0].endswith("fixed")


@dataclass(frozen=True)
class AlphaSplit:
    """A run's alpha split over every unit that can fail it (Bonferroni): the sequential tests share
    ``1 - FIXED_SHARE`` of it evenly, the fixed-window checks (if any) ``FIXED_SHARE`` evenly."""

    alpha: float
    units: tuple[tuple[int, str, str], ...]      # (weight_y, source, test)

    @property
    def sequential_units(self) -> int:
        return sum(1 for u in self.units if not is_fixed(u[2]))

    @property
    def fixed_units(self) -> int:
        return len(self.units) - self.sequential_units

    @property
    def per_sequential(self) -> float:
        """Each sequential test's alpha."""
        share = 1.0 - FIXED_SHARE if self.fixed_units else 1.0
        return self.alpha * share / self.sequential_units if self.sequential_units else 0.0

    @property
    def per_fixed(self) -> float:
        """Each fixed-window check's alpha (the whole alpha evenly when there is no sequential test)."""
        if not self.fixed_units:
            return 0.0
        share = FIXED_SHARE if self.sequential_units else 1.0
        return self.alpha * share / self.fixed_units

    @property
    def spent(self) -> float:
        """What every unit together may spend: alpha, up to rounding."""
        return self.per_sequential * self.sequential_units + self.per_fixed * self.fixed_units

    def describe(self) -> str:
        steps = sorted({u[0] for u in self.units})
        sources = sorted({u[1] for u in self.units})
        retakes = len({u[2].split("_")[1] for u in self.units if u[2].startswith("retake_")})
        spare = f", fixed checks for {retakes} retaken window(s)" if retakes else ""
        fixed = (f"; {self.fixed_units} fixed-window checks share {100 * FIXED_SHARE:g} % of it, "
                 f"{self.per_fixed:.3g} each" if self.fixed_units else "")
        return (f"alpha {self.alpha:g} over the whole run (Bonferroni): {self.sequential_units} sequential tests "
                f"({len(steps)} steps x {len(sources)} source(s) {', '.join(sources)}, tests per step as run) "
                f"at {self.per_sequential:.3g} each{fixed}{spare}; every sequential test is anytime-valid, so "
                "looks every 250 ms, hold extensions and retakes cost nothing more")


def split_alpha(alpha: float, *, steps: Iterable[int], sources: Sequence[str] = ("probe",),
                fixed_checks_per_step: int = 0, retakes: int = 0) -> AlphaSplit:
    """Split a plan's ``alpha`` over steps x sources x tests (see the module docstring).

    ``fixed_checks_per_step``: fixed-window checks per step and source that can also fail the step
    (e.g. 6 when ``harness.gates.judge`` runs at the end of each hold with its rates, p99s and
    comparisons); they take a share like any other test. ``retakes``: windows the run may measure
    again when the harness could not measure one. A retake extends the step's sequential tests (their
    alpha already covers any number of looks) but judges its fixed-window checks afresh, so each
    retake reserves one more step's fixed checks (the lowest step's).
    """
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha={alpha} is invalid; expected 0 < alpha < 1",
                           hint="set gates.alpha to the false-alarm probability the whole run may have, e.g. 0.01")
    steps = tuple(steps)

    def tests(w: int) -> tuple[str, ...]:
        return (*step_tests(w), *(f"fixed_{i + 1}" for i in range(fixed_checks_per_step)))

    units = tuple((w, source, test) for w in steps for source in sources for test in tests(w))
    if steps and retakes:
        low = min(steps)
        units += tuple((low, source, f"retake_{k + 1}_{test}")
                       for k in range(retakes) for source in sources for test in tests(low) if is_fixed(test))
    if not units:
        raise HarnessError("no steps or no sources to split alpha over",
                           hint="pass the plan's traffic.steps and gates sources")
    return AlphaSplit(alpha, units)


# ---- one step, look by look ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """What each side answered since the last look. Failed answers are included in the counts."""

    seconds: float
    x_answers: int = 0
    x_failed: int = 0
    y_answers: int = 0
    y_failed: int = 0
    x_latencies_ms: tuple[float, ...] = field(default=(), repr=False)
    y_latencies_ms: tuple[float, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, records: Iterable[ProbeRecord], *, seconds: float) -> Batch:
        """From the probe's records of the last ``seconds`` (answers without a side, and probe errors,
        are not evidence about either side; the completeness and probe checks see them)."""
        xs = [r for r in records if r.status is not None and r.side is not None]
        x = [r for r in xs if r.side == "x"]
        y = [r for r in xs if r.side == "y"]
        return cls(seconds, len(x), sum(1 for r in x if r.failed), len(y), sum(1 for r in y if r.failed),
                   tuple(r.latency_ms for r in x), tuple(r.latency_ms for r in y))


@dataclass(frozen=True)
class SequentialConfig:
    """One step's sequential gate. ``alpha`` is this test's share (:func:`split_alpha`)."""

    alpha: float
    hold_seconds: float
    max_hold_seconds: float
    min_samples: int = 50
    max_error_rate_delta: float = 0.005
    max_latency_shift_ms: float = 25.0
    max_error_rate: float = 0.01
    tests: tuple[TestName, ...] = ("error_rate", "latency")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))
        if not 0 < self.alpha < 1:
            raise HarnessError(f"sequential alpha={self.alpha} is invalid; expected 0 < alpha < 1",
                               hint="pass split_alpha(plan alpha, steps=..., sources=...).per_sequential")
        if not 0 < self.hold_seconds <= self.max_hold_seconds:
            raise HarnessError(f"hold {self.hold_seconds} s / max hold {self.max_hold_seconds} s are invalid; "
                               "expected 0 < hold <= max hold",
                               hint="set traffic.max_hold_seconds at least traffic.hold_seconds")
        unknown = sorted(set(self.tests) - set(TEST_NAMES))
        if unknown or not self.tests:
            raise HarnessError(f"sequential tests {list(self.tests)} are invalid",
                               hint=f"use some of: {', '.join(TEST_NAMES)}")
        if not 0 < self.max_error_rate < 1:
            raise HarnessError(f"max_error_rate={self.max_error_rate} is invalid; expected a fraction in (0, 1)",
                               hint="write rates as fractions: 0.01 means 1 %")

    @property
    def needs_x(self) -> bool:
        return any(t != "error_rate_limit" for t in self.tests)

    @property
    def threshold(self) -> float:
        """log(1 / alpha): a test rejects when the log of its mixture martingale reaches it."""
        return math.log(1 / self.alpha)


def _grid(test: TestName, config: SequentialConfig) -> tuple[float, ...]:
    if test == "error_rate":
        return ERROR_ODDS_GRID
    if test == "latency":
        return LATENCY_ODDS_GRID
    return tuple(min(config.max_error_rate * m, 0.999) for m in LIMIT_RATE_MULTIPLES)


@dataclass(frozen=True)
class SequentialState:
    """The evidence so far in one step; :meth:`update` returns the next state (this one is unchanged).

    ``log_lr`` holds, per test, the summed log likelihood ratio at each grid point; ``log_e`` of a
    test is the log of its mixture (the e-value); ``1 / max e`` is its anytime-valid p-value.
    """

    config: SequentialConfig
    elapsed: float = 0.0
    looks: int = 0
    x_answers: int = 0
    x_failed: int = 0
    y_answers: int = 0
    y_failed: int = 0
    log_lr: tuple[tuple[float, ...], ...] = ()
    max_log_e: tuple[float, ...] = ()
    verdict: Verdict = "continue"
    rejected_by: TestName | None = None
    reason: str = ""

    @classmethod
    def start(cls, config: SequentialConfig) -> SequentialState:
        return cls(config, log_lr=tuple(tuple(0.0 for _ in _grid(t, config)) for t in config.tests),
                   max_log_e=tuple(0.0 for _ in config.tests))

    def log_e(self, test: TestName) -> float:
        return float(log_mixture(self.log_lr[self.config.tests.index(test)]))

    def p_value(self, test: TestName) -> float:
        """Anytime-valid p-value: 1 / the largest e-value seen (capped at 1)."""
        return min(1.0, math.exp(-self.max_log_e[self.config.tests.index(test)]))

    @property
    def rate_y(self) -> float | None:
        return self.y_failed / self.y_answers if self.y_answers else None

    @property
    def rate_x(self) -> float | None:
        return self.x_failed / self.x_answers if self.x_answers else None

    @property
    def enough_samples(self) -> bool:
        return self.y_answers >= self.config.min_samples and (
            not self.config.needs_x or self.x_answers >= self.config.min_samples)

    def _increment(self, test: TestName, batch: Batch) -> NDArray[np.float64]:
        c = self.config
        grid = _grid(test, c)
        if test == "error_rate":
            return log_lr_2x2(batch.y_failed, batch.y_answers, batch.x_answers,
                              batch.y_failed + batch.x_failed, grid)
        if test == "latency":
            if not batch.y_latencies_ms or not batch.x_latencies_ms:
                return np.zeros(len(grid))
            events, k = above_pooled_median(np.asarray(batch.y_latencies_ms), np.asarray(batch.x_latencies_ms),
                                            c.max_latency_shift_ms)
            return log_lr_2x2(k, len(batch.y_latencies_ms), len(batch.x_latencies_ms), events, grid)
        return log_lr_binomial(batch.y_failed, batch.y_answers, c.max_error_rate, grid)

    def update(self, batch: Batch) -> SequentialState:
        """The state after one more look. A decided state (reject, pass, inconclusive) stays as it is."""
        if self.verdict != "continue":
            return self
        c = self.config
        sums = tuple(tuple((np.asarray(s) + self._increment(t, batch)).tolist())
                     for t, s in zip(c.tests, self.log_lr, strict=True))
        state = replace(
            self, elapsed=self.elapsed + batch.seconds, looks=self.looks + 1,
            x_answers=self.x_answers + batch.x_answers, x_failed=self.x_failed + batch.x_failed,
            y_answers=self.y_answers + batch.y_answers, y_failed=self.y_failed + batch.y_failed, log_lr=sums,
            max_log_e=tuple(max(m, float(log_mixture(s))) for m, s in zip(self.max_log_e, sums, strict=True)),
        )
        return state._decide()

    def extended(self, hold_seconds: float, max_hold_seconds: float) -> SequentialState:
        """The same test watched for another hold (a retaken window): the evidence so far is kept, so
        the martingale goes on and the test keeps its alpha (Ville's inequality covers every look, however
        many); only a test that rejected cannot be reopened."""
        if self.verdict == "reject":
            raise HarnessError("a sequential test that rejected is a verdict and cannot be extended",
                               hint="fail the step; only a window the harness could not measure is retaken")
        config = replace(self.config, hold_seconds=self.elapsed + hold_seconds,
                         max_hold_seconds=self.elapsed + max(hold_seconds, max_hold_seconds))
        return replace(self, config=config, verdict="continue", reason="measuring the step again")

    def _decide(self) -> SequentialState:
        c = self.config
        for test in c.tests:
            if self.log_e(test) < c.threshold:
                continue
            if test == "error_rate":
                difference = (self.rate_y or 0.0) - (self.rate_x or 0.0)
                if difference <= c.max_error_rate_delta:
                    continue            # significant, but within the practical limit: keep watching
            return replace(self, verdict="reject", rejected_by=test, reason=self._explain(test))
        if self.elapsed + 1e-9 < c.hold_seconds:
            return self
        if self.enough_samples:
            return replace(self, verdict="pass", reason=(
                f"hold of {self.elapsed:.2f} s over after {self.looks} looks, no regression found; "
                + self._figures()))
        if self.elapsed + 1e-9 < c.max_hold_seconds:
            return replace(self, reason=f"extending the hold ({self.elapsed:.2f} s of at most "
                                        f"{c.max_hold_seconds:g} s): {self._samples()}")
        return replace(self, verdict="inconclusive", reason=(
            f"could not judge: {self._samples()} after {self.elapsed:.2f} s (max hold {c.max_hold_seconds:g} s)"))

    def _samples(self) -> str:
        need = self.config.min_samples
        x = f", {self.x_answers} X answers" if self.config.needs_x else ""
        return f"{self.y_answers} Y answers{x} (need {need} each)"

    def _figures(self) -> str:
        parts = []
        for test in self.config.tests:
            parts.append(f"{test}: e = {math.exp(min(self.log_e(test), 700)):.3g}, anytime p = "
                         f"{self.p_value(test):.3g}")
        return f"{self._samples()}; " + "; ".join(parts) + f" (reject at e >= {1 / self.config.alpha:.3g})"

    def _explain(self, test: TestName) -> str:
        c = self.config
        head = f"after {self.elapsed:.2f} s ({self.looks} looks): "
        e = f"e-value {math.exp(min(self.log_e(test), 700)):.3g} >= 1/alpha = {1 / c.alpha:.3g} (anytime p " \
            f"{self.p_value(test):.3g})"
        if test == "error_rate":
            return (head + f"Y failed {self.y_failed} of {self.y_answers} ({100 * (self.rate_y or 0):.2f} %), X "
                    f"{self.x_failed} of {self.x_answers} ({100 * (self.rate_x or 0):.2f} %), beyond the practical "
                    f"{100 * c.max_error_rate_delta:.2f} points: {e}")
        if test == "latency":
            return (head + f"Y answers are slower than X's by more than {c.max_latency_shift_ms:g} ms more often "
                    f"than chance allows ({self.y_answers} Y, {self.x_answers} X answers): {e}")
        return (head + f"Y failed {self.y_failed} of {self.y_answers} ({100 * (self.rate_y or 0):.2f} %), over the "
                f"{100 * c.max_error_rate:.2f} % limit: {e}")
