"""Balancer timers against wrk: do the balancer source's latencies (HAProxy ``%Ta``, nginx ``$request_time``)
agree with what a client measures?

    .venv/bin/python -m benchmarks.balancer_timers [--seconds 12] [--connections 4] [--probe-rate 100]

Target: two emulator nodes (3.8.1, one per side, each with its own echo upstream) with the latency fault
``KONG_EMULATOR_FAULT_LATENCY_MS=20``, behind the harness's HAProxy and then its nginx splitter at 50/50.
Phase 1: wrk alone (closed loop, ``-c --connections``, no pacing) for ``--seconds``; the balancer source
reads every request, and its p50/p99 are compared with wrk's own (from wrk's ``done()`` percentiles, the
same requests). Target: within max(10 %, 1 ms) of wrk at p50 and p99. Phase 2: the probe alone at
``--probe-rate`` (open loop); its own p50/p99 beside the balancer's for the same requests (the Python
client's cost shows as the gap). Every process is stopped by its pid at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks.common import REPO, Row, Table, print_table
from harness.sources.balancer import balancer_source
from harness.stats import percentile
from harness.traffic import Backend, Probe, ProbeRequest, get_splitter
from harness.traffic.base import free_port
from harness.traffic.usertraffic import UserTraffic

VERSION = "3.8.1"
ADDED_MS = 20
CONFIG = """_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo}
  routes:
  - name: echo
    paths: ["/"]
"""
MIX = [ProbeRequest(path="/orders"), ProbeRequest(path="/orders/42?page=1", name="order 42")]


def start_node(folder: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    proxy, admin, echo = free_port(), free_port(), free_port()
    config = folder / f"{name}.yaml"
    config.write_text(CONFIG.format(echo=echo))
    env = dict(os.environ, KONG_EMULATOR_VERSION=VERSION, KONG_PROXY_LISTEN=f"127.0.0.1:{proxy}",
               KONG_ADMIN_LISTEN=f"127.0.0.1:{admin}", KONG_STATUS_LISTEN="off", KONG_DECLARATIVE_CONFIG=str(config),
               KONG_EMULATOR_ECHO_LISTEN=f"127.0.0.1:{echo}", KONG_EMULATOR_FAULT_LATENCY_MS=str(ADDED_MS))
    with (folder / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator {name} exited: {(folder / f'{name}.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{admin}/status", timeout=0.5).status_code == 200:
                return proc, proxy
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"emulator {name} not ready in 20 s")
        time.sleep(0.1)


def balancer_latencies(source: Any, at_least: int, timeout: float = 10.0) -> list[float]:
    reading = source.read()
    deadline = time.monotonic() + timeout
    while reading.answers < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
        reading = reading.plus(source.read())
    return [v for c in reading.nodes.values() for v in c.figure_ms]


def within(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= max(0.10 * theirs, 1.0)


def measure(kind: str, backends: list[Backend], folder: Path, seconds: float, connections: int,
            probe_rate: float) -> tuple[list[Row], list[str]]:
    splitter = get_splitter(kind, backends=backends, run_dir=folder / kind)
    splitter.start()
    rows: list[Row] = []
    notes: list[str] = []
    try:
        splitter.set_weights(50, 50)
        source = balancer_source(splitter)
        try:
            source.read()
            user = UserTraffic(splitter.listen_url, MIX, rate=None, connections=connections)
            user.start()
            time.sleep(seconds)
            wrk = user.stop()
            if wrk is None or wrk.p50_ms is None or wrk.p99_ms is None:
                raise RuntimeError("wrk printed no summary")
            seen = balancer_latencies(source, wrk.requests)
            b50, b99 = percentile(seen, 50) or 0.0, percentile(seen, 99) or 0.0
            for q, ours, theirs in (("p50", b50, wrk.p50_ms), ("p99", b99, wrk.p99_ms)):
                rows.append(Row(f"{kind}: balancer {q} vs wrk {q} (+{ADDED_MS} ms target)", f"{ours:.2f} ms",
                                f"wrk {theirs:.2f} ms", f"{ours - theirs:+.2f} ms", "within max(10 %, 1 ms)",
                                within(ours, theirs)))
            notes.append(f"{kind}: wrk {wrk.requests} requests in {wrk.seconds:.1f} s ({wrk.rate:.0f} req/s, "
                         f"{connections} connections), {wrk.status_errors} answers >= 400, "
                         f"{wrk.socket_errors} socket errors; "
                         f"the balancer logged "
                         f"{len(seen)}")
            # phase 2: the probe alone, its timers beside the balancer's for the same requests
            source.read()
            probe = Probe(splitter.listen_url, MIX, rate=probe_rate, timeout=2.0)
            window = probe.run(count=int(probe_rate * seconds), duration=seconds + 5)
            answered = [r.latency_ms for r in window.records if r.status is not None]
            seen = balancer_latencies(source, len(answered))
            p50, p99 = percentile(answered, 50) or 0.0, percentile(answered, 99) or 0.0
            q50, q99 = percentile(seen, 50) or 0.0, percentile(seen, 99) or 0.0
            rows.append(Row(f"{kind}: probe p50 / p99 vs the balancer's for the probe's requests",
                            f"{p50:.2f} / {p99:.2f} ms", f"balancer {q50:.2f} / {q99:.2f} ms",
                            f"{p50 - q50:+.2f} / {p99 - q99:+.2f} ms", "reported beside", None))
            notes.append(f"{kind}: probe {len(answered)} answers at {probe_rate:g} req/s open loop; the "
                         f"balancer logged {len(seen)}")
        finally:
            source.close()
    finally:
        splitter.stop()
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--probe-rate", type=float, default=100.0)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kuh-bt-") as tmp:
        folder = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            backends = []
            for name, side in (("x1", "x"), ("y1", "y")):
                proc, port = start_node(folder, name)
                procs.append(proc)
                backends.append(Backend(name, side, "127.0.0.1", port))  # type: ignore[arg-type]
            for kind in ("haproxy", "nginx"):
                r, n = measure(kind, backends, folder, args.seconds, args.connections, args.probe_rate)
                rows += r
                notes += n
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
    notes.append(f"target: two emulator {VERSION} nodes with KONG_EMULATOR_FAULT_LATENCY_MS={ADDED_MS} behind the "
                 "splitter at 50/50; balancer timers are whole ms (HAProxy %Ta, nginx $request_time), wrk's are us")
    notes.append("the balancer's timer stops when it writes the last byte, wrk's when wrk reads it: on a loaded "
                 "machine wrk's (and the probe's) tail also holds their own waits for a CPU, which the "
                 "gateway-side timer rightly leaves out; compare p99 only at a low load average")
    table = Table("Balancer timers vs wrk (and the probe) against +20 ms", tuple(rows), tuple(notes))
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
