"""HAProxy splitter: a local HAProxy the harness starts; weights change live over the runtime API.

Layout of the generated config:

* frontend ``kuh_in`` on 127.0.0.1:<port>; a request with ``X-KUH-Pin: y`` goes to backend
  ``kuh_pin_y`` (Y servers only, so Y can be probed at 0 %); every other request to ``kuh_split``.
* backend ``kuh_split`` holds every X and Y server, ``balance roundrobin`` (weighted, dynamic):
  the runtime command ``set server kuh_split/<name> weight N`` changes the split at once, with no
  reload (a reload would reset runtime weights to the file's).
* ``http-after-response`` adds ``X-KUH-Upstream`` (server name) and ``X-KUH-Side`` to every
  answer, including the 503 HAProxy writes itself when a server cannot be reached.
* per-request timers for the gates (harness.sources.balancer): every request is logged, one raw line
  (:data:`ACCESS_LOG_FORMAT`: backend, server, status, ``%Ta`` total active time and ``%Tr`` server
  response time in ms) into an in-memory ring (:data:`ACCESS_RING`, 8 MiB), streamed to a reader over
  the runtime API with ``show events <ring> -w -n`` (:meth:`HAProxySplitter.open_access_log`). A unix
  datagram socket was tried first and lost lines: Linux queues only ``net.unix.max_dgram_qlen`` (10 here)
  datagrams, so a reader a few milliseconds late dropped them. ``stats timeout`` is raised so the
  streaming connection is not closed while traffic is idle. The per-server counters come from the
  runtime API's ``show stat`` (:meth:`HAProxySplitter.server_stats`).

Health checks are OFF on purpose (no ``check`` keyword), ``option redispatch`` is not set and
``retries`` is 0: a broken Y server must show up to the probe and the gate as errors (an immediate
503 naming the server), not be hidden by HAProxy quietly sending its share to X, nor turned into
probe timeouts by HAProxy's 1 s pause between retries.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TrafficError
from harness.traffic.base import (
    HEADER_PIN,
    HEADER_SIDE,
    HEADER_UPSTREAM,
    Backend,
    ProcessSplitter,
    check_weights,
    port_accepts,
    server_weights,
)

SPLIT_BACKEND = "kuh_split"
PIN_BACKEND = "kuh_pin_y"
#: one raw line per request: "kuh1 <backend> <server> <status> <Ta ms> <Tr ms>" (HAProxy 2.6 log-format
#: variables: %b backend, %s server (<NOSRV> when none), %ST status, %Ta total active time, %Tr server
#: response time, -1 when the server never answered)
ACCESS_LOG_TAG = "kuh1"
ACCESS_LOG_FORMAT = f"{ACCESS_LOG_TAG} %b %s %ST %Ta %Tr"
ACCESS_RING = "kuh_requests"
ACCESS_RING_BYTES = 8 * 1024 * 1024


def render_config(
    backends: Sequence[Backend], *, port: int, socket_path: Path, x: int, y: int, host: str = "127.0.0.1",
    access_log: bool = False,
) -> str:
    """The HAProxy configuration text for these backends and this starting split (``access_log``: each
    request's :data:`ACCESS_LOG_FORMAT` line into the ring :data:`ACCESS_RING`)."""
    weights = server_weights(backends, x, y)
    x_names = " ".join(b.name for b in backends if b.side == "x")
    y_names = " ".join(b.name for b in backends if b.side == "y")
    lines = [
        "# written by kong-upgrade-harness (harness/traffic/haproxy.py); weights change at run time",
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "    maxconn 4096",
        *(["    stats timeout 1d", f"    log ring@{ACCESS_RING} local0", "",
            f"ring {ACCESS_RING}", "    format raw", "    maxlen 1024", f"    size {ACCESS_RING_BYTES}"]
          if access_log else []),
        "",
        "defaults",
        "    mode http",
        *(["    log global"] if access_log else []),
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-keep-alive 10s",
        "    option http-keep-alive",
        "    http-reuse safe",
        "    # no health checks, no 'option redispatch', no retries: a node that fails shows as errors",
        "    # at once (with retries HAProxy waits 1 s between attempts on a refused connection, and",
        "    # the probe timed out instead of seeing the 503)",
        "    retries 0",
        "",
        "frontend kuh_in",
        f"    bind {host}:{port}",
        *([f'    log-format "{ACCESS_LOG_FORMAT}"'] if access_log else []),
        f"    acl kuh_pin_y req.hdr({HEADER_PIN}) -i y",
        f"    use_backend {PIN_BACKEND} if kuh_pin_y",
        f"    default_backend {SPLIT_BACKEND}",
        "",
    ]
    for backend_name, members in (
        (SPLIT_BACKEND, list(backends)),
        (PIN_BACKEND, [b for b in backends if b.side == "y"]),
    ):
        lines += [
            f"backend {backend_name}",
            "    balance roundrobin",
            f"    http-request del-header {HEADER_PIN}",
            f"    http-after-response set-header {HEADER_UPSTREAM} %[srv_name] if {{ srv_name -m found }}",
            f"    http-after-response set-header {HEADER_SIDE} x if {{ srv_name -m str {x_names} }}",
            f"    http-after-response set-header {HEADER_SIDE} y if {{ srv_name -m str {y_names} }}",
        ]
        for b in members:
            weight = weights[b.name] if backend_name == SPLIT_BACKEND else 1
            lines.append(f"    server {b.name} {b.address} weight {weight}")
        lines.append("")
    return "\n".join(lines)


class HAProxySplitter(ProcessSplitter):
    """A HAProxy child process in ``run_dir``; see the module docstring for the config it writes."""

    kind = "haproxy"
    label = "HAProxy"
    install_hint = "install haproxy (Debian: apt-get install haproxy) or pass binary="

    config_name = "haproxy.cfg"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "haproxy.sock"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "haproxy.log"


    @property
    def output_paths(self) -> tuple[Path, ...]:
        return (self.log_path,)

    def _prepare(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > 100:
            raise TrafficError(
                f"the HAProxy admin socket path is {len(str(self.socket_path))} characters long; unix "
                f"sockets allow about 100: {self.socket_path}",
                hint="give the splitter a shorter run directory",
            )
        self.socket_path.unlink(missing_ok=True)
        self.config_path.write_text(
            render_config(
                self.backends, port=self.port, socket_path=self.socket_path, x=self.initial[0],
                y=self.initial[1], host=self.host, access_log=True,
            )
        )

    def open_access_log(self, timeout: float = 5.0) -> socket.socket:
        """A runtime API connection streaming each new request's log line from now on (``show events
        <ring> -w -n``); the caller reads it and closes it."""
        self._require_running()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(f"show events {ACCESS_RING} -w -n\n".encode())
        except OSError as exc:
            sock.close()
            raise TrafficError(f"HAProxy admin socket {self.socket_path} refused 'show events {ACCESS_RING}': {exc}",
                               hint=f"is HAProxy (pid {self.pid}) still running? see {self.log_path}") from exc
        return sock

    def server_stats(self) -> dict[str, ServerStats]:
        """Per-server counters of the split backend from the runtime API (``show stat``), cumulative
        since HAProxy started."""
        self._require_running()
        return parse_show_stat(self._command("show stat"), SPLIT_BACKEND)

    def _argv(self) -> list[str]:
        return [self.binary, "-f", str(self.config_path), "-db"]

    def _wait_started(self) -> None:
        def ready() -> str | None:
            if not self.socket_path.exists():
                return "no admin socket yet"
            if not port_accepts(self.host, self.port):
                return "the port refuses connections"
            try:
                self._command("show info")
            except TrafficError as exc:
                return str(exc)
            return None

        self._wait_for(ready, self.start_timeout, doing="starting", goal="become ready", interval=0.05)

    def _command(self, command: str, timeout: float = 5.0) -> str:
        """Send one runtime API command line over the admin socket and return the answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError as exc:
            raise TrafficError(
                f"HAProxy admin socket {self.socket_path} did not answer {command!r}: {exc}",
                hint=f"is HAProxy (pid {self.pid}) still running? see {self.log_path}",
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def set_weights(self, x: int, y: int) -> None:
        check_weights(x, y)
        self._require_running()
        weights = server_weights(self.backends, x, y)
        # One connection, commands separated by ';': HAProxy applies them back to back.
        # The side that gains weight goes first so no instant has both sides at zero.
        gaining = "y" if y > self.weights()[1] else "x"
        order = sorted(self.backends, key=lambda b: b.side != gaining)
        line = "; ".join(f"set server {SPLIT_BACKEND}/{b.name} weight {weights[b.name]}" for b in order)
        answer = self._command(line).strip()
        if answer:
            raise TrafficError(
                f"HAProxy refused the weight change to x={x}, y={y}: {answer}",
                hint=f"the command was {line!r}",
            )
        self._confirm_weights(x, y)

    def server_weights(self) -> dict[str, int]:
        """Each server's current weight in the split backend, as HAProxy reports it."""
        self._require_running()
        out: dict[str, int] = {}
        for b in self.backends:
            answer = self._command(f"get weight {SPLIT_BACKEND}/{b.name}").strip()
            try:
                out[b.name] = int(answer.split()[0])
            except (IndexError, ValueError) as exc:
                raise TrafficError(
                    f"HAProxy answered {answer!r} to 'get weight {SPLIT_BACKEND}/{b.name}'; expected "
                    "'<current> (<initial>)'"
                ) from exc
        return out

    def drain(self, node_name: str) -> None:
        self._require_running()
        backend = self._backend(node_name)
        targets = [SPLIT_BACKEND] + ([PIN_BACKEND] if backend.side == "y" else [])
        for target in targets:
            answer = self._command(f"set server {target}/{node_name} state drain").strip()
            if answer:
                raise TrafficError(f"HAProxy refused to drain {target}/{node_name}: {answer}")

    def _stopped(self) -> None:
        self.socket_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ServerStats:
    """One server's cumulative counters from ``show stat``: answers by class, and the requests HAProxy
    could not get an answer for (``econ`` connection errors, ``eresp`` response errors: HAProxy answers
    those itself, with a 503 or 502, and counts them on the server, not in its ``hrsp_5xx``)."""

    server: str
    answers: int
    hrsp_5xx: int
    econ: int
    eresp: int
    rtime_ms: int | None    # average server response time over the last 1024 requests
    ttime_ms: int | None    # average total time over the last 1024 requests

    @property
    def failed(self) -> int:
        return self.hrsp_5xx + self.econ + self.eresp

    @property
    def total(self) -> int:
        return self.answers + self.econ + self.eresp


def parse_show_stat(text: str, backend: str) -> dict[str, ServerStats]:
    """The server rows of ``backend`` in a ``show stat`` CSV answer (header line ``# pxname,svname,...``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise TrafficError(f"HAProxy's 'show stat' answered {text[:200]!r}; expected a CSV with a '# pxname' header")
    header = lines[0][2:].split(",")

    def number(row: dict[str, str], key: str) -> int | None:
        value = row.get(key, "")
        return int(value) if value.lstrip("-").isdigit() else None

    out: dict[str, ServerStats] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        answers = sum(number(row, f"hrsp_{c}") or 0 for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
        out[row["svname"]] = ServerStats(row["svname"], answers, number(row, "hrsp_5xx") or 0,
                                         number(row, "econ") or 0, number(row, "eresp") or 0,
                                         number(row, "rtime"), number(row, "ttime"))
    return out
