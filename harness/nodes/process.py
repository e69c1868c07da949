"""Nodes as local processes: the emulator (``python -m emulator``), or a locally installed ``kong``.

Each node gets a folder ``<run dir>/<node name>/`` holding its declarative config (``kong.yaml``, mode
0600, removed once loaded), its log (``node.log``: stdout and stderr) and a pid file (``node.pid``, JSON:
pid, argv, start time). The pid file lets :func:`harness.nodes.sweep` stop the leftovers of a crashed
run, after checking through ``/proc/<pid>`` that the process is still the one started here (same argv,
same start time).

Every node runs in its own process group, listens on free 127.0.0.1 ports, and counts as started only
when it answers over HTTP (``harness.nodes.spec.ready_check``), never on a bare port check.

A local ``kong`` (spec ``process:///usr/local/bin/kong?prefix=...``) is run as ``kong start --prefix P``
with ``KONG_NGINX_DAEMON=off`` so it stays in the foreground. That path is best effort and untested
here: no Kong is installed on the machines this project is tested on.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from harness.errors import NodeError, NodeStartError
from harness.model import Node, NodeState
from harness.nodes.base import NodeRequest
from harness.nodes.spec import NodeSpec, ReadyCheck, parse_spec, ready_check
from harness.ports import LOOPBACK, free_ports

PID_FILE = "node.pid"
LOG_FILE = "node.log"
CONFIG_FILE = "kong.yaml"
ADDRESS_IN_USE = ("address already in use", "errno 98", "eaddrinuse")
ROLE_SETTING = {"dbless": "traditional", "cp": "control_plane", "dp": "data_plane"}


def default_run_dir(run_id: str) -> Path:
    """Where the process provider keeps a run's node folders unless told otherwise (sweep looks here)."""
    return Path(tempfile.gettempdir()) / "kuh-runs" / run_id / "nodes"


def repo_root() -> Path:
    """The folder holding ``harness/`` (and ``emulator/`` in a source checkout)."""
    return Path(__file__).resolve().parents[2]


@dataclass
class _Running:
    """A started process (internal, mutable: the log handle closes on stop)."""

    node: Node
    proc: subprocess.Popen[bytes]
    folder: Path
    log: IO[bytes] | None


