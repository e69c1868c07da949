"""How to put all traffic on X, as data: one recipe per splitter, run by the traffic supervisor.

The harness writes a recipe before it hands a split over (``harness.run.traffic.failsafe_for``
builds it from the started splitter); the supervisor (``harness.supervisor``) runs it when the
harness dies or a pause ends. A recipe has ``apply()`` (all weight to X), ``read()`` (what the
balancer says now) and ``verify()`` (None once the balancer reports all traffic on X, else what it
saw). No splitter code is needed here, so this core module imports no subpackage.

- ``haproxy``: the admin socket and each server's weight with all traffic on X (``set server
  B/S weight N`` on the runtime API, read back with ``get weight``);
- ``nginx``: the all-on-X config, rendered by the harness with generation
  :data:`NGINX_FAILSAFE_GENERATION`, written over the running config, then SIGHUP to the master
  (checked through /proc to still be the one started), read back from the ``/__kuh/split``
  location until that generation answers on three fresh connections in a row;
- ``command``: the user's set command with x=100, y=0 filled in, read back with their get command
  when there is one (without one, the set command's exit status is the only proof).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, TrafficError

NGINX_FAILSAFE_GENERATION = 1_000_000_000   # no run reloads nginx this often: this config is the failsafe's


# ---- /proc helpers (a pid is only trusted with its start time: pids are reused) ----------------------

def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when there is no such process (or it is a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def alive(pid: int | None, started: str | None) -> bool:
    """True while ``pid`` runs and (when ``started`` is known) is still the process that started then."""
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def children(pid: int | None) -> dict[int, str]:
    """``pid``'s child processes and their titles (cmdline), from /proc; empty where there is none."""
    found: dict[int, str] = {}
    proc = Path("/proc")
    if not pid or not proc.is_dir():
        return found
    try:
        pids = (proc / str(pid) / "task" / str(pid) / "children").read_text().split()
    except OSError:
        pids = None
    if pids is None:   # kernels without the children file: scan every process's parent
        pids = []
        for entry in proc.iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(entry.name)
    for child in pids:
        with contextlib.suppress(OSError):
            found[int(child)] = (proc / child / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return found


def accepting_nginx_workers(master_pid: int | None) -> list[int]:
    """The master's workers that still take new connections: every one whose title does not say
    "shutting down" (nginx sets that title just before a retiring worker closes its sockets)."""
    return sorted(pid for pid, title in children(master_pid).items() if "shutting down" not in title)


# ---- the recipes ----------------------------------------------------------------------------------

def _haproxy(socket_path: str, line: str, timeout: float = 2.0) -> str:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
    except OSError as exc:
        raise TrafficError(f"HAProxy admin socket {socket_path} did not answer {line[:80]!r}: {exc}",
                           hint="is the HAProxy of this run still running?") from exc
    return b"".join(chunks).decode(errors="replace")


@dataclass(frozen=True)
class HAProxyFailsafe:
    socket: str
    backend: str
    weights: tuple[tuple[str, int], ...]   # every server's weight with all traffic on X
    kind: str = "haproxy"

    def apply(self) -> None:
        # X's servers first, so no instant has every server at 0
        order = sorted(self.weights, key=lambda item: item[1] == 0)
        line = "; ".join(f"set server {self.backend}/{name} weight {weight}" for name, weight in order)
        answer = _haproxy(self.socket, line).strip()
        if answer:
            raise TrafficError(f"HAProxy refused {line!r}: {answer[:300]}")

    def read(self) -> str:
        seen = []
        for name, _ in self.weights:
            answer = _haproxy(self.socket, f"get weight {self.backend}/{name}").strip()
            seen.append(f"{name}={answer.split()[0] if answer else '?'}")
        return " ".join(seen)

    def verify(self) -> str | None:
        seen = self.read()
        return None if seen == " ".join(f"{n}={w}" for n, w in self.weights) else seen


@dataclass(frozen=True)
class NginxFailsafe:
    config_path: str
    config_text: str      # the all-on-X config, generation NGINX_FAILSAFE_GENERATION
    master_pid: int
    master_start: str | None
    host: str
    port: int
    status_path: str
    weights: tuple[tuple[str, int], ...]
    kind: str = "nginx"

    def apply(self) -> None:
        if not alive(self.master_pid, self.master_start):
            raise TrafficError(f"the nginx master (pid {self.master_pid}) of this run is gone",
                               hint="nothing listens on the balancer's port: no traffic reaches Y either")
        path = Path(self.config_path)
        tmp = path.with_suffix(".failsafe.tmp")
        tmp.write_text(self.config_text)
        os.replace(tmp, path)
        os.kill(self.master_pid, signal.SIGHUP)   # what `nginx -s reload` sends

    def read(self) -> str:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2.0)
        try:
            conn.request("GET", self.status_path, headers={"Connection": "close"})
            return conn.getresponse().read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            raise TrafficError(f"nginx on {self.host}:{self.port} did not answer {self.status_path}: {exc}") from exc
        finally:
            conn.close()

    def verify(self) -> str | None:
        # A worker of an earlier config keeps accepting until it starts shutting down, and one the
        # harness started just before it died may not have heard the master yet: three good answers
        # prove nothing while such a worker is still up. So first no more accepting workers than the
        # config asks for, then three fresh connections in a row that answer the failsafe's config.
        wanted = int(m.group(1)) if (m := re.search(r"^worker_processes\s+(\d+);", self.config_text, re.M)) else 1
        accepting = accepting_nginx_workers(self.master_pid)
        if len(accepting) > wanted:
            return f"{len(accepting)} nginx workers {accepting} still accept connections, {wanted} wanted"
        expected = f"generation={NGINX_FAILSAFE_GENERATION} " + " ".join(f"{n}={w}" for n, w in self.weights)
        for _ in range(3):
            seen = self.read()
            if seen != expected:
                return seen
        return None


