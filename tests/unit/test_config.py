"""harness.config and its neighbours (config_entry, config_rules, config_redact, config_capture, config_diff):
normal form, parity diff, allow-list, redaction, templates."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.admin import AdminClient
from harness.config import normalise
from harness.config_capture import capture, capture_declarative, render_declarative
from harness.config_diff import AllowRule, diff
from harness.config_redact import redact
from harness.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "plans" / "configs" / "sample.yaml"
UPSTREAM = "http://127.0.0.1:9999"
KEYS = ("fake-key-alice-0001", "fake-key-bob-0002")


def sample() -> dict[str, Any]:
    return yaml.safe_load(render_declarative(SAMPLE.read_text(), UPSTREAM))


def flat_export(nested: dict[str, Any], version_38: bool = True) -> dict[str, Any]:
    """What a DB-less node's GET /config returns for a nested file: flat, ids, timestamps, defaults."""
    out: dict[str, Any] = {"_format_version": "3.0", "_transform": False}
    ts = 1700000000

    def new(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        entity = {"id": str(uuid.uuid4()), "created_at": ts, "updated_at": ts, **body}
        out.setdefault(kind, []).append(entity)
        return entity

    def plugin(p: dict[str, Any], **fk: Any) -> None:
        config = {"key_names": ["apikey"], "hide_credentials": False, "anonymous": None,
                  "key_in_header": True,
                  "key_in_query": True, "key_in_body": False, "run_on_preflight": True, **p.get("config", {})}
        if version_38:
            config["realm"] = None
        new("plugins", {"name": p["name"], "config": config, "enabled": True, "instance_name": None,
                        "protocols": ["grpc", "grpcs", "http", "https"], "tags": None,
                        "service": None, "route": None, "consumer": None, **fk})

    consumers = {}
    for c in nested.get("consumers", []):
        entity = new("consumers", {"username": c["username"], "custom_id": c.get("custom_id"), "tags": None})
        consumers[c["username"]] = entity["id"]
        for cred in c.get("keyauth_credentials", []):
            new("keyauth_credentials",
                {"key": cred["key"], "consumer": entity["id"], "tags": None, "ttl": None})
    for s in nested.get("services", []):
        url = httpx.URL(s["url"])
        svc = new("services", {"name": s["name"], "protocol": url.scheme, "host": url.host, "port": url.port,
                               "path": url.path if url.path not in ("", "/") else None,
                               "retries": s.get("retries", 5), "connect_timeout": 60000,
                               "write_timeout": 60000, "read_timeout": 60000, "tags": None,
                               "client_certificate": None, "tls_verify": None, "tls_verify_depth": None,
                               "ca_certificates": None, "enabled": True})
        for r in s.get("routes", []):
            route = new("routes", {"name": r.get("name"), "protocols": ["https", "http"],
                                   "methods": list(reversed(r["methods"])) if r.get("methods") else None,
                                   "hosts": r.get("hosts"), "paths": r.get("paths"), "headers": None,
                                   "https_redirect_status_code": 426, "regex_priority": 0,
                                   "strip_path": r.get("strip_path", True), "path_handling": "v0",
                                   "preserve_host": False, "request_buffering": True,
                                   "response_buffering": True, "tags": None, "snis": None, "sources": None,
                                   "destinations": None, "service": svc["id"]})
            for p in r.get("plugins", []):
                plugin(p, route=route["id"])
        for p in s.get("plugins", []):
            plugin(p, service=svc["id"])
    return out


def test_nested_file_and_flat_export_normalise_equal() -> None:
    nested = sample()
    assert normalise(nested).entities == normalise(flat_export(nested)).entities


def test_normal_form_is_stable_under_reordering_and_new_ids() -> None:
    export = flat_export(sample())
    again = flat_export(sample())                 # new ids everywhere
    rng = random.Random(7)
    for kind in ("services", "routes", "plugins", "consumers", "keyauth_credentials"):
        rng.shuffle(again[kind])
    for route in again["routes"]:
        if route["methods"]:
            route["methods"].reverse()
    a, b = normalise(export), normalise(again)
    assert a.entities == b.entities
    assert diff(a, b).clean


def test_natural_keys() -> None:
    n = normalise(sample())
    assert n.keys("services") == ["accounts", "catalog", "health", "orders"]
    assert "key-auth@route:accounts-private" in n.keys("plugins")
    assert "key-auth@service:catalog" in n.keys("plugins")
    unnamed = [k for k in n.keys("routes") if k.startswith("~")]
    assert len(unnamed) == 1 and n.get("routes", unnamed[0])["service"] == "orders"  # type: ignore[index]
    creds = n.keys("keyauth_credentials")
    assert len(creds) == 2 and all(k.startswith("sha256:") for k in creds)
    assert n.get("services", "orders") == {
        "name": "orders", "protocol": "http", "host": "127.0.0.1", "port": 9999, "path": "/orders",
        "retries": 3, "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
        "enabled": True}


def test_version_added_fields_are_declared_defaults() -> None:
    x = normalise(flat_export(sample(), version_38=False))      # 3.4: no realm
    y = normalise(flat_export(sample(), version_38=True))       # 3.8: realm: null
    assert diff(x, y).clean


def test_2x_format_regex_paths_normalise_like_kong_3_loads_them() -> None:
    old = yaml.safe_load(render_declarative((SAMPLE.parent / "sample-2x.yaml").read_text(), UPSTREAM))
    assert old["_format_version"] == "2.1"
    result = diff(normalise(old), normalise(sample()))
    assert result.clean, result.render_text()
    assert normalise(old).get("routes", "orders-by-id")["paths"] == ["~/orders/\\d+$"]  # type: ignore[index]
    assert normalise(old).get("routes", "orders-list")["paths"] == ["/orders"]  # type: ignore[index]


def test_unresolved_foreign_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="refers to service 'ghost'"):
        normalise({"_format_version": "3.0", "routes": [{"name": "r", "paths": ["/"], "service": "ghost"}]})


