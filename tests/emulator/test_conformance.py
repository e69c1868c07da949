"""Conformance of DB-less nodes with ../shared/KONG-FACTS.md, per emulated version.

Each test names the KONG-FACTS section it checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.emulator.conftest import VERSIONS, Echo, EmulatorProcess, basic_config, start_emulator

pytestmark = pytest.mark.integration


def at_least(version: str, major: int, minor: int) -> bool:
    parts = tuple(int(p) for p in version.split(".")[:2])
    return parts >= (major, minor)


@pytest.fixture(scope="module", params=VERSIONS)
def node(request: pytest.FixtureRequest, echo: Echo) -> Iterator[EmulatorProcess]:
    """A DB-less node per version with basic_config loaded at start."""
    version = request.param
    fmt = "3.0" if version.startswith("3") else "2.1"
    started = start_emulator(version, config=basic_config(echo.url, fmt))
    yield started
    started.stop()


@pytest.fixture
def fresh(request: pytest.FixtureRequest, emulators, echo: Echo) -> EmulatorProcess:  # type: ignore[no-untyped-def]
    return emulators(request.param)


# ---- section 1.1 GET / ----
def test_root_shape_by_version(node: EmulatorProcess) -> None:
    """KONG-FACTS 1.1: edition from 3.6, available_on_server metadata from 3.0, headers."""
    response = httpx.get(node.admin + "/")
    body = response.json()
    assert response.status_code == 200
    assert body["tagline"] == "Welcome to kong" and body["version"] == node.version
    assert ("edition" in body) == at_least(node.version, 3, 6)
    keyauth = body["plugins"]["available_on_server"]["key-auth"]
    if node.version.startswith("3"):
        assert keyauth == {"version": node.version, "priority": 1250}
    else:
        assert keyauth is True
    assert body["plugins"]["enabled_in_cluster"] == ["key-auth"]
    assert body["configuration"]["database"] == "off"
    assert response.headers["Server"] == f"kong/{node.version}"
    assert "X-Kong-Admin-Latency" in response.headers and "Via" not in response.headers
    assert httpx.post(node.admin + "/").json() == {"message": "Method not allowed"}


# ---- section 1.2 /status ----
def test_status_database_rule_and_hash(node: EmulatorProcess) -> None:
    """KONG-FACTS 1.2: `database` present in DB-less only before 3.4; configuration_hash 32 hex."""
    body = httpx.get(node.admin + "/status").json()
    assert ("database" in body) == (not at_least(node.version, 3, 4))
    assert len(body["configuration_hash"]) == 32 and body["configuration_hash"] != "0" * 32
    assert set(body["server"]) >= {"connections_active", "total_requests", "connections_handled"}
    bad = httpx.get(node.admin + "/status?unit=x")
    assert bad.status_code == 400
    assert bad.json() == {"message": "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')"}


@pytest.mark.parametrize("fresh", VERSIONS, indirect=True)
def test_fresh_node_empty_hash_and_readiness(fresh: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 1.2 + 2: zero hash until loaded; /status/ready from 3.3 with Kong's reasons."""
    assert httpx.get(fresh.status + "/status").json()["configuration_hash"] == "0" * 32
    ready = httpx.get(fresh.status + "/status/ready")
    if not at_least(fresh.version, 3, 3):
        assert ready.status_code == 404
        return
    assert ready.status_code == 503
    assert ready.json() == {"message": "no configuration available (empty configuration present)"}
    text = basic_config(echo.url)
    posted = httpx.post(fresh.admin + "/config", content=text, headers={"Content-Type": "application/yaml"})
    assert posted.status_code == 201
    assert httpx.get(fresh.status + "/status/ready").json() == {"message": "ready"}
    import hashlib

    assert httpx.get(fresh.status + "/status").json()["configuration_hash"] == hashlib.md5(
        text.encode()).hexdigest()
    bad = httpx.post(fresh.admin + "/config", json={"_format_version": "3.0", "services": [{}]})
    assert bad.status_code == 400
    assert httpx.get(fresh.status + "/status/ready").status_code == 200
    drain = httpx.post(fresh.status + "/status/ready", data={"status": "draining"})
    if at_least(fresh.version, 3, 9):
        assert drain.status_code == 204
        assert httpx.get(fresh.status + "/status/ready").json() == {"message": "draining"}
    else:
        assert drain.status_code == 405