class ProcessProvider:
    """Starts nodes as local processes; ``close()`` stops every one of them.

    ``run_dir``: where node folders go (default: :func:`default_run_dir` of the request's run id).
    ``ready_timeout``/``stop_timeout``: seconds. ``python``: the interpreter that runs the emulator.
    """

    name = "process"

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        ready_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        python: str = sys.executable,
        start_attempts: int = 3,
    ) -> None:
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.python = python
        self.start_attempts = max(1, start_attempts)
        self._running: dict[str, _Running] = {}
        self._stopped_logs: dict[str, Path] = {}
        atexit.register(self.close)

    # ---- NodeProvider ----------------------------------------------------------------------------

    def start(self, request: NodeRequest) -> Node:
        spec = parse_spec(request.spec) if request.spec else parse_spec(f"emulator://{request.version}")
        if spec.provider != "process":
            raise NodeError(
                f"node {request.name}: spec {spec.raw!r} is not for the process provider",
                hint="use emulator://<version> or process:///path/to/kong?prefix=DIR, or another provider",
            )
        check_request(request, running=self._running)
        folder = self._folder(request)
        last: NodeStartError | None = None
        for _attempt in range(self.start_attempts):
            try:
                return self._start_once(request, spec, folder)
            except NodeStartError as exc:
                last = exc
                if not any(marker in str(exc).lower() for marker in ADDRESS_IN_USE):
                    raise
        assert last is not None
        raise last

    def stop(self, node: Node) -> None:
        running = self._running.pop(node.name, None)
        if running is None:
            return
        try:
            _terminate(running.proc, self.stop_timeout)
        finally:
            if running.log is not None:
                running.log.close()
            with contextlib.suppress(FileNotFoundError):
                (running.folder / PID_FILE).unlink()
            self._stopped_logs[node.name] = running.folder / LOG_FILE

    def logs(self, node: Node, tail: int = 50) -> str:
        running = self._running.get(node.name)
        path = running.folder / LOG_FILE if running else self._stopped_logs.get(node.name)
        if path is None:
            return ""
        return _tail(path, tail)

    def state(self, node: Node, tail: int = 30) -> NodeState:
        """Whether the node's process still runs; if not, its exit code and last log lines."""
        running = self._running.get(node.name)
        if running is None:
            return NodeState(node.name, "stopped", None, self.logs(node, tail))
        code = running.proc.poll()
        if code is None:
            return NodeState(node.name, "running")
        return NodeState(node.name, "exited", code, self.logs(node, tail))

    def close(self) -> None:
        errors: list[str] = []
        # DPs first, then the rest (a CP outliving its DPs keeps shutdown logs quiet)
        order = sorted(self._running.values(), key=lambda r: r.node.role != "dp")
        for running in order:
            try:
                self.stop(running.node)
            except Exception as exc:  # keep stopping the others
                errors.append(f"{running.node}: {exc}")
        atexit.unregister(self.close)
        if errors:
            raise NodeError(
                "could not stop every process node: " + "; ".join(errors),
                hint="run harness.nodes.sweep(<run id>) to remove what is left",
            )

    # ---- internals -------------------------------------------------------------------------------

    def _folder(self, request: NodeRequest) -> Path:
        base = self._run_dir if self._run_dir is not None else default_run_dir(request.run_id)
        folder = base / request.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _start_once(self, request: NodeRequest, spec: NodeSpec, folder: Path) -> Node:
        names = ["proxy", "status"] + (["admin"] if request.role != "dp" else [])
        names += ["cluster"] if request.role == "cp" else []
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        env = self._environment(request, spec, folder, ports)
        argv = self._argv(spec)
        log_path = folder / LOG_FILE
        log = log_path.open("ab")
        log.write(f"---- {time.strftime('%H:%M:%S')} starting {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=str(folder),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals the group, not us
            )
        except OSError as exc:
            log.close()
            raise NodeStartError(
                f"node {request.name}: could not run {argv[0]}: {exc}",
                hint="check the executable path in the node spec",
            ) from exc
        _write_pid_file(folder / PID_FILE, proc.pid, argv, request)
        version = request.version or spec.version
        node = Node(
            name=request.name,
            spec=spec.raw,
            cluster=request.cluster,
            role=request.role,
            version=version,
            admin_url=f"http://{LOOPBACK}:{ports['admin']}" if "admin" in ports else None,
            proxy_url=f"http://{LOOPBACK}:{ports['proxy']}",
            status_url=f"http://{LOOPBACK}:{ports['status']}",
            provider=self.name,
            owned=True,
            handle=str(proc.pid),
            cluster_address=f"{LOOPBACK}:{ports['cluster']}" if "cluster" in ports else None,
        )
        self._running[request.name] = _Running(node, proc, folder, log)
        expect_config = bool(request.declarative_config) or (
            request.role == "dp" and request.wait_for_config
            and "refuse_cp" not in {_fault_key(k) for k in request.faults}
        )
        check = ready_check(request.role, version, expect_config=expect_config)
        try:
            self._wait_ready(node, proc, check, log_path)
        except BaseException:
            self.stop(node)
            raise
        finally:
            (folder / CONFIG_FILE).unlink(missing_ok=True)  # loaded at start; keys are not left on disk
        _write_pid_file(folder / PID_FILE, proc.pid, argv, request)
        return node

    def _argv(self, spec: NodeSpec) -> list[str]:
        if spec.kind == "emulator":
            return [self.python, "-m", "emulator"]
        assert spec.executable is not None and spec.prefix is not None
        return [spec.executable, "start", "--prefix", spec.prefix]

    def _environment(
        self, request: NodeRequest, spec: NodeSpec, folder: Path, ports: dict[str, int]
    ) -> dict[str, str]:
        # the parent's KONG_* settings must not leak into a node: every node says exactly what it is
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
        env["PYTHONUNBUFFERED"] = "1"
        if spec.kind == "emulator":
            root = str(repo_root())
            if (repo_root() / "emulator").is_dir():
                env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            env["KONG_EMULATOR_VERSION"] = request.version
        else:
            assert spec.prefix is not None
            env["KONG_PREFIX"] = spec.prefix
            env["KONG_NGINX_DAEMON"] = "off"
        env.update(hybrid_settings(request, listen_host=LOOPBACK, ports=ports))
        env["KONG_PROXY_LISTEN"] = f"{LOOPBACK}:{ports['proxy']}"
        env["KONG_STATUS_LISTEN"] = f"{LOOPBACK}:{ports['status']}"
        env["KONG_ADMIN_LISTEN"] = f"{LOOPBACK}:{ports['admin']}" if "admin" in ports else "off"
        if request.cluster_cert is not None:
            env["KONG_CLUSTER_CERT"] = request.cluster_cert.cert_path
            env["KONG_CLUSTER_CERT_KEY"] = request.cluster_cert.key_path
        if request.declarative_config:
            # it holds consumer keys: private while it exists, and removed once the node has loaded it
            config_path = folder / CONFIG_FILE
            with os.fdopen(os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
                out.write(request.declarative_config)
            env["KONG_DECLARATIVE_CONFIG"] = str(config_path)
        if request.echo_port is not None:
            env["KONG_EMULATOR_ECHO_LISTEN"] = f"{LOOPBACK}:{request.echo_port}"
        env.update(fault_settings(request.faults))
        env.update(request.env)
        return env

    def _wait_ready(self, node: Node, proc: subprocess.Popen[bytes], check: ReadyCheck, log: Path) -> None:
        base = node.admin_url if check.listener == "admin" else node.status_url
        url = f"{base}{check.path}"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise NodeStartError(
                        f"node {node} exited with code {code} before it was ready "
                        f"(expected {check.describe()} at {url}); last lines of {log}:\n"
                        + _indent(_tail(log, 30)),
                        hint=_start_hint(node, code),
                    )
                try:
                    response = client.get(url)
                    if check.judge(response.status_code, response.text):
                        return
                    last = f"{response.status_code} {response.text[:200]!r}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    raise NodeStartError(
                        f"node {node} was not ready after {self.ready_timeout:g}s: expected "
                        f"{check.describe()} at {url}, last seen {last}; last lines of {log}:\n"
                        + _indent(_tail(log, 30)),
                        hint="read the node log above; raise ready_timeout if the machine is just slow",
                    )
                time.sleep(0.05)


