"""Kong's size limits and DNS failure (KONG-FACTS.md 9.1, 9.2, 9.4; issue 11, Build 4 and 5).

Admin API bodies up to `nginx_admin_client_max_body_size` (10m, settable), over it nginx's HTML 413;
hybrid payloads up to `cluster_max_payload` (4 MiB until 3.3, 16 MiB from 3.4), over it the DP keeps its
config and the CP logs Kong's reason; an upstream host that does not resolve answers 503.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket

import httpx
import pytest

from emulator.bodies import NGINX_413_PAGE
from emulator.settings import SettingsError, load_settings, parse_size
from tests.emulator.bigconfig import big_config, entity_count
from tests.emulator.conftest import ClusterCert, Echo, basic_config, wait_for

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def test_size_settings() -> None:
    """nginx size syntax, Kong's defaults, and the conf loader's 4 MiB floor for cluster_max_payload."""
    assert parse_size("X", "10m", "client_max_body_size") == 10 * MIB
    assert parse_size("X", "512k", "client_max_body_size") == 512 * 1024
    assert parse_size("X", "2048", "client_max_body_size") == 2048
    assert parse_size("X", "1G", "client_max_body_size") == 1024 * MIB
    assert parse_size("X", "0", "client_max_body_size") is None
    with pytest.raises(SettingsError, match="directive invalid value"):
        parse_size("X", "10 MB", "client_max_body_size")
    assert load_settings({"KONG_EMULATOR_VERSION": "3.9.1"}).admin_body_limit == 10 * MIB
    assert load_settings({"KONG_EMULATOR_VERSION": "3.3.1"}).max_payload == 4 * MIB
    assert load_settings({"KONG_EMULATOR_VERSION": "3.4.0"}).max_payload == 16 * MIB
    assert load_settings({"KONG_EMULATOR_VERSION": "2.8.5"}).max_payload == 4 * MIB
    assert load_settings({"KONG_EMULATOR_VERSION": "3.3.1",
                          "KONG_CLUSTER_MAX_PAYLOAD": "8388608"}).max_payload == 8 * MIB
    with pytest.raises(SettingsError, match=r"must be 4194304 \(4MB\) or greater"):
        load_settings({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_CLUSTER_MAX_PAYLOAD": "1000000"})


def _medium(echo: Echo) -> str:
    """The 5,500-entity config (1,000 services) as indented JSON text, 1.6 MB."""
    return json.dumps(big_config(1_000, echo.url), indent=2)


def test_admin_body_limit_default_and_setting(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """Over 1 MiB is fine (aiohttp's own cap is gone); over 10m nginx's 413 page; the setting moves it."""
    node = emulators("3.9.1")
    medium = _medium(echo)
    assert len(medium) > MIB
    loaded = httpx.post(node.admin + "/config", content=medium, headers={"Content-Type": "application/json"},
                        timeout=60)
    assert loaded.status_code == 201, loaded.text[:300]
    assert entity_count(big_config(1_000)) == 5_500
    assert len(httpx.get(node.admin + "/services?size=1000").json()["data"]) == 1_000
    too_big = b'{"_format_version":"3.0","x":"' + b"a" * (10 * MIB) + b'"}'
    refused = httpx.post(node.admin + "/config", content=too_big, headers={"Content-Type": "application/json"},
                         timeout=60)
    assert refused.status_code == 413
    assert refused.content == NGINX_413_PAGE
    assert refused.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert refused.headers["Server"] == "kong/3.9.1" and refused.headers["Connection"] == "close"
    assert "client intended to send too large body" in node.output()
    # still serving, config unchanged
    assert len(httpx.get(node.admin + "/services?size=1000").json()["data"]) == 1_000

    small = emulators("2.8.5", env={"KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "512k"})
    refused = httpx.post(small.admin + "/config", content=medium, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413 and refused.content == NGINX_413_PAGE

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 65536  # chunked, no Content-Length: refused while it is read

    refused = httpx.post(small.admin + "/config", content=chunks(), headers={"Content-Type": "application/json"})
    assert refused.status_code == 413 and refused.content == NGINX_413_PAGE
    unlimited = emulators("3.4.3", env={"KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "0"})
    assert httpx.post(unlimited.admin + "/config", content=medium, headers={"Content-Type": "application/json"},
                      timeout=60).status_code == 201


def test_proxy_body_not_capped_by_default(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """nginx_http_client_max_body_size is 0 (no limit): a 3 MiB body reaches the upstream."""
    node = emulators("3.9.1", config=basic_config(echo.url, keyauth=False))
    sent = httpx.post(node.proxy + "/open", content=b"x" * (3 * MIB))
    assert sent.status_code == 200
    capped = emulators("3.9.1", config=basic_config(echo.url, keyauth=False),
                       env={"KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE": "1m"})
    refused = httpx.post(capped.proxy + "/open", content=b"x" * (2 * MIB))
    assert refused.status_code == 413
    assert refused.json() == {"message": "Payload too large", "request_id": refused.headers["X-Kong-Request-Id"]}


@pytest.mark.parametrize(("version", "body"), [
    ("2.8.5", b'{"message":"name resolution failed"}'),
    ("3.4.3", b'{\n  "message":"name resolution failed"\n}'),
])
def test_dns_failure_is_503(emulators, version: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 6.2 / 9.4: a service host that does not resolve answers 503, not 502. `.invalid` never
    resolves (RFC 6761) and the emulator answers it without sending a query."""
    config = """_format_version: "2.1"
services:
- name: ghost
  url: http://no-such-host.invalid:8080/
  routes:
  - name: ghost
    paths: ["/ghost"]
"""
    node = emulators(version, config=config)
    answer = httpx.get(node.proxy + "/ghost")
    assert answer.status_code == 503
    assert answer.content == body
    assert answer.headers["Server"] == f"kong/{version}"


def test_refused_connection_is_still_502(emulators) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        config = f"""_format_version: "3.0"
services:
- name: closed
  url: http://127.0.0.1:{port}/
  routes:
  - name: closed
    paths: ["/closed"]
"""
        node = emulators("3.9.1", config=config)
        answer = httpx.get(node.proxy + "/closed")
    assert answer.status_code == 502
    assert "An invalid response was received from the upstream server" in answer.text


def _incompressible_config(echo: Echo, mib: float) -> str:
    """Consumers whose custom_id is random base64: about `mib` MiB after gzip."""
    rng = random.Random(11)
    count = int(mib * MIB / 3000) + 1
    consumers = [{"username": f"u{i}", "custom_id": base64.b64encode(rng.randbytes(3000)).decode()}
                 for i in range(count)]
    return json.dumps({"_format_version": "3.0", "consumers": consumers,
                       "services": [{"name": "echo", "url": echo.url, "routes": [{"name": "r", "paths": ["/r"]}]}]})


def test_cluster_max_payload_by_version(emulators, cluster_cert: ClusterCert, echo: Echo,  # type: ignore[no-untyped-def]
                                        tmp_path) -> None:
    """A ~6 MiB deflated config: a 3.3 CP (4 MiB default) cannot send it and logs Kong's reason, its DP
    stays unconfigured; a 3.4 CP (16 MiB) sends it; a 3.3 pair with KONG_CLUSTER_MAX_PAYLOAD set syncs."""
    config = _incompressible_config(echo, 6)
    hybrid = {"KONG_CLUSTER_CERT": str(cluster_cert.cert), "KONG_CLUSTER_CERT_KEY": str(cluster_cert.key),
              "KONG_EMULATOR_PING_INTERVAL": "0.5", "KONG_EMULATOR_RECONNECT_DELAY": "0.3-0.5"}

    def pair(version: str, extra: dict[str, str]):  # type: ignore[no-untyped-def]
        cp = emulators(version, role="control_plane", config=config, env={**hybrid, **extra}, workdir=tmp_path)
        dp = emulators(version, role="data_plane", env={
            **hybrid, **extra, "KONG_DATABASE": "off",
            "KONG_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{cp.cluster_port}"})
        return cp, dp

    old_cp, old_dp = pair("3.3.1", {})
    wait_for("the CP's payload-too-big log line",
             lambda: "unable to send updated configuration to data plane: payload too big" in old_cp.output(),
             timeout=30, log=old_cp.log)
    line = next(x for x in old_cp.output().splitlines() if "payload too big" in x)
    assert "[clustering]" in line and "version: 3.3.1" in line
    assert httpx.get(old_dp.status + "/status").json()["configuration_hash"] == "0" * 32
    assert httpx.get(old_dp.proxy + "/r").status_code == 404

    _, new_dp = pair("3.4.3", {})
    wait_for("the 3.4 DP to load the config", lambda: httpx.get(new_dp.proxy + "/r").status_code == 200,
             timeout=60, log=new_dp.log)
    raised_cp, raised_dp = pair("3.3.1", {"KONG_CLUSTER_MAX_PAYLOAD": str(16 * MIB)})
    wait_for("the raised 3.3 DP to load the config",
             lambda: httpx.get(raised_dp.proxy + "/r").status_code == 200, timeout=60, log=raised_dp.log)
    assert os.path.getsize(raised_cp.log) > 0
