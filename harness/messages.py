"""The first words of a failure message, which sort it into an Allure category.

The suites build their failure messages with these constructors, and ``harness.report.allure``
builds ``categories.json`` from the same prefixes, so a category cannot drift from its message:

    gate failed: ...             a traffic step's gate (Y is not fit for more traffic)
    config drift: ...            X changed during the run, or Y's configuration is not X's
    behaviour difference: ...    Y answers a request differently from X, or from what its version must answer
    infrastructure problem: ...  the machinery (a node, the splitter, the probe) failed, not Y
    could not judge: ...         a step had too few samples (or the probe could not measure): no verdict on Y
"""

from __future__ import annotations

GATE_FAILED = "gate failed:"
CONFIG_DRIFT = "config drift:"
BEHAVIOUR_DIFFERENCE = "behaviour difference:"
INFRASTRUCTURE = "infrastructure problem:"
COULD_NOT_JUDGE = "could not judge:"


def gate_failed(detail: str) -> str:
    return f"{GATE_FAILED} {detail}"


def config_drift(detail: str) -> str:
    return f"{CONFIG_DRIFT} {detail}"


def behaviour_difference(detail: str) -> str:
    return f"{BEHAVIOUR_DIFFERENCE} {detail}"


def infrastructure_problem(detail: str) -> str:
    return f"{INFRASTRUCTURE} {detail}"


def could_not_judge(detail: str) -> str:
    return f"{COULD_NOT_JUDGE} {detail}"
