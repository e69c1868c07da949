"""The emulator image (kuh/kong-emulator:dev) on Debian's python3-aiohttp: the process smoke in a container.

Needs the engine and the image built by scripts/build-images.sh. Ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.conftest import wait_for

pytestmark = pytest.mark.docker
IMAGE = "kuh/kong-emulator:dev"


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


@pytest.fixture
def container() -> Iterator[dict[str, int]]:
    """One 3.9.1 DB-less container with the echo upstream inside; removed by id at teardown."""
    cid = docker("run", "-d", "-p", "127.0.0.1::8000", "-p", "127.0.0.1::8001", "-p", "127.0.0.1::8007",
                 "-e", "KONG_EMULATOR_VERSION=3.9.1", "-e", "KONG_STATUS_LISTEN=0.0.0.0:8007",
                 "-e", "KONG_EMULATOR_ECHO_LISTEN=127.0.0.1:9000", IMAGE)
    try:
        ports = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", cid))
        mapped = {int(k.split("/")[0]): int(v[0]["HostPort"]) for k, v in ports.items() if v}
        for binding in ports.values():
            assert binding is None or all(b["HostIp"] == "127.0.0.1" for b in binding)
        yield mapped
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60)


def test_image_smoke(container: dict[str, int]) -> None:
    admin = f"http://127.0.0.1:{container[8001]}"
    status = f"http://127.0.0.1:{container[8007]}"
    wait_for("the container's Admin API", lambda: httpx.get(admin + "/status").status_code == 200, timeout=20)
    assert httpx.get(status + "/status/ready").status_code == 503
    config = {"_format_version": "3.0", "services": [{"name": "echo", "url": "http://127.0.0.1:9000/base",
                                                       "routes": [{"name": "api", "paths": ["/api"]}]}]}
    assert httpx.post(admin + "/config", json=config).status_code == 201
    assert httpx.get(status + "/status/ready").json() == {"message": "ready"}
    proxied = httpx.get(f"http://127.0.0.1:{container[8000]}/api/x")
    assert proxied.status_code == 200 and proxied.json()["path"] == "/base/x"
    assert proxied.headers["Via"] == "1.1 kong/3.9.1"