def big_config(n_services: int) -> dict[str, Any]:
    services = []
    for i in range(n_services):
        services.append({
            "name": f"svc-{i}", "url": f"http://127.0.0.1:9000/s{i}", "retries": 5,
            "routes": [{"name": f"route-{i}-{j}", "paths": [f"/s{i}/r{j}"], "methods": ["GET", "POST"]}
                       for j in range(2)],
            "plugins": ([{"name": "key-auth", "config": {"hide_credentials": i % 2 == 0}}]
                        if i % 3 == 0 else []),
        })
    consumers = [{"username": f"user-{i}", "keyauth_credentials": [{"key": f"fake-key-{i:04d}"}]}
                 for i in range(50)]
    return {"_format_version": "3.0", "services": services, "consumers": consumers}


def test_diff_finds_added_removed_changed_on_a_few_hundred_entities() -> None:
    x_raw = big_config(120)
    y_raw = copy.deepcopy(x_raw)
    y_raw["services"][5]["retries"] = 3                              # changed
    y_raw["services"][7]["routes"][1]["paths"] = ["/s7/other"]       # changed (named route)
    del y_raw["services"][11]                                        # removed: service, 2 routes
    y_raw["consumers"].append({"username": "newcomer"})              # added
    y_raw["services"][0]["plugins"][0]["config"]["hide_credentials"] = False
    x, y = normalise(x_raw), normalise(y_raw)
    assert x.count() > 400
    result = diff(x, y)  # its speed is measured in benchmarks/config_parity.py, not asserted here
    assert [c.path for c in result.added] == ["consumers['newcomer']"]
    assert sorted(c.path for c in result.removed) == [
        "routes['route-11-0']", "routes['route-11-1']", "services['svc-11']"]
    lines = sorted(c.line() for c in result.changed)
    assert lines == [
        "~ plugins['key-auth@service:svc-0'].config.hide_credentials: true → false",
        "~ routes['route-7-1'].paths[0]: \"/s7/r1\" → \"/s7/other\"",
        "~ services['svc-5'].retries: 5 → 3",
    ]
    assert not result.clean and result.compared == x.count() + 1
    json.dumps(result.to_dict())                       # JSON-serialisable


def test_allow_list_moves_matches_to_allowed_with_reason() -> None:
    x = normalise({"_format_version": "3.0", "plugins": [{"name": "key-auth", "config": {}}],
                   "services": [{"name": "a", "host": "h", "retries": 5}]})
    y = normalise({"_format_version": "3.0", "plugins": [{"name": "key-auth", "config": {"realm": "kong"}}],
                   "services": [{"name": "a", "host": "h", "retries": 3}]})
    result = diff(x, y, allow=[{"path": "plugins['key-auth@*'].config.realm", "reason": "3.7 added realm"}])
    assert [c.path for c in result.allowed] == ["plugins['key-auth@global'].config.realm"]
    assert result.allowed[0].reason == "3.7 added realm"
    assert [c.path for c in result.changed] == ["services['a'].retries"]
    everything = diff(x, y, allow=[AllowRule("services['a']", "whole entity"),
                                   AllowRule("plugins[*]", "any plugin")])
    assert everything.clean and len(everything.allowed) == 2
    assert not AllowRule("services['a']", "r").matches("services['ab'].retries")
    with pytest.raises(ConfigError, match="needs a path and a reason"):
        diff(x, y, allow=[{"path": "services['a']", "reason": ""}])


