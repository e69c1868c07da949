"""Faults during a run: kill -9 with traffic split, deliberate pauses, two runs at once.

Every check of the weights reads the balancer itself: HAProxy's ``show servers state`` over its admin
socket, the config the nginx master runs (and what it answers on its status location), the user's
own balancer behind the command splitter. Waits are bounded polls, never timed assertions (the time
from kill to all-on-X is measured in benchmarks/kill_to_x.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.ledger import STAGES
from harness.locks import RUN_ENV, lock_held
from harness.nodes import BALANCER_FILE, sweep_dead_runs
from harness.nodes.base import Node
from harness.supervisor import events, read_state, take_over
from tests.e2e import test_command_splitter, test_existing_x
from tests.e2e.conftest import ROOT, PlanRun, new_run_dir, plan_env, run_plan, suites_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]

existing_x = test_existing_x.existing_x
users_balancer = test_command_splitter.users_balancer
AFTER_25 = "[kuh] step  25 % Y"   # the line the shift prints once the 25 % step was judged


def eventually(what: str, probe: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:g} s: {what}")
        time.sleep(0.05)
    return value


def plan_file(tmp: Path, name: str, **traffic: object) -> str:
    """plans/default.yaml under another name, with ``traffic`` settings changed."""
    plan = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    plan["name"] = name
    plan["config"]["source"] = str(ROOT / "plans/configs/sample.yaml")
    plan["config"]["allowed_root"] = str(ROOT / "plans/configs")
    plan["traffic"].update(traffic)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def kill_after(tmp: Path, plan: str, marker: str = AFTER_25, timeout: float = 300) -> PlanRun:
    """Start a plan and kill -9 its pytest when ``marker`` appears (nothing of it can clean up)."""
    run_dir = new_run_dir(tmp, plan)
    work = tmp / "work"
    proc = subprocess.Popen(suites_command(plan, run_dir, "-s"), cwd=ROOT, env=plan_env(work),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line or time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            break
    lines.append(proc.communicate(timeout=30)[0])
    assert marker in "".join(lines), "".join(lines)[-3000:]
    return PlanRun(plan, proc.returncode, "".join(lines), run_dir, work)


def work_of(run: PlanRun) -> Path:
    return run.work_dir / run.run_dir.name


def balancer(run: PlanRun) -> dict[str, object]:
    return dict(json.loads((work_of(run) / BALANCER_FILE).read_text()))


def haproxy_weights(run: PlanRun) -> dict[str, int]:
    """Each server's weight in the split backend, from ``show servers state`` (columns by header)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(Path(str(balancer(run)["folder"])) / "haproxy.sock"))
        sock.sendall(b"show servers state kuh_split\n")
        text = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    rows = [line.split() for line in text.splitlines() if line.strip()]
    header = next(row[1:] for row in rows if row[0] == "#")
    name, weight = header.index("srv_name"), header.index("srv_uweight")
    return {row[name]: int(row[weight]) for row in rows if row[0].isdigit() and len(row) > max(name, weight)}


def nginx_weights(run: PlanRun) -> dict[str, int]:
    """Each server's weight in the config the running nginx serves (down = 0)."""
    folder = Path(str(balancer(run)["folder"]))
    config = (folder / "nginx.conf").read_text()
    split = config.split("upstream kuh_split {", 1)[1].split("}", 1)[0]
    names = dict(re.findall(r'"([\d.:]+)" (\w+);', config.split("map $upstream_addr $kuh_name", 1)[1]))
    out = {}
    for address, rest in re.findall(r"server ([\d.:]+) (down|weight=\d+)", split):
        out[names[address]] = 0 if rest == "down" else int(rest.split("=")[1])
    return out


def all_on_x(weights: dict[str, int]) -> bool:
    return bool(weights) and all(w == 0 for n, w in weights.items() if n.startswith("y")) and any(
        w > 0 for n, w in weights.items() if n.startswith("x"))


