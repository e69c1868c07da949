"""Probe rate: the highest open-loop rate the probe holds with under 1 % of requests sent late.

    .venv/bin/python benchmarks/probe_rate.py [--seconds 3] [--rates 500,1000,...] [--connections 10]

Target: a static nginx (one worker, ``return 200``) on a free 127.0.0.1 port, so the probe, not the
target, is what runs out. For each rate the probe runs ``--seconds``; a request is late when it
was sent more than ``ProbeWindow.LATE_MS`` (50 ms) after its scheduled time. CPU is the probe
process's CPU time over the run, as a share of one core. Beside it, Debian's ``wrk`` (closed loop,
``-t1 -c N``) on the same target gives its throughput, p50 and p99 as the yardstick; wrk's
latencies are per completed request at full speed, the probe's are from the scheduled time.
nginx is stopped by its pid at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Row, Table, print_table
from harness.traffic import Probe, ProbeRequest
from harness.traffic.base import free_port, port_accepts

LATE_LIMIT = 0.01


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp;
    proxy_temp_path {workdir}/tmp;
    fastcgi_temp_path {workdir}/tmp;
    uwsgi_temp_path {workdir}/tmp;
    scgi_temp_path {workdir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", f"{workdir}/", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_accepts("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"nginx did not start on 127.0.0.1:{port}; see {workdir}/error.log")
        time.sleep(0.05)
    return proc


def to_ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return rps, p50, p99


def measure(url: str, rate: int, seconds: float) -> dict[str, float]:
    probe = Probe(url, [ProbeRequest(path="/probe")], rate=rate, timeout=5.0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    window = probe.run(count=int(rate * seconds), duration=seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    latencies = sorted(r.latency_ms for r in window.records)
    sent = [r.sent for r in window.records]
    return {
        "rate": rate,
        "count": window.count,
        "achieved": window.count / (max(sent) - min(sent)) if len(sent) > 1 else 0.0,
        "late": window.late / window.count if window.count else 1.0,
        "lag_p99": window.lag_p99_ms or 0.0,
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "errors": window.probe_errors + sum(1 for r in window.records if r.failed),
        "cpu": cpu / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="500,1000,2000,3000,4000,6000,8000,10000,12000")
    parser.add_argument("--connections", type=int, default=10, help="wrk connections")
    args = parser.parse_args(argv)
    if shutil.which("nginx") is None or shutil.which("wrk") is None:
        print("needs nginx and wrk (Debian packages; scripts/setup-system.sh)", file=sys.stderr)
        return 2
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="probe-rate-"))
    (workdir / "tmp").mkdir()
    nginx = start_nginx(workdir, port)
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            result = measure(url, rate, args.seconds)
            results.append(result)
            if len(results) >= 2 and all(r["late"] >= LATE_LIMIT for r in results[-2:]):
                break  # two rates in a row over the limit end the climb
        wrk = run_wrk(url + "/probe", max(1, round(args.seconds)), args.connections)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    passing = [r for r in results if r["late"] < LATE_LIMIT]
    best = max((r["rate"] for r in passing), default=0)
    rows = [
        Row(
            f"probe at {r['rate']:.0f} req/s",
            f"late {100 * r['late']:.2f} %, lag p99 {r['lag_p99']:.1f} ms, p50 {r['p50']:.2f} ms, "
            f"p99 {r['p99']:.2f} ms, CPU {100 * r['cpu']:.0f} % of a core, achieved {r['achieved']:.0f}/s, "
            f"errors {r['errors']:.0f}",
            target="< 1 % late", met=r["late"] < LATE_LIMIT,
        )
        for r in results
    ]
    # the targets: >= 2,000 req/s with under 1 % schedule lag; p50/p99 within 10 % of wrk's
    rows.append(Row("highest rate under 1 % late", f"{best} req/s", target=">= 2000 req/s", met=best >= 2000))
    rows.append(Row(
        f"wrk -t1 -c{args.connections} (closed loop) on the same target", "-",
        f"{wrk[0]:.0f} req/s, p50 {wrk[1]:.2f} ms, p99 {wrk[2]:.2f} ms",
    ))
    near = min(passing or results, key=lambda r: abs(r["rate"] - 2000))
    p50_ratio, p99_ratio = near["p50"] / wrk[1], near["p99"] / wrk[2]
    rows.append(Row(
        f"probe p50 / p99 at {near['rate']:.0f} req/s vs wrk's", f"{near['p50']:.2f} / {near['p99']:.2f} ms",
        f"{wrk[1]:.2f} / {wrk[2]:.2f} ms", f"{p50_ratio:.1f}x / {p99_ratio:.1f}x", target="within 10 %",
        met=p50_ratio <= 1.1 and p99_ratio <= 1.1,
    ))
    table = Table(
        "Probe rate: open-loop schedule held (static nginx target)",
        tuple(rows),
        (
            f"{args.seconds:g} s per rate; late = sent > 5 ms after its scheduled time; the climb stops "
            "after two rates in a row over 1 % (one noisy second on a shared machine does not end it)",
            "the probe is one asyncio thread with aiohttp; the 2 cores are shared with nginx and anything "
            "else running",
            "load average at the end {:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg()),
        ),
    )
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
