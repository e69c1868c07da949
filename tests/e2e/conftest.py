"""Running whole upgrade plans the way QA and CI do: `pytest suites/` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.nodes.process import is_ours

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_KEYS = ("fake-key-alice-0001", "fake-key-bob-0002")  # the consumer keys of plans/configs/sample*.yaml


@dataclass
class PlanRun:
    plan: str
    returncode: int
    output: str
    run_dir: Path
    work_dir: Path

    @property
    def ledger(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "ledger.json").read_text())

    def verdict(self, stage: str) -> dict[str, Any] | None:
        return self.ledger["stages"].get(stage)

    def outcomes(self) -> dict[str, str]:
        return {name: v["outcome"] for name, v in self.ledger["stages"].items()}

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())

    def junit(self) -> ET.Element:
        return ET.parse(self.run_dir / "junit.xml").getroot()

    def leftovers(self) -> list[str]:
        """Processes or containers of this run still alive (there must be none)."""
        found = []
        for pid_file in self.work_dir.rglob("node.pid"):
            record = json.loads(pid_file.read_text())
            if is_ours(record) and "zombie" not in _state(int(record["pid"])):
                found.append(f"pid {record['pid']} ({record.get('node')})")
        run_id = self.run_dir.name
        docker = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=kuh.run={run_id}"],
                                capture_output=True, text=True, timeout=30)
        found += [f"container {c}" for c in docker.stdout.split()]
        return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "gone"


def plan_env(work_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(TESTCONTAINERS_RYUK_DISABLED="true", TESTCONTAINERS_CONNECTION_MODE="docker_host",
               TC_HOST="127.0.0.1", KUH_WORK_ROOT=str(work_dir))
    return env


def new_run_dir(tmp_path: Path, plan: str) -> Path:
    return tmp_path / f"{Path(plan).stem}-{uuid.uuid4().hex[:8]}"


def suites_command(plan: str, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites/", "--plan", plan, "--run-dir", str(run_dir),
            "-p", "no:cacheprovider", "-q", *extra]


def run_plan(tmp_path: Path, plan: str, *extra: str, run_dir: Path | None = None, timeout: float = 300) -> PlanRun:
    run_dir = run_dir or new_run_dir(tmp_path, plan)
    work = tmp_path / "work"
    proc = subprocess.run(suites_command(plan, run_dir, *extra), cwd=ROOT, env=plan_env(work),
                          capture_output=True, text=True, timeout=timeout)
    return PlanRun(plan, proc.returncode, proc.stdout + proc.stderr, run_dir, work)


def interrupt_when(tmp_path: Path, plan: str, marker: str, *extra: str, timeout: float = 300) -> PlanRun:
    """Start a plan, send SIGINT (Ctrl-C) when ``marker`` appears in its output, wait for it to end."""
    run_dir = new_run_dir(tmp_path, plan)
    work = tmp_path / "work"
    proc = subprocess.Popen(suites_command(plan, run_dir, "-s", *extra), cwd=ROOT, env=plan_env(work),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                proc.send_signal(signal.SIGINT)
                break
            if time.monotonic() > deadline:
                break
        rest, _ = proc.communicate(timeout=120)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return PlanRun(plan, proc.returncode, "".join(lines), run_dir, work)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")
