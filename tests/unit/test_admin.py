"""harness.admin against httpx.MockTransport answering Kong's own bodies (KONG-FACTS §1, §2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qs

import httpx
import pytest

from harness.admin import AdminClient, ReadOnlyAdmin, StatusClient
from harness.errors import AdminAPIError, BadResponse, NodeTooSlow, NodeUnreachable, ReadOnlyViolation

BASE = "http://127.0.0.1:8001"
TOKEN = "s3cr3t-admin-token-value"

ROOT_38 = {
    "tagline": "Welcome to kong",
    "version": "3.8.1",
    "edition": "community",
    "hostname": "x1",
    "node_id": "5a7c9a8e-1f0b-4a53-9f3a-2b9d3c1e7f10",
    "timers": {"running": 0, "pending": 1},
    "plugins": {
        "available_on_server": {"key-auth": {"version": "3.8.1", "priority": 1250},
                                "cors": {"version": "3.8.1", "priority": 2000}},
        "enabled_in_cluster": ["key-auth"],
    },
    "lua_version": "LuaJIT 2.1.0-20231117",
    "configuration": {"database": "off", "role": "traditional", "log_level": "notice"},
    "pids": {"master": 1, "workers": [2]},
}
ROOT_28 = {
    "tagline": "Welcome to kong",
    "version": "2.8.5",
    "hostname": "old",
    "node_id": "11111111-2222-3333-4444-555555555555",
    "plugins": {"available_on_server": {"key-auth": True, "acl": True}, "enabled_in_cluster": []},
    "configuration": {"database": "postgres", "role": "control_plane"},
}


class Recorder:
    """A MockTransport handler that counts calls and dispatches on (method, path)."""

    def __init__(self, routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"message": "Not found"})
        return handler(request)


def _client(rec: Recorder, **kw: object) -> AdminClient:
    return AdminClient(BASE, transport=httpx.MockTransport(rec), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_root_reads_3x_and_28_shapes() -> None:
    info = _client(Recorder({("GET", "/"): lambda r: httpx.Response(200, json=ROOT_38)})).root()
    assert (info.version, info.edition, info.role, info.database, info.mode) == (
        "3.8.1", "community", "traditional", "off", "dbless")
    assert info.plugins_available == ("cors", "key-auth")
    assert info.plugins_enabled == ("key-auth",)
    old = _client(Recorder({("GET", "/"): lambda r: httpx.Response(200, json=ROOT_28)})).root()
    assert old.edition is None and old.mode == "cp"
    assert old.plugins_available == ("acl", "key-auth")    # 2.8: name -> true


Handler = Callable[[httpx.Request], httpx.Response]


def _paged(items: Sequence[Mapping[str, object]], page: int, path: str = "/services") -> Handler:
    """Kong's pagination: next is '/services?offset=<token>'; no offset and next null on the last page."""

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        start = int(query["offset"][0]) if "offset" in query else 0
        size = int(query.get("size", [page])[0])
        chunk = items[start:start + size]
        body: dict[str, object] = {"data": chunk, "next": None}
        if start + size < len(items):
            body["next"] = f"{path}?offset={start + size}&size={size}"
            body["offset"] = str(start + size)
        return httpx.Response(200, json=body)

    return handler


def test_list_follows_next_across_pages() -> None:
    services = [{"id": f"id-{i}", "name": f"svc-{i}"} for i in range(7)]
    rec = Recorder({("GET", "/services"): _paged(services, 3)})
    got = _client(rec).list("services", size=3)
    assert [s["name"] for s in got] == [f"svc-{i}" for i in range(7)]
    assert len(rec.calls) == 3
    assert rec.calls[1].url.params["offset"] == "3"


def test_list_targets_per_upstream_and_empty_collection() -> None:
    rec = Recorder({
        ("GET", "/upstreams"): lambda r: httpx.Response(200, json={"data": [{"id": "u1", "name": "up"}],
                                                                   "next": None}),
        ("GET", "/upstreams/u1/targets"): lambda r: httpx.Response(
            200, json={"data": [{"id": "t1", "target": "127.0.0.1:9000", "upstream": {"id": "u1"}}],
                       "next": None}),
        ("GET", "/key-auths"): lambda r: httpx.Response(200, json={"data": [], "next": None}),
    })
    client = _client(rec)
    assert [t["target"] for t in client.list("targets")] == ["127.0.0.1:9000"]
    assert client.list("key-auths") == []
    with pytest.raises(ValueError, match="unknown entity 'widgets'"):
        client.list("widgets")