def test_no_secret_in_normal_form_or_rendered_output() -> None:
    raw = sample()
    raw["plugins"] = [{"name": "openid-connect", "config": {"client_secret": "fake-client-secret-xyz",
                                                            "password": "fake-pass-123"}}]
    x = normalise(raw)
    y_raw = copy.deepcopy(raw)
    y_raw["consumers"][0]["keyauth_credentials"][0]["key"] = "fake-key-alice-ROTATED"
    y_raw["plugins"][0]["config"]["client_secret"] = "fake-client-secret-new"
    y = normalise(y_raw)
    result = diff(x, y)
    assert result.added and result.removed and result.changed      # the rotated key and secret show up
    outputs = [json.dumps(x.to_dict()), json.dumps(result.to_dict()), result.render_text(),
               result.render_html()]
    for secret in (*KEYS, "fake-key-alice-ROTATED", "fake-client-secret-xyz", "fake-client-secret-new",
                   "fake-pass-123"):
        for out in outputs:
            assert secret not in out
    assert "<redacted:" in result.render_text() and "&lt;redacted:" in result.render_html()


def test_redact_replaces_secret_values_only() -> None:
    data = {"key": "abc", "config": {"token_expiration": 7200, "client_secret": "s", "key_names": ["apikey"],
                                     "passwords": ["p1", "p2"]}, "name": "n"}
    out = redact(data)
    assert out["key"].startswith("<redacted:") and out["key"] != "abc"
    assert out["config"]["token_expiration"] == 7200 and out["config"]["key_names"] == ["apikey"]
    assert all(v.startswith("<redacted:") for v in out["config"]["passwords"])
    assert out["name"] == "n" and data["key"] == "abc"      # the input is not modified
    assert redact(out) == out                              # idempotent


def test_render_text_reads_well() -> None:
    x = normalise({"_format_version": "3.0", "services": [{"name": "orders", "host": "h", "retries": 5}]})
    y = normalise({"_format_version": "3.0", "services": [{"name": "orders", "host": "h", "retries": 3}]})
    text = diff(x, y).render_text()
    assert "~ services['orders'].retries: 5 → 3" in text and "1 changed" in text


def test_render_declarative_substitutes_and_refuses_unknown_placeholders() -> None:
    out = render_declarative("url: ${UPSTREAM_URL}/a\n", "http://127.0.0.1:5000/")
    assert out == "url: http://127.0.0.1:5000/a\n"
    with pytest.raises(ConfigError, match=r"\$\{OTHER\}"):
        render_declarative("url: ${OTHER}\n", UPSTREAM)
    with pytest.raises(ConfigError, match="upstream: echo"):
        render_declarative("url: ${UPSTREAM_URL}\n", None)
    assert render_declarative("a: 1\n", None) == "a: 1\n"


