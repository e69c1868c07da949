"""Gate simulation: the sequential gate against today's fixed-window gate on the same simulated streams.

    .venv/bin/python -m benchmarks.gate_simulation            # full size: 10,000 upgrades per case
    .venv/bin/python -m benchmarks.gate_simulation --runs 300  # CI size (a unit test smoke-runs ``simulate``)

In process, no network. One simulated upgrade is 4 steps (5, 25, 50, 100 % Y) of ``hold`` seconds
each at 250 req/s, looked at every 250 ms. Each answer goes to Y with the step's share, fails with its
side's error rate (X 0.1 %) and takes a lognormal latency (median 40 ms, sigma 0.5: p99 about 128 ms),
plus Y's extra latency. The plan: alpha 0.01 for the whole run, practical limits 0.5 points of error
rate and 10 ms of latency shift (below the plan default of 25 ms, so that +20 ms is a regression to
find), absolute error limit 1 %, min 50 samples a side.

* sequential: :mod:`harness.sequential`'s own likelihood-ratio functions, vectorised over runs, with
  alpha split as the product splits it (:func:`harness.checks.shift.alpha_split`: 7 sequential tests,
  a reserved retake, and the fixed-window checks' share), each sequential test at its
  ``per_sequential`` alpha; the CI size also feeds
  a few runs through :class:`harness.sequential.SequentialState` and checks it decides at the same look;
* naive peeking: Fisher's exact test (and the 0.5-point practical limit) on the step's counts so far
  at every look, at the same per-test alpha: what "just look more often" gives;
* today's fixed-window gate: :func:`harness.gates.judge`'s checks at the end of each hold, at the
  plan's alpha 0.01 per check (Fisher, Clopper-Pearson bounds, Mann-Whitney U of Y - 10 ms; at 100 %
  against the 50 % step's X); p99 checks are left out (no simulated tail comes near 500 ms).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from benchmarks.common import Row, Table, print_table
from harness.sequential import (
    ERROR_ODDS_GRID,
    LATENCY_ODDS_GRID,
    LIMIT_RATE_MULTIPLES,
    AlphaSplit,
    Batch,
    SequentialConfig,
    SequentialState,
    log_lr_2x2,
    log_lr_binomial,
    log_mixture,
    split_alpha,
    step_tests,
)
from harness.stats import latency_shift

RATE = 250.0
LOOK = 0.25
STEPS = (5, 25, 50, 100)
P_X = 0.001
ALPHA = 0.01
DELTA = 0.005
SHIFT_MS = 10.0
MAX_ERROR_RATE = 0.01
MIN_SAMPLES = 50
MEDIAN_MS, SIGMA = 40.0, 0.5
SLOTS = math.ceil(RATE * LOOK)


@dataclass(frozen=True)
class Case:
    name: str
    p_y: float = P_X
    y_extra_ms: float = 0.0
    target_median_s: float | None = None


CASES = (
    Case("null (Y = X)"),
    Case("Y errors +1 point", p_y=P_X + 0.01),
    Case("Y errors +3 points", p_y=P_X + 0.03, target_median_s=10.0),
    Case("Y errors +10 points", p_y=P_X + 0.10, target_median_s=3.0),
    Case("Y latency +20 ms", y_extra_ms=20.0),
    Case("Y latency +80 ms", y_extra_ms=80.0),
)


@dataclass
class Outcome:
    """Per run: seconds from the start of the upgrade to the first fail (inf: never)."""

    sequential: list[NDArray[np.float64]] = field(default_factory=list)
    sequential_errors_only: list[NDArray[np.float64]] = field(default_factory=list)
    peeking: list[NDArray[np.float64]] = field(default_factory=list)
    fixed: list[NDArray[np.float64]] = field(default_factory=list)
    checked: int = 0

    def of(self, name: str) -> NDArray[np.float64]:
        return np.concatenate(getattr(self, name))


def per_batch_counts(hold: float) -> NDArray[np.int64]:
    looks = round(hold / LOOK)
    edges = np.floor(np.arange(looks + 1) * RATE * LOOK + 1e-9).astype(np.int64)
    return np.diff(edges)


def first_true(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Index of the first True along the last axis, inf where none."""
    hit = mask.any(axis=-1)
    return np.where(hit, mask.argmax(axis=-1).astype(np.float64), np.inf)


