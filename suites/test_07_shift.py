"""Stage 7 of 8 — shift: traffic moves from X to Y in steps, each step judged by the gates.

Runbook steps 7 and 8 (divert traffic gradually; roll back on any problem). At each step the
splitter sets the weights, the open-loop probe measures X and Y over the hold window, and the
gate judges. A failed gate returns all traffic to X at once, proves it with the probe, and fails
the stage; the later steps are skipped.

A deliberate pause (``traffic.pause_after``, Argo Rollouts' ``pause``): after that step passes the
session ends with the split held by the traffic supervisor for at most ``traffic.max_pause_seconds``;
``--from-stage shift`` takes the held split over and goes on at the next step. If the hold ended
first (traffic went back to X), the steps start again from the first.
"""

import pytest

from harness import EXIT_NOT_JUDGED, Plan, Shift, could_not_judge, gate_failed

pytestmark = pytest.mark.stage("shift")


def test_splitter_in_front_of_x_and_y(shift: Shift, plan: Plan, run, stage_figures) -> None:
    splitter = shift.traffic.splitter
    held = run.held_step  # a resumed pause starts at the held split, else all traffic is on X
    assert splitter.weights() == (100 - held, held), f"the splitter must start at X {100 - held} % / Y {held} %"
    stage_figures("splitter", f"{plan.traffic.splitter} at {splitter.listen_url}")


def test_shift_step(shift: Shift, shift_step: int, plan: Plan, run, ledger, evidence, stage_figures,
                    report_step) -> None:
    if shift.stopped_reason:
        pytest.skip("gate closed: an earlier step failed")
    if shift_step <= run.held_step:
        pytest.skip(f"passed before the pause at {run.held_step} % Y, whose split was held until this session")
    step = shift.step(shift_step)
    report_step(step)  # every gate threshold, observed vs limit, on the terminal and the sign-off page
    evidence.attach_csv(f"probe window at {shift_step} % Y", step.window_csv)
    evidence.attach_json(f"gate figures at {shift_step} % Y", step.gate_dict())
    stage_figures("steps_passed", shift.steps_passed)
    if step.failed:
        nodes = shift.attribution(step)
        rollback = shift.roll_back(step.reason)
        evidence.attach_json("rollback evidence", rollback.to_dict())
        rolled = (f"Rolled back: all traffic on X {rollback.seconds_to_proof:.2f} s after the decision, proven by "
                  f"{rollback.requests_after} probe requests answered by X ({rollback.y_hits_after} reached Y).")
        detail = f"at {shift_step} % Y: {step.reason}. {rolled}" + (f"\nNodes:\n{nodes}" if nodes else "")
        # an inconclusive step is not a verdict on Y: the harness could not judge it
        pytest.fail(could_not_judge(detail) if step.gate.outcome == "inconclusive" else gate_failed(detail))
    ledger.set_fact("shift_steps_passed", sorted({*ledger.fact("shift_steps_passed", []), shift_step}))
    if shift_step in plan.traffic.pause_after and shift_step > run.held_step:
        pause = run.pause_traffic(shift_step)
        ledger.set_fact("paused", pause)
        pytest.exit(pause["message"], returncode=EXIT_NOT_JUDGED)  # a pause: not done, not failed