def test_capture_dbless_uses_get_config_and_cp_uses_entity_listing() -> None:
    export = flat_export(sample())
    dbless_root = {"version": "3.8.1", "configuration": {"database": "off", "role": "traditional"}}

    def dbless(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            return httpx.Response(200, json=dbless_root)
        if request.url.path == "/config":
            return httpx.Response(200, json={"config": yaml.safe_dump(export)})
        return httpx.Response(404, json={"message": "Not found"})

    a = capture(AdminClient("http://127.0.0.1:8001", transport=httpx.MockTransport(dbless)))
    assert a.source == "GET /config"

    paths = {"services": "services", "routes": "routes", "consumers": "consumers", "plugins": "plugins",
             "key-auths": "keyauth_credentials"}

    def cp(request: httpx.Request) -> httpx.Response:
        path = request.url.path.strip("/")
        if path == "":
            conf = {"database": "postgres", "role": "control_plane"}
            return httpx.Response(200, json={"version": "3.8.1", "configuration": conf})
        if path in paths:
            items = []
            for item in export.get(paths[path], []):
                item = dict(item)
                for fk in ("service", "route", "consumer"):    # the Admin API nests foreign keys
                    if isinstance(item.get(fk), str):
                        item[fk] = {"id": item[fk]}
                items.append(item)
            return httpx.Response(200, json={"data": items, "next": None})
        return httpx.Response(200, json={"data": [], "next": None})

    client = AdminClient("http://127.0.0.1:8001", transport=httpx.MockTransport(cp))
    b = capture(client)
    assert b.source == "entity listing"
    assert a.entities == b.entities
    declarative = capture_declarative(client)
    assert declarative["_format_version"] == "3.0" and isinstance(declarative["routes"][0]["service"], str)


def odd_config() -> dict[str, Any]:
    """A config that takes every branch of normalisation: urls with null parts, a 2.x-style regex path in
    a 3.0 file, unnamed routes and consumers, nested children and references by name or mapping, secrets
    in odd places, empty and null-holding containers, set lists of mappings, route headers."""
    return {
        "_format_version": "3.0",
        "services": [
            {"name": "a", "url": "https://a.internal/v1", "port": None, "tags": ["z", "b", "b"],
             "ca_certificates": [], "retries": 5, "extra": {"x": None, "token": "fake-tok-1", "list": [None, 1]},
             "routes": [{"paths": ["/b", "/a"], "methods": ["POST", "GET"], "headers": {
                 "X-B": ["2", "1"], "Authorization": ["fake-bearer"]}, "snis": None, "sources": [
                 {"ip": "10.0.0.2"}, {"ip": "10.0.0.1", "port": None}]},
                 {"name": "a-named", "paths": ["/re[gex]"], "protocols": [], "tags": [3, "1", 2]}],
             "plugins": [{"name": "key-auth", "config": {}}, {"name": "rate-limiting",
                                                             "config": {"minute": 5, "policy": None}}]},
            {"name": "b", "host": "b.internal", "protocol": "grpc", "path": None, "enabled": False,
             "client_certificate": {"id": "cert-1"}},
        ],
        "routes": [{"name": "flat", "service": "a", "hosts": ["h2", "h1"], "regex_priority": 1},
                   {"name": "flat-by-map", "service": {"name": "b"}, "paths": ["/flat"]}],
        "consumers": [
            {"username": "alice", "custom_id": None, "tags": None,
             "keyauth_credentials": [{"key": "fake-key-a1"}, {"key": "", "tags": ["t"]}],
             "acls": [{"group": "admins"}], "basicauth_credentials": [{"username": "al", "password": "pw"}]},
            {"custom_id": "c-7"}, {"tags": ["only-tags"]},
        ],
        "keyauth_credentials": [{"key": ["fake", {"k": None}], "consumer": "alice"}, {"key": 42, "consumer": "c-7"}],
        "plugins": [{"name": "key-auth", "service": "b", "route": None, "consumer": None,
                     "config": {"key_names": ["k"], "realm": None}, "protocols": ["https", "http"]},
                    {"name": "openid-connect", "config": {"client_secret": "fake-cs", "nested": {"api_key": 7},
                                                          "scopes": ["b", "a"]}}],
        "upstreams": [{"name": "up", "targets": [{"target": "t:1"}, {"target": "t:2", "weight": 5}]}],
        "certificates": [{"id": "cert-1", "cert": "fake-cert", "key": "fake-cert-key",
                          "snis": ["s.test", {"name": "t.test"}]},
                         {"cert": "fake-cert-2", "snis": [{"name": "u.test"}]}],
        "ca_certificates": [{"cert": "fake-ca"}],
        "vaults": [{"prefix": "env", "name": "env", "config": {"prefix": "KONG_"}}, {"config": {"a": 1}}],
    }


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=lambda v: f"<{type(v).__name__}:{v!r}>")


# digests of normalise(odd_config()) and of diff(odd, its mutation), taken with the code before the speed-ups
# of benchmarks/config_parity.py (commit b46237c): the normal form and the diff must stay byte-identical,
# key order included. A deliberate change to either updates them, with a reason in the commit message.
ODD_NORMAL_DIGEST = "afb8670f996672af9908dfdbf4dfa0fc4c48969b6de565a525ee0f0e354cbf19"
ODD_DIFF_DIGEST = "ba3d22291998b08a1bb22e6ae050c66b6a939bb858045f97cb9041dae716ee33"


