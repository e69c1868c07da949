"""nginx splitter: a local nginx the harness starts; weights change by config rewrite and reload.

nginx has no runtime API for upstream weights (outside nginx Plus), so each change rewrites the
config and reloads: SIGHUP to the master, which is what ``nginx -p PREFIX -c CFG -s reload`` sends
after reading the pid file, minus a process spawn (the rollback clock runs). The config is checked
with ``nginx -t`` at start (and before every reload with ``test_each_reload=True``); a reload nginx
refuses shows as ``[emerg]`` in the error log and raises at once. Then the new config must be the
one answering: every config carries a generation number and
its weights in a small location (``/__kuh/split``), and the reload counts only once a fresh
connection reads the new generation there. ``weights()`` reads that location too, so it reports
what the running nginx holds, not what the harness last wrote.

Per-upstream request log for the gates (harness.sources.balancer): every proxied request appends one
line to ``upstream.log`` in the run folder (:data:`UPSTREAM_LOG_FORMAT`: pool, ``$upstream_addr``,
``$upstream_status``, ``$status``, ``$request_time`` and ``$upstream_response_time`` in seconds with
millisecond resolution). The status location is not logged.

``weight=0`` is invalid in nginx: a server with no share is marked ``down``. Errors are not hidden:
``proxy_next_upstream off`` (no retry on another server) and no passive health marking
(``max_fails=0``).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from harness.errors import TrafficError
from harness.failsafe import accepting_nginx_workers, children
from harness.traffic.base import (
    HEADER_PIN,
    HEADER_SIDE,
    HEADER_UPSTREAM,
    Backend,
    ProcessSplitter,
    check_weights,
    port_accepts,
    server_weights,
    tail,
)

STATUS_PATH = "/__kuh/split"
UPSTREAM_LOG = "upstream.log"
#: one line per proxied request: "kuh1 <pool> <upstream_addr> <upstream_status> <status> <request_time>
#: <upstream_response_time>"; nginx writes "-" for a value it does not have (no upstream reached)
UPSTREAM_LOG_TAG = "kuh1"
UPSTREAM_LOG_FORMAT = (f"{UPSTREAM_LOG_TAG} $kuh_pool $upstream_addr $upstream_status $status $request_time "
                       "$upstream_response_time")


def render_config(
    backends: Sequence[Backend],
    *,
    run_dir: Path,
    port: int,
    weights: dict[str, int],
    drained: frozenset[str],
    generation: int,
    host: str = "127.0.0.1",
) -> str:
    """The nginx configuration text for these per-server weights."""
    def server_line(b: Backend, weight: int) -> str:
        if weight == 0 or b.name in drained:
            return f"        server {b.address} down;"
        return f"        server {b.address} weight={weight} max_fails=0;"

    names = "\n".join(f'        "{b.address}" {b.name};' for b in backends)
    sides = "\n".join(f'        "{b.address}" {b.side};' for b in backends)
    state = " ".join(f"{b.name}={weights[b.name]}{':drain' if b.name in drained else ''}" for b in backends)
    y_members = [b for b in backends if b.side == "y"]
    if all(b.name in drained for b in y_members):
        pin_lines = [f"        server {b.address} down;" for b in y_members]
    else:
        pin_lines = [server_line(b, 1) for b in y_members]
    split_lines = [server_line(b, weights[b.name]) for b in backends]
    return f"""# written by kong-upgrade-harness (harness/traffic/nginx.py), generation {generation}