def labelled(run_id: str) -> list[int]:
    """Processes that still carry the run's label (KUH_RUN_ID)."""
    entry = f"{RUN_ENV}={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and entry in (proc / "environ").read_bytes().split(b"\0") and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def fired(run: PlanRun) -> dict[str, object]:
    found = events(work_of(run) / "supervisor")
    return found[-1] if found and found[-1]["event"] in ("fired", "fire-failed") else {}


def assert_swept(dead: PlanRun, next_run: PlanRun) -> None:
    """The next run removed everything the dead one left, and said so."""
    assert f"removed leftovers of a dead run: run {dead.run_dir.name}:" in next_run.output, next_run.output[-3000:]
    assert dead.leftovers() == []
    assert labelled(dead.run_dir.name) == []
    assert not Path(str(balancer(dead)["folder"])).exists()


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves: a holding supervisor released, dead runs swept."""
    yield
    work = tmp_path / "work"
    for folder in work.glob("*/supervisor"):
        take_over(folder)
    sweep_dead_runs(work)


@pytest.mark.parametrize("splitter", ["haproxy", "nginx"])
def test_kill_9_during_the_shift_returns_traffic_to_x_and_the_next_run_sweeps(
        splitter: str, tmp_path: Path, cleanup: None) -> None:
    plan = plan_file(tmp_path, f"kill-{splitter}", splitter=splitter)
    read = haproxy_weights if splitter == "haproxy" else nginx_weights
    dead = kill_after(tmp_path, plan)
    assert dead.returncode == -signal.SIGKILL
    event = eventually("the supervisor's record", lambda: fired(dead))
    # a kill -9 closes the heartbeat pipe and ends the pid: whichever the supervisor sees first is the reason
    assert isinstance(event, dict) and event["verified"] is True
    assert "heartbeat pipe closed" in str(event["reason"]) or "is gone" in str(event["reason"]), event
    assert all_on_x(read(dead))
    if splitter == "nginx":   # the running nginx answers with the failsafe's config, not just the file on disk
        port = int(re.findall(r"listen 127.0.0.1:(\d+);", (Path(str(balancer(dead)["folder"])) / "nginx.conf")
                              .read_text())[0])
        status = httpx.get(f"http://127.0.0.1:{port}/__kuh/split", timeout=5).text
        assert status.startswith("generation=1000000000 ") and ":drain" not in status, status
    eventually("the dead run's lock is free", lambda: not lock_held(work_of(dead)))

    after = run_plan(tmp_path, plan)
    assert after.returncode == 0, after.output[-3000:]
    assert after.outcomes() == {stage: "passed" for stage in STAGES}
    assert_swept(dead, after)


def test_kill_9_with_the_command_splitter_returns_the_users_balancer_to_x(
        existing_x: list[Node], users_balancer: test_command_splitter.Balancer, tmp_path: Path,
        cleanup: None) -> None:
    script = tmp_path / "lb_weights.py"
    servers = {"x": [n.name for n in existing_x], "y": list(test_command_splitter.Y_SERVERS)}
    script.write_text(test_command_splitter.SCRIPT.format(socket=str(users_balancer.admin_socket), servers=servers))
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    plan = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    plan.update(name="kill-command", config={"upstream": "none"},
                y={"provider": "process", "version": "3.8.1", "count": 2, "initial": 1})
    plan["x"] = {"provider": "existing", "version": "3.4.2", "nodes": [
        {"role": "dbless", "admin_url": n.admin_url, "proxy_url": n.proxy_url, "status_url": n.status_url}
        for n in existing_x]}
    plan["traffic"] = {"splitter": "command", "steps": [10, 50, 100], "hold_seconds": 3, "soak_seconds": 1,
                       "command": {"set_weights": f"{command} set {{x}} {{y}}", "get_weights": f"{command} get",
                                   "listen_url": users_balancer.listen_url}}
    plan["probe"]["timeout_seconds"] = 1
    path = tmp_path / "kill-command.yaml"
    path.write_text(yaml.safe_dump(plan))

    dead = kill_after(tmp_path, str(path), marker="[kuh] step  10 % Y")
    assert test_command_splitter.run_script(script, "get").split() != ["100", "0"] or fired(dead)
    eventually("the user's balancer at 100/0", lambda: test_command_splitter.run_script(script, "get").split()
               == ["100", "0"])
    # the balancer moves first; the supervisor writes its record once it has read the weights back
    assert eventually("the supervisor's record", lambda: fired(dead))["verified"] is True
    after = run_plan(tmp_path, str(path))
    assert after.returncode == 0, after.output[-3000:]
    assert f"removed leftovers of a dead run: run {dead.run_dir.name}:" in after.output
    assert dead.leftovers() == [] and labelled(dead.run_dir.name) == []


def test_a_pause_holds_the_split_and_from_stage_shift_resumes_to_passed(tmp_path: Path, cleanup: None) -> None:
    plan = plan_file(tmp_path, "pause", pause_after=[25], max_pause_seconds=300)
    paused = run_plan(tmp_path, plan)
    assert paused.returncode == 75, paused.output[-3000:]      # not done, not failed
    assert paused.ledger["facts"]["paused"]["weights"] == [75, 25]
    assert paused.ledger["facts"]["shift_steps_passed"] == [5, 25]
    assert paused.verdict("shift")["outcome"] != "passed"
    held = haproxy_weights(paused)                              # pytest is gone; the balancer holds
    assert sum(w for n, w in held.items() if n.startswith("y")) * 3 == sum(
        w for n, w in held.items() if n.startswith("x")), held
    assert read_state(work_of(paused) / "supervisor")["mode"] == "holding"
    assert lock_held(work_of(paused))                          # no other run may sweep it

    resumed = run_plan(tmp_path, plan, "--from-stage", "shift", run_dir=paused.run_dir)
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert resumed.outcomes() == {stage: "passed" for stage in STAGES}
    assert "took over the held split X 75 % / Y 25 %" in resumed.output
    assert [s["weight_y"] for s in resumed.summary["steps"]] == [50, 100]   # it went on at the next step
    assert resumed.leftovers() == [] and labelled(paused.run_dir.name) == []


def test_a_pause_past_max_pause_returns_traffic_to_x(tmp_path: Path, cleanup: None) -> None:
    plan = plan_file(tmp_path, "pause-expires", pause_after=[25], max_pause_seconds=2)
    paused = run_plan(tmp_path, plan)
    assert paused.returncode == 75, paused.output[-3000:]
    eventually("the pause ended", lambda: fired(paused))
    assert "max_pause_seconds" in str(fired(paused)["reason"]) and fired(paused)["verified"] is True
    assert all_on_x(haproxy_weights(paused))
    eventually("the lock is free", lambda: not lock_held(work_of(paused)))
    swept = sweep_dead_runs(paused.work_dir)
    assert [r.run_id for r in swept] == [paused.run_dir.name]
    assert paused.leftovers() == [] and labelled(paused.run_dir.name) == []


def test_two_default_plan_runs_at_once_both_pass(tmp_path: Path, cleanup: None) -> None:
    work = tmp_path / "work"
    runs = [new_run_dir(tmp_path, "plans/default.yaml") for _ in range(2)]
    procs = [subprocess.Popen(suites_command("plans/default.yaml", run_dir), cwd=ROOT, env=plan_env(work),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for run_dir in runs]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, output, run_dir in zip(procs, outputs, runs, strict=True):
        done = PlanRun("plans/default.yaml", proc.returncode, output, run_dir, work)
        assert done.returncode == 0, output[-3000:]
        assert done.outcomes() == {stage: "passed" for stage in STAGES}
        assert "removed leftovers" not in output           # neither swept the other
        assert done.leftovers() == []
    assert os.listdir(work) and not [p for p in work.iterdir() if lock_held(p)]
