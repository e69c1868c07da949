"""The node spec parser, the readiness rule, and the provider registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import PlanError
from harness.nodes import PROVIDERS, NodeProvider, get_provider, provider_for_spec
from harness.nodes.spec import parse_spec, ready_check, version_at_least

EMU = "kuh/kong-emulator:dev"
REGISTRY_IMAGE = "registry:5000/kong/kong-gateway:3.8"


@pytest.mark.parametrize(
    ("text", "provider", "kind", "version", "image"),
    [
        ("emulator://3.8.1", "process", "emulator", "3.8.1", None),
        ("emulator://2.8.5", "process", "emulator", "2.8.5", None),
        ("docker://kuh/kong-emulator:dev?version=3.8.1", "docker", "emulator", "3.8.1", EMU),
        ("docker://kong:3.9", "docker", "kong", "3.9", "kong:3.9"),
        ("docker://kong:3.4.2-ubuntu", "docker", "kong", "3.4.2", "kong:3.4.2-ubuntu"),
        ("docker://kong/kong-gateway:3.9.1.0", "docker", "kong", "3.9.1.0", "kong/kong-gateway:3.9.1.0"),
        ("docker://registry:5000/kong/kong-gateway:3.8", "docker", "kong", "3.8", REGISTRY_IMAGE),
        ("docker://kong:3.9?version=3.9.1", "docker", "kong", "3.9.1", "kong:3.9"),
    ],
)
def test_spec_forms(text: str, provider: str, kind: str, version: str, image: str | None) -> None:
    spec = parse_spec(text)
    assert (spec.provider, spec.kind, spec.version, spec.image) == (provider, kind, version, image)
    assert str(spec) == text == spec.raw  # the spec is the test id
    assert provider_for_spec(text) == provider


def test_process_spec_with_local_kong() -> None:
    spec = parse_spec("process:///usr/local/bin/kong?prefix=/tmp/kong-y1&version=3.9.1")
    assert (spec.provider, spec.kind) == ("process", "kong")
    assert (spec.executable, spec.prefix, spec.version) == ("/usr/local/bin/kong", "/tmp/kong-y1", "3.9.1")


def test_existing_spec_with_all_urls() -> None:
    spec = parse_spec(
        "http://127.0.0.1:8001?proxy=http://127.0.0.1:8000&status=http://127.0.0.1:8100/&role=dbless"
    )
    assert spec.provider == "existing"
    assert spec.admin_url == "http://127.0.0.1:8001"
    assert spec.proxy_url == "http://127.0.0.1:8000"
    assert spec.status_url == "http://127.0.0.1:8100"
    assert spec.role == "dbless"
    assert spec.version is None


def test_existing_dp_url_is_its_status_api() -> None:
    spec = parse_spec("https://127.0.0.1:8100?role=data_plane")
    assert (spec.role, spec.admin_url, spec.status_url) == ("dp", None, "https://127.0.0.1:8100")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("kong:3.9", "no scheme"),
        ("ftp://127.0.0.1:21", "scheme 'ftp' is unknown"),
        ("emulator://", "no version"),
        ("emulator://3.x", "'3.x' is not a Kong version"),
        ("emulator://3.8.1?fault=1", "fault are unknown"),
        ("docker://kong:latest", "has no version; pin one"),
        ("docker://kong", "has no version"),
        ("docker://kuh/kong-emulator:dev", "needs ?version="),
        ("docker://", "names no image"),
        ("process://usr/bin/kong?prefix=/tmp/k", "absolute path"),
        ("process:///usr/bin/kong", "needs ?prefix="),
        ("http://127.0.0.1", "needs a host and a port"),
        ("http://127.0.0.1:80x1", "port is not a number"),
        ("http://127.0.0.1:8001?role=worker", "role='worker' is not one of dbless, cp, dp"),
        ("http://127.0.0.1:8001?proxy=localhost", "proxy='localhost' is not an http(s)://host:port URL"),
        ("http://127.0.0.1:8001?admin=1", "admin are unknown"),
    ],
)
def test_bad_specs_name_the_spec_and_the_valid_forms(text: str, says: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_spec(text)
    message = str(caught.value)
    assert repr(text) in message
    assert says in message
    assert "emulator://<version>" in message and "docker://kong:<version>" in message  # the valid forms
    assert "next step:" in message


def test_version_at_least() -> None:
    assert version_at_least("3.3.0", (3, 3)) is True
    assert version_at_least("3.2.1", (3, 3)) is False
    assert version_at_least("3.10", (3, 3)) is True
    assert version_at_least("2.8.5", (3, 3)) is False
    assert version_at_least(None, (3, 3)) is None
    assert version_at_least("dev", (3, 3)) is None


def test_ready_rule_by_role_and_version() -> None:
    cp = ready_check("cp", "3.9.1", expect_config=False)
    assert (cp.listener, cp.path) == ("admin", "/")
    new = ready_check("dbless", "3.3.0", expect_config=True)
    assert (new.listener, new.path, new.accept_empty) == ("status", "/status/ready", False)
    old = ready_check("dp", "3.2.1", expect_config=True)
    assert (old.listener, old.path) == ("status", "/status")
    assert ready_check("dbless", "2.8.5", expect_config=False).path == "/status"
    # version unknown: the endpoint every version has
    assert ready_check("dbless", None, expect_config=False).path == "/status"


def test_ready_judgement_accepts_empty_config_only_when_no_config_is_expected() -> None:
    empty = '{"message":"no configuration available (empty configuration present)"}'
    started_empty = ready_check("dbless", "3.9.0", expect_config=False)
    assert started_empty.judge(200, "{}")
    assert started_empty.judge(503, empty)
    assert not started_empty.judge(503, '{"message":"draining"}')
    loaded = ready_check("dbless", "3.9.0", expect_config=True)
    assert not loaded.judge(503, empty)
    assert not loaded.judge(404, "")


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_registered_provider_follows_the_protocol(name: str) -> None:
    provider = get_provider(name)
    try:
        assert isinstance(provider, NodeProvider)
        assert provider.name == name
    finally:
        provider.close()


def test_unknown_provider_names_the_valid_ones() -> None:
    valid = "'kubernetes' is unknown; valid providers are: docker, existing, process"
    with pytest.raises(PlanError, match=valid):
        get_provider("kubernetes")


def test_registry_imports_testcontainers_only_for_docker() -> None:
    code = (
        "import sys, harness.nodes as n\n"
        "n.get_provider('process').close(); n.get_provider('existing').close()\n"
        "n.parse_spec('docker://kong:3.9')\n"
        "assert 'testcontainers' not in sys.modules and 'docker' not in sys.modules, sorted(sys.modules)\n"
        "n.get_provider('docker')\n"
        "assert 'testcontainers' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
