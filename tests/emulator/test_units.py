"""Fast checks of the declarative loader and router (KONG-FACTS.md sections 1.3, 5, 6.4)."""

from __future__ import annotations

import hashlib

import pytest

from emulator.declarative import EMPTY_HASH, DeclarativeError, load
from emulator.router import Router, upstream_path
from emulator.schema import available_plugins
from emulator.state import Snapshot
from emulator.versions import KongVersion, dp_compatibility

V39 = KongVersion.parse("3.9.1")
V28 = KongVersion.parse("2.8.5")
PLUGINS = available_plugins(V39, ("bundled",))


def test_hash_of_string_input_and_empty() -> None:
    """KONG-FACTS 1.3: md5 of the raw text; 32 zeros for an empty config."""
    text = '{"_format_version": "3.0", "consumers": [{"username": "a"}]}'
    import json

    expected = hashlib.md5(text.encode()).hexdigest()
    assert load(json.loads(text), V39, PLUGINS, raw_text=text).config_hash == expected
    assert load({"_format_version": "3.0"}, V39, PLUGINS, raw_text="x").config_hash == EMPTY_HASH


def test_duplicate_ids_and_custom_ids() -> None:
    """KONG-FACTS 1.3: uniqueness errors by index for ids, by endpoint key for other unique fields."""
    sid = "9b3a2f3e-1111-4a4a-8a8a-000000000001"
    with pytest.raises(DeclarativeError) as caught:
        load({"_format_version": "3.0", "services": [{"id": sid, "host": "a"}, {"id": sid, "host": "b"}],
              "consumers": [{"username": "foo", "custom_id": "conflict"},
                            {"username": "bar", "custom_id": "conflict"}]}, V39, PLUGINS)
    fields = caught.value.fields
    assert fields["services"][0] is None
    assert fields["services"][1] == (
        f"uniqueness violation: 'services' entity with primary key set to '{sid}' already declared")
    assert fields["consumers"]["bar"] == ("uniqueness violation: 'consumers' entity with custom_id set to "
                                          "'conflict' already declared")


def test_nested_and_referenced_entities() -> None:
    """KONG-FACTS 5: nesting under parents and top-level references by name."""
    loaded = load({"_format_version": "3.0",
                   "services": [{"name": "s", "host": "h", "plugins": [{"name": "key-auth"}]}],
                   "routes": [{"name": "r", "paths": ["/r"], "service": "s"}],
                   "consumers": [{"username": "c", "keyauth_credentials": [{"key": "k"}]}]}, V39, PLUGINS)
    service_id = next(iter(loaded.entities["services"]))
    assert next(iter(loaded.entities["routes"].values()))["service"] == {"id": service_id}
    plugin = next(iter(loaded.entities["plugins"].values()))
    assert plugin["config"]["key_names"] == ["apikey"] and plugin["config"]["realm"] is None
    with pytest.raises(DeclarativeError) as caught:
        load({"_format_version": "3.0", "routes": [{"paths": ["/r"], "service": "nope"}]}, V39, PLUGINS)
    assert "invalid reference 'nope'" in caught.value.fields["routes"][0]["service"]


def test_realm_unknown_before_37() -> None:
    """KONG-FACTS 4.1: key-auth `realm` exists from 3.7.0."""
    v36 = KongVersion.parse("3.6.1")
    with pytest.raises(DeclarativeError) as caught:
        load({"_format_version": "3.0", "plugins": [{"name": "key-auth", "config": {"realm": "x"}}]},
             v36, available_plugins(v36, ("bundled",)))
    assert caught.value.fields["plugins"][0]["config"] == {"realm": "unknown field"}


@pytest.mark.parametrize(("service_path", "route_path", "strip", "request_path", "expected"), [
    ("/s", "/fv0", False, "/fv0req", "/s/fv0req"),
    ("/s", "/fv0", False, "/fv0", "/s/fv0"),
    ("/s", "/tv0", True, "/tv0req", "/s/req"),
    ("/s", "/tv0", True, "/tv0", "/s"),
    ("/s/", "/tv0/", True, "/tv0/req", "/s/req"),
    ("/s", "/tv0/", True, "/tv0/req", "/s/req"),
    ("/s/", "/fv0/", False, "/fv0/", "/s/fv0/"),
    (None, "/tv0", True, "/tv0/req", "/req"),
])
def test_path_handling_v0(service_path: str | None, route_path: str, strip: bool, request_path: str,
                          expected: str) -> None:
    """KONG-FACTS 6.4: the v0 examples of the 2.8 Admin API docs table."""
    services = {"s": {"id": "s", "path": service_path}}
    route = {"id": "r", "paths": [route_path], "strip_path": strip, "service": {"id": "s"},
             "protocols": ["http"], "path_handling": "v0"}
    match = Router([route], services, V39).find("GET", request_path, "h", {})
    assert match is not None
    assert upstream_path(match, request_path) == expected


def test_router_priorities() -> None:
    """KONG-FACTS 6.4: regex by regex_priority, longest prefix, and hosts make a route more specific."""
    services = {"s": {"id": "s"}}

    def route(rid: str, **kw: object) -> dict[str, object]:
        return {"id": rid, "protocols": ["http"], "service": {"id": "s"}, **kw}

    router = Router([route("short", paths=["/a"]), route("long", paths=["/a/b"]),
                     route("re_low", paths=["~/a/b/\\d+"], regex_priority=1),
                     route("re_high", paths=["~/a/b/1"], regex_priority=5),
                     route("host", paths=["/a"], hosts=["x.test"])], services, V39)

    def hit(path: str, host: str = "h") -> str:
        found = router.find("GET", path, host, {})
        assert found is not None
        return str(found.candidate.route["id"])

    assert hit("/a/c") == "short" and hit("/a/b/x") == "long"
    assert hit("/a/b/1") == "re_high" and hit("/a/b/2") == "re_low"
    assert hit("/a/b/x", "x.test") == "host"
    old = Router([route("re", paths=["/users/\\d+"])], services, V28)
    assert old.find("GET", "/users/12", "h", {}) is not None  # 2.8: regex without `~`


def test_dp_version_rule() -> None:
    """KONG-FACTS 3.3: major must match, DP minor not newer; patch and suffix ignored."""
    cp = KongVersion.parse("3.4.3")
    assert dp_compatibility(cp, "3.4.9") is None and dp_compatibility(cp, "3.0.0") is None
    assert dp_compatibility(cp, "3.4.3-enterprise-version") is None
    assert "older control plane" in (dp_compatibility(cp, "3.5.0") or "")
    assert "(3.x.y are accepted)" in (dp_compatibility(cp, "2.8.5") or "")


def test_snapshot_keyauth_scoping() -> None:
    """Plugins scoped to a route win over the service's and the global one."""
    loaded = load({"_format_version": "3.0", "services": [{"name": "s", "host": "h", "routes": [
        {"name": "r", "paths": ["/"],
         "plugins": [{"name": "key-auth", "config": {"key_names": ["route"]}}]}]}],
        "plugins": [{"name": "key-auth", "config": {"key_names": ["global"]}}]}, V39, PLUGINS)
    snap = Snapshot.build(loaded.entities, loaded.config_hash, V39)
    route_id = next(iter(loaded.entities["routes"]))
    service_id = next(iter(loaded.entities["services"]))
    assert snap.keyauth_for(route_id, service_id)["config"]["key_names"] == ["route"]  # type: ignore[index]
    assert snap.keyauth_for("other", service_id)["config"]["key_names"] == ["global"]  # type: ignore[index]