# ---- checks and settings shared with the docker provider --------------------------------------------


def check_request(request: NodeRequest, *, running: Mapping[str, object]) -> None:
    """Refuse a request no provider can start, naming the node and the fix."""
    if request.name in running:
        raise NodeError(
            f"node {request.name} is already running in this provider",
            hint="give every node of a run its own name",
        )
    cp = request.control_plane
    if request.role == "dp" and (cp is None or not cp.cluster_address):
        raise NodeError(
            f"DP {request.name}: no control plane to join (control_plane unset or without cluster_address)",
            hint="start the CP first with the same provider and pass its Node as NodeRequest.control_plane",
        )
    if request.role in ("cp", "dp") and request.cluster_cert is None:
        raise NodeError(
            f"hybrid node {request.name} ({request.role}) has no cluster certificate",
            hint="make one with harness.certs.make_cluster_cert(dir) and pass it as cluster_cert",
        )


def hybrid_settings(request: NodeRequest, *, listen_host: str, ports: dict[str, int]) -> dict[str, str]:
    """KONG_ROLE / KONG_DATABASE / cluster settings for the request's role (Kong's own names)."""
    env = {"KONG_ROLE": ROLE_SETTING[request.role]}
    if request.role == "cp":
        env["KONG_DATABASE"] = "postgres"  # the emulator keeps it in memory and reports postgres
        env["KONG_CLUSTER_LISTEN"] = f"{listen_host}:{ports['cluster']}"
    else:
        env["KONG_DATABASE"] = "off"
    if request.role == "dp":
        assert request.control_plane is not None and request.control_plane.cluster_address
        env["KONG_CLUSTER_CONTROL_PLANE"] = request.control_plane.cluster_address
    return env


def _fault_key(key: str) -> str:
    name = key.strip().upper().replace("-", "_")
    return name.removeprefix("KONG_EMULATOR_FAULT_").lower()


def fault_settings(faults: Mapping[str, str]) -> dict[str, str]:
    """``{"error_rate": "0.02"}`` -> ``{"KONG_EMULATOR_FAULT_ERROR_RATE": "0.02"}``."""
    return {f"KONG_EMULATOR_FAULT_{_fault_key(k).upper()}": str(v) for k, v in faults.items()}


# ---- pid files and signals -------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot): pid reuse changes it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _write_pid_file(path: Path, pid: int, argv: list[str], request: NodeRequest) -> None:
    record = {
        "pid": pid,
        # what /proc shows once exec'd (Popen returns after the exec): a #! script shows its interpreter
        "argv": _cmdline(pid) or argv,  # rewritten once ready: an exec chain (env, wrappers) changes it
        "start_time": _start_time(pid),
        "run_id": request.run_id,
        "node": request.name,
    }
    path.write_text(json.dumps(record))


def is_ours(record: dict[str, object]) -> bool:
    """True when the pid in a pid-file record is still the process that wrote it (argv and start time)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 1:
        return False
    if _cmdline(pid) != record.get("argv"):
        return False
    started = record.get("start_time")
    return started is None or _start_time(pid) == started


def sweep_pid_files(run_dir: Path, run_id: str, timeout: float = 5.0) -> list[str]:
    """Stop the processes of run ``run_id`` named by ``<run_dir>/*/node.pid`` that are still ours.

    Returns what was stopped. Pid files of other runs are left as they are; this run's stale ones
    (process gone, or the pid now someone else's) are removed.
    """
    stopped: list[str] = []
    if not run_dir.is_dir():
        return stopped
    for pid_file in sorted(run_dir.glob(f"*/{PID_FILE}")):
        try:
            record = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            continue
        if is_ours(record):
            pid = int(record["pid"])
            _signal_group(pid, signal.SIGTERM)
            if not _gone(pid, timeout):
                _signal_group(pid, signal.SIGKILL)
                _gone(pid, timeout)
            stopped.append(f"{record.get('node')} (pid {pid})")
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group the node leads (its pid), falling back to the pid alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if not Path(f"/proc/{pid}").exists() or _state(pid) == "Z":
            return True
        time.sleep(0.05)
    return False


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    _signal_group(proc.pid, signal.SIGKILL)  # anything left in its group


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in (text or "(empty log)").splitlines())


def _start_hint(node: Node, code: int) -> str:
    if code == 70:
        return "exit code 70 is the emulator's injected crash fault; check the faults in the request"
    return f"fix what the log of {node.name} says; the whole log is in its node folder"
