"""Emulator proxy throughput: wrk against the echo upstream directly and through one emulator node.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 5] [--connections 20] [--version 3.9.1]

Starts the echo upstream and a DB-less emulator node on free 127.0.0.1 ports, runs Debian's `wrk`
for each target, prints req/s, p50 and p99, and the proxied/direct ratio, then stops both by pid.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WrkResult:
    target: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s; is the port free, is emulator importable?")


def to_ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(target: str, url: str, seconds: int, connections: int) -> WrkResult:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return WrkResult(target, rps, p50, p99, errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--version", default="3.9.1")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: install Debian's `wrk` (scripts/setup-system.sh)", file=sys.stderr)
        return 2
    echo_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="emu-bench-"))
    config = workdir / "kong.yaml"
    config.write_text(f"""_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:{echo_port}
  routes:
  - name: bench
    paths: ["/bench"]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update({"KONG_EMULATOR_VERSION": args.version, "KONG_PROXY_LISTEN": f"127.0.0.1:{proxy_port}",
                "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin_port}", "KONG_STATUS_LISTEN": "off",
                "KONG_DECLARATIVE_CONFIG": str(config)})
    processes = []
    try:
        processes.append(subprocess.Popen([sys.executable, "-m", "emulator.echo", "--listen",
                                           f"127.0.0.1:{echo_port}"], cwd=REPO, stdout=subprocess.DEVNULL))
        processes.append(subprocess.Popen([sys.executable, "-m", "emulator"], cwd=REPO, env=env,
                                          stdout=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{echo_port}/")
        wait_http(f"http://127.0.0.1:{admin_port}/status")
        direct = run_wrk("echo upstream (direct)", f"http://127.0.0.1:{echo_port}/bench", args.seconds,
                         args.connections)
        proxied = run_wrk(f"through emulator {args.version}", f"http://127.0.0.1:{proxy_port}/bench",
                          args.seconds, args.connections)
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, small GET, one emulator process (one core)")
    print(f"{'target':32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for result in (direct, proxied):
        print(f"{result.target:32} {result.requests_per_second:>10.0f} {result.p50_ms:>8.2f} "
              f"{result.p99_ms:>8.2f} {result.errors:>7}")
    print(f"ratio proxied/direct: {proxied.requests_per_second / direct.requests_per_second:.3f}")
    return 0 if proxied.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
