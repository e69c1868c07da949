"""Helpers for starting emulator processes (and the echo upstream) on free 127.0.0.1 ports.

`start_emulator(version, ...)` starts `python -m emulator` with KONG_* settings, waits until its
Admin (or Status) API answers, and returns an `EmulatorProcess`; `.stop()` ends it by pid. The
`emulators` fixture stops every process it started, also when a test fails.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ("2.8.5", "3.4.3", "3.6.1", "3.9.1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 10.0, log: Path | None = None) -> Any:
    """Poll `check` until it returns a truthy value; fail with what was awaited and the last error/log."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise AssertionError(f"waited {timeout} s for {what}; last seen: {last!r}\nlog tail:\n{tail}")


@dataclass
class EmulatorProcess:
    version: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    proxy_port: int
    admin_port: int | None
    status_port: int | None
    cluster_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def status(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def start_emulator(version: str, *, role: str = "traditional", env: Mapping[str, str] | None = None,
                   config: str | None = None, wait: bool = True, status: bool = True,
                   workdir: Path | None = None) -> EmulatorProcess:
    """Start one node; for DB-less nodes `config` (YAML/JSON text) is loaded with KONG_DECLARATIVE_CONFIG."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="emu-test-"))
    proxy, admin = free_port(), free_port()
    status_port = free_port() if status else None
    settings = {
        "KONG_EMULATOR_VERSION": version, "KONG_ROLE": role,
        "KONG_PROXY_LISTEN": f"127.0.0.1:{proxy}", "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin}",
        "KONG_STATUS_LISTEN": f"127.0.0.1:{status_port}" if status_port else "off",
    }
    if role == "control_plane":
        settings["KONG_DATABASE"] = "postgres"
        settings["KONG_CLUSTER_LISTEN"] = f"127.0.0.1:{free_port()}"
    if config is not None:
        path = workdir / f"kong-{proxy}.yaml"
        path.write_text(config)
        settings["KONG_DECLARATIVE_CONFIG"] = str(path)
    settings.update(env or {})
    log = workdir / f"emulator-{proxy}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    full_env.update(settings)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=full_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    cluster = settings.get("KONG_CLUSTER_LISTEN", "")
    node = EmulatorProcess(version, process, log, settings, proxy,
                           None if role == "data_plane" else admin, status_port,
                           int(cluster.rsplit(":", 1)[1]) if cluster else None)
    if wait:
        url = f"{node.status}/status" if role == "data_plane" else f"{node.admin}/status"
        try:
            wait_for(f"{url} to answer 200",
                     lambda: process.poll() is None and httpx.get(url).status_code == 200, log=log)
        except AssertionError:
            node.stop()
            raise
    return node


@pytest.fixture
def emulators() -> Iterator[Callable[..., EmulatorProcess]]:
    """Start emulator nodes with `emulators(version, ...)`; all are stopped by pid at teardown."""
    started: list[EmulatorProcess] = []

    def factory(version: str, **kwargs: Any) -> EmulatorProcess:
        node = start_emulator(version, **kwargs)
        started.append(node)
        return node

    yield factory
    for node in reversed(started):
        node.stop()


@dataclass
class Echo:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def echo() -> Iterator[Echo]:
    """One echo upstream process for the session."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen", f"127.0.0.1:{port}"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("echo upstream", lambda: httpx.get(f"http://127.0.0.1:{port}/").status_code == 200)
        yield Echo(port, process)
    finally:
        process.terminate()
        process.wait(timeout=5)


@dataclass(frozen=True)
class ClusterCert:
    cert: Path
    key: Path


def make_cluster_cert(directory: Path, name: str = "kong_clustering") -> ClusterCert:
    """A self-signed EC P-256 certificate like `kong hybrid gen_cert`, made at test time (never committed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ClusterCert(cert_path, key_path)


@pytest.fixture
def cluster_cert(tmp_path: Path) -> ClusterCert:
    """A fresh shared-mode cluster certificate in tmp_path."""
    return make_cluster_cert(tmp_path / "certs")


def basic_config(echo_url: str, fmt: str = "3.0", keyauth: bool = True) -> str:
    """A small config: service `echo` with routes /api (key-auth) and /open, consumer alice/secret1."""
    plugins = "\n  plugins:\n  - name: key-auth" if keyauth else ""
    return f"""_format_version: "{fmt}"
services:
- name: echo
  url: {echo_url}/base
  routes:
  - name: api
    paths: ["/api"]{plugins.replace(chr(10), chr(10) + "  ")}
  - name: open
    paths: ["/open"]
consumers:
- username: alice
  custom_id: a-1
  keyauth_credentials:
  - key: secret1
"""