@dataclass(frozen=True)
class CommandFailsafe:
    set_argv: tuple[str, ...]          # x=100, y=0 filled in; one string when shell
    get_argv: tuple[str, ...] | None
    shell: bool = False
    timeout: float = 30.0
    cwd: str | None = None
    kind: str = "command"

    def _run(self, argv: tuple[str, ...]) -> str:
        command: str | list[str] = argv[0] if self.shell else list(argv)
        try:
            done = subprocess.run(command, shell=self.shell, capture_output=True, text=True, timeout=self.timeout,
                                  cwd=self.cwd, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrafficError(f"command {' '.join(argv)[:200]!r} could not run: {exc}") from exc
        if done.returncode != 0:
            raise TrafficError(f"command {' '.join(argv)[:200]!r} exited with {done.returncode}: "
                               f"{(done.stdout + done.stderr).strip()[-300:]}")
        return done.stdout

    def apply(self) -> None:
        self._run(self.set_argv)

    def read(self) -> str:
        if self.get_argv is None:
            return "(no get_weights command: the split cannot be read)"
        numbers = re.findall(r"-?\d+", self._run(self.get_argv))
        return " ".join(numbers[:2]) if len(numbers) >= 2 else f"unreadable: {numbers}"

    def verify(self) -> str | None:
        if self.get_argv is None:
            return None  # the set command's exit status 0 is all the proof there is (the record says so)
        seen = self.read()
        return None if seen == "100 0" else seen


Failsafe = HAProxyFailsafe | NginxFailsafe | CommandFailsafe
_KINDS: dict[str, type[HAProxyFailsafe] | type[NginxFailsafe] | type[CommandFailsafe]] = {
    "haproxy": HAProxyFailsafe, "nginx": NginxFailsafe, "command": CommandFailsafe}


def failsafe_from_dict(data: Mapping[str, object]) -> Failsafe:
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise HarnessError(f"failsafe kind {kind!r} is unknown; valid: {', '.join(_KINDS)}")
    fields = {k: tuple(tuple(i) if isinstance(i, list) else i for i in v) if isinstance(v, list) else v
              for k, v in data.items()}
    # the fields of a dataclass written by Supervisor.start (asdict, lists back to tuples); a wrong one raises
    # TypeError here, which the supervisor reports as a bad start
    return _KINDS[kind](**fields)  # type: ignore[arg-type]


