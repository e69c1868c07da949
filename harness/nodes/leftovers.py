"""Stopping what a dead run left, by record and by label (never by name), for :func:`harness.nodes.sweep`.

    record_of(pid, **extra)      a pid record (pid, argv, start time) written when something is started
    sweep_record(path)           stop the process a record names, if /proc still shows that very process
    sweep_labelled(run_id, env)  stop the processes of the kinds a run starts that carry its run id label
    stop_pid(pid)                SIGTERM then SIGKILL: the group it leads, or the process alone
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from harness.nodes.process import _cmdline, _gone, _start_time, _state, is_ours

# what a run starts, by command line: only these are ever stopped because of the run-id label (a process
# the user's own commands started, e.g. their balancer, carries the label too and is left alone)
LABELLED_KINDS = ("emulator", "emulator.echo", "harness.supervisor")
LABELLED_PROGRAMS = ("haproxy", "nginx")


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL: the process group when ``pid`` leads one (nodes, the echo), else the process
    alone (a balancer started inside the harness's own group: never signal that group)."""
    try:
        leader = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if leader:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        if _gone(pid, timeout):
            return


def record_of(pid: int, **extra: object) -> dict[str, object]:
    """A pid record (pid, argv as /proc shows it, start time) that :func:`is_ours` can check later.
    (Just after a fork /proc shows no argv yet: it waits up to a second for the exec.)"""
    deadline = time.monotonic() + 1.0
    while not (argv := _cmdline(pid)) and time.monotonic() < deadline:
        time.sleep(0.005)
    return {"pid": pid, "argv": argv, "start_time": _start_time(pid), **extra}


def sweep_record(path: Path, timeout: float = 5.0) -> str | None:
    """Stop the process a JSON pid record names, if it is still that process; say what was stopped."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not is_ours(record):
        return None
    stop_pid(int(record["pid"]), timeout)
    return f"{record.get('kind', 'process')} (pid {record['pid']})"


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _labelled_kind(argv: list[str]) -> bool:
    if not argv:
        return False
    program = Path(argv[0].split()[0]).name if argv[0] else ""
    if program in LABELLED_PROGRAMS or argv[0].startswith("nginx: master"):
        return True
    return any(argv[i] == "-m" and argv[i + 1] in LABELLED_KINDS for i in range(len(argv) - 1))


def sweep_labelled(run_id: str, label: str, timeout: float = 5.0) -> list[str]:
    """Stop the processes of the kinds a run starts whose environment carries ``label=run_id``
    (the echo upstream, nodes, balancers), except this process's own children."""
    entry = f"{label}={run_id}".encode()
    me = os.getpid()
    stopped: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        pid = int(proc.name)
        argv = _cmdline(pid)
        if not argv or not _labelled_kind(argv) or not _environ_has(pid, entry) or _state(pid) == "Z":
            continue
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == me:
            continue
        stop_pid(pid, timeout)
        stopped.append(f"{' '.join(argv)[:80]} (pid {pid})")
    return stopped
