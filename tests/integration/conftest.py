"""Backends for the traffic integration tests: small HTTP servers standing in for Kong nodes.

A fake node answers every path like a Kong proxy would for the probe's purposes (``Server`` and
``Via`` naming its version), with a deterministic error rate (every 1/rate-th answer is a 500) and
an added latency that a test can change while traffic flows (``FakeNode.set``).

Each fake node is its own process (this file run as a script) serving with aiohttp: in the pytest
process, a threaded ``http.server`` competed with the probe for the GIL and for the 2 cores, and
the probe's lag swamped what the tests measure. The emulator (``python -m emulator``) backs the
tests that ask for ``emulator_node`` when ``emulator/__main__.py`` exists.
"""

from __future__ import annotations

import argparse
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


def serve(name: str, port: int, version: str, error_rate: float, latency_ms: float) -> None:
    """Run one fake node until killed (the body of the child process)."""
    import asyncio

    from aiohttp import web

    state = {"version": version, "error_rate": error_rate, "latency_ms": latency_ms, "served": 0, "errors": 0}

    async def control(request: web.Request) -> web.Response:
        if request.method == "POST":
            for key, value in (await request.json()).items():
                state[key] = value
            state["served"] = state["errors"] = 0
        return web.json_response(state)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if state["latency_ms"]:
            await asyncio.sleep(float(state["latency_ms"]) / 1000)
        state["served"] += 1
        due = int(state["served"] * float(state["error_rate"]) + 1e-9)
        status = 200
        if due > state["errors"]:
            state["errors"] = due
            status = 500
        kong = f"kong/{state['version']}"
        return web.json_response(
            {"node": name}, status=status, headers={"Server": kong, "Via": f"1.1 {kong}"}
        )

    app = web.Application()
    app.router.add_route("*", "/__fake", control)
    app.router.add_route("*", "/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


class FakeNode:
    """A fake Kong node in a child process on 127.0.0.1; stopped by its pid."""

    def __init__(self, name: str, *, version: str = "3.4.2", error_rate: float = 0.0,
                 latency_ms: float = 0.0) -> None:
        self.name = name
        self.version = version
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, name, str(self.port), version, str(error_rate), str(latency_ms)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake node {name} on port {self.port} did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/__fake", timeout=2).json())

    def set(self, **behaviour: float | str) -> None:
        """Change error_rate / latency_ms / version now (also resets the served/errors counters)."""
        httpx.post(f"{self.url}/__fake", json=behaviour, timeout=2).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def backend(self, side: str) -> Backend:
        return Backend(self.name, side, "127.0.0.1", self.port)  # type: ignore[arg-type]


NodeFactory = Callable[..., FakeNode]


@pytest.fixture
def fake_node() -> Iterator[NodeFactory]:
    """Start fake Kong nodes: ``fake_node("y1", version="3.9.1", error_rate=0.02)``; all stopped after."""
    started: list[FakeNode] = []

    def make(name: str, **behaviour: float | str) -> FakeNode:
        node = FakeNode(name, **behaviour)  # type: ignore[arg-type]
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def emulator_available() -> bool:
    return (REPO / "emulator" / "__main__.py").exists()


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


@pytest.fixture
def emulator_node(tmp_path: Path) -> Iterator[Callable[..., EmulatorNode]]:
    """Start emulator processes (each with its own echo upstream); stopped by pid after the test."""
    started: list[EmulatorNode] = []

    def make(name: str, version: str, **faults: str) -> EmulatorNode:
        proxy, admin, echo = free_port(), free_port(), free_port()
        config = tmp_path / f"{name}.yaml"
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
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        node = EmulatorNode(name, version, proxy, proc)
        started.append(node)
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"emulator {name} exited {proc.returncode}: {(tmp_path / f'{name}.log').read_text()}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{admin}/status", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log_text = (tmp_path / f"{name}.log").read_text()
                raise RuntimeError(f"emulator {name} not ready in 15 s: {log_text}")
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


def _main() -> None:
    parser = argparse.ArgumentParser(description="a fake Kong node for the traffic tests")
    parser.add_argument("name")
    parser.add_argument("port", type=int)
    parser.add_argument("version")
    parser.add_argument("error_rate", type=float)
    parser.add_argument("latency_ms", type=float)
    args = parser.parse_args()
    serve(args.name, args.port, args.version, args.error_rate, args.latency_ms)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _main()
