"""harness.plan: valid plans load; each kind of mistake names the field, the value and what is valid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from harness.config_diff import AllowRule
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
  hold_seconds: 5
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
    assert (plan.y.count, plan.y.initial, plan.y.dp_version) == (3, 1, None)
    assert plan.config.source == (PLANS / "configs" / "sample.yaml").resolve()
    assert plan.traffic.steps == (5, 25, 50, 100) and plan.traffic.command is None
    assert plan.gates.max_error_rate == 0.01 and plan.gates.max_probe_error_rate == 0.02   # default
    assert plan.parity.allow[0].reason == "realm added in 3.7"
    assert plan.considerations.accepted("status-listen-default") is not None
    assert plan.credentials.admin_token({"KONG_X_ADMIN_TOKEN": "t"}) == "t"
    with pytest.raises(AttributeError):
        plan.name = "other"


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
    assert parse(text).y.dp_version == "3.7.0"
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
        (mutate("name", "Default Plan"), "name is 'Default Plan'; expected letters, digits, '-' and '_'"),
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
        (mutate("x.faults", {"error_rate": 2}), "x.faults.error_rate is 2; expected a fraction from 0 to 1"),
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


# --- every problem at once --------------------------------------------------------------------------------

def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = mutate("x.count", 0, mutate("traffic.splitter", "haproxi", mutate("gates.alpha", 0.9)))
    lines = error(text).splitlines()
    assert lines[0] == "3 problems:"
    assert any(line.startswith("x.count is 0") for line in lines)
    assert any("(did you mean 'haproxy'?)" in line for line in lines)
    assert any(line.startswith("gates.alpha is 0.9") for line in lines)


# --- hostile or broken input (issue 13) -------------------------------------------------------------------

def test_a_plan_over_one_megabyte_is_refused(tmp_path: Path) -> None:
    big = VALID + "# " + "x" * 1_000_000 + "\n"
    assert "too large" in error(big) and "1,000,000 bytes" in error(big)
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(PlanError, match="at most 1,000,000 bytes"):
        load_plan(path)


def test_non_utf8_and_binary_plans_are_refused_with_the_position() -> None:
    with pytest.raises(PlanError, match=r"byte 0xff is not UTF-8 .* at line 2, column 7") as info:
        parse_plan(b"plan: 1\nname: \xff\xfe\x00binary", PLANS)
    assert "save the plan as UTF-8" in str(info.value)
    with pytest.raises(PlanError, match="is not UTF-8"):
        parse_plan(bytes(range(256)) * 4, PLANS)
    with pytest.raises(PlanError, match="not valid YAML at line 1, column 1; character #x0000 is not allowed"):
        parse_plan(b"\x00\x01\x02", PLANS)


def test_deep_nesting_and_alias_bombs_are_plan_errors() -> None:
    assert "nesting" in error("plan: 1\nname: " + "[" * 50_000)  # libyaml's own flow limit, or ours
    assert "nesting deeper than 16 levels" in error("plan: 1\n" + "".join("  " * i + "a:\n" for i in range(100)))
    bomb = ["plan: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    assert "alias" in error("\n".join(bomb) + "\n")


@pytest.mark.parametrize(("text", "key", "lines"), [
    (VALID.replace("mode: dbless", "mode: dbless\nmode: hybrid"), "mode", ("line 6", "line 5")),
    (VALID.replace("  count: 3\ny:", "  count: 3\n  count: 2\ny:"), "count", ("line 10", "line 9")),
])
def test_duplicate_keys_name_the_key_and_both_lines(text: str, key: str, lines: tuple[str, str]) -> None:
    message = error(text)
    assert f"duplicate key {key!r}" in message and all(line in message for line in lines)


@pytest.mark.parametrize(("steps", "expected"), [
    ([], "traffic.steps is empty"),
    ([100], "traffic.steps is [100], a single step"),
    ([5, 50], "traffic.steps[1] is 50; the last step must be 100"),
    ([50, 25, 100], "traffic.steps[1] is 25, not more than the step before (50)"),
    ([5, 5, 100], "traffic.steps[1] is 5, not more than the step before (5)"),
    ([5, "50", 100], "traffic.steps[1] is '50'; expected a whole percentage from 1 to 100"),
])
def test_steps_must_be_partial_increasing_and_end_at_100(steps: list[object], expected: str) -> None:
    assert expected in error(mutate("traffic.steps", steps))


def test_a_hold_too_short_for_min_samples_names_the_hold_that_suffices() -> None:
    message = error(mutate("traffic.hold_seconds", 3))
    assert "traffic.hold_seconds is 3" in message and "about 30 answers" in message
    assert "gates.min_samples (50)" in message and "set traffic.hold_seconds: 5" in message
    assert parse(mutate("gates.min_samples", 30, mutate("traffic.hold_seconds", 3))).traffic.hold_seconds == 3


def existing(nodes: list[dict[str, str]], text: str = VALID) -> str:
    return mutate("config", {"upstream": "none"}, mutate("x", {"provider": "existing", "nodes": nodes}, text))


def test_duplicate_node_urls_are_refused() -> None:
    node = {"role": "dbless", "admin_url": "http://127.0.0.1:8001", "proxy_url": "http://127.0.0.1:8000"}
    message = error(existing([node, dict(node, admin_url="http://127.0.0.1:8002")]))
    assert "x.nodes[1].proxy_url is 'http://127.0.0.1:8000', the same URL as x.nodes[0].proxy_url" in message
    same_y = mutate("y", {"provider": "existing", "nodes": [node], "load": "keep"}, existing([node]))
    assert "y.nodes[0].admin_url is 'http://127.0.0.1:8001', the same URL as x.nodes[0].admin_url" in error(same_y)


def test_existing_nodes_are_counted_and_keep_their_roles() -> None:
    nodes = [{"role": "dbless", "admin_url": f"http://127.0.0.1:800{i}", "proxy_url": f"http://127.0.0.1:900{i}"}
             for i in range(2)]
    plan = parse(existing(nodes))
    assert plan.x.count == 2 and [n.role for n in plan.x.nodes] == ["dbless", "dbless"]


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("description", {"a": 1}, "description is {'a': 1}; expected a string"),
    ("x", "three nodes", "x must be a mapping of keys, got 'three nodes'"),
    ("traffic.steps", "5,25,100", "traffic.steps is '5,25,100'; expected whole percentages"),
    ("probe.rate", "fast", "probe.rate is 'fast'; expected requests per second more than 0 to 10000"),
    ("considerations.kong_conf", {"status_listen": ["a"]}, "considerations.kong_conf.status_listen is ['a']; "
                                                           "expected a single value as in kong.conf"),
    ("parity.allow", [{"path": "a", "reason": "  "}], "parity.allow[0].reason is blank"),
])
def test_wrong_types_name_field_value_and_what_is_valid(key: str, value: object, expected: str) -> None:
    assert expected in error(mutate(key, value))


@pytest.mark.parametrize(("version", "expected"), [
    ("v3.8.1", "write '3.8.1' (without the 'v')"),
    ("3.x", "not a Kong version: '3.x'"),
    ("3.8", "write '3.8.0' (three parts)"),
    (" 3.8.1", "not a Kong version"),
    ("3.8.1.2.3", "not a Kong version"),
])
def test_malformed_versions_are_refused_with_the_fix(version: str, expected: str) -> None:
    assert expected in error(mutate("y.version", version))


@pytest.mark.parametrize("version", ["3.10.0", "3.4.3.12", "4.0.0", "3.9.3-enterprise-edition", "1.5.0"])
def test_well_formed_unknown_versions_load_with_a_warning(version: str) -> None:
    plan = parse(mutate("y.version", version))
    assert plan.y.version == version
    assert len(plan.warnings) == 1 and plan.warnings[0].startswith(f"y.version is {version!r}: well formed")


def test_known_versions_give_no_warning() -> None:
    assert parse().warnings == ()


@pytest.mark.parametrize("name", ["../../../tmp/escaped", "a/b", "My Plan", "x" * 65, "-dash-first", ".hidden",
                                  "", "naïve"])
def test_a_plan_name_must_be_a_safe_folder_name(name: str) -> None:
    message = error(mutate("name", name))
    assert message.startswith("name is ") and "letters, digits, '-' and '_'" in message


@pytest.mark.parametrize("name", ["default-dbless", "Blue_Green-2", "x" * 64])
def test_safe_names_are_accepted(name: str) -> None:
    assert parse(mutate("name", name)).name == name


# --- config.source: regular files (or decK folders) under the plan's folder --------------------------------

def plan_in(folder: Path, source: str, **config: str) -> Path:
    text = mutate("config", {"source": source, "upstream": "echo", **config})
    path = folder / "plan.yaml"
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return str(info.value)


def test_a_file_under_the_plans_folder_loads(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "kong.yaml").write_text("_format_version: '3.0'\n")
    assert load_plan(plan_in(tmp_path, "configs/kong.yaml")).config.source == tmp_path / "configs" / "kong.yaml"


def test_a_deck_folder_is_a_source_and_an_empty_folder_is_not(tmp_path: Path) -> None:
    deck = tmp_path / "deck"
    deck.mkdir()
    assert "a folder with no .yaml, .yml or .json file" in load_error(plan_in(tmp_path, "deck"))
    (deck / "README.txt").write_text("not a state file")
    assert "a folder with no .yaml" in load_error(plan_in(tmp_path, "deck"))
    (deck / "services.yaml").write_text("services: []\n")
    assert load_plan(plan_in(tmp_path, "deck")).config.source == deck


def test_paths_leading_outside_the_plans_folder_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    outside = tmp_path / "secret.yaml"
    outside.write_text(f"token: {'kpat_canary_0042'}\n")
    for source in ("../secret.yaml", str(outside)):
        message = load_error(plan_in(folder, source))
        assert "leads outside the plan's folder" in message and "config.allowed_root: .." in message
        assert "kpat_canary_0042" not in message
    (folder / "link.yaml").symlink_to(outside)
    message = load_error(plan_in(folder, "link.yaml"))
    assert "(through a symbolic link)" in message and "kpat_canary_0042" not in message


def test_an_explicit_allowed_root_admits_another_folder(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    plan = load_plan(plan_in(folder, str(PLANS / "configs" / "sample.yaml"), allowed_root=str(PLANS / "configs")))
    assert plan.config.source == PLANS / "configs" / "sample.yaml" and plan.config.allowed_root == PLANS / "configs"
    message = load_error(plan_in(folder, str(PLANS / "default.yaml"), allowed_root=str(PLANS / "configs")))
    assert "leads outside config.allowed_root" in message
    assert "config.allowed_root is 'nope', but" in load_error(plan_in(folder, "x.yaml", allowed_root="nope"))


def test_fifos_devices_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    assert "is a FIFO (named pipe); expected a regular file" in load_error(plan_in(tmp_path, "pipe.yaml"))
    message = load_error(plan_in(tmp_path, "/dev/zero", allowed_root="/dev"))
    assert "'/dev/zero', which is a device; expected a regular file" in message
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.yaml"
        locked.write_text("a: 1\n")
        locked.chmod(0)
        assert "is not readable" in load_error(plan_in(tmp_path, "locked.yaml"))


def test_a_fifo_or_device_as_the_plan_file_is_named_as_such(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "plan.yaml")
    with pytest.raises(PlanError, match=r"is a FIFO \(named pipe\); expected a regular YAML file"):
        load_plan(tmp_path / "plan.yaml")
    with pytest.raises(PlanError, match="is a device"):
        load_plan("/dev/zero")
    with pytest.raises(PlanError, match="is a folder"):
        load_plan(tmp_path)


# --- values ---------------------------------------------------------------------------------------------

def test_faults_read_as_a_mapping_of_text() -> None:
    plan = parse(mutate("y.faults", {"error_rate": 0.03, "refuse_cp": True, "crash_after_requests": 150,
                                     "config_drift_after_seconds": 3}, mutate("y.provider", "process")))
    assert dict(plan.y.faults) == {"error_rate": "0.03", "crash_after_requests": "150", "refuse_cp": "true",
                                   "config_drift_after_seconds": "3"}
    assert not parse().x.faults and dict(parse().x.faults) == {}


def test_parity_rules_are_allow_rules() -> None:
    rule = parse().parity.allow[0]
    assert isinstance(rule, AllowRule) and rule.matches("plugins['key-auth@x'].config.realm")


def test_changed_copies_come_from_model_copy() -> None:
    plan = parse()
    other = plan.model_copy(update={"y": plan.y.model_copy(update={"version": "3.9.1"})})
    assert other.y.version == "3.9.1" and plan.y.version == "3.8.1" and other.path == plan.path
    with pytest.raises(AttributeError, match="model_copy"):
        plan.y.version = "3.9.1"


def test_null_means_the_default() -> None:
    plan = parse(mutate("traffic", None, mutate("x.count", None)))
    assert plan.x.count == 3 and plan.traffic.splitter == "haproxy"


def test_existing_y_says_how_it_is_loaded_and_nothing_else_needs_it() -> None:
    nodes = [{"role": "dbless", "admin_url": f"http://127.0.0.1:{p}", "proxy_url": f"http://127.0.0.1:{p + 1}"}
             for p in (9101, 9201)]
    without = mutate("y", {"provider": "existing", "version": "3.8.1", "initial": 1, "nodes": nodes})
    assert "y.load is missing; with provider: existing say whether" in error(without)
    plan = parse(mutate("y", {"provider": "existing", "version": "3.8.1", "initial": 1, "nodes": nodes,
                              "load": "backup"}))
    assert (plan.y.load, plan.y.count, plan.y.initial) == ("backup", 2, 1)
    started = mutate("y", {"provider": "process", "version": "3.8.1", "load": "keep"})
    assert "y.load is set but y.provider is 'process'" in error(started)


def test_pauses_name_partial_steps() -> None:
    bad = mutate("traffic", {"steps": [5, 25, 100], "pause_after": [50]})
    assert "traffic.pause_after[0] is 50; expected one of the partial steps [5, 25]" in error(bad)
    plan = parse(mutate("traffic", {"steps": [5, 25, 100], "pause_after": [25], "hold_seconds": 10}))
    assert plan.traffic.pause_after == (25,) and plan.traffic.max_pause_seconds == 3600
