"""The dead man's switch, the run lock and the lock-aware sweep, with real processes and a command
splitter whose "balancer" is a state file (no HAProxy, no nginx: those are in tests/e2e/test_faults.py).
The tests that start processes are marked integration: each one imports the harness twice (~3 s).

Each test starts a stand-in harness process that hands the split to a supervisor, then does to it
what a run can suffer: kill -9, a hang (SIGSTOP), a normal close, a pause; or kills the supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import HarnessError, TrafficError
from harness.locks import RUN_ENV, RunLock, lock_held
from harness.nodes import BALANCER_FILE, RUN_FILE, SWEPT_FILE, sweep_dead_runs
from harness.nodes.leftovers import record_of
from harness.ports import free_port
from harness.supervisor import (
    CommandFailsafe,
    HAProxyFailsafe,
    NginxFailsafe,
    Supervisor,
    alive,
    events,
    failsafe_from_dict,
    read_state,
    take_over,
)

ROOT = Path(__file__).resolve().parents[2]

BALANCER = """\
import pathlib, sys
state = pathlib.Path(sys.argv[1])
if sys.argv[2] == "set":
    state.write_text(f"{sys.argv[3]} {sys.argv[4]}")
else:
    print(state.read_text())
"""

# a stand-in harness: takes the run lock, hands a split of 75/25 to a supervisor, says "ready", then
# waits for one line on stdin: close | pause <seconds> | (nothing: it is killed meanwhile)
HARNESS = """\
import json, sys, time
from pathlib import Path
from harness.locks import RunLock
from harness.supervisor import CommandFailsafe, Supervisor
work, script, state, miss = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
lock = RunLock.acquire(work)
failsafe = CommandFailsafe((sys.executable, script, state, "set", "100", "0"), (sys.executable, script, state, "get"))
sup = Supervisor.start(work / "supervisor", failsafe, lock_fd=lock.fileno(), miss_seconds=miss)
print("ready", sup.pid, flush=True)
line = sys.stdin.readline().split()
if line and line[0] == "close":
    print("closed", sup.close(), flush=True)
    lock.release()
elif line and line[0] == "pause":
    sup.pause(time.time() + float(line[1]), (75, 25))
    lock.forget()
    print("paused", flush=True)
elif line and line[0] == "check":
    try:
        sup.check()
        print("ok", flush=True)
    except Exception as exc:
        print("problem", str(exc).splitlines()[0], flush=True)
