"""The existing-node provider: adopts nodes by URL, reads version and role, never stops or writes."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from harness.errors import AdminAPIError, BadResponse, NodeError, NodeUnreachable
from harness.nodes import NodeRequest, get_provider
from harness.nodes.existing import ExistingProvider
from harness.ports import free_port

ROOT_39 = {"version": "3.9.1", "configuration": {"role": "traditional", "database": "off"}}


def request(spec: str, role: str = "dbless") -> NodeRequest:
    return NodeRequest(name="x1", cluster="x", role=role, version="3.4.2", run_id="t", spec=spec)  # type: ignore[arg-type]


def mocked(answer: httpx.Response, seen: list[httpx.Request] | None = None) -> ExistingProvider:
    def handler(req: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(req)
        return answer

    return ExistingProvider(transport=httpx.MockTransport(handler))


def test_reads_version_and_role_with_one_get() -> None:
    seen: list[httpx.Request] = []
    provider = mocked(httpx.Response(200, json=ROOT_39), seen)
    node = provider.start(request("http://127.0.0.1:8001?proxy=http://127.0.0.1:8000&status=http://127.0.0.1:8100"))
    assert (node.role, node.version, node.owned, node.provider) == ("dbless", "3.9.1", False, "existing")
    assert (node.admin_url, node.proxy_url, node.status_url) == (
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8100",
    )
    assert node.spec == "http://127.0.0.1:8001?proxy=http://127.0.0.1:8000&status=http://127.0.0.1:8100"
    provider.stop(node)
    provider.close()
    # one read, nothing else, no write
    assert [(r.method, str(r.url)) for r in seen] == [("GET", "http://127.0.0.1:8001/")]


def test_cp_role_from_the_node() -> None:
    body = {"version": "3.9.1", "configuration": {"role": "control_plane", "database": "postgres"}}
    node = mocked(httpx.Response(200, json=body)).start(request("http://127.0.0.1:8001", role="cp"))
    assert node.role == "cp"


def test_dp_is_read_on_its_status_api() -> None:
    seen: list[httpx.Request] = []
    provider = mocked(httpx.Response(200, json={"server": {}}), seen)
    node = provider.start(request("http://127.0.0.1:8100?role=dp&version=3.9.1", role="dp"))
    assert (node.role, node.admin_url, node.version) == ("dp", None, "3.9.1")
    assert node.status_url == "http://127.0.0.1:8100"
    assert str(seen[0].url) == "http://127.0.0.1:8100/status"


def test_role_in_spec_must_match_the_node() -> None:
    with pytest.raises(NodeError, match="spec says role=cp, the node says dbless"):
        mocked(httpx.Response(200, json=ROOT_39)).start(request("http://127.0.0.1:8001?role=cp", role="cp"))


def test_role_must_match_the_plan() -> None:
    with pytest.raises(NodeError, match="is a dbless node, the plan expects cp"):
        mocked(httpx.Response(200, json=ROOT_39)).start(request("http://127.0.0.1:8001", role="cp"))


def test_traditional_node_with_a_database_is_refused_with_the_reason() -> None:
    body = {"version": "3.9.1", "configuration": {"role": "traditional", "database": "postgres"}}
    with pytest.raises(NodeError, match=r"database=postgres.*neither DB-less nor hybrid"):
        mocked(httpx.Response(200, json=body)).start(request("http://127.0.0.1:8001"))


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (httpx.Response(401, json={"message": "Unauthorized"}), AdminAPIError, "answered 401: Unauthorized"),
        (httpx.Response(200, text="<html>hello</html>"), BadResponse, "with a body that is not JSON"),
        (httpx.Response(200, json={"hello": 1}), BadResponse, "has no version"),
    ],
)
def test_answers_that_are_not_kong_are_refused(answer: httpx.Response, error: type, says: str) -> None:
    with pytest.raises(error, match=re.escape(says)):
        mocked(answer).start(request("http://127.0.0.1:8001"))


def test_token_is_sent_and_nothing_but_one_read() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=ROOT_39)

    provider = ExistingProvider(token="s3cret", transport=httpx.MockTransport(handler))
    provider.start(request("http://127.0.0.1:8001"))
    assert seen[0].headers["Kong-Admin-Token"] == "s3cret"
    assert [r.method for r in seen] == ["GET"]


def test_other_specs_are_refused() -> None:
    with pytest.raises(NodeError, match="not an existing node's URL"):
        ExistingProvider().start(request("emulator://3.9.1"))


@pytest.mark.integration
def test_unreachable_node_names_the_url() -> None:
    port = free_port()  # nothing listens there
    provider = get_provider("existing", timeout=1.0)
    with pytest.raises(NodeUnreachable) as caught:
        provider.start(request(f"http://127.0.0.1:{port}"))
    message = str(caught.value)
    assert message.startswith("existing node x1: Kong Admin API (read-only view)")
    assert f"at http://127.0.0.1:{port}/ did not answer GET" in message
    assert "ConnectError" in message
    assert "next step: is the node running?" in message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung node)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.mark.integration
def test_hung_node_times_out_as_unreachable(silent_port: int) -> None:
    provider = get_provider("existing", timeout=0.5)
    says = (rf"GET / on Kong Admin API .* at http://127\.0\.0\.1:{silent_port} "
            r"did not finish within its deadline of 0\.5s")
    with pytest.raises(NodeUnreachable, match=says):
        provider.start(request(f"http://127.0.0.1:{silent_port}"))


@pytest.mark.integration
def test_real_http_node_is_adopted_and_left_running() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(ROOT_39).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        provider = get_provider("existing")
        node = provider.start(request(url))
        provider.stop(node)
        provider.close()
        assert node.version == "3.9.1"
        assert httpx.get(url + "/", timeout=2).status_code == 200  # still there: never stopped
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
