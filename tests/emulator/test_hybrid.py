"""Hybrid mode acceptance (KONG-FACTS.md section 3, 1.6): CP/DP versions, hash propagation, CP outage."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.conftest import ClusterCert, Echo, EmulatorProcess, basic_config, wait_for

pytestmark = pytest.mark.integration


def cp_and_dp(emulators, cert: ClusterCert, cp_version: str, dp_version: str, echo: Echo,  # type: ignore[no-untyped-def]
              dp_env: dict[str, str] | None = None) -> tuple[EmulatorProcess, EmulatorProcess]:
    hybrid = {"KONG_CLUSTER_CERT": str(cert.cert), "KONG_CLUSTER_CERT_KEY": str(cert.key),
              "KONG_EMULATOR_PING_INTERVAL": "0.5", "KONG_EMULATOR_RECONNECT_DELAY": "0.3-0.5"}
    cp = emulators(cp_version, role="control_plane", env=hybrid)
    service = httpx.post(cp.admin + "/services", json={"name": "echo", "url": f"{echo.url}/base"})
    assert service.status_code == 201, service.text
    route = httpx.post(cp.admin + "/services/echo/routes", json={"name": "api", "paths": ["/api"]})
    assert route.status_code == 201, route.text
    dp = emulators(dp_version, role="data_plane", env={
        **hybrid, "KONG_DATABASE": "off", "KONG_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{cp.cluster_port}",
        **(dp_env or {})})
    return cp, dp


def dp_row(cp: EmulatorProcess) -> dict | None:  # type: ignore[type-arg]
    rows = httpx.get(cp.admin + "/clustering/data-planes").json()["data"]
    return rows[0] if rows else None


def test_newer_dp_is_kong_version_incompatible(emulators, cluster_cert: ClusterCert, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 3.3: a 3.9 DP joining a 3.4 CP is recorded kong_version_incompatible and gets no config."""
    cp, dp = cp_and_dp(emulators, cluster_cert, "3.4.3", "3.9.1", echo)
    row = wait_for("the DP row on the CP", lambda: dp_row(cp), log=cp.log)
    assert row["sync_status"] == "kong_version_incompatible" and row["version"] == "3.9.1"
    assert row["config_hash"] == "0" * 32
    assert "labels" not in row and "updated_at" in row  # 3.4 CP: updated_at yes, labels from 3.5
    assert abs(row["ttl"] - 14 * 86400) <= 3
    assert httpx.get(dp.status + "/status").json()["configuration_hash"] == "0" * 32
    assert httpx.get(dp.status + "/status/ready").status_code == 503
    assert httpx.get(dp.proxy + "/api").status_code == 404


def test_older_dp_syncs_and_survives_cp_outage(emulators, cluster_cert: ClusterCert, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 3.3-3.5: a 3.4 DP on a 3.9 CP syncs; both report the CP hash; CP down, it serves."""
    cp, dp = cp_and_dp(emulators, cluster_cert, "3.9.1", "3.4.3", echo,
                       dp_env={"KONG_CLUSTER_DP_LABELS": "zone:a"})
    wait_for("DP ready", lambda: httpx.get(dp.status + "/status/ready").status_code == 200, log=dp.log)
    row = wait_for("a synced row", lambda: (r := dp_row(cp)) and r["config_hash"] != "0" * 32 and r,
                   log=cp.log)
    dp_hash = httpx.get(dp.status + "/status").json()["configuration_hash"]
    assert row["sync_status"] == "normal" and row["version"] == "3.4.3"
    assert row["config_hash"] == dp_hash
    assert row["labels"] == {"zone": "a"} and "cert_details" in row and row["rpc_capabilities"] == []
    assert "database" not in httpx.get(dp.status + "/status").json()
    assert httpx.get(cp.admin + "/status").json()["database"] == {"reachable": True}
    assert httpx.get(cp.admin + "/clustering/status").headers["Deprecation"] == "true"
    proxied = httpx.get(dp.proxy + "/api/x")
    assert proxied.status_code == 200 and proxied.json()["path"] == "/base/x"
    # a change on the CP reaches the DP and its new hash is reported back
    added = httpx.post(cp.admin + "/services/echo/routes", json={"name": "two", "paths": ["/two"]})
    assert added.status_code == 201
    wait_for("the new route on the DP", lambda: httpx.get(dp.proxy + "/two").status_code == 200)
    new_hash = httpx.get(dp.status + "/status").json()["configuration_hash"]
    assert new_hash != dp_hash
    wait_for("the CP row to carry the new hash", lambda: dp_row(cp)["config_hash"] == new_hash)
    cp.stop()
    assert httpx.get(dp.proxy + "/two").status_code == 200
    assert httpx.get(dp.status + "/status/ready").status_code == 200


def test_missing_plugin_is_plugin_set_incompatible(emulators, cluster_cert: ClusterCert, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 3.3: a configured plugin the DP lacks gives plugin_set_incompatible, no config."""
    cp, _ = cp_and_dp(emulators, cluster_cert, "3.9.1", "3.9.1", echo, dp_env={"KONG_PLUGINS": "cors"})
    assert httpx.post(cp.admin + "/plugins", json={"name": "key-auth"}).status_code == 201
    row = wait_for("plugin_set_incompatible",
                   lambda: (r := dp_row(cp)) and r["sync_status"] == "plugin_set_incompatible" and r)
    assert row["version"] == "3.9.1"


def test_31_dp_cannot_join_32_plus_cp(emulators, cluster_cert: ClusterCert, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 3.1 table: OSS 3.1 DPs speak wRPC only, so a 3.9 CP never sees them."""
    cp, dp = cp_and_dp(emulators, cluster_cert, "3.9.1", "3.1.1", echo)
    wait_for("the DP to try and fail", lambda: "reconnecting" in dp.output(), log=dp.log)
    assert dp_row(cp) is None
    assert httpx.get(dp.status + "/status").json()["configuration_hash"] == "0" * 32


def test_bad_handshakes(emulators, cluster_cert: ClusterCert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """KONG-FACTS 3.1/3.2: 400 without node_id/node_version; a different client cert is refused."""
    import ssl

    from tests.emulator.conftest import make_cluster_cert

    cp = emulators("3.9.1", role="control_plane", env={
        "KONG_CLUSTER_CERT": str(cluster_cert.cert), "KONG_CLUSTER_CERT_KEY": str(cluster_cert.key)})
    context = ssl.create_default_context(cafile=str(cluster_cert.cert))
    context.check_hostname = False
    context.load_cert_chain(str(cluster_cert.cert), str(cluster_cert.key))
    url = f"https://127.0.0.1:{cp.cluster_port}/v1/outlet"
    assert httpx.get(url, verify=context).status_code == 400
    other = make_cluster_cert(tmp_path / "other")
    context2 = ssl.create_default_context(cafile=str(cluster_cert.cert))
    context2.check_hostname = False
    context2.load_cert_chain(str(other.cert), str(other.key))
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "?node_id=x&node_version=3.9.1", verify=context2)
    assert httpx.get(cp.admin + "/config").json()["message"] == \
        "this endpoint is only available when Kong is configured to not use a database"
    assert basic_config  # the shared helper stays importable for other modules