def test_list_rejects_a_body_that_is_not_a_collection() -> None:
    rec = Recorder({("GET", "/routes"): lambda r: httpx.Response(200, json={"routes": []})})
    with pytest.raises(BadResponse, match="not a Kong collection"):
        _client(rec).list("routes")


def test_dbless_write_gives_405_code_12_with_kongs_message_and_a_hint() -> None:
    body = {"code": 12, "name": "operation unsupported",
            "message": "cannot create 'routes' entities when not using a database"}
    rec = Recorder({("POST", "/routes"): lambda r: httpx.Response(405, json=body)})
    with pytest.raises(AdminAPIError) as info:
        _client(rec).create("routes", {"paths": ["/x"]})
    err = info.value
    assert (err.status, err.code, err.name) == (405, 12, "operation unsupported")
    assert err.kong_message == "cannot create 'routes' entities when not using a database"
    assert "POST /config" in str(err) and "code 12" in str(err)
    assert len(rec.calls) == 1          # a 4xx is never retried


def test_get_config_on_a_database_node_gives_400_with_hint() -> None:
    msg = "this endpoint is only available when Kong is configured to not use a database"
    rec = Recorder({("GET", "/config"): lambda r: httpx.Response(400, json={"message": msg})})
    with pytest.raises(AdminAPIError) as info:
        _client(rec).config()
    assert info.value.status == 400 and info.value.kong_message == msg
    assert "entity listing" in str(info.value)


def test_get_config_parses_the_yaml_string() -> None:
    text = ('_format_version: "3.0"\n_transform: false\n'
            "services:\n- id: abc\n  name: s\n  host: h\n  port: 80\n")
    rec = Recorder({("GET", "/config"): lambda r: httpx.Response(200, json={"config": text})})
    config = _client(rec).config()
    assert config["_format_version"] == "3.0" and config["services"][0]["name"] == "s"


def test_status_ready_returns_503_reasons_not_errors() -> None:
    reason = "no configuration available (empty configuration present)"
    rec = Recorder({("GET", "/status/ready"): lambda r: httpx.Response(503, json={"message": reason})})
    status = StatusClient("http://127.0.0.1:8007", transport=httpx.MockTransport(rec), retries=0)
    assert status.ready() == (503, reason)
    rec.routes[("GET", "/status/ready")] = lambda r: httpx.Response(200, json={"message": "ready"})
    assert status.ready() == (200, "ready")


def test_status_ready_404_on_old_versions_is_an_error_with_hint() -> None:
    status = StatusClient("http://127.0.0.1:8007", transport=httpx.MockTransport(Recorder({})))
    with pytest.raises(AdminAPIError, match=r"needs 3\.3"):
        status.ready()


def test_status_reads_server_and_hash() -> None:
    body = {"server": {"total_requests": 3, "connections_active": 1}, "memory": {},
            "configuration_hash": "0" * 32}
    rec = Recorder({("GET", "/status"): lambda r: httpx.Response(200, json=body)})
    assert _client(rec).status()["configuration_hash"] == "0" * 32


def test_bad_response_quotes_the_body() -> None:
    rec = Recorder({("GET", "/"): lambda r: httpx.Response(200, text="<html>proxy port</html>")})
    with pytest.raises(BadResponse, match="not JSON: '<html>proxy port</html>'"):
        _client(rec).root()


def test_transient_503_on_get_is_retried_honouring_retry_after_within_cap() -> None:
    exiting = {"message": "Kong currently exiting"}
    answers = iter([httpx.Response(503, json=exiting, headers={"Retry-After": "30"}),
                    httpx.Response(200, json={"data": [], "next": None})])
    rec = Recorder({("GET", "/services"): lambda r: next(answers)})
    slept: list[float] = []
    client = AdminClient(BASE, transport=httpx.MockTransport(rec), retries=2, retry_cap=1.5,
                         sleep=slept.append)
    assert client.list("services") == []
    assert len(rec.calls) == 2 and slept == [1.5]


