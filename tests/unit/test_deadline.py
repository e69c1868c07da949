"""harness.deadline: the one deadline type and the size-scaled Admin API budget, on a fake clock."""

from __future__ import annotations

import pytest

from harness.deadline import (
    BASE_SECONDS,
    MAX_SECONDS,
    SECONDS_PER_MIB,
    CallBudget,
    Deadline,
    DeadlineExceeded,
    MiB,
)
from harness.errors import HarnessError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_counts_down_and_expires_on_its_clock() -> None:
    clock = Clock()
    deadline = Deadline.start(10, what="GET /config", where="x1", clock=clock)
    assert deadline.remaining() == 10 and not deadline.expired
    clock.now += 9.5
    assert deadline.remaining() == pytest.approx(0.5) and deadline.elapsed() == pytest.approx(9.5)
    deadline.check()
    clock.now += 1
    assert deadline.expired and deadline.remaining() == 0


def test_its_error_names_what_where_the_limit_the_time_taken_and_the_next_step() -> None:
    clock = Clock()
    deadline = Deadline.start(2, what="stage shift", where="cluster Y", hint="look at the probe", clock=clock)
    clock.now += 2.25
    with pytest.raises(DeadlineExceeded) as info:
        deadline.check("3 of 5 steps done")
    error = info.value
    assert isinstance(error, HarnessError)
    assert (error.what, error.where, error.seconds, error.elapsed) == ("stage shift", "cluster Y", 2.0, 2.25)
    assert str(error) == ("stage shift on cluster Y did not finish within its deadline of 2.0s (stopped after "
                          "2.2s): 3 of 5 steps done\n  next step: look at the probe")


def test_an_inner_deadline_never_outlives_its_outer_one() -> None:
    clock = Clock()
    outer = Deadline.start(10, what="listing", where="x1", clock=clock)
    clock.now += 8
    inner = outer.within(5, what="GET /services")
    assert inner.seconds == pytest.approx(2) and inner.where == "x1"
    assert outer.within(1, what="GET /").seconds == 1
    assert outer.extended_to(20).at == outer.started + 20


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_a_deadline_needs_a_sane_length(bad: float) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        Deadline.start(bad, what="x", where="y")


def test_the_budget_is_a_base_plus_a_per_mib_allowance_capped() -> None:
    budget = CallBudget()
    assert (budget.base, budget.per_mib, budget.cap) == (BASE_SECONDS, SECONDS_PER_MIB, MAX_SECONDS)
    assert budget.seconds() == BASE_SECONDS
    assert budget.seconds(2 * MiB) == BASE_SECONDS + 2 * SECONDS_PER_MIB
    assert budget.seconds(10**12) == MAX_SECONDS
    assert budget.seconds(-5) == BASE_SECONDS
    assert CallBudget(base=1, per_mib=0.5, cap=3).describe() == "1s + 0.5s/MiB, at most 3s"


def test_the_defaults_cover_the_55000_entity_load_with_room_to_spare() -> None:
    """POST /config of X's 55,000-entity backup: 18.7 MiB as JSON; the slowest load measured took 2.6 s per
    MiB (benchmarks.admin_budget, a loaded machine). Its deadline is about four times that, under the cap."""
    seconds = CallBudget().seconds(int(18.7 * MiB))
    assert seconds >= 3.9 * 2.6 * 18.7
    assert seconds < MAX_SECONDS


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"base": -1}, "base must be a number >= 0"),
    ({"per_mib": float("nan")}, "per_mib must be a number >= 0"),
    ({"base": 10, "cap": 5}, "cap (5s) must be at least its base (10s)"),
])
def test_a_bad_budget_is_refused(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError) as info:
        CallBudget(**kwargs)
    assert words in str(info.value)
