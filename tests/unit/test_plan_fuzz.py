"""Property tests of the plan loader: random YAML trees, mutations of the default plan, and random bytes never
raise anything but PlanError (or give a valid Plan), and never hang (a Hypothesis deadline per example).

Examples are few by default (CI); the benchmark run sets KUH_FUZZ_EXAMPLES (e.g. 5000) for a long run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import PlanError
from harness.plan import Plan, load_plan, parse_plan

PLANS = Path(__file__).resolve().parents[2] / "plans"
DEFAULT = yaml.safe_load((PLANS / "default.yaml").read_text())
EXAMPLES = int(os.environ.get("KUH_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KEYS = st.sampled_from([
    "plan", "name", "mode", "x", "y", "config", "traffic", "probe", "gates", "parity", "considerations",
    "credentials", "provider", "version", "count", "initial", "nodes", "faults", "image", "dp_version", "source",
    "upstream", "allowed_root", "splitter", "steps", "hold_seconds", "command", "set_weights", "listen_url",
    "rate", "min_samples", "allow", "accept", "id", "reason", "path", "kong_conf", "admin_token_env", "role",
    "admin_url", "proxy_url", "status_url", "error_rate", "refuse_cp", "admin_token", "<<",
]) | st.text(max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
           | st.text(max_size=40) | st.sampled_from(["3.8.1", "v3.8.1", "3.x", "../../etc/passwd", "/dev/zero",
                                                   "configs/sample.yaml", "existing", "command", "hybrid", "{x} {y}",
                                                   "http://127.0.0.1:8001", "3.4.3.12", ".."]))
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
                     max_leaves=40)


def check(text: str | bytes) -> None:
    try:
        plan = parse_plan(text, PLANS)
    except PlanError as exc:
        assert str(exc).strip()
    else:
        assert isinstance(plan, Plan)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@FUZZ
@given(TREES)
def test_random_yaml_trees_give_a_plan_or_a_plan_error(tree: Any) -> None:
    check(dump(tree))


def _set(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node: Any = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return data


PATHS = st.lists(KEYS, min_size=1, max_size=3)


@FUZZ
@given(st.lists(st.tuples(PATHS, TREES), min_size=1, max_size=4))
def test_mutations_of_the_default_plan_give_a_plan_or_a_plan_error(changes: list[tuple[list[str], Any]]) -> None:
    data = yaml.safe_load(yaml.safe_dump(DEFAULT))
    for path, value in changes:
        data = _set(data, path, value)
    check(dump(data))


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_give_a_plan_error(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#%@` \n\tab1.?<")), max_size=300))
def test_yaml_punctuation_soup_gives_a_plan_error(text: str) -> None:
    check("plan: 1\n" + text)


@settings(max_examples=max(10, EXAMPLES // 6), deadline=timedelta(seconds=2))
@given(st.binary(max_size=500))
def test_random_plan_files_give_a_plan_error(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_bytes(data)
        try:
            assert isinstance(load_plan(path), Plan)
        except PlanError as exc:
            assert str(exc).strip()
