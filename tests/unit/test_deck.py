"""harness.deck: decK state files and folders merged as decK merges them, and what they seed Kong with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import normalise
from harness.config_capture import render_declarative
from harness.config_diff import diff
from harness.deck import (
    DeckState,
    entities,
    format_version_for,
    load_deck,
    origins,
    state_files,
    to_declarative,
    to_declarative_text,
)
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "plans" / "configs" / "sample.yaml"
DECK = ROOT / "plans" / "configs" / "deck"
UPSTREAM = "http://127.0.0.1:9999"
KEYS = ("fake-key-alice-0001", "fake-key-bob-0002")


def write(folder: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    elif name.endswith(".json"):
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def svc(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "host": f"{name}.test", **fields}


def refused(path: Path, *parts: str, **kwargs: Any) -> str:
    """load_deck(path) raises ConfigError whose text holds every part; the text."""
    with pytest.raises(ConfigError) as info:
        load_deck(path, **kwargs)
    text = str(info.value)
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert info.value.hint, "every error names a next step"
    return text


def with_tags(config: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    """sample.yaml as decK would send it with select_tags: the tags on every entity, nested ones too."""
    def visit(obj: Any, in_entity_list: bool) -> None:
        if isinstance(obj, dict):
            if in_entity_list:
                obj["tags"] = [*obj.get("tags", []), *tags]
            for key, value in obj.items():
                visit(value, key in ("routes", "plugins", "keyauth_credentials", "services", "consumers"))
        elif isinstance(obj, list):
            for item in obj:
                visit(item, in_entity_list)

    visit(config, False)
    return config


# ---------------------------------------------------------------------------------------------------
# the sample folder


def test_sample_folder_equals_sample_yaml_with_select_tags() -> None:
    state = load_deck(DECK)
    assert [p.name for p in state.files] == ["consumers.yaml", "services.yaml"]     # README.md ignored
    assert state.format_version == "3.0"
    assert state.select_tags == ("kuh-sample",)
    assert state.count() == 19
    expected = with_tags(yaml.safe_load(render_declarative(SAMPLE.read_text(), UPSTREAM)), ["kuh-sample"])
    got = entities(state, "3.9.0", upstream_url=UPSTREAM)
    result = diff(normalise(expected), got)
    assert result.clean, result.render_text()
    assert got.entities == normalise(expected).entities
    assert got.count() == 19


def test_sample_folder_without_tags_differs_only_in_tags() -> None:
    """The check above can fail: without the tags, every one of the 19 entities differs, in tags only."""
    plain = normalise(yaml.safe_load(render_declarative(SAMPLE.read_text(), UPSTREAM)))
    result = diff(plain, entities(load_deck(DECK, upstream_url=UPSTREAM)))
    assert len(result.changed) == 19
    assert all(c.path.endswith(".tags") for c in result.changed)


def test_sample_folder_declarative_for_kong() -> None:
    state = load_deck(DECK)
    out = to_declarative(state, "3.9.0")
    assert out["_format_version"] == "3.0"
    assert not [k for k in out if k.startswith("_") and k != "_format_version"]     # no _info
    orders = out["services"][0]
    assert orders["url"] == "${UPSTREAM_URL}/orders"                 # the placeholder survives
    assert orders["retries"] == 3 and orders["connect_timeout"] == 60000           # own value, default
    assert out["services"][1]["retries"] == 5                                         # default
    routes = {r.get("name"): r for r in orders["routes"]}
    assert routes["orders-by-id"]["strip_path"] is False and routes["orders-list"]["strip_path"] is True
    alice = out["consumers"][0]
    assert alice["tags"] == ["kuh-sample"] and alice["keyauth_credentials"][0]["tags"] == ["kuh-sample"]
    # the text renders through the harness's own placeholder step into what Kong loads
    text = render_declarative(to_declarative_text(state, "3.9.0"), UPSTREAM)
    assert yaml.safe_load(text)["services"][0]["url"] == f"{UPSTREAM}/orders"
    assert normalise(yaml.safe_load(text)).entities == entities(state, upstream_url=UPSTREAM).entities
    assert json.loads(to_declarative_text(state, fmt="json")) == to_declarative(state)


def test_to_declarative_returns_a_copy() -> None:
    state = load_deck(DECK)
    out = to_declarative(state)
    out["services"][0]["name"] = "changed"
    assert to_declarative(state)["services"][0]["name"] == "orders"


def test_upstream_url_at_load_fills_the_placeholder() -> None:
    state = load_deck(DECK, upstream_url=UPSTREAM)
    assert to_declarative(state)["services"][2]["url"] == UPSTREAM
    with pytest.raises(ConfigError, match="UPSTREAM_URL"):
        load_deck(DECK, upstream_url="not a url")


def test_origins_name_the_file_of_each_entity() -> None:
    found = origins(load_deck(DECK))
    assert found["services"]["orders"].name == "services.yaml"
    assert found["plugins"]["key-auth@route:accounts-private"].name == "services.yaml"
    assert found["consumers"]["alice"].name == "consumers.yaml"
    assert {p.name for p in found["keyauth_credentials"].values()} == {"consumers.yaml"}
    assert set(found) == set(entities(load_deck(DECK), upstream_url=UPSTREAM).entities)


# ---------------------------------------------------------------------------------------------------
# which files a folder holds


def test_folder_reads_yaml_yml_json_recursively_and_ignores_other_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_format_version": "3.0", "services": [svc("a")]})
    write(tmp_path, "b.json", {"_format_version": "3.0", "services": [svc("b")]})
    write(tmp_path, "team/c.YML", {"services": [svc("c")]})
    write(tmp_path, "README.md", "# services: not a state file\n")
    write(tmp_path, "notes.txt", "services: [x]\n")
    write(tmp_path, "kong.yaml.bak", "not: [valid")
    assert [p.relative_to(tmp_path).as_posix() for p in state_files(tmp_path)] == ["a.yaml", "b.json", "team/c.YML"]
    state = load_deck(tmp_path)
    assert [s["name"] for s in to_declarative(state)["services"]] == ["a", "b", "c"]
    assert state.format_version == "3.0"


def test_a_yaml_file_that_is_not_a_deck_file_is_refused_naming_it(tmp_path: Path) -> None:
    """decK reads every .yaml in the folder and its schema refuses unknown keys: so does the harness."""
    write(tmp_path, "kong.yaml", {"_format_version": "3.0", "services": [svc("a")]})
    write(tmp_path, "docker-compose.yml", {"version": "3", "volumes": {}})
    refused(tmp_path, "docker-compose.yml", "'version'", "'volumes'", "not part of decK's file format")


def test_a_yaml_list_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "- a\n- b\n")
    refused(tmp_path, "x.yaml", "holds a list")


def test_a_single_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "kong.conf", {"_format_version": "3.0", "services": [svc("a")]})
    assert to_declarative(load_deck(path))["services"][0]["name"] == "a"


@pytest.mark.parametrize("layout", ["missing", "empty", "only-other-files", "no-entities"])
def test_nothing_to_load_is_refused(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "deck"
    if layout != "missing":
        target.mkdir()
    if layout == "only-other-files":
        write(target, "README.md", "hello")
    if layout == "no-entities":
        write(target, "meta.yaml", {"_format_version": "3.0", "_info": {"select_tags": ["a"]}})
        write(target, "empty.yaml", "")
    refused(target, str(target) if layout != "no-entities" else "defines no entities")


# ---------------------------------------------------------------------------------------------------
# merging: _format_version, select_tags, duplicates


def test_format_version_must_agree(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_format_version": "3.0", "services": [svc("a")]})
    write(tmp_path, "b.yaml", {"_format_version": "1.1", "services": [svc("b")]})
    refused(tmp_path, "_format_version differs", "a.yaml", "'3.0'", "b.yaml", "'1.1'")


def test_format_version_is_taken_from_the_files_that_set_it_else_1_1(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"services": [svc("a")]})
    assert load_deck(tmp_path).format_version == "1.1"          # decK's default
    write(tmp_path, "b.yaml", {"_format_version": "3.0", "services": [svc("b")]})
    assert load_deck(tmp_path).format_version == "3.0"


@pytest.mark.parametrize("bad", ["2.0", 3.0, True])
def test_format_version_must_be_a_known_string(tmp_path: Path, bad: Any) -> None:
    write(tmp_path, "a.yaml", {"_format_version": bad, "services": [svc("a")]})
    refused(tmp_path, "a.yaml", "_format_version")


def test_select_tags_must_agree(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_info": {"select_tags": ["team-a"]}, "services": [svc("a")]})
    write(tmp_path, "b.yaml", {"_info": {"select_tags": ["team-b"]}, "services": [svc("b")]})
    refused(tmp_path, "select_tags differ", "a.yaml", "['team-a']", "b.yaml", "['team-b']")


def test_select_tags_apply_to_every_entity_of_every_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_info": {"select_tags": ["t2", "t1", "t1"]}, "services": [
        svc("a", tags=["own", "t1"], routes=[{"name": "r", "paths": ["/"], "plugins": [{"name": "cors"}]}]),
    ]})
    write(tmp_path, "b.yaml", {"_info": {"select_tags": ["t1", "t2"]}, "routes": [
        {"name": "top", "service": "a", "paths": ["/top"]}]})
    write(tmp_path, "c.yaml", {"consumers": [{"username": "u", "keyauth_credentials": [{"key": "k-1"}],
                                              "acls": [{"group": "g"}]}],
                               "upstreams": [{"name": "up", "targets": [{"target": "10.0.0.1:80"}]}]})
    state = load_deck(tmp_path)
    assert state.select_tags == ("t1", "t2")
    out = to_declarative(state)
    service = out["services"][0]
    assert service["tags"] == ["own", "t1", "t2"]                      # own tags kept, missing ones appended
    assert service["routes"][0]["tags"] == ["t1", "t2"]
    assert service["routes"][0]["plugins"][0]["tags"] == ["t1", "t2"]
    assert out["routes"][0]["tags"] == ["t1", "t2"]
    consumer = out["consumers"][0]                                    # c.yaml sets no select_tags
    assert consumer["tags"] == ["t1", "t2"]
    assert consumer["keyauth_credentials"][0]["tags"] == ["t1", "t2"]
    assert consumer["acls"][0]["tags"] == ["t1", "t2"]
    assert out["upstreams"][0]["targets"][0]["tags"] == ["t1", "t2"]
    assert state.count() == 9


def test_same_service_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"services": [svc("orders")]})
    write(tmp_path, "b.yaml", {"services": [svc("other"), svc("orders", port=81)]})
    refused(tmp_path, "services 'orders'", "a.yaml (services[0])", "b.yaml (services[1])", "entity already exists")


def test_same_entity_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"services": [svc("s", routes=[{"name": "r", "paths": ["/a"]}]),
                                            svc("t", routes=[{"name": "r", "paths": ["/b"]}])]})
    refused(tmp_path, "routes 'r'", "twice in decK state file a.yaml", "services[0].routes[0]",
            "services[1].routes[0]")


@pytest.mark.parametrize(("a", "b", "label"), [
    ({"services": [svc("s", id="11111111-1111-4111-8111-111111111111")]},
     {"services": [svc("t", id="11111111-1111-4111-8111-111111111111")]}, "services 't'"),
    ({"consumers": [{"username": "u1", "custom_id": "c"}]}, {"consumers": [{"username": "u2", "custom_id": "c"}]},
     "consumers 'u2'"),
    ({"upstreams": [{"name": "up", "targets": [{"target": "h:1"}, {"target": "h:1"}]}]}, {}, "targets 'h:1'"),
    ({"services": [svc("s", plugins=[{"name": "cors"}])]},
     {"plugins": [{"name": "cors", "service": "s"}]}, "plugins 'cors' on service 's'"),
    ({"plugins": [{"name": "cors"}]}, {"plugins": [{"name": "cors", "config": {"max_age": 1}}]}, "plugins 'cors'"),
])
def test_duplicate_identities(tmp_path: Path, a: dict[str, Any], b: dict[str, Any], label: str) -> None:
    write(tmp_path, "a.yaml", a)
    if b:
        write(tmp_path, "b.yaml", b)
    refused(tmp_path, label, "a.yaml")


def test_same_plugin_on_different_scopes_is_not_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {
        "services": [svc("s", plugins=[{"name": "cors"}], routes=[
            {"name": "r", "paths": ["/"], "plugins": [{"name": "cors"}]}])],
        "consumers": [{"username": "u", "plugins": [{"name": "cors"}]}],
        "plugins": [{"name": "cors"}, {"name": "cors", "service": "s", "consumer": "u"}],
    })
    state = load_deck(tmp_path)
    assert sorted(entities(state).entities["plugins"]) == [
        "cors@consumer:u", "cors@global", "cors@route:r", "cors@service:s", "cors@service:s+consumer:u"]


def test_duplicate_credential_never_shows_the_key(tmp_path: Path) -> None:
    secret = "super-secret-key-value-42"
    write(tmp_path, "a.yaml", {"consumers": [{"username": "a", "keyauth_credentials": [{"key": secret}]}]})
    write(tmp_path, "b.yaml", {"consumers": [{"username": "b", "keyauth_credentials": [{"key": secret}]}]})
    text = refused(tmp_path, "keyauth_credentials key sha256:", "a.yaml", "b.yaml")
    assert secret not in text


def test_reference_to_an_entity_no_file_defines_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"services": [svc("s")], "plugins": [{"name": "cors", "service": "nope"}]})
    refused(tmp_path, "plugins 'cors' on service 'nope'", "refers to service 'nope'")


def test_references_across_files_by_name_or_id(tmp_path: Path) -> None:
    sid = "22222222-2222-4222-8222-222222222222"
    write(tmp_path, "a.yaml", {"services": [svc("s", id=sid)]})
    write(tmp_path, "b.yaml", {"routes": [{"name": "r", "service": {"id": sid}, "paths": ["/"]}],
                               "plugins": [{"name": "cors", "service": "s"}, {"name": "cors", "route": "r"}]})
    normal = entities(load_deck(tmp_path))
    assert sorted(normal.entities["plugins"]) == ["cors@route:r", "cors@service:s"]
    assert normal.entities["routes"]["r"]["service"] == "s"


@pytest.mark.parametrize(("entity", "what"), [
    ({"services": [{"host": "x.test"}]}, "no name or id"),
    ({"services": [svc("s", routes=[{"paths": ["/"]}])]}, "services[0].routes[0]"),
    ({"consumers": [{"tags": ["x"]}]}, "no username or custom_id"),
    ({"consumers": [{"username": "u", "keyauth_credentials": [{"tags": []}]}]}, "no key"),
    ({"plugins": [{"config": {}}]}, "no name"),
])
def test_entities_without_the_identity_deck_requires_are_refused(tmp_path: Path, entity: dict[str, Any],
                                                                  what: str) -> None:
    write(tmp_path, "a.yaml", entity)
    refused(tmp_path, "a.yaml", what, "decK's file schema requires it")


# ---------------------------------------------------------------------------------------------------
# _info.defaults


def test_defaults_fill_missing_fields_and_the_entity_wins(tmp_path: Path) -> None:
    write(tmp_path, "defaults.yaml", {"_format_version": "3.0", "_info": {"defaults": {
        "service": {"retries": 9, "read_timeout": 1234, "protocol": "https", "port": 8443},
        "route": {"strip_path": False, "protocols": ["https"]},
        "upstream": {"slots": 100, "healthchecks": {"active": {"timeout": 7, "http_path": "/up"}}},
        "target": {"weight": 42},
    }}})
    write(tmp_path, "entities.yaml", {"_format_version": "3.0", "services": [
        svc("plain", routes=[{"name": "nested", "paths": ["/a"]}]),
        svc("own", retries=2, read_timeout=None),
        {"name": "by-url", "url": "http://backend.test/api"},
    ], "routes": [{"name": "top", "service": "plain", "paths": ["/b"], "strip_path": True}],
        "upstreams": [{"name": "u", "healthchecks": {"active": {"timeout": 1}},
                       "targets": [{"target": "h:1"}, {"target": "h:2", "weight": 0}]}]})
    out = to_declarative(load_deck(tmp_path))
    plain, own, by_url = out["services"]
    assert (plain["retries"], plain["read_timeout"], plain["protocol"], plain["port"]) == (9, 1234, "https", 8443)
    assert own["retries"] == 2 and own["read_timeout"] == 1234          # own value wins; a null is filled
    assert by_url["retries"] == 9 and by_url["url"] == "http://backend.test/api"
    assert not {"protocol", "port", "host", "path"} & set(by_url)     # the url sets them: never defaulted
    assert plain["routes"][0]["strip_path"] is False and plain["routes"][0]["protocols"] == ["https"]
    assert out["routes"][0]["strip_path"] is True
    upstream = out["upstreams"][0]
    assert upstream["slots"] == 100
    assert upstream["healthchecks"] == {"active": {"timeout": 1, "http_path": "/up"}}   # merged, own wins
    assert [t["weight"] for t in upstream["targets"]] == [42, 0]


def test_defaults_from_two_files_merge_and_a_conflict_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_info": {"defaults": {"service": {"retries": 1}}}, "services": [svc("a")]})
    write(tmp_path, "b.yaml", {"_info": {"defaults": {"service": {"retries": 1, "read_timeout": 5}}},
                               "services": [svc("b")]})
    state = load_deck(tmp_path)
    assert state.defaults == {"service": {"retries": 1, "read_timeout": 5}}
    assert [(s["retries"], s["read_timeout"]) for s in to_declarative(state)["services"]] == [(1, 5), (1, 5)]
    write(tmp_path, "c.yaml", {"_info": {"defaults": {"service": {"retries": 2}}}})
    refused(tmp_path, "_info.defaults.service.retries differs", "a.yaml", "c.yaml")


@pytest.mark.parametrize(("defaults", "what"), [
    ({"plugin": {"enabled": False}}, "_info.defaults.plugin is not supported"),
    ({"consumer": {"tags": ["x"]}}, "_info.defaults.consumer is not supported"),
    ({"service": {"name": "x"}}, "['name']"),
    ({"target": {"target": "h:1"}}, "['target']"),
    ({"route": ["x"]}, "must be a mapping"),
])
def test_defaults_decK_does_not_allow_are_refused(tmp_path: Path, defaults: dict[str, Any], what: str) -> None:
    write(tmp_path, "a.yaml", {"_info": {"defaults": defaults}, "services": [svc("a")]})
    refused(tmp_path, "a.yaml", what)


# ---------------------------------------------------------------------------------------------------
# decK-only keys and what the harness does not support


@pytest.mark.parametrize(("extra", "what"), [
    ({"_workspace": "team-a"}, "_workspace"),
    ({"_konnect": {"control_plane_name": "cp"}}, "_konnect"),
    ({"_transform": False}, "_transform: false"),
    ({"consumer_groups": [{"name": "gold"}]}, "consumer groups are a Kong Enterprise entity"),
    ({"rbac_roles": [{"name": "r"}]}, "rbac_roles"),
    ({"consumers": [{"username": "u", "groups": [{"name": "gold"}]}]}, "consumers[0].groups"),
    ({"keyauth_credentials": [{"key": "k"}]}, "'keyauth_credentials'"),
    ({"_info": {"select_tags": ["a"], "owner": "me"}}, "_info has unknown key(s) ['owner']"),
    ({"_info": {"default_lookup_tags": {"consumers": ["c"]}}}, "_info.default_lookup_tags is not supported"),
    ({"services": {"name": "s"}}, "services is dict; expected a list"),
    ({"services": ["s"]}, "services[0] is str"),
])
def test_unsupported_content_is_refused_with_what_it_is(tmp_path: Path, extra: dict[str, Any], what: str) -> None:
    write(tmp_path, "a.yaml", {"_format_version": "3.0", "services": [svc("a")], **extra})
    refused(tmp_path, "a.yaml", what)


def test_transform_true_and_empty_konnect_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"_transform": True, "_workspace": "", "services": [svc("a")]})
    assert "_transform" not in to_declarative(load_deck(tmp_path))


def test_plugin_configs_fill_what_the_plugin_leaves_out(tmp_path: Path) -> None:
    write(tmp_path, "shared.yaml", {"_plugin_configs": {"limits": {"minute": 10, "policy": "local",
                                                                    "nested": {"a": 1, "b": 2}}}})
    write(tmp_path, "svc.yaml", {"services": [svc("s", plugins=[
        {"name": "rate-limiting", "_config": "limits", "config": {"minute": 99, "nested": {"b": 3}}}])]})
    plugin = to_declarative(load_deck(tmp_path))["services"][0]["plugins"][0]
    assert "_config" not in plugin
    assert plugin["config"] == {"minute": 99, "nested": {"b": 3, "a": 1}, "policy": "local"}
    write(tmp_path, "bad.yaml", {"plugins": [{"name": "cors", "_config": "missing"}]})
    refused(tmp_path, "bad.yaml", "_config 'missing'")


# ---------------------------------------------------------------------------------------------------
# reading files: syntax errors, templates, leading space


def test_yaml_syntax_error_names_file_and_place_but_not_the_line(tmp_path: Path) -> None:
    secret = "fake-secret-in-a-broken-line"
    write(tmp_path, "a.yaml", f"_format_version: '3.0'\nconsumers:\n  - username: a\n    key: [{secret}\n")
    text = refused(tmp_path, "a.yaml", "not valid YAML", "line ")
    assert secret not in text


def test_json_syntax_error_names_file_and_place_but_not_the_line(tmp_path: Path) -> None:
    secret = "fake-secret-json"
    write(tmp_path, "a.json", '{"consumers": [{"username": "a", "keyauth_credentials": [{"key": "'
          + secret + '" ]}')
    text = refused(tmp_path, "a.json", "not valid JSON", "line 1")
    assert secret not in text


def test_a_file_beginning_with_a_space_is_refused_as_deck_does(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", " services:\n - name: a\n   host: a.test\n")
    refused(tmp_path, "a.yaml", "begins with a space")


def test_dates_stay_strings(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "services:\n  - name: a\n    host: a.test\n    tags: [2024-01-01]\n")
    assert to_declarative(load_deck(tmp_path))["services"][0]["tags"] == ["2024-01-01"]


def test_deck_env_template(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", 'consumers:\n  - username: a\n    keyauth_credentials:\n'
                              '      - key: ${{ env "DECK_ALICE_KEY" }}\n'
                              'services:\n  - name: s\n    host: s.test\n'
                              '    retries: ${{ env "DECK_RETRIES" | toInt }}\n'
                              '    enabled: ${{env "DECK_ON"|toBool}}\n')
    env = {"DECK_ALICE_KEY": "from-env-1", "DECK_RETRIES": "7", "DECK_ON": "T"}
    out = to_declarative(load_deck(tmp_path, env=env))
    assert out["consumers"][0]["keyauth_credentials"][0]["key"] == "from-env-1"
    assert out["services"][0]["retries"] == 7 and out["services"][0]["enabled"] is True
    text = refused(tmp_path, "a.yaml", "'DECK_RETRIES' is not a valid int", env={**env, "DECK_RETRIES": "seven"})
    assert "seven" not in text
    refused(tmp_path, "a.yaml", "'DECK_ON' is used but not set", env={"DECK_ALICE_KEY": "k", "DECK_RETRIES": "1"})


@pytest.mark.parametrize(("template", "what"), [
    ('${{ env "ALICE_KEY" }}', "must start with DECK_"),
    ('${{ .Values.key }}', "template action the harness does not support"),
])
def test_deck_env_template_refusals(tmp_path: Path, template: str, what: str) -> None:
    write(tmp_path, "a.yaml", f"services:\n  - name: s\n    host: {template}\n")
    refused(tmp_path, "a.yaml", what, env={"ALICE_KEY": "x", "DECK_ALICE_KEY": "x"})


# ---------------------------------------------------------------------------------------------------
# _format_version for the X version


def state_with(tmp_path: Path, fmt: str | None) -> DeckState:
    data: dict[str, Any] = {"services": [svc("s", routes=[{"name": "r", "paths": ["/a/\\d+"]}])]}
    if fmt is not None:
        data["_format_version"] = fmt
    write(tmp_path, "a.yaml", data)
    return load_deck(tmp_path)


@pytest.mark.parametrize(("fmt", "kong", "expected"), [
    ("3.0", "3.9.0", "3.0"), ("3.0", "3.4.3.12", "3.0"), ("1.1", "2.8.5", "1.1"), ("2.1", "2.8.5", "1.1"),
    (None, "2.8.5", "1.1"), ("3.0", None, "3.0"), ("2.1", None, "2.1"),
])
def test_format_version_for_kong(tmp_path: Path, fmt: str | None, kong: str | None, expected: str) -> None:
    state = state_with(tmp_path, fmt)
    assert format_version_for(state, kong) == expected
    assert to_declarative(state, kong)["_format_version"] == expected


@pytest.mark.parametrize(("fmt", "kong", "what"), [
    ("1.1", "3.4.0", "decK refuses to apply a format other than 3.0"),
    (None, "3.9.0", "'1.1'"),
    ("3.0", "2.8.5", "accepts only 1.1 or 2.1"),
    ("3.0", "three", "not a Kong version"),
])
def test_format_version_for_kong_refusals(tmp_path: Path, fmt: str | None, kong: str, what: str) -> None:
    state = state_with(tmp_path, fmt)
    with pytest.raises(ConfigError) as info:
        to_declarative(state, kong)
    assert what in str(info.value) and info.value.hint


def test_2x_regex_paths_keep_their_meaning_in_the_normal_form(tmp_path: Path) -> None:
    """A 1.1 file's regex path is marked '~' in the normal form, as Kong 3.x marks it on load."""
    assert entities(state_with(tmp_path, "1.1"), "2.8.5").entities["routes"]["r"]["paths"] == ["~/a/\\d+"]