def test_post_is_not_retried_on_503_and_retries_are_bounded() -> None:
    exiting = {"message": "Kong currently exiting"}
    rec = Recorder({("POST", "/config"): lambda r: httpx.Response(503, json=exiting),
                    ("GET", "/"): lambda r: httpx.Response(502, json={"message": "bad gateway"})})
    client = _client(rec, retries=2)
    with pytest.raises(AdminAPIError):
        client.post_config('_format_version: "3.0"\n')
    assert len(rec.calls) == 1
    with pytest.raises(AdminAPIError) as info:
        client.root()
    assert info.value.status == 502 and len(rec.calls) == 1 + 3


def test_connect_error_names_url_timeout_and_hint_and_never_the_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    calls = Recorder({})
    client = AdminClient(BASE, token=TOKEN, timeout=1.5, retries=1, sleep=lambda s: None,
                         transport=httpx.MockTransport(lambda r: (calls(r), refuse(r))[1]))
    with pytest.raises(NodeUnreachable) as info:
        client.root()
    text = str(info.value)
    assert BASE in text and "1.5s" in text and "admin_listen" in text
    assert TOKEN not in text and TOKEN not in repr(client) and "<set>" in repr(client)
    assert len(calls.calls) == 2


def test_token_header_is_sent_but_not_shown_in_errors() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Kong-Admin-Token"))
        message = "Invalid credentials. Token or User credentials required"
        return httpx.Response(401, json={"message": message})

    client = AdminClient(BASE, token=TOKEN, transport=httpx.MockTransport(handler))
    with pytest.raises(AdminAPIError) as info:
        client.root()
    assert seen == [TOKEN]
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.body)
    assert "admin_token_env" in str(info.value)


