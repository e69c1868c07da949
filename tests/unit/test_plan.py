"""harness.plan: valid plans load; each kind of mistake names the field, the value and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import PlanError
from harness.plan import Plan, load_plan, parse_plan

PLANS = Path(__file__).resolve().parents[2] / "plans"

VALID = """
plan: 1
name: default-dbless
description: "3.4 -> 3.8"
mode: dbless
x:
  provider: process
  version: "3.4.2"
  count: 3
y:
  provider: auto
  version: "3.8.1"
  count: 3
  initial: 1
config:
  source: configs/sample.yaml
  upstream: echo
traffic:
  splitter: haproxy
  steps: [5, 25, 50, 100]
  hold_seconds: 3
  soak_seconds: 2
probe:
  rate: 200
  timeout_seconds: 2
gates:
  max_error_rate: 0.01
  max_p99_ms: 500
  alpha: 0.01
  min_samples: 50
parity:
  allow:
    - path: "plugins['key-auth@*'].config.realm"
      reason: "realm added in 3.7"
considerations:
  fail_on: error
  accept: [{id: status-listen-default, reason: "we set status_listen on Y"}]
  kong_conf: {status_listen: "off"}
credentials:
  admin_token_env: KONG_X_ADMIN_TOKEN
"""


def parse(text: str = VALID) -> Plan:
    return parse_plan(text, PLANS)


def mutate(path: str, value: object, text: str = VALID) -> str:
    """The valid plan with one dotted key set (value ``...`` deletes it)."""
    data = yaml.safe_load(text)
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return yaml.safe_dump(data)


def error(text: str) -> str:
    with pytest.raises(PlanError) as info:
        parse(text)
    return str(info.value)


def test_valid_plan_loads_into_frozen_values() -> None:
    plan = parse()
    assert plan.name == "default-dbless" and plan.mode == "dbless"
    assert (plan.x.provider, plan.x.version, plan.x.count) == ("process", "3.4.2", 3)
    assert (plan.y.count, plan.y.initial, plan.y.data_plane_version) == (3, 1, "3.8.1")
    assert plan.config.source == (PLANS / "configs" / "sample.yaml").resolve()
    assert plan.traffic.steps == (5, 25, 50, 100) and plan.traffic.command is None
    assert plan.gates.max_error_rate == 0.01 and plan.gates.max_probe_error_rate == 0.02   # default
    assert plan.parity.allow[0].reason == "realm added in 3.7"
    assert plan.considerations.accepted("status-listen-default") is not None
    assert plan.credentials.admin_token({"KONG_X_ADMIN_TOKEN": "t"}) == "t"
    with pytest.raises(AttributeError):
        plan.name = "other"  # type: ignore[misc]


def test_shipped_plans_load() -> None:
    for path in sorted(PLANS.glob("*.yaml")):
        assert load_plan(path).name


def test_minimal_plan_takes_defaults() -> None:
    plan = parse('plan: 1\nname: mini\nx: {version: "3.4.2"}\ny: {version: "3.8.1"}\n'
                 "config: {source: configs/sample.yaml}\n")
    assert plan.x.provider == "auto" and plan.traffic.splitter == "haproxy"
    assert plan.traffic.steps == (5, 25, 50, 100) and plan.probe.rate == 200
    assert plan.considerations.fail_on == "error" and plan.credentials.admin_token_env is None


def test_hybrid_and_existing_and_command_splitter() -> None:
    text = mutate("mode", "hybrid")
    text = mutate("y.dp_version", "3.7.0", text)
    assert parse(text).y.data_plane_version == "3.7.0"
    text = mutate("x", {"provider": "existing", "nodes": [
        {"role": "cp", "admin_url": "http://127.0.0.1:8001"},
        {"role": "dp", "proxy_url": "http://127.0.0.1:8000", "status_url": "http://127.0.0.1:8100"}]}, text)
    text = mutate("config", {"upstream": "none"}, text)
    text = mutate("traffic.splitter", "command", text)
    text = mutate("traffic.command", {"set_weights": "lb set x={x} y={y}", "listen_url": "http://127.0.0.1:9000"},
                  text)
    plan = parse(text)
    assert plan.x.count == 1 and plan.x.nodes[0].role == "cp" and plan.config.source is None
    assert plan.traffic.command is not None and "{x}" in plan.traffic.command.set_weights


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (mutate("trafic", {"steps": [100]}), "unknown key 'trafic' (did you mean 'traffic'?)"),
        (mutate("x.cont", 3), "x.cont: unknown key 'cont' (did you mean 'count'?)"),
        (mutate("traffic.steps", [5, 50, 25, 100]), "traffic.steps[2] is 25, not more than the step before"),
        (mutate("traffic.steps", [5, 50]), "traffic.steps[1] is 50; the last step must be 100"),
        (mutate("traffic.steps", [0, 100]),
         "traffic.steps[0] is 0; expected a whole percentage from 1 to 100"),
        (mutate("traffic.splitter", "haproxi"),
         "traffic.splitter is 'haproxi'; expected one of: haproxy, nginx, command (did you mean 'haproxy'?)"),
        (mutate("traffic.splitter", "command"), "traffic.command is missing"),
        (mutate("mode", "traditional"), "mode is 'traditional'; expected one of: dbless, hybrid"),
        (mutate("x.version", 3.4), "x.version is the number 3.4"),
        (mutate("x.version", "three"), "x.version: not a Kong version: 'three'"),
        (mutate("y.version", ...), "y.version is missing"),
        (mutate("x.count", 0), "x.count is 0; expected a whole number from 1 to 32"),
        (mutate("x.count", True), "x.count is True"),
        (mutate("y.initial", 5), "y.initial is 5; expected a whole number from 1 to 3"),
        (mutate("plan", 2), "plan is 2; expected 1"),
        (mutate("name", "Default Plan"), "name is 'Default Plan'; expected lower-case letters"),
        (mutate("gates.alpha", 0.9), "gates.alpha is 0.9; expected a number more than 0 to 0.5"),
        (mutate("gates.observe_only", "yes"), "gates.observe_only is 'yes'; expected true or false"),
        (mutate("probe.rate", -1), "probe.rate is -1"),
        (mutate("config.source", "configs/nope.yaml"), "config.source is 'configs/nope.yaml', but"),
        (mutate("config.source", ...), "config.source is missing"),
        (mutate("config.upstream", "httpbin"), "config.upstream is 'httpbin'; expected one of: echo, none"),
        (mutate("parity.allow", [{"path": "services['a']"}]), "parity.allow[0].reason is missing"),
        (mutate("considerations.accept", [{"id": "status-listen-defualt", "reason": "r"}]),
         "(did you mean 'status-listen-default'?)"),
        (mutate("considerations.fail_on", "errors"), "(did you mean 'error'?)"),
        (mutate("x.admin_token", "abc123"), "put the token in an environment variable and name it in "
                                            "credentials.admin_token_env"),
        (mutate("credentials.admin_token_env", "kpat_0123-456.789"), "credentials.admin_token_env is"),
        (mutate("x.faults", {"error_rate": 2}), "x.faults.error_rate is 2; expected a fraction 0..1"),
        (mutate("x.faults", {"eror_rate": 0.1}), "(did you mean 'error_rate'?)"),
        (mutate("x.image", "kong:3.4"), "x.image is 'kong:3.4' but x.provider is 'process'"),
        (mutate("y.dp_version", "3.7.0"), "y.dp_version is set but mode is 'dbless'"),
        (mutate("x", {"provider": "existing", "nodes": [{"role": "dbless", "admin_url": "localhost:8001"}]}),
         "x.nodes[0].admin_url is 'localhost:8001'; expected http(s)://host:port"),
        (mutate("x", {"provider": "existing", "nodes": []}), "x.nodes is empty"),
        (mutate("x.nodes", [{"role": "dbless"}]), "x.nodes is only for provider: existing"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("plan: 1\nname: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_each_mistake_names_field_value_and_valid_values(text: str, expected: str) -> None:
    assert expected in error(text)


def test_secret_by_value_is_rejected_anywhere() -> None:
    message = error(mutate("credentials", {"admin_token": "kpat_real_value"}))
    assert "credentials.admin_token" in message and "kpat_real_value" not in message


def test_admin_token_env_must_be_set_when_named() -> None:
    plan = parse()
    with pytest.raises(PlanError, match="KONG_X_ADMIN_TOKEN"):
        plan.credentials.admin_token({})


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "nope.yaml")


def test_a_data_plane_newer_than_its_control_plane_is_a_valid_plan() -> None:
    # considerations reports it (blocking); a rehearsal may accept it to watch the live check catch it
    plan = parse_plan(mutate("y.dp_version", "3.9.0", mutate("mode", "hybrid")), PLANS)
    assert plan.y.dp_version == "3.9.0"
