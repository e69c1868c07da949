"""The traffic supervisor: a dead man's switch that returns all traffic to X when the harness dies.

    harness (harness.run.traffic)                      supervisor (python -m harness.supervisor)
    Supervisor.start(folder, failsafe, lock_fd)   ->   detached, its own session; reads the weights
                                                       once (the recipe works), then "armed"
    a heartbeat (an empty line) every 0.2 s, pipe ->   pipe closed without a goodbye (kill -9, OOM,
                                                       a crash), no beat for ``miss_seconds`` (hung,
                                                       lost runner) or the harness's pid gone: ALL
                                                       WEIGHT TO X, read back until it holds, record
                                                       it in events.jsonl, exit
    close()   "close"                             ->   exit, weights untouched (the harness's own
                                                       close returned traffic to X already)
    disarm()  "disarm"                            ->   the same, before decommission drains X
    pause(until, weights)  "pause ..."            ->   hold the split (and the run lock) until
                                                       ``until``, then all weight to X; SIGTERM (a
                                                       resumed session taking over) exits, weights
                                                       left as they are
    check()   each step                           ->   a supervisor that is gone is reported (its
                                                       death leaves the weights as they are)

How to put all traffic on X is data the harness writes before the hand-over (``failsafe.json``):
one recipe per splitter, in :mod:`harness.failsafe`, so no splitter code is needed here.

Everything it does goes to ``<folder>/events.jsonl`` (and ``state.json``: its pid, mode, held
weights); the folder is the run's private ``.kuh/<run id>/supervisor/``. It writes no secret: the
recipes hold balancer addresses and the plan's own commands, never a token or a key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypedDict, Unpack, cast

from harness.errors import HarnessError, TrafficError
from harness.failsafe import (
    NGINX_FAILSAFE_GENERATION,
    CommandFailsafe,
    Failsafe,
    HAProxyFailsafe,
    NginxFailsafe,
    alive,
    failsafe_from_dict,
    start_time,
)
from harness.locks import RUN_ENV

__all__ = [
    "NGINX_FAILSAFE_GENERATION",
    "CommandFailsafe",
    "Failsafe",
    "HAProxyFailsafe",
    "Held",
    "NginxFailsafe",
    "Supervisor",
    "alive",
    "events",
    "failsafe_from_dict",
    "main",
    "read_state",
    "start_time",
    "take_over",
]

FAILSAFE_FILE = "failsafe.json"
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "supervisor.log"
HEARTBEAT_SECONDS = 0.2
MISS_SECONDS = 3.0            # beats missed for this long = a hung or lost harness (a kill is seen at once)
FIRE_TIMEOUT = 10.0           # how long it keeps trying to get all traffic on X
EXIT_CLOSED, EXIT_FIRED, EXIT_FIRE_FAILED, EXIT_BAD_START = 0, 10, 11, 12
ROOT = Path(__file__).resolve().parents[1]

Log = Callable[[str], None]


# ---- files ----------------------------------------------------------------------------------------

class SupervisorState(TypedDict, total=False):
    """``state.json`` as the supervisor process writes it (read back by the harness and by a resumed run)."""

    pid: int
    start_time: str | None
    mode: str              # starting, armed, firing, fired, fire-failed, holding, released, closed, disarmed, bad-start
    harness_pid: int
    run_id: str | None
    kind: str              # the failsafe's kind
    reason: str
    weights_at_start: str  # as the failsafe read them
    until: float           # holding a pause until this time
    weights: list[int]     # the split held in a pause
    updated: float


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
    os.replace(tmp, path)


def read_state(folder: Path) -> SupervisorState:
    try:
        data = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    # written by _Journal below (the keys of SupervisorState); not validated further, as before
    return cast(SupervisorState, data) if isinstance(data, dict) else {}


def events(folder: Path) -> list[dict[str, object]]:
    out = []
    with contextlib.suppress(OSError):
        for line in (folder / EVENTS_FILE).read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def describe(event: Mapping[str, object]) -> str:
    """One line for a record in events.jsonl."""
    what = event.get("event", "?")
    if what in ("fired", "fire-failed"):
        done = "all traffic on X, read back" if event.get("verified") else f"NOT verified (saw {event.get('seen')})"
        return f"{what}: {event.get('reason')}; {done} {event.get('seconds', 0):.2f} s after noticing"
    return f"{what}: {event.get('reason', '')}".rstrip(": ")


# ---- the supervisor process -----------------------------------------------------------------------

class _Journal:
    def __init__(self, folder: Path, state: SupervisorState) -> None:
        self.folder = folder
        self.state = state

    def set(self, **changes: Unpack[SupervisorState]) -> None:
        self.state.update(changes)
        self.state["updated"] = time.time()
        _write_json(self.folder / STATE_FILE, self.state)

    def event(self, event: str, **data: object) -> None:
        line = json.dumps({"event": event, "at": time.time(), "pid": os.getpid(), **data}, default=str)
        fd = os.open(self.folder / EVENTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line + "\n")
        print(line, flush=True)


def _fire(failsafe: Failsafe, journal: _Journal, reason: str) -> int:
    noticed, t0 = time.time(), time.monotonic()
    journal.set(mode="firing", reason=reason)
    try:
        before = failsafe.read()
    except HarnessError as exc:
        before = f"unreadable: {exc}"
    seen: str | None = "not tried"
    attempts = 0
    while True:
        attempts += 1
        try:
            failsafe.apply()
            check_until = time.monotonic() + 2.0
            while (seen := failsafe.verify()) is not None and time.monotonic() < check_until:
                time.sleep(0.01)
        except HarnessError as exc:
            seen = str(exc).splitlines()[0]
        if seen is None or time.monotonic() - t0 > FIRE_TIMEOUT:
            break
        time.sleep(0.1)
    verified, done, seconds = seen is None, time.time(), round(time.monotonic() - t0, 3)
    after: str | None = None
    with contextlib.suppress(HarnessError):
        after = failsafe.read()
    event = "fired" if verified else "fire-failed"
    journal.event(event, reason=reason, kind=failsafe.kind, noticed=noticed, done=done,
                  seconds=seconds, before=before, after=after,
                  verified=verified, seen=seen, attempts=attempts,
                  proof="exit status of the set command (no get_weights)"
                  if isinstance(failsafe, CommandFailsafe) and failsafe.get_argv is None
                  else "read back from the balancer")
    journal.set(mode=event)
    return EXIT_FIRED if verified else EXIT_FIRE_FAILED


def serve(folder: Path, heartbeat_fd: int, harness_pid: int, harness_start: str | None,
          miss_seconds: float = MISS_SECONDS) -> int:
    """The supervisor's loop (in its own process); returns its exit code."""
    journal = _Journal(folder, {"pid": os.getpid(), "start_time": start_time(os.getpid()), "mode": "starting",
                                "harness_pid": harness_pid, "run_id": os.environ.get(RUN_ENV)})
    try:
        failsafe = failsafe_from_dict(json.loads((folder / FAILSAFE_FILE).read_text()))
        journal.state["kind"] = failsafe.kind
        before = failsafe.read()
    except (OSError, ValueError, TypeError, HarnessError) as exc:
        journal.event("bad-start", reason=f"{type(exc).__name__}: {exc}")
        journal.set(mode="bad-start")
        return EXIT_BAD_START
    released = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: released.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the harness; it says goodbye itself
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    journal.set(mode="armed", weights_at_start=before)
    os.set_blocking(heartbeat_fd, False)
    last_beat, buffer = time.monotonic(), b""
    until: float | None = None
    while True:
        if released.is_set():
            journal.event("released", reason="SIGTERM: the weights are left as they are",
                          held=until is not None)
            journal.set(mode="released")
            return EXIT_CLOSED
        if until is not None:  # holding a deliberate pause
            if time.time() >= until:
                return _fire(failsafe, journal, "the pause reached traffic.max_pause_seconds")
            released.wait(min(0.1, max(0.0, until - time.time())))
            continue
        readable, _, _ = select.select([heartbeat_fd], [], [], 0.05)
        if readable:
            try:
                data = os.read(heartbeat_fd, 4096)
            except BlockingIOError:
                data = None
            if data == b"":
                return _fire(failsafe, journal, "the harness's heartbeat pipe closed without a goodbye: the "
                             "harness is gone (killed, crashed or out of memory)")
            if data:
                last_beat = time.monotonic()
                *lines, buffer = (buffer + data).split(b"\n")
                for raw in lines:
                    if not raw.strip():
                        continue   # a heartbeat
                    word, *args = raw.decode(errors="replace").split()
                    if word in ("close", "disarm"):
                        journal.event("closed" if word == "close" else "disarmed", reason=" ".join(args))
                        journal.set(mode=word + "d" if word == "close" else "disarmed")
                        return EXIT_CLOSED
                    if word == "pause":
                        until = float(args[0])
                        journal.event("holding", reason=f"deliberate pause until {until:.0f}",
                                      weights=args[1:3], until=until)
                        journal.set(mode="holding", until=until, weights=[int(a) for a in args[1:3]])
                        os.close(heartbeat_fd)
                        break
        if until is None:
            quiet = time.monotonic() - last_beat
            if quiet > miss_seconds:
                return _fire(failsafe, journal, f"no heartbeat from the harness for {quiet:.1f} s (hung or lost)")
            if not alive(harness_pid, harness_start):
                return _fire(failsafe, journal, f"the harness process (pid {harness_pid}) is gone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--heartbeat-fd", required=True, type=int)
    parser.add_argument("--lock-fd", type=int, help="the run lock, held (not used) while this process lives")
    parser.add_argument("--harness-pid", required=True, type=int)
    parser.add_argument("--harness-start", default=None)
    parser.add_argument("--miss-seconds", type=float, default=MISS_SECONDS)
    args = parser.parse_args(argv)
    if os.fork():       # detach: the harness waits for this first process, init adopts the supervisor
        os._exit(0)
    return serve(args.folder, args.heartbeat_fd, args.harness_pid, args.harness_start or None, args.miss_seconds)


