"""Stage 7 of 8 — shift: traffic moves from X to Y in steps, each step judged by the gates.

Runbook steps 7 and 8 (divert traffic gradually; roll back on any problem). At each step the
splitter sets the weights, the open-loop probe measures X and Y over the hold window, and the
gate judges. A failed gate returns all traffic to X at once, proves it with the probe, and fails
the stage; the later steps are skipped.
"""

import pytest

from harness import Plan, UpgradeEnvironment

pytestmark = pytest.mark.stage("shift")


def test_splitter_in_front_of_x_and_y(upgrade: UpgradeEnvironment, stage_figures) -> None:
    traffic = upgrade.traffic()
    assert traffic.splitter.weights() == (100, 0), "the splitter must start with all traffic on X"
    stage_figures("splitter", f"{upgrade.plan.traffic.splitter} at {traffic.splitter.listen_url}")


def test_shift_step(upgrade: UpgradeEnvironment, plan: Plan, shift_step: int, evidence, stage_figures) -> None:
    traffic = upgrade.traffic()
    if traffic.stopped_reason:
        pytest.skip(f"gate closed: {traffic.stopped_reason}")
    step = traffic.step(shift_step)
    evidence.attach_csv(f"probe window at {shift_step} % Y", step.window_csv)
    evidence.attach_json(f"gate figures at {shift_step} % Y", step.gate_dict())
    stage_figures("steps_passed", traffic.steps_passed)
    if step.failed:
        rollback = traffic.roll_back(step.reason)
        evidence.attach_json("rollback evidence", rollback.to_dict())
        pytest.fail(
            f"gate failed: at {shift_step} % Y: {step.reason}. Rolled back: all traffic on X "
            f"{rollback.seconds_to_proof:.2f} s after the decision, proven by {rollback.requests_after} "
            f"probe requests answered by X ({rollback.y_hits_after} reached Y)."
        )


from invariants import test_x_config_unchanged, test_x_never_written, test_y_ready  # noqa: E402,F401