# ---- section 1.3 /config ----
def test_config_input_forms_and_check_hash(node: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 1.3: JSON body, YAML body, `config` field; check_hash=1 gives 304 for string input."""
    fmt = "3.0" if node.version.startswith("3") else "2.1"
    text = basic_config(echo.url, fmt)
    as_json = yaml.safe_load(text)
    first = httpx.post(node.admin + "/config", json=as_json)
    assert first.status_code == 201
    body = first.json()
    service_id, service = next(iter(body["services"].items()))
    assert service["id"] == service_id and "ws_id" not in service
    route = next(iter(body["routes"].values()))
    assert route["service"] == {"id": service_id}
    assert next(iter(body["keyauth_credentials"].values()))["key"] == "secret1"
    assert httpx.post(node.admin + "/config?check_hash=1", json=as_json).status_code == 201
    form = httpx.post(node.admin + "/config", data={"config": text})
    assert form.status_code == 201
    assert httpx.post(node.admin + "/config?check_hash=1", data={"config": text}).status_code == 304
    assert httpx.post(node.admin + "/config?check_hash=1", json={"config": text}).status_code == 304
    files = httpx.post(node.admin + "/config", files={"config": ("kong.yml", text.encode())})
    assert files.status_code == 201
    csv = httpx.post(node.admin + "/config", content=b"x", headers={"Content-Type": "text/csv"})
    assert csv.status_code == 415
    empty = httpx.post(node.admin + "/config", content=b"")
    assert empty.json() == {"message": "expected a declarative configuration"}


def test_config_errors_and_flatten(node: EmulatorProcess) -> None:
    """KONG-FACTS 1.3: 400 code 14 with `fields`; flattened_errors from 3.2."""
    fmt = "3.0" if node.version.startswith("3") else "2.1"
    bad = {"_format_version": fmt, "abnormal_extra_field": 1,
           "services": [{"name": "s", "port": 99999}]}
    response = httpx.post(node.admin + "/config?flatten_errors=1", json=bad)
    body = response.json()
    assert response.status_code == 400
    assert body["code"] == 14 and body["name"] == "invalid declarative configuration"
    assert body["message"].startswith("declarative config is invalid: ")
    assert body["fields"]["abnormal_extra_field"] == "unknown field"
    if at_least(node.version, 3, 2):
        entry = body["flattened_errors"][0]
        assert entry["entity_type"] == "service" and entry["entity_name"] == "s"
        fields = {e["field"]: e["message"] for e in entry["errors"]}
        assert fields == {"host": "required field missing", "port": "value should be between 0 and 65535"}
        assert "services" not in body["fields"]
    else:
        assert "flattened_errors" not in body
        assert body["fields"]["services"][0]["host"] == "required field missing"
    garbage = httpx.post(node.admin + "/config", data={"config": "- 1\n- 2\n"})
    assert garbage.json()["fields"] == {
        "error": "failed parsing declarative configuration: expected an object"}


def test_format_version_by_version(node: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 5: 2.8 accepts 1.1/2.1 only; 3.x adds 3.0 and migrates 2.x regex paths to `~`."""
    doc = {"_format_version": "3.0", "services": [{"name": "s", "url": echo.url}]}
    response = httpx.post(node.admin + "/config", json=doc)
    if node.version.startswith("2"):
        assert response.status_code == 400
        assert response.json()["fields"]["_format_version"] == "expected one of: 1.1, 2.1"
        return
    assert response.status_code == 201
    old = {"_format_version": "2.1", "services": [{"name": "s", "url": echo.url, "routes": [
        {"name": "r", "paths": ["/users/\\d+", "/plain"]}]}]}
    migrated = httpx.post(node.admin + "/config", json=old)
    assert migrated.status_code == 201
    assert next(iter(migrated.json()["routes"].values()))["paths"] == ["~/users/\\d+", "/plain"]
    exported = yaml.safe_load(httpx.get(node.admin + "/config").json()["config"])
    assert exported["_format_version"] == "3.0" and exported["_transform"] is False


# ---- section 1.4 / 1.5 collections, pagination, DB-less writes ----
def test_collections_pagination_and_writes(node: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 1.4 pagination (next/offset/size) and 1.5 DB-less write errors."""
    fmt = "3.0" if node.version.startswith("3") else "2.1"
    consumers = [{"username": f"u{i}", "keyauth_credentials": [{"key": f"k{i}"}]} for i in range(5)]
    assert httpx.post(node.admin + "/config", json={"_format_version": fmt, "consumers": consumers}
                      ).status_code == 201
    first = httpx.get(node.admin + "/consumers?size=2").json()
    assert len(first["data"]) == 2 and first["next"].startswith("/consumers?offset=")
    assert first["next"].endswith("&size=2") and "offset" in first
    seen = [c["username"] for c in first["data"]]
    link = first["next"]
    while link:
        page = httpx.get(node.admin + link).json()
        seen += [c["username"] for c in page["data"]]
        link = page["next"]
    assert sorted(seen) == [f"u{i}" for i in range(5)] and "offset" not in page
    assert httpx.get(node.admin + "/key-auths").json()["data"][0]["key"].startswith("k")
    nested = httpx.get(node.admin + "/consumers/u1/key-auth").json()
    assert [c["key"] for c in nested["data"]] == ["k1"] and nested["next"] is None
    assert httpx.get(node.admin + "/consumers/u3").json()["username"] == "u3"
    assert httpx.get(node.admin + "/consumers/nobody").status_code == 404
    assert httpx.get(node.admin + "/consumers?offset=x").json()["code"] == 7
    created = httpx.post(node.admin + "/routes", json={"paths": ["/x"]})
    assert created.status_code == 405
    assert created.json() == {"code": 12, "name": "operation unsupported",
                              "message": "cannot create 'routes' entities when not using a database"}
    nested_post = httpx.post(node.admin + "/consumers/u1/key-auth", json={})
    assert nested_post.json()["message"] == \
        "cannot create 'keyauth_credentials' entities when not using a database"
    assert httpx.put(node.admin + "/consumers/u1", json={}).json()["message"] == \
        "cannot create or update 'consumers' entities when not using a database"
    assert httpx.delete(node.admin + "/routes").json() == {"message": "Method not allowed"}
    assert httpx.delete(node.admin + "/consumers/00000000-0000-4000-8000-000000000000").status_code == 204
    assert httpx.get(node.admin + "/nothing-here").json() == {"message": "Not found"}


# ---- section 6 proxy ----
def test_proxy_headers_by_version(node: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 6.3: Via format change at 3.8, request id from 3.5, X-Forwarded-* upstream."""
    fmt = "3.0" if node.version.startswith("3") else "2.1"
    assert httpx.post(node.admin + "/config", data={"config": basic_config(echo.url, fmt)}).status_code == 201
    response = httpx.get(node.proxy + "/open/thing?q=1", headers={"Host": "example.test"})
    assert response.status_code == 200
    seen = response.json()
    assert seen["path"] == "/base/thing" and seen["query"] == {"q": "1"}
    assert seen["headers"]["x-forwarded-host"] == "example.test"
    assert seen["headers"]["x-forwarded-prefix"] == "/open"
    assert seen["headers"]["x-real-ip"] == "127.0.0.1"
    assert seen["headers"]["host"] == f"127.0.0.1:{echo.port}"
    if at_least(node.version, 3, 8):
        assert response.headers["Via"] == f"1.1 kong/{node.version}"
        assert seen["headers"]["via"] == f"1.1 kong/{node.version}"
    else:
        assert response.headers["Via"] == f"kong/{node.version}"
        assert "via" not in seen["headers"]
    assert response.headers["Server"] == "kuh-echo"
    assert "X-Kong-Upstream-Latency" in response.headers and "X-Kong-Proxy-Latency" in response.headers
    assert ("X-Kong-Request-Id" in response.headers) == at_least(node.version, 3, 5)
    assert ("x-kong-request-id" in seen["headers"]) == at_least(node.version, 3, 5)


def test_no_route_body_by_version(node: EmulatorProcess) -> None:
    """KONG-FACTS 6.1: compact JSON to 3.2, template 3.3-3.4, plus request_id from 3.5."""
    response = httpx.get(node.proxy + "/nowhere")
    assert response.status_code == 404
    assert response.headers["Server"] == f"kong/{node.version}"
    message = "no Route matched with those values"
    if not at_least(node.version, 3, 3):
        assert response.text == json.dumps({"message": message}, separators=(",", ":"))
    elif not at_least(node.version, 3, 5):
        assert response.text == '{\n  "message":"no Route matched with those values"\n}'
    else:
        request_id = response.headers["X-Kong-Request-Id"]
        assert response.json() == {"message": message, "request_id": request_id}


def test_upstream_refused_is_502(node: EmulatorProcess) -> None:
    """KONG-FACTS 6.2: connection refused gives 502 with Kong's message."""
    from tests.emulator.conftest import free_port

    fmt = "3.0" if node.version.startswith("3") else "2.1"
    doc = {"_format_version": fmt, "services": [{"name": "dead", "url": f"http://127.0.0.1:{free_port()}",
                                                 "routes": [{"paths": ["/dead"]}]}]}
    assert httpx.post(node.admin + "/config", json=doc).status_code == 201
    response = httpx.get(node.proxy + "/dead")
    assert response.status_code == 502
    assert response.json()["message"] == "An invalid response was received from the upstream server"


# ---- section 4 key-auth ----
def test_keyauth_401s_by_version(node: EmulatorProcess, echo: Echo) -> None:
    """KONG-FACTS 4.3: messages and WWW-Authenticate for 2.8-3.5 / 3.6 / 3.7+."""
    fmt = "3.0" if node.version.startswith("3") else "2.1"
    assert httpx.post(node.admin + "/config", data={"config": basic_config(echo.url, fmt)}).status_code == 201
    missing = httpx.get(node.proxy + "/api")
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    invalid = httpx.get(node.proxy + "/api", headers={"apikey": "wrong"})
    duplicate = httpx.get(node.proxy + "/api?apikey=a&apikey=b")
    assert duplicate.json()["message"] == "Duplicate API key found"
    if at_least(node.version, 3, 7):
        assert missing.headers["WWW-Authenticate"] == "Key"
        assert invalid.json()["message"] == "Unauthorized" and invalid.headers["WWW-Authenticate"] == "Key"
        assert duplicate.headers["WWW-Authenticate"] == "Key"
    else:
        assert missing.headers["WWW-Authenticate"] == 'Key realm="kong"'
        expected = "Unauthorized" if at_least(node.version, 3, 6) else "Invalid authentication credentials"
        assert invalid.json()["message"] == expected
        assert "WWW-Authenticate" not in invalid.headers and "WWW-Authenticate" not in duplicate.headers
    assert ("request_id" in invalid.json()) == at_least(node.version, 3, 5)
    ok = httpx.get(node.proxy + "/api?apikey=secret1")
    assert ok.status_code == 200
    upstream = ok.json()["headers"]
    assert upstream["x-consumer-username"] == "alice" and upstream["x-consumer-custom-id"] == "a-1"
    assert "x-credential-identifier" in upstream and "x-anonymous-consumer" not in upstream
    assert ok.json()["query"] == {"apikey": "secret1"}