def odd_mutation(config: dict[str, Any]) -> dict[str, Any]:
    y = copy.deepcopy(config)
    y["services"][0]["tags"] = ["b", "z"]                                   # a set list: item removed
    y["services"][0]["routes"][0]["methods"] = ["GET"]                      # unnamed route: a new key
    y["services"][0]["routes"][1]["tags"] = [3, "1", 2.0]                  # int -> float: a type change
    y["services"][0]["plugins"][1]["config"] = {"minute": True}              # 5 -> True
    y["services"][1]["enabled"] = 0                                          # False -> 0
    y["routes"][0]["regex_priority"] = None                                  # removed field
    y["routes"][0]["__private"] = "x"                                        # a key DeepDiff skips
    y["plugins"][1]["config"] = {"client_secret": "fake-cs-2", "other": {"a": [1]}}   # few keys shared
    y["consumers"][0]["acls"][0]["group"] = "users"
    y["upstreams"][0]["targets"][1]["weight"] = 6
    return y


def test_normal_form_and_diff_are_byte_identical_to_before() -> None:
    x, y = normalise(odd_config()), normalise(odd_mutation(odd_config()))
    normal = _dump([x.format_version, x.source, x.entities])
    result = diff(x, y, allow=[("targets[*]", "weights are tuned per cluster")])
    changes = _dump([result.compared] + [[[c.group, c.path, c.before, c.after, c.reason] for c in group]
                                         for group in (result.added, result.removed, result.changed,
                                                       result.allowed)])
    assert hashlib.sha256(normal.encode()).hexdigest() == ODD_NORMAL_DIGEST, normal
    assert hashlib.sha256(changes.encode()).hexdigest() == ODD_DIFF_DIGEST, changes
    for secret in ("fake-tok-1", "fake-bearer", "fake-key-a1", "fake-cs", "fake-cert-key", "pw"):
        assert f'"{secret}"' not in normal


def test_benchmark_pair_normal_form_is_unchanged() -> None:
    from benchmarks.config_parity import FULL, generate_pair

    x_raw, y_raw, planted = generate_pair(FULL.scaled(0.01))
    x, y = normalise(x_raw, source="GET /config"), normalise(y_raw, source="GET /config")
    digest = hashlib.sha256(_dump([x.entities, y.entities]).encode()).hexdigest()
    assert digest == PAIR_DIGEST
    assert len(list(diff(x, y).changed)) == sum(p.group == "changed" for p in planted)


PAIR_DIGEST = "27865c5c9a5ed9b597e29bf774727debb8a6d25eb4afe9f7b5073185b3c063ef"


@pytest.mark.parametrize(("before", "after"), [
    ({"a": 1, "b": "x"}, {"a": True, "b": "x"}),                 # a type change, though 1 == True
    ({"a": 1}, {"a": 1.0}),
    ({"a": float("nan"), "b": 1}, {"a": float("nan"), "b": 2}),
    ({"a": 1, "b": [1, 2], "c": {"d": 1}}, {"a": 2, "b": [1, True], "c": {"d": 1.0}}),   # equal, not identical
    ({"a": 1, "b": 2, "c": 3}, {"x": 1, "y": 2, "c": 3}),      # few keys shared: changed as a whole
    ({"a": 1, "__p": 1}, {"a": 2, "__p": 2}),                  # DeepDiff skips "__" keys
    ({"a": [1, 2, 3], "b": "s", "c": None}, {"a": [1, 3], "b": "t", "d": {"e": None}}),
    ({1: "int key", "a": 1}, {1: "int key", "a": 2}),
])
def test_entity_changes_are_what_deepdiff_reports(before: dict[Any, Any], after: dict[Any, Any]) -> None:
    from harness.config_diff import _deepdiff_changes, _entity_changes

    def shown(changes: list[Any]) -> list[str]:
        return [f"{c.path} {c.before!r} {c.after!r}" for c in changes]

    assert shown(_entity_changes("e", before, after)) == shown(_deepdiff_changes("e", before, after))


def test_fields_read_for_keys_and_references_are_not_secret() -> None:
    """The natural key and the reference index read the normal body (secrets there are redacted)."""
    from harness.config_redact import is_secret_key
    from harness.config_rules import KEY_FIELDS

    fields = {"name", "username", "custom_id", *(f for fs in KEY_FIELDS.values() for f in fs)}
    assert not [f for f in fields if is_secret_key(f)]


def test_normalise_restores_the_collector_and_leaves_frozen_objects_alone() -> None:
    import gc

    assert gc.isenabled()
    gc.freeze()                      # a process that froze objects itself (e.g. before forking)
    try:
        frozen = gc.get_freeze_count()
        normalise(sample())
        assert gc.isenabled() and gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()
    gc.disable()                     # a caller's own pause is kept
    try:
        normalise(sample())
        assert not gc.isenabled()
    finally:
        gc.enable()
    normalise(sample())
    assert gc.isenabled() and gc.get_freeze_count() == 0
