"""Start-up settings (ARCHITECTURE.md contract) and Kong's start errors (KONG-FACTS.md 3.2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emulator.settings import SettingsError, load_settings
from tests.emulator.conftest import REPO, make_cluster_cert


def test_defaults_follow_version() -> None:
    """KONG-FACTS 2: status_listen off before 3.6, 127.0.0.1:8007 from 3.6."""
    assert load_settings({"KONG_EMULATOR_VERSION": "3.5.0"}).status_listen is None
    on = load_settings({"KONG_EMULATOR_VERSION": "3.6.1"})
    assert str(on.status_listen) == "127.0.0.1:8007"
    assert str(on.proxy_listen) == "0.0.0.0:8000" and str(on.admin_listen) == "127.0.0.1:8001"
    listed = load_settings({"KONG_EMULATOR_VERSION": "3.9.1",
                            "KONG_PROXY_LISTEN": "0.0.0.0:8443 ssl, 127.0.0.1:9000 reuseport backlog=16384"})
    assert str(listed.proxy_listen) == "127.0.0.1:9000"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "KONG_EMULATOR_VERSION is required"),
    ({"KONG_EMULATOR_VERSION": "3.10.0"}, "is not emulated"),
    ({"KONG_EMULATOR_VERSION": "2.7.0"}, "is not emulated"),
    ({"KONG_EMULATOR_VERSION": "banana"}, "is not a version"),
    ({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_ROLE": "data_plane"},
     "cluster certificate and key must be provided to use Hybrid mode"),
    ({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_ROLE": "data_plane", "KONG_DATABASE": "postgres"},
     'only in-memory storage can be used when role = "data_plane"'),
    ({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_ROLE": "control_plane"},
     'in-memory storage can not be used when role = "control_plane"'),
    ({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_EMULATOR_FAULT_KEYAUTH": "maybe"}, "accept_any"),
    ({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_EMULATOR_FAULT_ERROR_RATE": "2"}, "fraction"),
])
def test_bad_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=None) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_faults_parse() -> None:
    settings = load_settings({
        "KONG_EMULATOR_VERSION": "3.4.3", "KONG_EMULATOR_FAULT_ERROR_RATE": "0.25",
        "KONG_EMULATOR_FAULT_DROP_ROUTES": "a, b", "KONG_EMULATOR_FAULT_REFUSE_CP": "on"})
    assert settings.faults.error_rate == 0.25
    assert settings.faults.drop_routes == frozenset({"a", "b"}) and settings.faults.refuse_cp


@pytest.mark.integration
@pytest.mark.parametrize(("extra", "message"), [
    ({"KONG_EMULATOR_VERSION": "4.0.0"}, "is not emulated"),
    ({"KONG_EMULATOR_VERSION": "3.4.3", "KONG_ROLE": "control_plane", "KONG_DATABASE": "postgres"},
     "cluster certificate and key must be provided to use Hybrid mode"),
])
def test_process_exits_non_zero_with_message(extra: dict[str, str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update(extra)
    done = subprocess.run([sys.executable, "-m", "emulator"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and message in done.stderr


@pytest.mark.integration
def test_dp_with_database_exits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert = make_cluster_cert(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update({"KONG_EMULATOR_VERSION": "3.9.1", "KONG_ROLE": "data_plane", "KONG_DATABASE": "postgres",
                "KONG_CLUSTER_CERT": str(cert.cert), "KONG_CLUSTER_CERT_KEY": str(cert.key)})
    done = subprocess.run([sys.executable, "-m", "emulator"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 1
    assert 'only in-memory storage can be used when role = "data_plane"' in done.stderr
