"""Rollback: time from the decision to the probe's proof that X alone serves, 20 times per splitter.

    .venv/bin/python benchmarks/rollback.py [--rollbacks 20] [--rate 800] [--splitters haproxy,nginx]

Two emulator nodes (X 3.4.2, Y 3.9.1, each with its echo upstream in-process) on free 127.0.0.1
ports, a splitter in front, a background probe at ``--rate``. Each round: 50/50, 0.3 s of traffic,
then ``rollback()`` (all weight to X, 50 clean X answers in a row sent after the change). Reported:
median and max of decision -> weights set and decision -> proof, and any Y answer or failure
after the change. The issue's target is proof within 1 s. Every process is stopped by its pid.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, Row, Table, print_table
from harness.traffic import Backend, Probe, ProbeRequest, get_splitter, rollback
from harness.traffic.base import free_port, port_accepts

CONFIG = """_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo}
  routes:
  - name: echo
    paths: ["/"]
"""


def start_emulator(workdir: Path, name: str, version: str) -> tuple[subprocess.Popen[bytes], int]:
    proxy, admin, echo = free_port(), free_port(), free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(CONFIG.format(echo=echo))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update(KONG_EMULATOR_VERSION=version, KONG_PROXY_LISTEN=f"127.0.0.1:{proxy}",
               KONG_ADMIN_LISTEN=f"127.0.0.1:{admin}", KONG_STATUS_LISTEN="off",
               KONG_DECLARATIVE_CONFIG=str(config), KONG_EMULATOR_ECHO_LISTEN=f"127.0.0.1:{echo}")
    proc = subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not (port_accepts("127.0.0.1", proxy) and port_accepts("127.0.0.1", echo)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"emulator {name} did not start (exit {proc.poll()})")
        time.sleep(0.05)
    return proc, proxy


def run_rounds(
    kind: str, backends: list[Backend], workdir: Path, rounds: int, rate: float
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"weights": [], "proof": [], "y_hits": [], "failed": [], "requests": []}
    with get_splitter(kind, backends=backends, run_dir=workdir / kind) as splitter:
        probe = Probe(splitter.listen_url, [ProbeRequest(path="/bench")], rate=rate)
        probe.start(count=int(rate * rounds * 10), duration=rounds * 10)
        try:
            for _ in range(rounds):
                splitter.set_weights(50, 50)
                time.sleep(0.3)
                evidence = rollback(splitter, probe, timeout=5, consecutive=50, reason="benchmark")
                out["weights"].append(evidence.seconds_to_weights)
                out["proof"].append(evidence.seconds_to_proof or float("inf"))
                out["y_hits"].append(evidence.y_hits_after)
                out["failed"].append(evidence.failed_after)
                out["requests"].append(evidence.requests_after)
        finally:
            probe.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rollbacks", type=int, default=20)
    parser.add_argument("--rate", type=float, default=800.0)
    parser.add_argument("--splitters", default="haproxy,nginx")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, list[float]]] = {}
    try:
        x_proc, x_port = start_emulator(workdir, "x1", "3.4.2")
        procs.append(x_proc)
        y_proc, y_port = start_emulator(workdir, "y1", "3.9.1")
        procs.append(y_proc)
        backends = [Backend("x1", "x", "127.0.0.1", x_port), Backend("y1", "y", "127.0.0.1", y_port)]
        for kind in args.splitters.split(","):
            results[kind] = run_rounds(kind, backends, workdir, args.rollbacks, args.rate)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    rows = []
    for kind, r in results.items():
        proof_ms = [1000 * v for v in r["proof"]]
        weights_ms = [1000 * v for v in r["weights"]]
        rows.append(Row(f"{kind}: decision -> weights set (median / max)",
                        f"{statistics.median(weights_ms):.0f} / {max(weights_ms):.0f} ms"))
        rows.append(Row(f"{kind}: decision -> proof (median / max)",
                        f"{statistics.median(proof_ms):.0f} / {max(proof_ms):.0f} ms",
                        target="max < 1000 ms", met=max(proof_ms) < 1000))
        rows.append(Row(f"{kind}: Y answers / failures after the change, all rounds",
                        f"{sum(r['y_hits']):.0f} / {sum(r['failed']):.0f}", target="0 / 0",
                        met=sum(r["y_hits"]) == 0 and sum(r["failed"]) == 0))
    load = os.getloadavg()
    table = Table(
        f"Rollback: decision to proof, {args.rollbacks} rollbacks per splitter",
        tuple(rows),
        (f"probe {args.rate:g} req/s; proof = 50 clean X answers in a row, sent after the weights changed",
         f"load average at the end {load[0]:.2f} / {load[1]:.2f} (2 cores shared with other work)"),
    )
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
