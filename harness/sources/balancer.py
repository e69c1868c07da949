"""The balancer as a metrics source: every request through the splitter, the users' too, per server.

* HAProxy: one line per request (harness.traffic.haproxy: backend, server, status, ``%Ta`` total active
  time in ms) into HAProxy's in-memory ring, streamed over the runtime API to a reader thread, so HAProxy
  never waits on us. The runtime API's ``show stat`` (cumulative per-server answers, 5xx, connection and
  response errors) checks that no line went missing; a gap is named in the reading's notes.
* nginx: the per-upstream access log (harness.traffic.nginx: ``$upstream_addr``, ``$status``,
  ``$request_time``), read from where it ended at the last read.
* the command splitter: unavailable (the harness does not run that balancer, so it cannot read it).

Only the split backend counts (pinned probe requests to Y are not part of the split). A request the
balancer could not give to any server (HAProxy ``<NOSRV>``, nginx "no live upstreams") is named in the
reading's notes, not on a node. A failure is an answer of 500 or more, including the 502/503 the
balancer writes itself when a server refused or dropped the connection. Timers are whole milliseconds,
so the bounds are +-1 ms (harness.sources.base). HAProxy truncates ``%Ta`` (an elapsed time in
microseconds divided down to ms), so its figure is the middle of that millisecond, ``%Ta + 0.5``;
nginx's ``$request_time`` is a difference of two cached millisecond clocks, unbiased, taken as is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.model import Side
from harness.sources.base import Reading, Source, Unavailable, samples

if TYPE_CHECKING:
    from harness.traffic.base import Splitter
    from harness.traffic.haproxy import HAProxySplitter
    from harness.traffic.nginx import NginxSplitter

TIMER_RESOLUTION_MS = 1.0
HAPROXY_TRUNCATION_MS = 0.5
#: lines kept between two reads at most (a reader that stopped reading must not grow without bound)
MAX_PENDING_LINES = 1_000_000


def parse_haproxy_line(line: str, backend: str) -> tuple[str, int, float] | None:
    """(server, status, total ms) of one request-log line of ``backend`` (``%Ta`` + 0.5 ms: the middle of the
    millisecond HAProxy truncated to); None for another backend or a line that is not ours. ``<NOSRV>``
    stays as the server name."""
    parts = line.split()
    if len(parts) < 6 or parts[0] != "kuh1" or parts[1] != backend:
        return None
    try:
        status, total = int(parts[3]), float(parts[4])
    except ValueError:
        return None
    return parts[2], status, max(0.0, total) + HAPROXY_TRUNCATION_MS


def parse_nginx_line(line: str, pool: str, names: Mapping[str, str]) -> tuple[str, int, float] | None:
    """(backend name, status, total ms) of one upstream-log line of ``pool``; the name is the address
    itself when it is no backend's (e.g. the pool's name when no server was live)."""
    parts = line.split()
    if len(parts) < 7 or parts[0] != "kuh1" or parts[1] != pool:
        return None
    try:
        status, seconds = int(parts[4]), float(parts[5])
    except ValueError:
        return None
    address = parts[2].split(",")[-1].strip()      # the last server tried (retries are off: the only one)
    return names.get(address, address), status, max(0.0, seconds * 1000.0)


def reading_of(entries: Sequence[tuple[str, int, float]], sides: Mapping[str, Side],
               notes: Sequence[str] = ()) -> Reading:
    """A balancer Reading from (server, status, ms) entries: per known server; others go to the notes."""
    per: dict[str, list[tuple[int, float]]] = {}
    stray: dict[str, int] = {}
    for server, status, ms in entries:
        if server in sides:
            per.setdefault(server, []).append((status, ms))
        else:
            stray[server] = stray.get(server, 0) + 1
    counts = [samples(name, sides[name], answers, resolution_ms=TIMER_RESOLUTION_MS) for name, answers in per.items()]
    extra = [f"{n} request(s) the balancer gave to no node ({name})" for name, n in sorted(stray.items())]
    return Reading.of("balancer", counts, "samples", [*notes, *extra])


class HAProxyLog:
    """Reads HAProxy's request log socket on a thread; :meth:`read` returns what arrived since the last."""

    name = "balancer"

    def __init__(self, splitter: HAProxySplitter) -> None:
        from harness.traffic.haproxy import SPLIT_BACKEND

        self._splitter = splitter
        self._backend = SPLIT_BACKEND
        self._sides: dict[str, Side] = {b.name: b.side for b in splitter.backends}
        self._sock: socket.socket = splitter.open_access_log()
        self._sock.settimeout(0.2)
        self._partial = ""
        self._lines: deque[str] = deque(maxlen=MAX_PENDING_LINES)
        self._stop = threading.Event()
        self._seen_total = 0
        self._stats_before = self._stats()
        self._thread = threading.Thread(target=self._run, name="kuh-haproxy-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return                  # HAProxy closed the stream (it stopped)
            lines = (self._partial + data.decode(errors="replace")).split("\n")
            self._partial = lines.pop()
            self._lines.extend(lines)

    def _stats(self) -> dict[str, int] | None:
        try:
            return {name: s.total for name, s in self._splitter.server_stats().items()}
        except Exception:          # the balancer stopped: the log lines are still evidence
            return None

    def available(self) -> tuple[bool, str]:
        return True, ("HAProxy's per-request log (server, status, total time %Ta in ms) and its runtime API "
                      "per-server counters")

    def read(self) -> Reading:
        taken = []
        while self._lines:
            taken.append(self._lines.popleft())
        entries = [e for e in (parse_haproxy_line(line, self._backend) for line in taken) if e is not None]
        notes = []
        stats = self._stats()
        if stats is not None and self._stats_before is not None:
            counted = sum(stats.values()) - sum(self._stats_before.values())
            self._seen_total += len(entries)
            # show stat and the log are not read at the same instant: only a lasting gap is a loss
            if counted - self._seen_total > max(20, counted // 50):
                notes.append(f"{counted - self._seen_total} of {counted} requests counted by HAProxy have no "
                             "log line yet (lines lost or late): latencies are a sample")
        return reading_of(entries, self._sides, notes)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self._sock.close()


class NginxLog:
    """Reads nginx's per-upstream log from where the last read ended."""

    name = "balancer"

    def __init__(self, splitter: NginxSplitter) -> None:
        self._path: Path = splitter.upstream_log_path
        self._sides: dict[str, Side] = {b.name: b.side for b in splitter.backends}
        self._names = {b.address: b.name for b in splitter.backends}
        self._offset = self._size()
        self._partial = ""

    def _size(self) -> int:
        try:
            return os.stat(self._path).st_size
        except OSError:
            return 0

    def available(self) -> tuple[bool, str]:
        return True, "nginx's per-upstream access log ($upstream_addr, $status, $request_time in ms)"

    def read(self) -> Reading:
        try:
            with open(self._path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            data = b""
        self._offset += len(data)
        text = self._partial + data.decode(errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()             # a line nginx is still writing
        entries = [e for e in (parse_nginx_line(line, "kuh_split", self._names) for line in lines) if e is not None]
        return reading_of(entries, self._sides)

    def close(self) -> None:
        return None


def balancer_source(splitter: Splitter) -> Source:
    """The balancer source for a started splitter, or :class:`Unavailable` saying why."""
    from harness.traffic.haproxy import HAProxySplitter
    from harness.traffic.nginx import NginxSplitter

    kind = getattr(splitter, "kind", "?")
    if kind == "haproxy" and isinstance(splitter, HAProxySplitter):
        return HAProxyLog(splitter)
    if kind == "nginx" and isinstance(splitter, NginxSplitter):
        return NginxLog(splitter)
    return Unavailable("balancer", f"the {kind} splitter drives a balancer the harness does not run, so its "
                       "per-server counters cannot be read; the gates use the other sources")


__all__ = ["HAProxyLog", "NginxLog", "balancer_source", "parse_haproxy_line", "parse_nginx_line", "reading_of"]
