"""The Docker client the harness builds says which engine is missing and leaks no socket doing so
(the SDK's own leaked one, and pytest then failed an unrelated test: `preflight failed ...
PytestUnraisableExceptionWarning: Exception ignored in: <socket.socket fd=6, family=1 ...>`)."""

from __future__ import annotations

import gc
import socket
import warnings
from pathlib import Path

import docker.errors
import pytest

from harness.nodes.engine import engine_address, engine_client
from harness.run.clusters import docker_available, resolve_provider


def _closed_socket(tmp_path: Path) -> str:
    """A unix socket file nothing listens on any more: what a stopped dockerd leaves behind."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()
    return f"unix://{path}"


@pytest.mark.parametrize("kind", ["missing file", "nobody listens"])
def test_no_engine_is_a_named_error_and_no_socket_is_left_open(kind: str, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/none.sock" if kind == "missing file" else _closed_socket(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(docker.errors.DockerException, match="no Docker engine answers at unix://"):
            engine_client({"environment": {"DOCKER_HOST": address}})
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_auto_falls_back_to_processes_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", _closed_socket(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok, why = docker_available()
        chosen, said = resolve_provider("auto")
        gc.collect()
    assert not ok and "no Docker engine answers" in why and "Connection refused" in why
    assert chosen == "process" and "auto: docker unavailable" in said
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_the_address_follows_the_sdks_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_address() == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert engine_address() == "tcp://127.0.0.1:2375"
    assert engine_address({"environment": {"DOCKER_HOST": "unix:///x.sock"}}) == "unix:///x.sock"
