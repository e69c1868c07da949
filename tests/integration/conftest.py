"""Backends for the traffic integration tests: emulator nodes (``python -m emulator``), each with
its own echo upstream in the same process, and faults set by ``KONG_EMULATOR_FAULT_*``.

(A threaded ``http.server`` fallback served here until the emulator landed; it was removed once the
emulator worked, as the brief asked the tests to prefer it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.traffic.base import Backend, free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class EmulatorNode:
    name: str
    version: str
    port: int
    proc: subprocess.Popen[bytes]

    def backend(self, side: str) -> Backend:
        return Backend(self.name, side, "127.0.0.1", self.port)  # type: ignore[arg-type]


EMULATOR_CONFIG = """\
_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo_port}
  routes:
  - name: echo
    paths: ["/"]
"""


@pytest.fixture(scope="module")
def emulator_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., EmulatorNode]]:
    """Start emulator processes (each with its own echo upstream), ``emulator_node("y1", "3.9.1",
    error_rate="0.02")``; every one is stopped by its pid at the end of the module."""
    started: list[EmulatorNode] = []
    tmp_path = tmp_path_factory.mktemp("emulators")

    def make(name: str, version: str, **faults: str) -> EmulatorNode:
        proxy, admin, echo = free_port(), free_port(), free_port()
        name_on_disk = f"{name}-{len(started)}"
        config = tmp_path / f"{name_on_disk}.yaml"
        config.write_text(EMULATOR_CONFIG.format(echo_port=echo))
        env = dict(os.environ)
        env.update(
            KONG_EMULATOR_VERSION=version,
            KONG_PROXY_LISTEN=f"127.0.0.1:{proxy}",
            KONG_ADMIN_LISTEN=f"127.0.0.1:{admin}",
            KONG_STATUS_LISTEN="off",
            KONG_DECLARATIVE_CONFIG=str(config),
            KONG_EMULATOR_ECHO_LISTEN=f"127.0.0.1:{echo}",
            **{f"KONG_EMULATOR_FAULT_{k.upper()}": v for k, v in faults.items()},
        )
        log_path = tmp_path / f"{name_on_disk}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        node = EmulatorNode(name, version, proxy, proc)
        started.append(node)
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"emulator {name} exited {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{admin}/status", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"emulator {name} not ready in 15 s: {log_path.read_text()}")
            time.sleep(0.1)
        return node

    yield make
    for node in started:
        if node.proc.poll() is None:
            node.proc.terminate()
            try:
                node.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=5)

