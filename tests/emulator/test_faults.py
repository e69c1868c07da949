"""Injected faults (ARCHITECTURE.md contract, KONG_EMULATOR_FAULT_*) and the in-process echo upstream."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.conftest import Echo, basic_config, free_port, wait_for

pytestmark = pytest.mark.integration


def test_error_rate_latency_and_drop_routes(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    node = emulators("3.9.1", config=basic_config(echo.url), env={
        "KONG_EMULATOR_FAULT_ERROR_RATE": "1", "KONG_EMULATOR_FAULT_DROP_ROUTES": "api"})
    failed = httpx.get(node.proxy + "/open")
    assert failed.status_code == 500 and failed.json()["message"] == "An unexpected error occurred"
    assert failed.headers["Server"] == "kong/3.9.1"
    names = [r["name"] for r in httpx.get(node.admin + "/routes").json()["data"]]
    assert "api" in names  # still configured, silently missing from the router
    slow = emulators("3.4.3", config=basic_config(echo.url), env={
        "KONG_EMULATOR_FAULT_LATENCY_MS": "150", "KONG_EMULATOR_FAULT_DROP_ROUTES": "api"})
    response = httpx.get(slow.proxy + "/open")
    assert response.status_code == 200 and response.elapsed.total_seconds() >= 0.15
    assert httpx.get(slow.proxy + "/api?apikey=secret1").status_code == 404


def test_keyauth_faults(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    config = basic_config(echo.url)
    accept = emulators("3.9.1", config=config, env={"KONG_EMULATOR_FAULT_KEYAUTH": "accept_any"})
    assert httpx.get(accept.proxy + "/api").status_code == 200
    reject = emulators("3.9.1", config=config, env={"KONG_EMULATOR_FAULT_KEYAUTH": "reject_valid"})
    assert httpx.get(reject.proxy + "/api?apikey=secret1").status_code == 401


def test_crash_after_requests(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    node = emulators("3.9.1", config=basic_config(echo.url),
                     env={"KONG_EMULATOR_FAULT_CRASH_AFTER_REQUESTS": "2"})
    for _ in range(2):
        assert httpx.get(node.proxy + "/open").status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(node.proxy + "/open")
    assert node.process.wait(timeout=5) == 70


def test_config_drift_and_echo_in_process(emulators) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    node = emulators("3.6.1", config=basic_config(f"http://127.0.0.1:{port}"), env={
        "KONG_EMULATOR_ECHO_LISTEN": f"127.0.0.1:{port}",
        "KONG_EMULATOR_FAULT_CONFIG_DRIFT_AFTER_SECONDS": "0.5"})
    assert httpx.get(node.proxy + "/open/x").json()["path"] == "/base/x"
    before = httpx.get(node.admin + "/status").json()["configuration_hash"]
    wait_for("the drift", lambda: httpx.get(node.admin + "/status").json()["configuration_hash"] != before)
    assert httpx.get(node.admin + "/services/echo").json()["retries"] == 6


def test_error_rate_is_spread_evenly_after_the_warm_up(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    node = emulators("3.8.1", config=basic_config(echo.url), env={
        "KONG_EMULATOR_FAULT_ERROR_RATE": "0.25", "KONG_EMULATOR_FAULT_AFTER_REQUESTS": "10"})
    statuses = [httpx.get(node.proxy + "/open").status_code for _ in range(30)]
    assert statuses[:10] == [200] * 10  # the warm-up: a node that degrades only under load
    # then every 4th request fails, the same way on every run
    assert statuses[10:] == [200, 200, 200, 500] * 5