def test_post_config_text_goes_in_config_field_and_304_is_not_modified() -> None:
    posted: list[tuple[dict[str, list[str]], object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append((parse_qs(request.url.query.decode()), json.loads(request.content)))
        if "check_hash" in posted[-1][0]:
            return httpx.Response(304)
        return httpx.Response(201, json={"services": {}})

    client = AdminClient(BASE, transport=httpx.MockTransport(handler))
    text = '_format_version: "3.0"\n'
    assert client.post_config(text, flatten_errors=True).changed
    assert posted[0] == ({"flatten_errors": ["1"]}, {"config": text})
    result = client.post_config(text, check_hash=True)
    assert result.status == 304 and not result.changed
    with pytest.raises(ValueError, match="_format_version"):
        client.post_config({"services": []})


def test_post_config_400_carries_code_14_and_fields() -> None:
    body = {"code": 14, "name": "invalid declarative configuration",
            "message": "declarative config is invalid: {services={{host=\"required field missing\"}}}",
            "fields": {"services": [{"host": "required field missing"}]}}
    client = AdminClient(BASE, transport=httpx.MockTransport(lambda r: httpx.Response(400, json=body)))
    with pytest.raises(AdminAPIError) as info:
        client.post_config({"_format_version": "3.0", "services": [{"name": "s"}]})
    assert info.value.code == 14 and info.value.body["fields"] == body["fields"]  # type: ignore[index]


def test_data_planes_on_a_cp_and_the_400_elsewhere() -> None:
    row = {"id": "dp-1", "ip": "127.0.0.1", "hostname": "dp1", "version": "3.8.1", "sync_status": "normal",
           "config_hash": "a" * 32, "last_seen": 1700000000, "labels": {"zone": "a"}, "ttl": 1209600}
    rec = Recorder({("GET", "/clustering/data-planes"): lambda r: httpx.Response(200, json={"data": [row],
                                                                                          "next": None})})
    (plane,) = _client(rec).data_planes()
    assert (plane.id, plane.version, plane.sync_status) == ("dp-1", "3.8.1", "normal")
    assert plane.labels == {"zone": "a"}
    msg = "this endpoint is only available when Kong is configured to run as Control Plane for the cluster"
    rec.routes[("GET", "/clustering/data-planes")] = lambda r: httpx.Response(400, json={"message": msg})
    with pytest.raises(AdminAPIError, match="control plane"):
        _client(rec).data_planes()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_read_only_view_refuses_writes_and_sends_nothing(method: str) -> None:
    rec = Recorder({})
    view = ReadOnlyAdmin(BASE, token=TOKEN, transport=httpx.MockTransport(rec))
    with pytest.raises(ReadOnlyViolation, match=f"refused {method}"):
        view._http.request(method, "/services", json={"name": "x"})   # the transport itself refuses
    assert rec.calls == []
    assert not hasattr(view, "post_config") and not hasattr(view, "create")
    assert not hasattr(view, "load_config_via_entities")


def test_read_only_view_from_a_client_reads_but_cannot_write() -> None:
    rec = Recorder({("GET", "/"): lambda r: httpx.Response(200, json=ROOT_38)})
    client = _client(rec, token=TOKEN)
    view = client.read_only()
    assert view.root().version == "3.8.1" and rec.calls[-1].headers["Kong-Admin-Token"] == TOKEN
    with pytest.raises(ReadOnlyViolation):
        view._http.request("POST", "/config", json={"_format_version": "3.0"})
    assert len(rec.calls) == 1 and TOKEN not in repr(view)


def test_load_config_via_entities_creates_parents_first_with_ids() -> None:
    created: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        created.append((request.url.path, body))
        return httpx.Response(201, json={**body, "id": f"id-{len(created)}"})

    client = AdminClient(BASE, transport=httpx.MockTransport(handler))
    counts = client.load_config_via_entities({
        "_format_version": "3.0",
        "services": [{"name": "orders", "url": "http://127.0.0.1:9000",
                      "routes": [{"name": "r1", "paths": ["/o"], "snis": ["a.test"]}],
                      "plugins": [{"name": "key-auth", "config": {"anonymous": "guest"}}]}],
        "consumers": [{"username": "alice", "keyauth_credentials": [{"key": "fake-key"}]}],
        "plugins": [{"name": "cors", "consumer": "alice"}],
    })
    paths = [p for p, _ in created]
    assert paths == ["/services", "/routes", "/consumers", "/consumers/id-3/key-auth", "/plugins", "/plugins"]
    assert created[1][1]["service"] == {"id": "id-1"} and created[1][1]["snis"] == ["a.test"]
    assert created[4][1]["service"] == {"id": "id-1"}
    assert created[5][1]["consumer"] == {"id": "id-3"}
    assert counts == {"services": 1, "routes": 1, "consumers": 1, "keyauth_credentials": 1, "plugins": 2}


# ---------------------------------------------------------------------------------------------------
# bounded calls: progress, listings, size-scaled deadlines (hostile nodes: test_admin_hostile.py)


def test_listing_reports_progress_per_page_and_across_upstreams_for_targets() -> None:
    services = [{"id": f"id-{i}", "name": f"svc-{i}"} for i in range(7)]
    rec = Recorder({("GET", "/services"): _paged(services, 3)})
    seen: list[tuple[int, int]] = []
    _client(rec).list("services", size=3, on_progress=lambda p, e: seen.append((p, e)))
    assert seen == [(1, 3), (2, 6), (3, 7)]

    def targets(request: httpx.Request) -> httpx.Response:
        upstream = request.url.path.split("/")[2]
        return httpx.Response(200, json={"data": [{"id": f"t-{upstream}", "target": "h:1"}], "next": None})

    rec = Recorder({("GET", "/upstreams"): lambda r: httpx.Response(
        200, json={"data": [{"id": "u1"}, {"id": "u2"}], "next": None}),
        ("GET", "/upstreams/u1/targets"): targets, ("GET", "/upstreams/u2/targets"): targets})
    seen.clear()
    assert [t["id"] for t in _client(rec).list("targets", on_progress=lambda p, e: seen.append((p, e)))] == [
        "t-u1", "t-u2"]
    assert seen == [(1, 2), (2, 3), (3, 4)]       # the upstreams page, then one page of targets each


def test_a_next_page_as_an_absolute_url_of_the_same_node_is_followed() -> None:
    pages = iter([{"data": [{"id": "a"}], "next": f"{BASE}/services?offset=b"},
                  {"data": [{"id": "b"}], "next": None}])
    rec = Recorder({("GET", "/services"): lambda r: httpx.Response(200, json=next(pages))})
    assert [s["id"] for s in _client(rec).list("services")] == ["a", "b"]
    assert rec.calls[1].url.params["offset"] == "b"


def test_a_listing_that_has_used_up_its_deadline_sends_nothing_more() -> None:
    from harness.deadline import Deadline

    rec = Recorder({("GET", "/services"): _paged([{"id": "a"}], 1)})
    spent = Deadline.start(0, what="capture of x1", where="cluster X", hint="raise the stage deadline")
    with pytest.raises(NodeTooSlow) as info:
        _client(rec).list("services", deadline=spent)
    assert rec.calls == []
    assert "capture of x1 on cluster X" in str(info.value) and "raise the stage deadline" in str(info.value)
    assert "after 0 pages and 0 entities" in str(info.value)


def test_the_call_deadline_grows_with_what_is_sent() -> None:
    from harness.deadline import CallBudget, MiB

    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(201, json={})

    budget = CallBudget(base=2, per_mib=10, cap=60)
    client = AdminClient(BASE, transport=httpx.MockTransport(handler), budget=budget)
    client.post_config("x" * (2 * MiB))
    assert seen[0]["read"] == pytest.approx(2 + 10 * 2, abs=0.5)     # ~2 MiB sent
    assert seen[0]["connect"] == pytest.approx(5.0)                   # connect: the client's timeout
    with pytest.raises(BadResponse):
        client.root()                                                 # nothing sent: the base only
    assert seen[1]["read"] == pytest.approx(2, abs=0.1)


def test_nginx_413_over_the_admin_body_limit_names_the_setting() -> None:
    page = "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n</html>\r\n"
    client = AdminClient(BASE, transport=httpx.MockTransport(
        lambda r: httpx.Response(413, text=page, headers={"Content-Type": "text/html"})))
    with pytest.raises(AdminAPIError) as info:
        client.post_config('_format_version: "3.0"\n')
    assert info.value.status == 413 and "KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE" in str(info.value)
    lmdb = {"message": "Configuration does not fit in LMDB database, consider raising the \"lmdb_map_size\""}
    client = AdminClient(BASE, transport=httpx.MockTransport(lambda r: httpx.Response(413, json=lmdb)))
    with pytest.raises(AdminAPIError, match="raise lmdb_map_size"):
        client.post_config('_format_version: "3.0"\n')


def test_capture_reports_listing_progress_per_kind_and_reads_root_once() -> None:
    from harness.config_capture import capture

    root = {**ROOT_38, "configuration": {"database": "postgres", "role": "control_plane"}}
    empty: dict[str, object] = {"data": [], "next": None}
    rec = Recorder({("GET", "/"): lambda r: httpx.Response(200, json=root),
                    ("GET", "/services"): _paged([{"id": "s1", "name": "a", "host": "h", "port": 80,
                                                   "protocol": "http"}], 100)})
    for path in ("/routes", "/consumers", "/plugins", "/key-auths", "/upstreams", "/certificates", "/snis",
                 "/ca_certificates"):
        rec.routes[("GET", path)] = lambda r: httpx.Response(200, json=empty)
    seen: list[tuple[str, int, int]] = []
    normal = capture(_client(rec), on_progress=lambda kind, p, e: seen.append((kind, p, e)))
    assert normal.count() == 1
    assert ("services", 1, 1) in seen and ("routes", 1, 0) in seen
    assert sum(1 for call in rec.calls if call.url.path == "/") == 1


def test_a_retry_that_would_outlast_the_call_deadline_is_not_made() -> None:
    """503 with Retry-After longer than the time left: Kong's own answer is reported at once, no sleep."""
    from harness.deadline import CallBudget

    exiting = {"message": "Kong currently exiting"}
    rec = Recorder({("GET", "/"): lambda r: httpx.Response(503, json=exiting, headers={"Retry-After": "3"})})
    slept: list[float] = []
    client = AdminClient(BASE, transport=httpx.MockTransport(rec), retries=2, retry_cap=5, sleep=slept.append,
                         budget=CallBudget(base=1, per_mib=0, cap=1))
    with pytest.raises(AdminAPIError, match="Kong currently exiting"):
        client.root()
    assert len(rec.calls) == 1 and slept == []
