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

``weight=0`` is invalid in nginx: a server with no share is marked ``down``. Errors are not hidden:
``proxy_next_upstream off`` (no retry on another server) and no passive health marking
(``max_fails=0``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from harness.errors import TrafficError
from harness.traffic.base import (
    HEADER_PIN,
    HEADER_SIDE,
    HEADER_UPSTREAM,
    Backend,
    SplitterBase,
    check_backends,
    check_weights,
    free_port,
    port_accepts,
    server_weights,
    split_from_server_weights,
    tail,
)

STATUS_PATH = "/__kuh/split"


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


class NginxSplitter(SplitterBase):
    """An nginx child process in ``run_dir``; see the module docstring."""

    kind = "nginx"

    def __init__(
        self,
        backends: Sequence[Backend],
        run_dir: str | Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str = "nginx",
        initial: tuple[int, int] = (100, 0),
        start_timeout: float = 10.0,
        reload_timeout: float = 10.0,
        test_each_reload: bool = False,
    ) -> None:
        self.backends = check_backends(backends)
        self.run_dir = Path(run_dir).absolute()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = binary
        self.start_timeout = start_timeout
        self.reload_timeout = reload_timeout
        self.test_each_reload = test_each_reload
        self.config_path = self.run_dir / "nginx.conf"
        self.output_path = self.run_dir / "nginx.out"
        self.error_log = self.run_dir / "error.log"
        self._split = check_weights(*initial)
        self._drained: frozenset[str] = frozenset()
        self._generation = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def listen_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

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
        command = [self.binary, "-p", f"{self.run_dir}/", "-c", str(self.config_path), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrafficError(
                f"could not run {' '.join(command)}: {exc}",
                hint="install nginx (Debian: apt-get install nginx) or pass binary=",
            ) from exc

    def _test_config(self) -> None:
        result = self._nginx("-t", "-q")
        if result.returncode != 0:
            raise TrafficError(
                f"nginx rejected the generated config {self.config_path} (exit {result.returncode}):\n"
                f"    {tail(result.stderr + result.stdout)}",
                hint="this is a harness bug or an unusable backend address; the running nginx keeps "
                "its previous config",
            )

    def start(self) -> None:
        if self._proc is not None:
            raise TrafficError(f"nginx splitter on {self.listen_url} is already started (pid {self.pid})")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)  # nginx opens its default log before reading ours
        self._write_config()
        self._test_config()
        out = self.output_path.open("wb")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-p", f"{self.run_dir}/", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise TrafficError(
                f"could not run nginx ({self.binary!r}): {exc}",
                hint="install nginx (Debian: apt-get install nginx) or pass binary=",
            ) from exc
        finally:
            out.close()
        try:
            self._wait_generation(self.start_timeout, starting=True)
        except BaseException:
            self.stop()
            raise

    def _output(self) -> str:
        """nginx's stderr, or its error log when stderr was empty (they mostly repeat each other)."""
        for path in (self.output_path, self.error_log):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                if text.strip():
                    return text
        return ""

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
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        seen: object = "no answer"
        while time.monotonic() < deadline:
            self._check_reload_rejected(log_size)
            code = self._proc.poll()
            if code is not None:
                raise TrafficError(
                    f"nginx exited with code {code} while {'starting' if starting else 'reloading'} on "
                    f"{self.host}:{self.port} (config {self.config_path}); its output:\n    "
                    f"{tail(self._output())}",
                    hint="if the port is taken, choose another port (or leave port unset for a free one)",
                )
            if port_accepts(self.host, self.port):
                try:
                    generation, _ = self._read_status()
                    if generation == self._generation:
                        return
                    seen = f"generation {generation}"
                except TrafficError as exc:
                    seen = exc
            time.sleep(0.005)
        raise TrafficError(
            f"nginx (pid {self.pid}) on {self.listen_url} did not serve config generation "
            f"{self._generation} within {timeout:.0f}s; last seen: {seen}; its output:\n    "
            f"{tail(self._output())}"
        )

    def _workers(self) -> dict[int, str]:
        """The master's child processes and their titles, from /proc (empty where there is none)."""
        master = self.pid
        found: dict[int, str] = {}
        proc = Path("/proc")
        if master is None or not proc.is_dir():
            return found
        children = proc / str(master) / "task" / str(master) / "children"
        try:
            pids = children.read_text().split()
        except OSError:
            pids = None
        if pids is not None:
            for pid in pids:
                with contextlib.suppress(OSError):
                    found[int(pid)] = (proc / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            return found
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == master:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
        return found

    def _wait_old_workers(self, old: set[int], timeout: float, log_size: int | None = None) -> None:
        """Wait until no worker from before the reload still accepts connections.

        An old worker closes its listening sockets when it starts shutting down; until then a fresh
        connection may still reach the old config. Its title says "shutting down" from that moment.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_reload_rejected(log_size)
            current = self._workers()
            if all(pid not in current or "shutting down" in current[pid] for pid in old):
                time.sleep(0.005)  # the title is set just before the sockets close
                return
            time.sleep(0.005)
        raise TrafficError(
            f"nginx (pid {self.pid}) kept its old workers {sorted(old)} accepting for {timeout:.0f}s "
            f"after a reload; its output:\n    {tail(self._output())}"
        )

    def _require_running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise TrafficError(
                f"the nginx splitter on {self.listen_url} is not running",
                hint=f"call start() first; its output: {self.output_path}",
            )

    def _reload(self) -> None:
        self._require_running()
        self._write_config()
        if self.test_each_reload:
            self._test_config()
        old_workers = set(self._workers())
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
        seen = self.weights()
        if seen != (x, y):
            raise TrafficError(f"nginx reports weights {seen} after setting x={x}, y={y}")

    def server_weights(self) -> dict[str, int]:
        """Each server's weight in the config nginx is running (drained servers keep theirs, as in
        HAProxy: drain is a state, not a weight)."""
        self._require_running()
        _, weights = self._read_status()
        return weights

    def weights(self) -> tuple[int, int]:
        return split_from_server_weights(self.backends, self.server_weights())

    def drain(self, node_name: str) -> None:
        if node_name not in {b.name for b in self.backends}:
            known = ", ".join(b.name for b in self.backends)
            raise TrafficError(f"no backend named {node_name!r} behind this splitter; known: {known}")
        previous = self._drained
        self._drained = previous | {node_name}
        try:
            self._reload()
        except BaseException:
            self._drained = previous
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