worker_processes 1;
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    server_tokens off;
    log_format kuh_upstream '{UPSTREAM_LOG_FORMAT}';
    client_body_temp_path {run_dir}/tmp/body;
    proxy_temp_path {run_dir}/tmp/proxy;
    fastcgi_temp_path {run_dir}/tmp/fastcgi;
    uwsgi_temp_path {run_dir}/tmp/uwsgi;
    scgi_temp_path {run_dir}/tmp/scgi;

    upstream kuh_split {{
{chr(10).join(split_lines)}
        keepalive 64;
    }}
    upstream kuh_pin_y {{
{chr(10).join(pin_lines)}
        keepalive 16;
    }}
    map $http_{HEADER_PIN.lower().replace('-', '_')} $kuh_pool {{
        default kuh_split;
        ~*^y$ kuh_pin_y;
    }}
    map $upstream_addr $kuh_name {{
        default "";
{names}
    }}
    map $upstream_addr $kuh_side {{
        default "";
{sides}
    }}
    server {{
        listen {host}:{port};
        location = {STATUS_PATH} {{
            default_type text/plain;
            return 200 "generation={generation} {state}\\n";
        }}
        location / {{
            access_log {run_dir}/{UPSTREAM_LOG} kuh_upstream;
            proxy_pass http://$kuh_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header {HEADER_PIN} "";
            proxy_pass_header Server;
            proxy_pass_header Date;
            proxy_next_upstream off;
            proxy_buffering off;
            add_header {HEADER_UPSTREAM} $kuh_name always;
            add_header {HEADER_SIDE} $kuh_side always;
        }}
    }}
}}
"""


class NginxSplitter(ProcessSplitter):
    """An nginx child process in ``run_dir``; see the module docstring."""

    kind = "nginx"
    label = "nginx"
    install_hint = "install nginx (Debian: apt-get install nginx) or pass binary="
    config_name = "nginx.conf"

    def __init__(
        self,
        backends: Sequence[Backend],
        run_dir: str | Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
        initial: tuple[int, int] = (100, 0),
        start_timeout: float = 10.0,
        reload_timeout: float = 10.0,
        test_each_reload: bool = False,
    ) -> None:
        super().__init__(backends, run_dir, port=port, host=host, binary=binary, initial=initial,
                         start_timeout=start_timeout)
        self.reload_timeout = reload_timeout
        self.test_each_reload = test_each_reload
        self.output_path = self.run_dir / "nginx.out"
        self.error_log = self.run_dir / "error.log"
        self._split = self.initial
        self._drained: frozenset[str] = frozenset()
        self._generation = 0

    @property
    def upstream_log_path(self) -> Path:
        """The per-upstream request log (see the module docstring); it grows for the splitter's life."""
        return self.run_dir / UPSTREAM_LOG

    @property
    def output_paths(self) -> tuple[Path, ...]:
        """nginx's stderr first, then its error log (used when stderr was empty)."""
        return (self.output_path, self.error_log)

    def _write_config(self) -> None:
        self._generation += 1
        self.config_path.write_text(
            render_config(
                self.backends, run_dir=self.run_dir, port=self.port,
                weights=server_weights(self.backends, *self._split), drained=self._drained,
                generation=self._generation, host=self.host,
            )
        )

    def _nginx(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._argv(), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrafficError(f"could not run {' '.join(command)}: {exc}", hint=self.install_hint) from exc

    def _test_config(self) -> None:
        result = self._nginx("-t", "-q")
        if result.returncode != 0:
            raise TrafficError(
                f"nginx rejected the generated config {self.config_path} (exit {result.returncode}):\n"
                f"    {tail(result.stderr + result.stdout)}",
                hint="this is a harness bug or an unusable backend address; the running nginx keeps "
                "its previous config",
            )

    def _prepare(self) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)  # nginx opens its default log before reading ours
        self._write_config()
        self._test_config()

    def _argv(self) -> list[str]:
        return [self.binary, "-p", f"{self.run_dir}/", "-c", str(self.config_path)]

    def _wait_started(self) -> None:
        self._wait_generation(self.start_timeout, starting=True)

    def _read_status(self) -> tuple[int, dict[str, int]]:
        """(generation, per-server weights) from the running nginx, on a fresh connection.

        Plain ``http.client``: an httpx client per call built an SSL context each time, tens of
        milliseconds on a busy machine, and this runs in a loop on the rollback clock.
        """
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2.0)
        try:
            conn.request("GET", STATUS_PATH, headers={"Connection": "close"})
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            raise TrafficError(f"nginx on {self.listen_url} did not answer {STATUS_PATH}: {exc}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise TrafficError(f"nginx answered {response.status} on {STATUS_PATH}; expected 200")
        fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
        try:
            generation = int(fields.pop("generation"))
            return generation, {name: int(value.split(":")[0]) for name, value in fields.items()}
        except (KeyError, ValueError) as exc:
            raise TrafficError(
                f"nginx {STATUS_PATH} answered {text!r}; expected generation=N name=weight ..."
            ) from exc

    def _error_log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def _check_reload_rejected(self, log_size: int | None) -> None:
        """A reload nginx refused leaves '[emerg]' in the error log and the old config running."""
        if log_size is None:
            return
        try:
            with self.error_log.open("rb") as fh:
                fh.seek(log_size)
                new = fh.read().decode(errors="replace")
        except OSError:
            return
        if "[emerg]" in new:
            raise TrafficError(
                f"nginx (pid {self.pid}) refused the new config {self.config_path} and keeps the "
                f"previous one; its error log:\n    {tail(new)}",
                hint="the weights did not change; this is a harness bug or an unusable backend address",
            )

    def _wait_generation(
        self, timeout: float, *, starting: bool = False, log_size: int | None = None
    ) -> None:
        def ready() -> str | None:
            self._check_reload_rejected(log_size)
            if not port_accepts(self.host, self.port):
                return "the port refuses connections"
            try:
                generation, _ = self._read_status()
            except TrafficError as exc:
                return str(exc)
            return None if generation == self._generation else f"generation {generation}"

        self._wait_for(ready, timeout, doing="starting" if starting else "reloading",
                           goal=f"serve config generation {self._generation}", interval=0.005)

    def _wait_old_workers(self, old: set[int], timeout: float, log_size: int | None = None) -> None:
        """Wait until no worker from before the reload still accepts connections.

        An old worker closes its listening sockets when it starts shutting down; until then a fresh
        connection may still reach the old config. Its title says "shutting down" from that moment.
        """
        def ready() -> str | None:
            self._check_reload_rejected(log_size)
            busy = sorted(old.intersection(accepting_nginx_workers(self.pid)))
            if busy:
                return f"workers {busy} still accepting"
            time.sleep(0.005)  # the title is set just before the sockets close
            return None

        self._wait_for(ready, timeout, doing="reloading", goal=f"retire its old workers {sorted(old)}",
                       interval=0.005)

    def _reload(self) -> None:
        self._require_running()
        self._write_config()
        if self.test_each_reload:
            self._test_config()
        old_workers = set(children(self.pid))
        log_size = self._error_log_size()
        # What `nginx -s reload` does (read the pid file, send SIGHUP to the master), without
        # spawning a process for it: the master is our child and its pid is known.
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGHUP)
        self._wait_old_workers(old_workers, self.reload_timeout, log_size)
        self._wait_generation(self.reload_timeout, log_size=log_size)

    def set_weights(self, x: int, y: int) -> None:
        previous = self._split
        self._split = check_weights(x, y)
        try:
            self._reload()
        except BaseException:
            self._split = previous
            raise
        self._confirm_weights(x, y)

    def server_weights(self) -> dict[str, int]:
        """Each server's weight in the config nginx is running (drained servers keep theirs, as in
        HAProxy: drain is a state, not a weight)."""
        self._require_running()
        _, weights = self._read_status()
        return weights

    def drain(self, node_name: str) -> None:
        self._backend(node_name)
        previous = self._drained
        self._drained = previous | {node_name}
        try:
            self._reload()
        except BaseException:
            self._drained = previous
            raise