@dataclass(frozen=True)
class StepData:
    n_y: NDArray[np.int64]        # (R, B)
    n_x: NDArray[np.int64]
    f_y: NDArray[np.int64]
    f_x: NDArray[np.int64]
    is_y: NDArray[np.bool_]       # (R, B, SLOTS)
    valid: NDArray[np.bool_]
    latency: NDArray[np.float64]  # (R, B, SLOTS), Y's extra included
    failed: NDArray[np.bool_]


def generate(rng: np.random.Generator, runs: int, hold: float, share: float, case: Case) -> StepData:
    n = per_batch_counts(hold)
    shape = (runs, len(n), SLOTS)
    valid = np.broadcast_to(np.arange(SLOTS) < n[:, None], shape)
    is_y = (rng.random(shape) < share) & valid
    is_x = valid & ~is_y
    failed = np.where(is_y, rng.random(shape) < case.p_y, rng.random(shape) < P_X) & valid
    latency = rng.lognormal(math.log(MEDIAN_MS), SIGMA, shape) + np.where(is_y, case.y_extra_ms, 0.0)
    return StepData(is_y.sum(-1), is_x.sum(-1), (failed & is_y).sum(-1), (failed & is_x).sum(-1),
                    is_y, valid, latency, failed)


def sequential_step(d: StepData, weight_y: int, alpha: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Look index of the first reject (inf: none) for all tests, and for the error tests alone."""
    threshold = math.log(1 / alpha)
    cum_fy, cum_ny = d.f_y.cumsum(-1), d.n_y.cumsum(-1)
    cum_fx, cum_nx = d.f_x.cumsum(-1), d.n_x.cumsum(-1)
    if weight_y == 100:
        rates = [min(MAX_ERROR_RATE * m, 0.999) for m in LIMIT_RATE_MULTIPLES]
        log_e = log_mixture(log_lr_binomial(d.f_y, d.n_y, MAX_ERROR_RATE, rates).cumsum(-2))
        errors = first_true(log_e >= threshold)
        return errors, errors
    inc = log_lr_2x2(d.f_y, d.n_y, d.n_x, d.f_y + d.f_x, ERROR_ODDS_GRID)
    log_e = log_mixture(inc.cumsum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.nan_to_num(cum_fy / cum_ny) - np.nan_to_num(cum_fx / cum_nx)
    errors = first_true((log_e >= threshold) & (difference > DELTA))
    adjusted = np.where(d.valid, d.latency - np.where(d.is_y, SHIFT_MS, 0.0), np.nan)
    med = np.nanmedian(adjusted, axis=-1, keepdims=True)
    above = d.valid & (adjusted > med)
    events, k = above.sum(-1), (above & d.is_y).sum(-1)
    latency = first_true(log_mixture(log_lr_2x2(k, d.n_y, d.n_x, events, LATENCY_ODDS_GRID).cumsum(-2)) >= threshold)
    return np.minimum(errors, latency), errors


def peeking_step(d: StepData, weight_y: int, alpha: float) -> NDArray[np.float64]:
    """Fisher's exact test on the counts so far at every look (errors only; at 100 %: the rate bound)."""
    cum_fy, cum_ny = d.f_y.cumsum(-1), d.n_y.cumsum(-1)
    cum_fx, cum_nx = d.f_x.cumsum(-1), d.n_x.cumsum(-1)
    if weight_y == 100:
        with np.errstate(invalid="ignore"):
            lower = np.nan_to_num(stats.beta.ppf(alpha, cum_fy, cum_ny - cum_fy + 1))
        return first_true(lower > MAX_ERROR_RATE)
    p = stats.hypergeom.sf(cum_fy - 1, cum_ny + cum_nx, cum_ny, cum_fy + cum_fx)
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.nan_to_num(cum_fy / cum_ny) - np.nan_to_num(cum_fx / cum_nx)
    return first_true((p < alpha) & (difference > DELTA) & (cum_fy > 0))


def fixed_step(d: StepData, base_x: tuple[NDArray[np.int64], NDArray[np.int64], list[NDArray[np.float64]]] | None,
               alpha: float) -> tuple[NDArray[np.bool_], tuple[NDArray[np.int64], NDArray[np.int64],
                                                                 list[NDArray[np.float64]]]]:
    """Whether today's gate fails the step (judged once at the end of the hold), and this step's X for a
    later baseline."""
    ny, fy = d.n_y.sum(-1), d.f_y.sum(-1)
    nx_here, fx_here = d.n_x.sum(-1), d.f_x.sum(-1)
    x_lat_here = [d.latency[r][d.valid[r] & ~d.is_y[r]] for r in range(len(ny))]
    use_base = base_x is not None and bool((nx_here < MIN_SAMPLES).all())
    nx, fx, x_lat = base_x if use_base and base_x is not None else (nx_here, fx_here, x_lat_here)
    enough = (ny >= MIN_SAMPLES) & (nx >= MIN_SAMPLES)

    def lower(k: NDArray[np.int64], n: NDArray[np.int64]) -> NDArray[np.float64]:
        with np.errstate(invalid="ignore"):
            return np.asarray(np.nan_to_num(stats.beta.ppf(alpha, k, n - k + 1)), dtype=np.float64)

    fail: NDArray[np.bool_] = np.asarray(lower(fy, ny) > MAX_ERROR_RATE)
    if not use_base:
        fail |= lower(fx_here, nx_here) > MAX_ERROR_RATE
    p = stats.hypergeom.sf(fy - 1, ny + nx, ny, fy + fx)
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.nan_to_num(fy / ny) - np.nan_to_num(fx / nx)
    fail |= enough & (p < alpha) & (difference > DELTA) & (fy > 0)
    for r in np.flatnonzero(enough & ~fail):
        y_lat = d.latency[r][d.valid[r] & d.is_y[r]]
        fail[r] = latency_shift(y_lat.tolist(), x_lat[r].tolist(), SHIFT_MS).p_value < alpha
    return fail, (nx_here, fx_here, x_lat_here)


def crosscheck(d: StepData, weight_y: int, alpha: float, hold: float, expected: NDArray[np.float64],
               runs: int) -> int:
    """Feed the first ``runs`` streams look by look to SequentialState: it must reject at the same look."""
    config = SequentialConfig(alpha=alpha, hold_seconds=hold, max_hold_seconds=hold, min_samples=MIN_SAMPLES,
                              max_error_rate_delta=DELTA, max_latency_shift_ms=SHIFT_MS,
                              max_error_rate=MAX_ERROR_RATE, tests=step_tests(weight_y))
    for r in range(min(runs, len(expected))):
        state = SequentialState.start(config)
        for b in range(d.n_y.shape[1]):
            x = d.valid[r, b] & ~d.is_y[r, b]
            y = d.valid[r, b] & d.is_y[r, b]
            state = state.update(Batch(LOOK, int(x.sum()), int(d.failed[r, b][x].sum()), int(y.sum()),
                                       int(d.failed[r, b][y].sum()), tuple(d.latency[r, b][x].tolist()),
                                       tuple(d.latency[r, b][y].tolist())))
            if state.verdict != "continue":
                break
        got = float(state.looks - 1) if state.verdict == "reject" else math.inf
        if got != expected[r]:
            raise AssertionError(f"SequentialState rejected at look {got}, the vectorised path at {expected[r]} "
                                 f"(run {r}, step {weight_y} %)")
    return min(runs, len(expected))


def product_split() -> AlphaSplit:
    """The alpha split a run of these steps gets in the product (fixed checks and the retake included)."""
    from harness.checks.shift import FIXED_CHECKS_PER_STEP, RETAKES

    return split_alpha(ALPHA, steps=STEPS, fixed_checks_per_step=FIXED_CHECKS_PER_STEP, retakes=RETAKES)


def simulate(case: Case, runs: int, *, hold: float = 30.0, chunk: int = 250, seed: int = 2024,
             crosscheck_runs: int = 0) -> Outcome:
    per_test = product_split().per_sequential
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    out = Outcome()
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        seq = np.full(r, np.inf)
        seq_err = np.full(r, np.inf)
        peek = np.full(r, np.inf)
        fixed = np.full(r, np.inf)
        base = None
        for i, w in enumerate(STEPS):
            d = generate(rng, r, hold, w / 100, case)
            offset = i * hold
            look_all, look_err = sequential_step(d, w, per_test)
            if crosscheck_runs and start == 0:
                out.checked += crosscheck(d, w, per_test, hold, look_all, crosscheck_runs)
            seq = np.minimum(seq, offset + (look_all + 1) * LOOK)
            seq_err = np.minimum(seq_err, offset + (look_err + 1) * LOOK)
            peek = np.minimum(peek, offset + (peeking_step(d, w, per_test) + 1) * LOOK)
            failed, here = fixed_step(d, base, ALPHA)
            fixed = np.minimum(fixed, np.where(failed, offset + hold, np.inf))
            base = here if w < 100 else base
        out.sequential.append(seq)
        out.sequential_errors_only.append(seq_err)
        out.peeking.append(peek)
        out.fixed.append(fixed)
    return out


def rate_ci(hits: int, n: int) -> tuple[float, float, float]:
    ci = stats.binomtest(hits, n).proportion_ci(0.95, method="exact")
    return hits / n, float(ci.low), float(ci.high)


def fmt_rate(times: NDArray[np.float64]) -> str:
    hits = int(np.isfinite(times).sum())
    rate, low, high = rate_ci(hits, len(times))
    return f"{hits} of {len(times)} = {100 * rate:.2f} % (95 % CI {100 * low:.2f}-{100 * high:.2f} %)"


def fmt_detect(times: NDArray[np.float64]) -> str:
    found = np.isfinite(times)
    if not found.any():
        return "never detected"
    median, p95 = np.quantile(times, 0.5, method="inverted_cdf"), np.quantile(times, 0.95, method="inverted_cdf")
    show = (lambda v: "not detected" if not np.isfinite(v) else f"{v:.2f} s")   # noqa: E731
    return f"median {show(median)}, p95 {show(p95)} ({100 * found.mean():.1f} % detected)"


def build_table(results: dict[str, Outcome], runs: int, hold: float, seconds: float) -> Table:
    null = results[CASES[0].name]
    seq_null = null.of("sequential")
    upper = rate_ci(int(np.isfinite(seq_null).sum()), len(seq_null))[2]
    rows = [
        Row("null: false alarms over a run, sequential (all tests, every 250 ms)", fmt_rate(seq_null),
            f"fixed gate: {fmt_rate(null.of('fixed'))}", "-", f"95 % upper <= {ALPHA:g}", upper <= ALPHA),
        Row("null: false alarms, error tests only: sequential vs naive peeking (Fisher every 250 ms)",
            fmt_rate(null.of("sequential_errors_only")), f"peeking: {fmt_rate(null.of('peeking'))}"),
    ]
    for case in CASES[1:]:
        out = results[case.name]
        seq, fixed = out.of("sequential"), out.of("fixed")
        med_seq, med_fixed = (np.quantile(t, 0.5, method="inverted_cdf") for t in (seq, fixed))
        ratio = f"{med_fixed / med_seq:.1f}x" if np.isfinite(med_seq) and np.isfinite(med_fixed) else "-"
        target = "-" if case.target_median_s is None else f"median <= {case.target_median_s:g} s"
        met = None if case.target_median_s is None else bool(med_seq <= case.target_median_s)
        rows.append(Row(f"{case.name}: time to detect", fmt_detect(seq), f"fixed gate: {fmt_detect(fixed)}",
                        ratio, target, met))
    checked = sum(o.checked for o in results.values())
    split = product_split()
    notes = (
        f"{runs} simulated upgrades per case, steps {'/'.join(map(str, STEPS))} % Y, hold {hold:g} s each, "
        f"{RATE:g} req/s, looks every {LOOK * 1000:g} ms; X error rate {100 * P_X:g} %; latency lognormal median "
        f"{MEDIAN_MS:g} ms, sigma {SIGMA:g}",
        f"plan: {split.describe()}; practical limits {100 * DELTA:g} points, {SHIFT_MS:g} ms; absolute error "
        f"limit {100 * MAX_ERROR_RATE:g} %; min {MIN_SAMPLES} samples",
        "time to detect: from the start of the upgrade (the 5 % step) to the look that fails it; the fixed gate "
        f"fails at the end of a hold ({hold:g} s, {2 * hold:g} s, ...); 'not detected' where over 5 % of runs pass",
        f"fixed gate: today's judge() checks at alpha {ALPHA:g} per check (no split over checks or steps)",
        f"naive peeking: Fisher's exact test (and the practical limit) on the counts so far, every look, at the "
        f"per-test alpha {split.per_sequential:.3g}",
        f"cross-check: {checked} step streams fed look by look to SequentialState decided at the same look as the "
        f"vectorised path" if checked else "cross-check against SequentialState: run with --crosscheck",
        f"{seconds:.0f} s of CPU for the whole simulation",
    )
    return Table("Sequential gate vs fixed-window gate, simulated", tuple(rows), notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="simulated upgrades per case")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds per step")
    parser.add_argument("--crosscheck", type=int, default=3, help="runs per case replayed through SequentialState")
    args = parser.parse_args(argv)
    start = time.process_time()
    results = {case.name: simulate(case, args.runs, hold=args.hold, crosscheck_runs=args.crosscheck)
               for case in CASES}
    table = build_table(results, args.runs, args.hold, time.process_time() - start)
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
