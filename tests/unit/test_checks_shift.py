"""The pure parts of the shift: the completeness check, the window CSV and a step's reason and line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from harness.checks.decommission import Soak
from harness.checks.shift import StepOutcome, with_completeness
from harness.gates import GateCheck, GateResult
from harness.model import CSV_FIELDS, ProbeRecord, ProbeWindow


def rec(seq: int, side: str | None = "x", *, status: int | None = 200, ok: bool | None = None,
        request: str = "orders-list", path: str = "/orders", error: str | None = None,
        latency: float = 12.5) -> ProbeRecord:
    t = 1_700_000_000.0 + seq / 100
    return ProbeRecord(
        seq=seq, request=request, method="GET", path=path, scheduled=t, sent=t + 0.0005,
        done=t + latency / 1000, side=side, node=None if side is None else f"{side}1",  # type: ignore[arg-type]
        status=status, latency_ms=latency, error=error, pinned=False,
        ok=(status is not None and status < 500) if ok is None else ok,
    )


def window(n_x: int, n_y: int) -> ProbeWindow:
    records = [rec(i, "x") for i in range(n_x)] + [rec(n_x + i, "y") for i in range(n_y)]
    return ProbeWindow.of(records, label="25 % Y", weights=(75, 25))


PASS = GateResult("pass", (GateCheck("samples_y", 25, 10, True, "25 answers from Y (at least 10)"),))


# --- with_completeness --------------------------------------------------------------------------------
# the probe at 100 req/s from T0; records are scheduled at T0 + seq / 100. A 3 s hold with a 1 s
# probe timeout: the requests scheduled in the first 2 s (200 of them) must all have come back.

T0 = 1_700_000_000.0
HOLD = {"rate": 100.0, "opened": T0, "closed": T0 + 3.0, "timeout": 1.0}


def scheduled(seqs: range | list[int]) -> ProbeWindow:
    return ProbeWindow.of([rec(i, "xy"[i % 2]) for i in seqs])


def test_every_scheduled_request_back_adds_a_passing_check() -> None:
    result = with_completeness(PASS, scheduled(range(300)), budget=0.01, **HOLD)
    assert result.outcome == "pass"
    check = result.check("completeness")
    assert (check.figure, check.limit, check.passed, check.outcome) == (0.0, 0.01, True, "pass")
    assert check.explanation == "200 of 200 requests scheduled in the first 2.0 s came back"
    assert result.checks[0] == PASS.checks[0], "the gate's own checks are kept, in order"


def test_requests_still_in_flight_at_the_edge_are_not_missing() -> None:
    # the last second's requests may still be waiting for their answer when the window closes
    assert with_completeness(PASS, scheduled(range(200)), budget=0.0, **HOLD).outcome == "pass"


def test_missing_requests_beyond_the_budget_make_a_pass_inconclusive() -> None:
    # a node stopped answering after 1.6 s: 40 of the 200 never came back
    result = with_completeness(PASS, scheduled(range(160)), budget=0.02, **HOLD)
    assert result.outcome == "inconclusive"
    check = result.check("completeness")
    assert (check.figure, check.passed, check.outcome) == (0.2, None, "inconclusive")
    assert "160 of 200 requests" in check.explanation
    assert "40 missing (20.0 % > 2.0 %)" in check.explanation


def test_missing_requests_within_the_budget_pass() -> None:
    seqs = [i for i in range(300) if i != 17]
    result = with_completeness(PASS, scheduled(seqs), budget=0.01, **HOLD)
    assert result.outcome == "pass"
    assert result.check("completeness").figure == 0.005


def test_a_failed_gate_stays_failed() -> None:
    failed = GateResult("fail", (GateCheck("error_rate_y", 0.2, 0.01, False, "20 % errors", "fail"),))
    assert with_completeness(failed, scheduled(range(10)), budget=0.01, **HOLD).outcome == "fail"
    assert with_completeness(failed, scheduled(range(300)), budget=0.01, **HOLD).outcome == "fail"


def test_a_hold_no_longer_than_the_timeout_is_not_checked() -> None:
    hold = {**HOLD, "closed": T0 + 1.0}
    result = with_completeness(PASS, scheduled([]), budget=0.0, **hold)
    check = result.check("completeness")
    assert (result.outcome, check.figure, check.passed) == ("pass", None, True)
    assert check.explanation.startswith("not checked: the hold (1.0 s) is not longer than the probe timeout")


# --- the window's CSV ---------------------------------------------------------------------------------------

def csv_of(window: ProbeWindow) -> str:
    return window.csv_text()


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_window_csv_has_the_probe_columns_and_one_row_per_record() -> None:
    w = ProbeWindow.of([rec(0, "x"), rec(1, "y", status=503), rec(2, None, status=None, error="connect")])
    table = rows(csv_of(w))
    assert table[0] == list(CSV_FIELDS)
    assert len(table) == 4
    assert table[1] == ["0", "orders-list", "GET", "/orders", "1700000000.000000", "1700000000.000500",
                        "1700000000.012500", "x", "x1", "200", "12.500", "", "0", "1"]
    assert (table[2][7], table[2][9], table[2][13]) == ("y", "503", "0")
    assert (table[3][7], table[3][9], table[3][11]) == ("", "", "connect")


def test_window_csv_reads_like_the_probes_own_csv(tmp_path: Path) -> None:
    w = ProbeWindow.of([rec(i, "xy"[i % 2], status=200 if i % 5 else 500) for i in range(20)])
    assert rows(csv_of(w)) == rows(w.to_csv(tmp_path / "w.csv").read_text())


def test_a_request_name_with_commas_stays_in_its_column() -> None:
    # an unnamed route with two paths is named "route#2(/a,/b)" by the corpus
    w = ProbeWindow.of([rec(0, "x", request="route#2(/a,/b)", path="/a", error="protocol: bad, very bad")])
    table = rows(csv_of(w))
    assert all(len(r) == len(CSV_FIELDS) for r in table)
    assert table[1][1] == "route#2(/a,/b)"
    assert table[1][11].startswith("protocol")


def test_an_empty_window_is_only_the_header() -> None:
    assert csv_of(ProbeWindow.of([])) == ",".join(CSV_FIELDS) + "\n"


# --- StepOutcome ----------------------------------------------------------------------------------------

def test_a_passing_step() -> None:
    w = window(75, 25)
    step = StepOutcome(25, w, PASS, observe_only=False)
    assert not step.failed
    assert step.reason == "pass"
    assert step.line() == ("step  25 % Y: 100 requests (X 75 / Y 25, share Y 25.0 %), errors X 0 / Y 0, "
                           "probe errors 0, p99 X 12.5 / Y 12.5 ms -> PASS")
    assert rows(step.window_csv)[0] == list(CSV_FIELDS)
    d = step.gate_dict()
    assert d["weight_y"] == 25 and d["window"]["count"] == 100 and d["gate"]["outcome"] == "pass"


def test_a_failed_step_gives_the_explanations_of_its_bad_checks() -> None:
    gate = GateResult("fail", (
        GateCheck("samples_y", 25, 10, True, "enough"),
        GateCheck("error_rate_y", 0.04, 0.01, False, "Y 4.00 % errors > 1.00 %", "fail"),
        GateCheck("latency_shift", None, 25, None, "too few answers to compare", "inconclusive"),
    ))
    step = StepOutcome(25, window(75, 25), gate, observe_only=False)
    assert step.failed
    assert step.reason == "fail: Y 4.00 % errors > 1.00 %; too few answers to compare"
    assert step.line().endswith("-> FAIL")


def test_an_inconclusive_step_counts_as_failed() -> None:
    result = with_completeness(PASS, scheduled(range(100)), budget=0.01, **HOLD)
    step = StepOutcome(50, scheduled(range(100)), result, observe_only=False)
    assert step.failed
    assert step.reason.startswith("inconclusive: 100 of 200 requests scheduled")


def test_a_step_with_no_answers_shows_dashes() -> None:
    w = ProbeWindow.of([rec(0, None, status=None, error="connect")], weights=(0, 100))
    line = StepOutcome(100, w, GateResult("inconclusive", ()), observe_only=False).line()
    assert "share Y -" in line and "p99 X - / Y - ms" in line and "probe errors 1" in line


# --- small values ---------------------------------------------------------------------------------------

def test_soak_summary() -> None:
    w = window(3, 97)
    soak = Soak(requests=100, x_hits=3, errors=1, window=w)
    assert soak.summary_line() == "100 requests over the soak window, 3 reached X, 1 failed"
    assert len(rows(soak.window_csv)) == 101


# --- a window the harness could not measure is measured again, once per run ------------------------------
# CI met this: a step of a healthy Y ended "could not judge: 135 of 758 requests sent more than 50 ms
# after their scheduled time (17.81 %)" because the machine was busy, and the upgrade stopped there.

LATE = GateResult("inconclusive", (
    GateCheck("probe_late", 0.178, 0.02, None, "135 of 758 requests sent more than 50 ms late: the harness "
              "could not measure", "inconclusive"),
    GateCheck("samples_y", 38, 10, True, "38 answers from Y", "pass")))
FAIL = GateResult("fail", (GateCheck("error_rate_y", 0.2, 0.01, False, "20 % errors", "fail"),
                           GateCheck("probe_late", 0.178, 0.02, None, "late", "inconclusive")))


class _Weights:
    def __init__(self) -> None:
        self.set: list[tuple[int, int]] = []

    def set_weights(self, x: int, y: int) -> None:
        self.set.append((x, y))


def _shift(results: list[GateResult]) -> tuple[object, list[str]]:
    from harness.checks.shift import Shift
    from harness.gates import GateConfig
    from harness.record import RunRecord

    lines: list[str] = []
    shift = Shift(_Weights(), GateConfig(), 1.0, RunRecord(), lines.append)  # type: ignore[arg-type]
    queue = list(results)
    shift.going_on = []  # type: ignore[attr-defined]

    def measure(weight_y: int, weights: tuple[int, int], going_on: object = None) -> tuple[StepOutcome, float, dict]:
        shift.going_on.append(going_on)  # type: ignore[attr-defined]
        return StepOutcome(weight_y, window(75, 25), queue.pop(0), False), 1.0, {"probe": f"state of {len(queue)}"}

    shift._measure = measure  # type: ignore[method-assign]
    return shift, lines


def test_a_late_probe_window_is_measured_again_and_the_second_window_judges() -> None:
    shift, lines = _shift([LATE, PASS])
    outcome = shift.step(25)  # type: ignore[attr-defined]
    assert outcome.gate.outcome == "pass" and not outcome.failed
    assert len(outcome.retaken) == 1 and "135 of 758" in outcome.retaken[0]
    assert outcome.gate_dict()["retaken"] == list(outcome.retaken)
    assert [s.outcome for s in shift.record.steps] == ["pass"], "one step in the report, not two"  # type: ignore[attr-defined]
    assert any("measuring the step again (retake 1" in line for line in lines), lines
    assert "measured 2 times" in lines[-1]
    assert shift.traffic.set == [(75, 25)], "the weights are set once"  # type: ignore[attr-defined]
    assert shift.going_on == [None, {"probe": "state of 1"}], "the retake goes on with the first window's tests"  # type: ignore[attr-defined]


def test_only_one_retake_per_run_and_never_for_a_failure() -> None:
    shift, _ = _shift([LATE, PASS, LATE, FAIL])
    assert shift.step(10).gate.outcome == "pass"  # type: ignore[attr-defined]
    second = shift.step(25)  # type: ignore[attr-defined]
    assert second.gate.outcome == "inconclusive" and second.retaken == (), "the run's retake is spent"
    shift, _ = _shift([FAIL, PASS])
    failed = shift.step(10)  # type: ignore[attr-defined]
    assert failed.gate.outcome == "fail" and failed.retaken == (), "a failing window is a verdict, not a retake"


def test_the_retake_is_paid_for_in_the_alpha_split() -> None:
    from harness.sequential import split_alpha

    plain = split_alpha(0.01, steps=[10, 50, 100], fixed_checks_per_step=6)
    spare = split_alpha(0.01, steps=[10, 50, 100], fixed_checks_per_step=6, retakes=1)
    assert len(spare.units) == len(plain.units) + 6, "a retake judges one more window's fixed checks"
    assert spare.spent == pytest.approx(0.01)
    assert spare.sequential_units == plain.sequential_units == 2 + 2 + 1, "the sequential tests go on: no new units"
    assert "fixed checks for 1 retaken window(s)" in spare.describe()
