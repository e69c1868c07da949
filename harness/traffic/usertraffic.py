"""User-like traffic beside the probe: ``wrk`` sending a request mix drawn from the corpus through the splitter.

wrk is closed loop: each connection sends, waits for the answer, sends again. Its Lua ``delay()`` hook
makes each connection wait ``connections * 1000 / rate`` ms between requests, so the rate it sends is
at most ``rate`` and, with answers taking L ms, about ``rate * delay / (delay + L)``: a little under the
asked rate on a fast gateway, much under it on a slow one (as users who wait for answers would). The
achieved rate is read back from wrk's own summary when it stops (``done()`` prints it) and reported.

These requests are seen by the balancer and by Kong's Prometheus plugin, never by the probe: they are
what the balancer and prometheus sources judge besides the probe's. The Lua script holds the mix's
headers (consumer keys included), so it is written in a private temporary folder (0700) and removed at
:meth:`UserTraffic.stop`. wrk is started and stopped by its pid (SIGINT: wrk then prints its summary).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TrafficError
from harness.traffic.base import HEADER_PIN, tail
from harness.traffic.probe import ProbeRequest

#: each connection's pause between requests is about this long at the asked rate (more connections for
#: higher rates); long against a fast gateway's answer time, so the achieved rate stays near the asked one
TARGET_DELAY_MS = 40.0
MAX_CONNECTIONS = 64
_SUMMARY = re.compile(r"^kuh-wrk (\w+)=(-?\d+)$", re.MULTILINE)


def lua_string(text: str | bytes) -> str:
    """A Lua string literal for any bytes (everything outside printable ASCII as a decimal escape)."""
    data = text.encode() if isinstance(text, str) else text
    out = []
    for b in data:
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def lua_script(mix: Sequence[ProbeRequest], delay_ms: float | None) -> str:
    """The wrk script: the mix in turn, ``delay_ms`` between a connection's requests, a parseable summary."""
    if not mix:
        raise TrafficError("user-like traffic needs at least one request in its mix",
                           hint="draw the mix from the corpus (the probe's mix)")
    # built in init(): wrk sets its Host header (wrk.headers.Host) only then; a request formatted at the top
    # of the script went out without Host (nginx answered 400 to all of them)
    lines = ["-- written by kong-upgrade-harness (harness/traffic/usertraffic.py)", "local reqs = {}",
             "init = function(args)"]
    for i, req in enumerate(mix, 1):
        headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in req.headers.items()
                            if k.lower() != HEADER_PIN.lower())
        body = lua_string(req.body) if req.body else "nil"
        lines.append(f"  reqs[{i}] = wrk.format({lua_string(req.method)}, {lua_string(req.path)}, {{{headers}}}, "
                     f"{body})")
    lines.append("end")
    lines += [
        "local i = 0",
        "request = function() i = i % #reqs + 1; return reqs[i] end",
    ]
    if delay_ms is not None:
        lines.append(f"delay = function() return {max(0, round(delay_ms))} end")
    lines += [
        "done = function(summary, latency, requests)",
        '  local e = summary.errors',
        '  io.write(string.format("kuh-wrk requests=%d\\nkuh-wrk duration_us=%d\\nkuh-wrk status_errors=%d\\n",'
        " summary.requests, summary.duration, e.status))",
        '  io.write(string.format("kuh-wrk socket_errors=%d\\n", e.connect + e.read + e.write + e.timeout))',
        "  for _, p in ipairs({50, 90, 99}) do",
        '    io.write(string.format("kuh-wrk p%d_us=%d\\n", p, latency:percentile(p)))',
        "  end",
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class UserTrafficResult:
    """What wrk reported when it stopped (latencies in ms; None when wrk printed no summary)."""

    asked_rate: float | None
    requests: int
    seconds: float
    status_errors: int        # answers of 400 or more, as wrk counts them (4xx the mix expects included)
    socket_errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        asked = f" (asked {self.asked_rate:g} req/s)" if self.asked_rate else ""
        p = "" if self.p50_ms is None else f", wrk p50 {self.p50_ms:.2f} ms / p99 {self.p99_ms:.2f} ms"
        return (f"user-like traffic (wrk): {self.requests} requests in {self.seconds:.1f} s = {self.rate:.1f} req/s"
                f"{asked}, {self.socket_errors} socket errors{p}")


def parse_summary(text: str, asked_rate: float | None) -> UserTrafficResult | None:
    values = {k: int(v) for k, v in _SUMMARY.findall(text)}
    if "requests" not in values:
        return None

    def ms(key: str) -> float | None:
        return values[key] / 1000.0 if key in values else None

    return UserTrafficResult(asked_rate, values["requests"], values.get("duration_us", 0) / 1e6,
                             values.get("status_errors", 0), values.get("socket_errors", 0),
                             ms("p50_us"), ms("p90_us"), ms("p99_us"))


def connections_for(rate: float) -> int:
    return max(1, min(MAX_CONNECTIONS, math.ceil(rate * TARGET_DELAY_MS / 1000.0)))


class UserTraffic:
    """A wrk process sending ``mix`` to ``url`` at about ``rate`` req/s (None: as fast as it can)."""

    def __init__(self, url: str, mix: Sequence[ProbeRequest], *, rate: float | None, connections: int | None = None,
                 threads: int = 1, timeout_seconds: float = 2.0, binary: str = "wrk",
                 max_seconds: float = 24 * 3600) -> None:
        if rate is not None and rate <= 0:
            raise TrafficError(f"user-like traffic rate {rate} is invalid; expected > 0 requests/s",
                               hint="set probe.user_rate to 0 for no user-like traffic")
        self.url = url.rstrip("/") + "/"
        self.mix = tuple(mix)
        self.rate = rate
        self.connections = connections or (connections_for(rate) if rate else 4)
        self.threads = max(1, min(threads, self.connections))
        self.delay_ms = self.connections * 1000.0 / rate if rate else None
        self.timeout_seconds = timeout_seconds
        self.binary = binary
        self.max_seconds = max_seconds
        self._folder: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.result: UserTrafficResult | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def describe(self) -> str:
        pace = f"about {self.rate:g} req/s ({self.delay_ms:.0f} ms between a connection's requests)" if self.rate \
            else "as fast as it can"
        return (f"wrk (pid {self.pid}) through {self.url}: {len(self.mix)} kinds of request, {self.connections} "
                f"connection(s), {pace}")

    def start(self) -> None:
        if self._proc is not None:
            raise TrafficError(f"user-like traffic is already running (wrk pid {self.pid})")
        if shutil.which(self.binary) is None:
            raise TrafficError(f"wrk ({self.binary!r}) is not installed", hint="install wrk (Debian: apt-get install "
                               "wrk), or set probe.user_rate: 0")
        self._folder = Path(tempfile.mkdtemp(prefix="kuh-wrk-"))
        script = self._folder / "mix.lua"
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(lua_script(self.mix, self.delay_ms))
        argv = [self.binary, "-t", str(self.threads), "-c", str(self.connections), "-d", f"{int(self.max_seconds)}s",
                "--timeout", f"{max(1, math.ceil(self.timeout_seconds))}s", "-s", str(script), self.url]
        output = (self._folder / "wrk.out").open("wb")
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        except OSError as exc:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise TrafficError(f"could not run wrk: {exc}", hint="install wrk or set probe.user_rate: 0") from exc
        finally:
            output.close()

    def stop(self) -> UserTrafficResult | None:
        """SIGINT to wrk's pid (it prints its summary and exits); the result, or None if it printed none."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.result
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        text = ""
        if self._folder is not None:
            with contextlib.suppress(OSError):
                text = (self._folder / "wrk.out").read_text(errors="replace")
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self.result = parse_summary(text, self.rate)
        if self.result is None and proc.returncode not in (0, -signal.SIGINT):
            raise TrafficError(f"wrk exited with code {proc.returncode} and no summary; its output:\n    {tail(text)}",
                               hint="run the same wrk command by hand to see why")
        return self.result

    def __enter__(self) -> UserTraffic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