"""


def eventually(what: str, probe: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll ``probe`` until it returns something truthy (a wait, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:g} s: {what}")
        time.sleep(0.02)


class Stand:
    """A stand-in harness process and its state-file balancer."""

    def __init__(self, tmp: Path, miss: float = 3.0) -> None:
        self.work = tmp / "work" / "run-1"
        self.state = tmp / "weights"
        self.state.write_text("75 25")
        script = tmp / "balancer.py"
        script.write_text(BALANCER)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(self.work), str(script), str(self.state),
                                      str(miss)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["ready"], line
        self.supervisor_pid = int(line[1])
        self.folder = self.work / "supervisor"

    def say(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        self.proc.wait(10)
        return answer

    def weights(self) -> str:
        return self.state.read_text().strip()

    def last_event(self) -> dict[str, object]:
        found = events(self.folder)
        return found[-1] if found else {}

    def stop(self) -> None:
        for pid in (self.proc.pid, self.supervisor_pid):
            if alive(pid, None):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Callable[..., Stand]]:
    made: list[Stand] = []

    def make(**kw: float) -> Stand:
        made.append(Stand(tmp_path, **kw))
        return made[-1]

    yield make
    for s in made:
        s.stop()


@pytest.mark.integration
def test_kill_9_of_the_harness_puts_all_traffic_on_x_and_records_it(stand: Callable[..., Stand]) -> None:
    s = stand()
    assert lock_held(s.work)
    os.kill(s.proc.pid, signal.SIGKILL)
    eventually("the supervisor fired", lambda: s.last_event().get("event") == "fired")
    event = s.last_event()
    assert s.weights() == "100 0"
    assert event["verified"] is True and event["before"] == "75 25" and event["after"] == "100 0"
    assert "heartbeat pipe closed" in str(event["reason"])
    eventually("the supervisor exited", lambda: not alive(s.supervisor_pid, None))
    assert not lock_held(s.work)   # the lock went with the last holder


@pytest.mark.integration
def test_a_hung_harness_misses_its_heartbeats_and_traffic_returns_to_x(stand: Callable[..., Stand]) -> None:
    s = stand(miss=0.6)
    os.kill(s.proc.pid, signal.SIGSTOP)
    eventually("the supervisor fired", lambda: s.last_event().get("event") == "fired")
    assert "no heartbeat" in str(s.last_event()["reason"])
    assert s.weights() == "100 0"


@pytest.mark.integration
def test_a_normal_close_leaves_the_weights_alone(stand: Callable[..., Stand]) -> None:
    s = stand()
    assert s.say("close") == "closed []"
    assert s.weights() == "75 25"
    assert s.last_event()["event"] == "closed"
    assert not alive(s.supervisor_pid, None) and not lock_held(s.work)


@pytest.mark.integration
def test_the_supervisors_death_leaves_the_weights_and_is_reported(stand: Callable[..., Stand]) -> None:
    s = stand()
    os.kill(s.supervisor_pid, signal.SIGKILL)
    eventually("the supervisor is gone", lambda: not alive(s.supervisor_pid, None))
    answer = s.say("check")
    assert answer.startswith("problem the traffic supervisor") and "is gone" in answer
    assert s.weights() == "75 25"


@pytest.mark.integration
def test_a_pause_holds_the_split_and_the_lock_then_returns_traffic_to_x(stand: Callable[..., Stand]) -> None:
    s = stand()
    assert s.say("pause 1.0") == "paused"
    assert s.proc.returncode == 0          # the harness is gone, the supervisor holds
    assert read_state(s.folder)["mode"] == "holding" and s.weights() == "75 25"
    assert lock_held(s.work)               # no other run sweeps a paused one
    eventually("the pause ended", lambda: s.last_event().get("event") == "fired")
    assert "max_pause_seconds" in str(s.last_event()["reason"]) and s.weights() == "100 0"
    eventually("the lock is free", lambda: not lock_held(s.work))


@pytest.mark.integration
def test_a_resumed_session_takes_a_held_split_over(stand: Callable[..., Stand]) -> None:
    s = stand()
    s.say("pause 60")
    held = take_over(s.folder)
    assert held.weights == (75, 25) and "took over" in held.note
    assert s.weights() == "75 25" and s.last_event()["event"] == "released"
    assert not lock_held(s.work)
    RunLock.acquire(s.work, wait=0).release()   # the resumed session can take the lock now
    assert take_over(s.folder).weights is None  # nothing held any more


def test_a_run_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    lock = RunLock.acquire(tmp_path / "r")
    with pytest.raises(HarnessError, match=r"is in use: another session holds .*pid \d+"):
        RunLock.acquire(tmp_path / "r", wait=0.1)
    lock.release()
    assert not lock_held(tmp_path / "r")
    assert not lock_held(tmp_path / "never-ran")


def test_failsafe_recipes_round_trip_through_json() -> None:
    recipes = [
        HAProxyFailsafe("/tmp/kuh-lb-x/haproxy.sock", "kuh_split", (("x1", 128), ("y1", 0))),
        NginxFailsafe("/tmp/n/nginx.conf", "conf", 42, "123", "127.0.0.1", 8080, "/__kuh/split", (("x1", 1),)),
        CommandFailsafe(("./lb", "set", "100", "0"), None, shell=False, timeout=5.0, cwd=None),
    ]
    for recipe in recipes:
        data = json.loads(json.dumps({**recipe.__dict__}))
        assert failsafe_from_dict(data) == recipe
    with pytest.raises(HarnessError, match="unknown"):
        failsafe_from_dict({"kind": "f5"})


@pytest.mark.integration
def test_a_recipe_that_cannot_read_the_balancer_refuses_to_start(tmp_path: Path) -> None:
    broken = CommandFailsafe((sys.executable, "-c", "pass"), (sys.executable, "-c", "raise SystemExit(3)"))
    with pytest.raises(TrafficError, match="did not start: bad-start"):
        Supervisor.start(tmp_path / "sup", broken)


def _orphan_echo(env: dict[str, str]) -> int:
    """An echo upstream that is not our child (a dead run's echo was its dead harness's): its pid."""
    port = free_port()
    shell = f"{sys.executable} -m emulator.echo --listen 127.0.0.1:{port} >/dev/null 2>&1 & echo $!"
    pid = int(subprocess.run(["sh", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True).stdout)
    eventually("the echo runs", lambda: b"emulator.echo" in Path(f"/proc/{pid}/cmdline").read_bytes())
    return pid


@pytest.mark.integration
def test_the_sweep_removes_dead_runs_only(tmp_path: Path) -> None:
    root = tmp_path / "work"
    dead, live = root / "run-dead", root / "run-live"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / RUN_FILE).write_text(json.dumps({"providers": ["process"]}))
    lock = RunLock.acquire(live)
    base = {k: v for k, v in os.environ.items() if k != RUN_ENV}
    # the dead run's echo upstream (labelled) and its "balancer" (a pid record); the live run's echo
    dead_echo = _orphan_echo({**base, RUN_ENV: "run-dead", "PYTHONPATH": str(ROOT)})
    live_echo = _orphan_echo({**base, RUN_ENV: "run-live", "PYTHONPATH": str(ROOT)})
    balancer = subprocess.Popen(["sleep", "60"])
    (dead / BALANCER_FILE).write_text(json.dumps(record_of(balancer.pid, kind="haproxy")))
    try:
        results = sweep_dead_runs(root, docker=False)
        assert [r.run_id for r in results] == ["run-dead"]
        line = results[0].line()
        assert "haproxy (pid" in line and "emulator.echo" in line
        assert balancer.wait(5) is not None and not alive(dead_echo, None)
        assert alive(live_echo, None)                     # a run whose lock is held is never touched
        assert (dead / SWEPT_FILE).exists() and sweep_dead_runs(root, docker=False) == []  # once
    finally:
        lock.release()
        for pid in (dead_echo, live_echo):
            if alive(pid, None):
                os.kill(pid, signal.SIGKILL)
        if balancer.poll() is None:
            balancer.kill()
            balancer.wait(5)


def _master_with_workers(*titles: str) -> subprocess.Popen[bytes]:
    """A stand-in nginx master: a shell whose children carry nginx worker titles (argv[0])."""
    script = " ".join(f"exec -a '{title}' sleep 60 &" for title in titles) + " wait"
    master = subprocess.Popen(["bash", "-c", script])
    deadline = time.monotonic() + 5
    from harness.failsafe import children
    while len(children(master.pid)) < len(titles) and time.monotonic() < deadline:
        time.sleep(0.01)
    return master


@pytest.mark.parametrize(("titles", "verified"), [
    # the failsafe's worker answers right, but a worker of the config the dead harness loaded has not
    # heard the master yet: a fresh connection may still reach it (CI met exactly this)
    (("nginx: worker process", "nginx: worker process"), False),
    (("nginx: worker process", "nginx: worker process is shutting down"), True),
])
def test_the_nginx_failsafe_is_verified_only_once_no_old_worker_still_accepts(
        titles: tuple[str, ...], verified: bool) -> None:
    import http.server
    import threading

    from harness.failsafe import NGINX_FAILSAFE_GENERATION
    answer = f"generation={NGINX_FAILSAFE_GENERATION} x1=256 y1=0".encode()

    class Split(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Split)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    master = _master_with_workers(*titles)
    try:
        recipe = NginxFailsafe("/unused", "worker_processes 1;\n", master.pid, None, "127.0.0.1",
                               server.server_address[1], "/__kuh/split", (("x1", 256), ("y1", 0)))
        seen = recipe.verify()
        if verified:
            assert seen is None
        else:
            assert seen is not None and "2 nginx workers" in seen and "still accept" in seen, seen
    finally:
        from harness.failsafe import children
        for pid in children(master.pid):   # the stand-in workers, by id, then their master
            os.kill(pid, signal.SIGKILL)
        master.kill()
        master.wait()
        server.shutdown()
        server.server_close()
