"""The stage tracker: a verdict is written once every check of the stage has reported, never before; a
stage cut short is ``interrupted``; the exit code follows from the verdicts (0, 1, 2, 3, 75)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from fixtures.stages import CheckFailure, StageTracker, cause_of, failure_text, first_line
from harness import messages
from harness.errors import NodeStartError, TrafficError
from harness.ledger import Ledger


def tracker(tmp_path: Path, **counts: int) -> StageTracker:
    t = StageTracker(Ledger(tmp_path, plan_name="p", plan_path="p.yaml"), cast(Any, None))
    t.plan_stages(counts, {s: True for s in counts})
    return t


def run_checks(t: StageTracker, stage: str, results: list[str], *, causes: list[str] | None = None) -> None:
    """Each check of ``stage``: "pass", "fail" or "skip", then its teardown report."""
    t.enter(stage)
    assert t.current is not None
    for i, result in enumerate(results):
        if result == "pass":
            t.current.passed += 1
        elif result == "fail":
            t.current.failures.append(f"test_{i}: it failed")
            t.current.causes.append(cast(Any, (causes or ["check"])[0]))
        else:
            t.current.skipped += 1
        t.check_ended(stage)


def on_disk(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "ledger.json").read_text())["stages"]


def test_no_verdict_before_the_last_check_reported_then_passed(tmp_path: Path) -> None:
    t = tracker(tmp_path, preflight=3)
    t.enter("preflight")
    assert t.current is not None
    t.current.passed += 2
    t.check_ended("preflight")
    t.check_ended("preflight")
    assert not (tmp_path / "ledger.json").exists()  # 2 of 3: nothing written yet
    t.current.passed += 1
    t.check_ended("preflight")
    assert on_disk(tmp_path)["preflight"]["outcome"] == "passed"
    assert t.exit_code(0) == 0


def test_a_stage_cut_short_is_interrupted_never_passed(tmp_path: Path) -> None:
    t = tracker(tmp_path, preflight=2, shift=7)
    run_checks(t, "preflight", ["pass", "pass"])
    run_checks(t, "shift", ["pass", "pass"])  # 2 of 7, all passed so far; then Ctrl-C lands in a hook
    t.interrupted = True
    t.finish(2)
    shift = on_disk(tmp_path)["shift"]
    assert (shift["outcome"], shift["cause"]) == ("interrupted", "interrupted")
    assert "after 2 of 7 checks of shift" in shift["message"]
    assert on_disk(tmp_path)["preflight"]["outcome"] == "passed"
    assert t.exit_code(3) == 2  # an interrupt reported as an internal error is still an interrupt
    with pytest.raises(Exception, match=r"shift \(interrupted\)"):
        Ledger(tmp_path, plan_name="p", plan_path="p.yaml").check_can_run("decommission")


def test_a_stop_without_ctrl_c_is_interrupted_too(tmp_path: Path) -> None:
    t = tracker(tmp_path, backup=4)
    run_checks(t, "backup", ["pass"])
    t.finish(1)  # e.g. -x after a failure elsewhere, or a crash in a fixture
    assert on_disk(tmp_path)["backup"]["outcome"] == "interrupted"
    assert t.exit_code(1) == 2


def test_a_failed_stage_closes_the_gate_with_a_short_reason(tmp_path: Path) -> None:
    t = tracker(tmp_path, staging=2, scale=2)
    run_checks(t, "staging", ["pass", "fail"])
    run_checks(t, "scale", ["skip", "skip"])
    stages = on_disk(tmp_path)
    assert (stages["staging"]["outcome"], stages["staging"]["cause"]) == ("failed", "check")
    assert stages["scale"] == {**stages["scale"], "outcome": "skipped", "message": "gate closed: staging failed"}
    assert t.exit_code(1) == 1


@pytest.mark.parametrize(("cause", "code"), [("not-judged", 75), ("internal", 3), ("check", 1)])
def test_the_exit_code_follows_the_cause(tmp_path: Path, cause: str, code: int) -> None:
    t = tracker(tmp_path, deploy=1)
    run_checks(t, "deploy", ["fail"], causes=[cause])
    assert t.exit_code(1) == code


def test_a_pause_is_recorded_and_exits_75(tmp_path: Path) -> None:
    t = tracker(tmp_path, shift=3)
    t.paused = lambda: "paused after 25 % Y until 21:00 UTC"
    run_checks(t, "shift", ["pass", "pass", "skip"])
    assert on_disk(tmp_path)["shift"]["outcome"] == "paused"
    assert t.exit_code(0) == 75


def test_inconclusive_steps_are_reclassified_as_not_judged(tmp_path: Path) -> None:
    t = tracker(tmp_path, shift=1)
    t.reclassify = lambda stage, cause: "not-judged" if stage == "shift" else cause
    run_checks(t, "shift", ["fail"])
    assert on_disk(tmp_path)["shift"]["cause"] == "not-judged" and t.exit_code(1) == 75


def test_a_partly_selected_stage_that_passed_records_no_verdict(tmp_path: Path) -> None:
    t = StageTracker(Ledger(tmp_path, plan_name="p", plan_path="p.yaml"), cast(Any, None))
    t.plan_stages({"staging": 1}, {"staging": False})
    run_checks(t, "staging", ["pass"])
    assert not (tmp_path / "ledger.json").exists()
    assert t.selection_note and "only part of the stage" in t.selection_note


def test_verdict_listeners_hear_each_verdict_once(tmp_path: Path) -> None:
    t = tracker(tmp_path, preflight=1, backup=1)
    heard: list[str] = []
    t.on_verdict.append(lambda v: heard.append(f"{v.stage}:{v.outcome}"))
    run_checks(t, "preflight", ["pass"])
    run_checks(t, "backup", ["fail"])
    t.finish(1)
    assert heard == ["preflight:passed", "backup:failed"]


@pytest.mark.parametrize(("exc", "cause"), [
    (AssertionError("config drift: x"), "check"),
    (pytest.fail.Exception(messages.gate_failed("at 25 % Y")), "check"),
    (pytest.fail.Exception("could not judge: at 25 % Y: 12 answers from Y (need 40)"), "not-judged"),
    (NodeStartError("y1 exited"), "not-judged"),
    (TrafficError("could not run HAProxy"), "not-judged"),
    (ConnectionRefusedError(111, "refused"), "not-judged"),
    (KeyError("x"), "internal"),
    (TypeError("bad"), "internal"),
])
def test_causes(exc: BaseException, cause: str) -> None:
    assert cause_of(exc) == cause


def test_failures_show_the_checks_own_message_not_introspection() -> None:
    class Call:
        def __init__(self, exc: BaseException) -> None:
            try:
                raise exc
            except BaseException as raised:
                self.excinfo = pytest.ExceptionInfo.from_exception(raised)

    report = cast(Any, type("R", (), {"location": ("suites/x.py", 3, "test_x"), "longreprtext": ""})())
    text = failure_text(cast(Any, Call(AssertionError("Y not ready: y2\nassert not ['y2']\n +  where ..."))), report)
    assert text == "Y not ready: y2"
    assert failure_text(cast(Any, Call(AssertionError("assert 1 == 2"))), report) == "check failed: test_x"
    assert failure_text(cast(Any, Call(KeyError("k"))), report) == "KeyError: 'k'"
    shown = CheckFailure("gate failed: at 50 % Y\n  detail", ("suites/x.py", 3, "test_x"))
    assert shown.reprcrash.message == "gate failed: at 50 % Y" and str(shown).endswith("detail")


def test_first_line_cuts_between_words() -> None:
    assert first_line("a short line\nsecond") == "a short line"
    cut = first_line("word " * 100, 50)
    assert len(cut) <= 52 and cut.endswith("\u2026") and "wor \u2026" not in cut