# ---- the harness's handle -------------------------------------------------------------------------

class Supervisor:
    """The harness's side: start it, beat, check it each step, and say goodbye (close/disarm/pause)."""

    def __init__(self, folder: Path, pid: int, started: str | None, write_fd: int, interval: float) -> None:
        self.folder = folder
        self.pid = pid
        self.started = started
        os.set_blocking(write_fd, False)     # a supervisor that stopped reading never blocks the harness
        self._fd: int | None = write_fd
        self._fd_lock = threading.Lock()     # the beat never writes to a descriptor _say has closed
        self._stop = threading.Event()
        self._broken: str | None = None
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="kuh-heartbeat", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Supervisor(pid={self.pid}, folder={str(self.folder)!r})"

    @classmethod
    def start(cls, folder: Path, failsafe: Failsafe, *, lock_fd: int | None = None,
              miss_seconds: float = MISS_SECONDS, interval: float = HEARTBEAT_SECONDS,
              timeout: float = 15.0) -> Supervisor:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_json(folder / FAILSAFE_FILE, {**asdict(failsafe), "kind": failsafe.kind})
        (folder / STATE_FILE).unlink(missing_ok=True)
        read_fd, write_fd = os.pipe()
        me = os.getpid()
        # (-W: runpy warns that harness/__init__ imported this module before running it as __main__)
        argv = [sys.executable, "-W", "ignore::RuntimeWarning:runpy", "-m", "harness.supervisor",
                "--folder", str(folder), "--heartbeat-fd", str(read_fd), "--harness-pid", str(me),
                "--harness-start", start_time(me) or "", "--miss-seconds", str(miss_seconds)]
        fds = [read_fd]
        if lock_fd is not None:
            argv += ["--lock-fd", str(lock_fd)]
            fds.append(lock_fd)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        log = os.open(folder / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            first = subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, cwd=ROOT, env=env)
            first.wait(timeout)
        finally:
            os.close(log)
            os.close(read_fd)
        deadline = time.monotonic() + timeout
        while (state := read_state(folder)).get("mode") in (None, "starting"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if state.get("mode") != "armed":
            os.close(write_fd)
            last = events(folder)[-1:] or [{"event": "no answer", "reason": f"not armed within {timeout:g} s"}]
            raise TrafficError(
                f"the traffic supervisor did not start: {describe(last[0])}",
                hint=f"see {folder / LOG_FILE}; the splitter's failsafe recipe is {folder / FAILSAFE_FILE}",
            )
        return cls(folder, int(state["pid"]), state.get("start_time"), write_fd, interval)

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._fd_lock:
                if self._fd is None:
                    return
                try:
                    os.write(self._fd, b"\n")
                except OSError as exc:
                    self._broken = f"{type(exc).__name__}: {exc}"
                    return

    @property
    def running(self) -> bool:
        return alive(self.pid, self.started)

    def problem(self) -> str | None:
        """Why the supervisor no longer protects the traffic, or None while it does."""
        if self.running and self._broken is None:
            return None
        last = events(self.folder)[-1:]
        said = describe(last[0]) if last else "it recorded nothing (killed?); the weights were left as they are"
        return f"the traffic supervisor (pid {self.pid}) is gone: {said}"

    def check(self) -> None:
        """Raise when the supervisor is gone: traffic would not return to X if the harness died now."""
        problem = self.problem()
        if problem is not None:
            raise TrafficError(problem, hint=f"no step runs unprotected; see {self.folder / EVENTS_FILE} and "
                               f"{self.folder / LOG_FILE}, then resume with --from-stage shift")

    def _say(self, line: str) -> bool:
        self._stop.set()
        with self._fd_lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return False
            try:
                os.write(fd, line.encode() + b"\n")
                return True
            except OSError:
                return False
            finally:
                os.close(fd)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running

    def close(self, reason: str = "the harness closed normally", *, word: str = "close") -> list[str]:
        """Goodbye: it exits without touching the weights. Never raises; the problems met."""
        problem = self.problem()
        said = self._say(f"{word} {reason}")
        if problem is not None:
            return [problem]
        if not said or not self._wait_gone(5.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            return [f"the traffic supervisor (pid {self.pid}) did not take the goodbye; sent SIGTERM"]
        return []

    def disarm(self, reason: str) -> list[str]:
        """Before X is drained: returning traffic to X would then hurt, so the supervisor leaves."""
        return self.close(reason, word="disarm")

    def pause(self, until: float, weights: tuple[int, int], timeout: float = 5.0) -> None:
        """Hand the split over to hold until ``until`` (epoch seconds); then it returns traffic to X."""
        self.check()
        self._say(f"pause {until:.3f} {weights[0]} {weights[1]}")
        deadline = time.monotonic() + timeout
        while read_state(self.folder).get("mode") != "holding":
            if time.monotonic() > deadline or not self.running:
                raise TrafficError(f"the traffic supervisor (pid {self.pid}) did not take the pause over",
                                   hint=f"see {self.folder / LOG_FILE}")
            time.sleep(0.02)


@dataclass(frozen=True)
class Held:
    """What a paused run's supervisor held when a resumed session took over (or why it no longer did)."""

    weights: tuple[int, int] | None     # None: nothing held any more (traffic went back to X, or never paused)
    note: str


def take_over(folder: Path, timeout: float = 10.0) -> Held:
    """A resumed session: stop a supervisor holding a pause (SIGTERM: weights left as they are) and say
    what it held. A supervisor that already returned traffic to X is reported, not stopped."""
    state = read_state(folder)
    if not state:
        return Held(None, "no traffic supervisor ran for this run")
    pid, started, mode = state.get("pid"), state.get("start_time"), state.get("mode")
    if mode == "holding" and isinstance(pid, int) and alive(pid, started):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid, started):
            if time.monotonic() > deadline:
                raise TrafficError(f"the paused run's traffic supervisor (pid {pid}) did not exit on SIGTERM",
                                   hint=f"see {folder / LOG_FILE}; stop it by its pid, then resume again")
            time.sleep(0.02)
        x, y = state.get("weights") or (100, 0)
        return Held((int(x), int(y)), f"took over the held split X {x} % / Y {y} % from supervisor pid {pid}")
    last = events(folder)[-1:]
    return Held(None, describe(last[0]) if last else f"the supervisor's last state was {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
